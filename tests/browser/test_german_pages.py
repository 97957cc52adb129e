"""German pages speak German (issue 15, defect 5): no English fragments.

Every page test_accessibility.py visits (the same data, the same list) is opened in German, and its
text is checked against the English catalogue: a word that only translations/en.json uses (not a word
of translations/de.json, not a product or technical name both languages share) must not appear. The
failure names the page, the words and the lines they stand in.

What a page shows is its visible text with every <details> opened, its title, and the texts of the
attributes assistive technology reads (aria-label, title, placeholder, alt). Left out, as data rather
than the page's language: e-mail addresses, web addresses and identifiers (anything with digits and
letters together, "_", "@" or "/"), the test users' names ("User 0a1b2c3d4e"), <code> (action codes,
ids), and content marked as another language with its own lang attribute (the language switch's
"English", a mail in the outbox written in its recipient's language).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page

from tests.browser.test_accessibility import PAGES, Portal, portal, visitors  # noqa: F401  (fixtures used below)
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.browser

TRANSLATIONS = REPO_ROOT / "translations"

# Names and terms a German text uses as they are (the customer guide does too): products, formats,
# standards. Most are in de.json anyway; listed so the check does not depend on that.
SHARED_TERMS = frozenset(word.lower() for word in (
    "SecureMailMerge", "Microsoft", "Outlook", "Stripe", "Entra", "Excel", "CSV", "PDF", "OK", "SEPA",
    "UTF", "EU", "ID", "Mail", "XRechnung", "ZUGFeRD", "Factur", "UBL", "CII", "API", "JSON", "UTC",
    "Deutsch",  # the English page names the German language by its own name ("switch the page to Deutsch")
))

_PLACEHOLDER = re.compile(r"\{\w+\}")
_WORD = re.compile(r"[^\W\d_]{2,}")
# A chunk of text that is data, not language: addresses, links, ids, amounts with units glued on.
_DATA_CHUNK = re.compile(r"\S*(?:[@_/]|\d[^\W\d_]|[^\W\d_]\d)\S*")
_TEST_USER = re.compile(r"\bUser [0-9a-f]{10}\b")  # tests/license_fixtures.new_user's display names


def words(text: str) -> set[str]:
    """The words of a text, lower case, data chunks left out."""
    text = _DATA_CHUNK.sub(" ", _TEST_USER.sub(" ", _PLACEHOLDER.sub(" ", text)))
    return {w.lower() for w in _WORD.findall(text)}


@cache
def english_only_words() -> frozenset[str]:
    """Words of the English catalogue's texts that are not words of the German catalogue's texts nor
    shared terms: on a German page, each of them is an English fragment."""
    catalogue = {language: json.loads((TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8"))
                 for language in ("en", "de")}
    english = set().union(*(words(text) for text in catalogue["en"].values()))
    german = set().union(*(words(text) for text in catalogue["de"].values()))
    return frozenset(english - german - SHARED_TERMS)


# The page's text as a reader (or a screen reader) meets it, without what is marked as data.
_PAGE_TEXT = """() => {
  for (const d of document.querySelectorAll('details')) d.open = true;
  for (const el of document.querySelectorAll('code, kbd, samp')) el.remove();
  for (const el of document.querySelectorAll('body [lang]')) {
    if (!el.lang.toLowerCase().startsWith('de')) el.remove();
  }
  const names = ['aria-label', 'title', 'placeholder', 'alt'];
  const attributes = [...document.querySelectorAll(names.map(n => `[${n}]`).join(','))]
    .flatMap(el => names.map(n => el.getAttribute(n)).filter(Boolean));
  return [document.title, document.body.innerText, ...attributes].join('\\n');
}"""


def english_fragments(page: Page) -> dict[str, list[str]]:
    """The English-only words on the page, each with the lines it stands in."""
    text: str = page.evaluate(_PAGE_TEXT)
    english = english_only_words()
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        for word in sorted(words(line) & english):
            found.setdefault(word, []).append(" ".join(line.split())[:160])
    return found


def test_the_word_list_holds_english_and_no_german():
    english = english_only_words()
    assert {"license", "subscription", "the", "of", "assigned", "revoke"} <= english
    assert not {"lizenz", "abonnement", "securemailmerge", "outlook", "microsoft", "csv", "mail", "status"} & english
    data = "ada.1f2e@contoso.example sub_9XyZ 57,60 € User 0a1b2c3d4e"
    assert words(f"{data} hat {{count}} Lizenzen") == {"hat", "lizenzen"}


@pytest.mark.parametrize("name", list(PAGES))
def test_german_page_has_no_english_fragments(name, visitors, stack, portal):  # noqa: F811  (the fixtures)
    visit = PAGES[name]
    page = visitors.page("de", visit.signed_in)
    response = page.goto(stack.url + visit.path(portal))
    assert response is not None and response.status == visit.status, f"{name}: {response and response.status}"
    assert page.locator("html").get_attribute("lang") == "de"
    found = english_fragments(page)
    assert not found, f"the German page {name!r} shows English words:\n" + "\n".join(
        f"  {word}: " + " | ".join(lines[:3]) for word, lines in sorted(found.items()))


# --- refusals and failures: texts that come from a query parameter or an exception ---------------------


def _go(path: Callable[[Portal], str]) -> Callable[[Page, str, Portal], int]:
    def visit(page: Page, url: str, p: Portal) -> int:
        response = page.goto(url + path(p))
        assert response is not None
        return response.status
    return visit


def _sub(rest: str) -> Callable[[Page, str, Portal], int]:
    return _go(lambda p: f"/api/subscriptions/{p.subscription_id}{rest}")


def _consent_declined(page: Page, url: str, p: Portal) -> int:
    """Entra answers with its own English error description (AADSTS65004: User declined ...)."""
    page.goto(url + "/api/consent")
    page.get_by_role("link", name="Admin-Zustimmung bei Microsoft erteilen").click()
    with page.expect_navigation(url="**/api/consent/callback*") as navigation:
        page.get_by_role("button", name="Cancel").click()
    response = navigation.value
    assert "AADSTS65004" in page.content(), "the code stays for the IT department"
    return response.status


def _sign_in_refused(page: Page, url: str, p: Portal) -> int:
    """A sign-in started here that Entra answers with an error and its English description."""
    page.goto(url + "/api/signin")  # the flow is kept in the session; the browser is at the account picker
    query = urlencode({"error": "invalid_request", "state": "from-entra",
                       "error_description": "AADSTS50011: The redirect URI specified in the request does not match."})
    response = page.goto(f"{url}/api/auth/callback?{query}")
    assert response is not None
    return response.status


def _form_without_token(page: Page, url: str, p: Portal) -> int:
    """A form sent without this session's CSRF token."""
    page.goto(url + "/api/dashboard")
    with page.expect_navigation() as navigation:
        page.evaluate("""() => { const f = document.createElement('form'); f.method = 'post';
            f.action = '/api/signout'; document.body.append(f); f.submit(); }""")
    return navigation.value.status


