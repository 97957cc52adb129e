"""Refusals and failures reach a page in its language (issue 15, defect 5): no English sentence of a
service, of Entra or of Stripe on a German page.

Pages explain a refusal by its code (handlers/web.refusal_text); the CSRF check and the sign-in say why
by a code too. Rendered German pages are checked in tests/browser/test_german_pages.py.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import cast

import pytest

import services
from handlers.web import refusal_text
from services import e_invoice
from services.billing_changes import StripeRefusedChange
from services.csrf import CsrfRejected, check
from services.i18n import catalog, has_text, translator
from services.identity.signin import SignInFailed, finish
from services.quantity_change import BelowAssigned
from services.settings import Settings
from services.unit_of_work import Refused

# Where pages look for the text of a refusal's code.
PREFIXES = ("refused", "billing.error", "billing.interval.error", "delegates.error", "licenses.error",
            "merge.error", "invitation.problem", "e_invoice.error")
# Codes pages do not show as a sentence of their own: base classes never raised as such, and refusals a
# page answers otherwise (the merge page shows the price to confirm; a setup mark and a billing setting
# are explained per field; an unusable invitation link by its reason, invitation.problem.*).
NOT_SHOWN_BY_CODE = {"refused", "delegation_refused", "seat_error", "quantity_confirmation_required", "invalid_mark"}


def _refusals() -> set[type[Refused]]:
    for module in pkgutil.walk_packages(services.__path__, "services."):
        importlib.import_module(module.name)
    found: set[type[Refused]] = set()
    todo = [Refused]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def test_every_refusal_the_services_raise_has_a_text_in_both_languages():
    codes = {cls.code for cls in _refusals()} - NOT_SHOWN_BY_CODE
    assert {"no_seats_free", "below_assigned", "stripe_refused", "list_too_large"} <= codes
    without = sorted(code for code in codes
                     if not any(has_text(f"{prefix}.{code}", 2) or any(key.startswith(f"{prefix}.{code}.")
                                                                        for key in catalog("en"))
                                for prefix in PREFIXES))
    assert without == [], "add a text (refused.<code>) so pages can explain it in their language"


def test_every_reason_an_e_invoice_is_unavailable_has_a_text():
    codes = set(re.findall(r'EInvoiceUnavailable\("(\w+)"', Path(e_invoice.__file__).read_text(encoding="utf-8")))
    assert {"draft", "tax", "seller_phone"} <= codes
    assert sorted(code for code in codes if not has_text(f"e_invoice.error.{code}")) == []


def test_a_refusal_is_shown_in_the_pages_language():
    refused = StripeRefusedChange("the payment provider refused the change: Your card has insufficient funds.")
    assert refusal_text("de", refused) == catalog("de")["refused.stripe_refused"]
    assert refusal_text("en", refused) == catalog("en")["refused.stripe_refused"]
    # The page's own text first, with its values; a plural by the count.
    below = BelowAssigned(quantity=5, assigned=6)
    assert refusal_text("de", below, "billing.error.below_assigned", assigned=6, count=below.revoke) == (
        "6 Lizenzen sind zugewiesen. Entziehe zuerst 1 Lizenz und verringere dann die Anzahl. Es wurde nichts "
        "geändert.")


def test_without_a_text_a_german_page_says_so_in_german_and_never_in_english():
    class Unexplained(Refused):
        code = "something_new"

    refused = Unexplained("the rules refused something new")
    assert refusal_text("de", refused, "billing.error.something_new") == catalog("de")["refused.other"]
    assert refusal_text("en", refused) == "the rules refused something new"
    # A text that needs a value the caller did not give is passed over, not a crash.
    assert refusal_text("de", refused, "licenses.error.not_assigned") == catalog("de")["refused.other"]


@pytest.mark.parametrize("sent, origin, fetch_site, code", [
    ("tok", "https://evil.example", None, "foreign"),
    ("tok", "https://licensing.example.com", "cross-site", "foreign"),
    ("tok", "null", None, "foreign"),
    (None, "https://licensing.example.com", "same-origin", "expired"),
    ("other", None, None, "expired"),
])
def test_a_csrf_refusal_says_why_by_a_code_with_a_text(sent, origin, fetch_site, code):
    with pytest.raises(CsrfRejected) as refused:
        check(expected_token="tok", sent_token=sent, origin=origin, fetch_site=fetch_site,
              base_url="https://licensing.example.com")
    assert refused.value.code == code
    assert {f"error.csrf.{code}"} <= set(catalog("de")) & set(catalog("en"))


@pytest.mark.parametrize("query, code, detail", [
    ({"error": "access_denied", "error_description": "AADSTS65004: User declined to consent."}, "declined", ""),
    ({"error": "invalid_request", "error_description": "AADSTS50011: The redirect URI does not match."},
     "provider", "AADSTS50011"),
    ({"error": "server_error", "error_description": "Something went wrong."}, "provider", "server_error"),
])
def test_a_failed_sign_in_quotes_entras_code_not_its_english(query, code, detail):
    with pytest.raises(SignInFailed) as failed:
        finish(cast(Settings, None), {}, query)  # Entra's error answer is read before anything else
    assert (failed.value.code, failed.value.detail) == (code, detail)
    german = translator("de")(f"signin.failed.{failed.value.code}", code=failed.value.detail)
    assert german != f"signin.failed.{code}" and "declined" not in german and "went wrong" not in german
