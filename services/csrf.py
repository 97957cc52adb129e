"""CSRF protection for state-changing forms: a per-session token plus the browser's origin headers."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit


class CsrfRejected(PermissionError):
    """`code`: "foreign" (sent from another site or an opaque origin) or "expired" (no or a wrong token);
    pages explain it in their language (translations `error.csrf.<code>`), the message is for logs."""

    def __init__(self, message: str, code: str = "foreign") -> None:
        super().__init__(message)
        self.code = code


def check(*, expected_token: str | None, sent_token: str | None, origin: str | None, fetch_site: str | None,
          base_url: str) -> None:
    """Refuse a state-changing request unless it carries the session's token from our own origin.

    Browsers send `Sec-Fetch-Site` and usually `Origin` on POSTs; when they do, they must say the
    request came from this site. The token is required in every case (old browsers send neither).

    `Origin: null` is refused (an opaque origin: a sandboxed frame, a data: page), except together
    with `Sec-Fetch-Site: same-origin`: that is a form of our own page whose Referrer-Policy is
    `no-referrer` (the invitation page, whose address holds its token), for which browsers send
    `null` instead of our origin. A page can neither set nor forge Sec-Fetch-Site.
    """
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise CsrfRejected(f"cross-site request refused (Sec-Fetch-Site: {fetch_site})")
    if origin is not None and origin != "null" and _origin(origin) != _origin(base_url):
        raise CsrfRejected("request from another origin refused")
    if origin == "null" and fetch_site != "same-origin":
        raise CsrfRejected("request from an opaque origin refused")
    if not expected_token or not sent_token or not _same(expected_token, sent_token):
        raise CsrfRejected("the form has expired or did not come from this site; reload the page and try again",
                           code="expired")


def _same(expected: str, sent: str) -> bool:
    """Constant-time comparison of the UTF-8 bytes: `compare_digest` raises TypeError for a `str` with
    non-ASCII characters, and a form may send anything."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), sent.encode("utf-8", "surrogatepass"))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
