"""The CSRF check (services/csrf.py): the session's token, from our own origin."""

from __future__ import annotations

import pytest

from services.csrf import CsrfRejected, check

BASE = "https://licensing.example.com"


def _check(sent: str | None = "tok", origin: str | None = None, fetch_site: str | None = None) -> None:
    check(expected_token="tok", sent_token=sent, origin=origin, fetch_site=fetch_site, base_url=BASE)


@pytest.mark.parametrize("origin, fetch_site", [
    (None, None),  # an old browser: the token alone
    (BASE, "same-origin"),
    ("https://LICENSING.example.com", None),
    (None, "none"),  # typed into the address bar / a bookmark
    # A form of a page with Referrer-Policy: no-referrer (the invitation page) posting to its own origin.
    ("null", "same-origin"),
])
def test_accepted(origin, fetch_site):
    _check(origin=origin, fetch_site=fetch_site)


@pytest.mark.parametrize("sent, origin, fetch_site", [
    (None, BASE, "same-origin"),
    ("other", BASE, "same-origin"),
    ("tok", "https://evil.example", None),
    ("tok", BASE, "cross-site"),
    ("tok", BASE, "same-site"),
    ("tok", "null", None),  # an opaque origin: a sandboxed frame, a data: URL
    ("tok", "null", "cross-site"),
])
def test_refused(sent, origin, fetch_site):
    with pytest.raises(CsrfRejected):
        _check(sent, origin, fetch_site)


@pytest.mark.parametrize("sent", ["tök", "\u202e" * 40, "tok\x00", "😀" * 3, ""])
def test_a_non_ascii_or_odd_token_is_refused_never_raises_anything_else(sent):
    # hmac.compare_digest raises TypeError on non-ASCII str: the comparison is on UTF-8 bytes.
    with pytest.raises(CsrfRejected):
        _check(sent, BASE, "same-origin")
    with pytest.raises(CsrfRejected):
        check(expected_token="tök", sent_token="tok", origin=None, fetch_site=None, base_url=BASE)