# name: (signed in, what to do, the status the page answers with)
REFUSALS: dict[str, tuple[bool, Callable[[Page, str, Portal], int], int]] = {
    "purchase-quantity": (True, _go(lambda p: "/api/purchase?quantity=many"), 400),
    "purchase-unknown": (True, _go(lambda p: "/api/purchase/complete?session_id=cs_test_unknown"), 404),
    "licenses-search": (True, _sub("/licenses?q=" + "x" * 400), 400),
    "revoke-link": (True, _sub("/licenses/revoke?email=not-an-address"), 400),
    "revoke-unknown": (True, _sub("/licenses/revoke?email=nobody@contoso.example"), 404),
    "quantity-invalid": (True, _sub("/quantity?quantity=0"), 400),
    "quantity-below-assigned": (True, _sub("/quantity?quantity=1"), 409),
    "billing-interval": (True, _sub("/billing?interval=fortnight"), 200),
    "e-invoice-format": (True, _sub("/invoices/in_unknown/e-invoice?format=pdf"), 400),
    "consent-declined": (True, _consent_declined, 400),
    "sign-in-refused": (False, _sign_in_refused, 400),
    "form-without-token": (True, _form_without_token, 403),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_german_refusals_have_no_english_fragments(name, visitors, stack, portal):  # noqa: F811  (the fixtures)
    signed_in, act, status = REFUSALS[name]
    page = visitors.page("de", signed_in)
    assert act(page, stack.url, portal) == status, name
    assert page.locator("html").get_attribute("lang") == "de"
    found = english_fragments(page)
    assert not found, f"the German page {name!r} shows English words:\n" + "\n".join(
        f"  {word}: " + " | ".join(lines[:3]) for word, lines in sorted(found.items()))
