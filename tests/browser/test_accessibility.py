"""Accessibility of every portal page (issue 15, "What to build beyond the fixes").

axe-core (npm, node_modules/axe-core) runs in Chromium over each page in English and German, at a
laptop's 1280 px and a phone's 390 px: no serious or critical violation (WCAG 2.2's target size
included, which axe leaves off by default). Beyond axe: no duplicate ids, no sideways scrolling at
390 px (WCAG 1.4.10), and every element the keyboard reaches shows its focus. Each page is saved as a
screenshot, test-output/screenshots/<page>-<language>-<width>.png, for a reviewer to look at.

Keyboard-only use: assigning, revoking and reassigning a license and starting a purchase with
Tab/Shift+Tab/Enter/Space/Escape and typing, no mouse; every element that takes the focus on the way
shows it (an outline or a box-shadow).

One browser; per language one signed-in and one anonymous context, reused by all pages.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from services import access, delegation, seat_assignment, seat_revocation
from services.audit import Actor
from services.unit_of_work import UnitOfWork
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.conftest import REPO_ROOT
from tests.license_fixtures import new_user
from tests.licenses_support import context, idp_person

pytestmark = pytest.mark.browser

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
WIDTHS = (1280, 390)
LANGUAGES = {"en": "en-US", "de": "de-DE"}
BLOCKING = ("serious", "critical")

# axe's own rules, plus target size (WCAG 2.2 AA, off in axe by default).
_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations'], rules: {'target-size': {enabled: true}}});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary || ''}))}));
}"""
# The focused element, and whether it shows the focus: an outline of some width, or a box-shadow.
_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  return {element: el.outerHTML.slice(0, 100), visible: outline || style.boxShadow !== 'none'};
}"""
# Every element the keyboard can reach, focused in turn (after a real Tab, so that the browser shows the
# focus as it does for the keyboard, :focus-visible): those whose focus shows neither outline nor shadow.
_INVISIBLE_FOCUS = """() => {
  const reachable = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
    .filter(el => !el.disabled && el.getClientRects().length > 0);
  const invisible = [];
  for (const el of reachable) {
    el.focus();
    if (document.activeElement !== el) continue;
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    if (!el.matches(':focus-visible') || !(outline || style.boxShadow !== 'none')) {
      invisible.push(el.outerHTML.slice(0, 120));
    }
  }
  document.activeElement.blur();
  return invisible;
}"""
# The page scrolls sideways: the outermost elements that reach past the right edge.
_SIDEWAYS = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  return [...document.body.querySelectorAll('*')]
    .filter(el => el.getBoundingClientRect().right > width + 1
                  && el.parentElement.getBoundingClientRect().right <= width + 1)
    .map(el => `${el.outerHTML.slice(0, 80)} (right edge at ${Math.round(el.getBoundingClientRect().right)} px)`);
}"""
_DUPLICATE_IDS = """() => {
  const seen = {};
  for (const el of document.querySelectorAll('[id]')) seen[el.id] = (seen[el.id] || 0) + 1;
  return Object.keys(seen).filter(id => seen[id] > 1);
}"""


# --- the data the pages show ------------------------------------------------------------------------


@dataclass(frozen=True)
class Portal:
    owner: str  # the owner's preferred_username at the identity provider
    subscription_id: str
    invitation_token: str
    seat: str  # an assigned license


@pytest.fixture(scope="module")
def portal(stack) -> Portal:
    """An owner with an organisation subscription: licenses assigned and one revoked (so the audit log
    has more than one kind of entry), a pending delegate invitation, and an individual subscription in
    the same tenant for the merge page to offer."""
    provider = stack.identity_provider
    owner_user = new_user(provider)
    owner = idp_person(stack, owner_user["preferred_username"])
    sub = purchased_subscription(stack, owner, quantity=12)
    tag = uuid.uuid4().hex[:6]
    seats = [f"{name}.{tag}@contoso.example" for name in ("ada", "bea", "cem", "dov")]
    ctx = context(stack, person=owner)
    seat_assignment.assign(ctx, sub.id, seats)
    seat_revocation.revoke(ctx, sub.id, seats[-1])
    issued = delegation.invite(UnitOfWork(stack.storage()), stack.settings,
                               Actor(owner.tid, owner.oid, owner.email, owner.name), sub.id,
                               f"it.{tag}@contoso.example",
                               frozenset({access.LICENSES_ASSIGN, access.SUBSCRIPTION_VIEW}))
    colleague = new_user(provider)
    purchased_subscription(stack, idp_person(stack, colleague["preferred_username"]), quantity=1, kind="individual")
    return Portal(owner_user["preferred_username"], sub.id, issued.token, seats[0])


def new_page(browser: Browser, language: str = "en") -> tuple[BrowserContext, Page]:
    ctx = browser.new_context(ignore_https_errors=True, locale=LANGUAGES[language],
                              viewport={"width": WIDTHS[0], "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    return ctx, page


class Visitors:
    """Browser contexts reused across the page tests: per language one signed in as the owner and one
    anonymous, each opened when first needed."""

    def __init__(self, browser: Browser, stack: Any, portal: Portal) -> None:
        self.browser, self.stack, self.portal = browser, stack, portal
        self.pages: dict[tuple[str, bool], Page] = {}
        self.contexts: list[BrowserContext] = []

    def new_page(self, language: str) -> Page:
        ctx, page = new_page(self.browser, language)
        self.contexts.append(ctx)
        return page

    def page(self, language: str, signed_in: bool) -> Page:
        if (language, signed_in) not in self.pages:
            page = self.new_page(language)
            if signed_in:
                sign_in(page, self.stack, self.portal.owner)
            self.pages[(language, signed_in)] = page
        return self.pages[(language, signed_in)]

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


@pytest.fixture(scope="module")
def visitors(browser, stack, portal) -> Iterator[Visitors]:
    made = Visitors(browser, stack, portal)
    yield made
    made.close()


# --- the checks -------------------------------------------------------------------------------------


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now. Evaluated through the browser's debugging
    protocol, which the page's Content-Security-Policy does not restrict (a script tag it would)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    violations: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
    return violations


def blocking_violations(page: Page) -> str:
    """The serious and critical violations: each rule, its impact and the elements, one per line."""
    lines = []
    for v in axe_violations(page):
        if v["impact"] in BLOCKING:
            lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
            lines += [f"    {n['target']}: {' '.join(n['summary'].split())}" for n in v["nodes"][:10]]
    return "\n".join(lines)


def check_page(page: Page, name: str, language: str) -> None:
    """At each width a screenshot, axe, and no sideways scrolling; then duplicate ids and the focus of
    everything the keyboard reaches. Fails with everything found."""
    assert page.locator("html").get_attribute("lang") == language
    found: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{language}-{width}.png"), full_page=True)
        violations = blocking_violations(page)
        if violations:
            found.append(f"axe at {width} px:\n{violations}")
        sideways = page.evaluate(_SIDEWAYS)
        if sideways:
            found.append(f"at {width} px the page scrolls sideways:\n    " + "\n    ".join(sideways))
    page.set_viewport_size({"width": WIDTHS[0], "height": 800})
    duplicates = page.evaluate(_DUPLICATE_IDS)
    if duplicates:
        found.append(f"duplicate ids: {duplicates}")
    page.keyboard.press("Tab")  # from here on the browser treats the focus as the keyboard's
    invisible = page.evaluate(_INVISIBLE_FOCUS)
    if invisible:
        found.append("focus not visible on:\n    " + "\n    ".join(invisible))
    assert not found, f"{name} ({language}) is not accessible:\n" + "\n".join(found)


# --- every page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    signed_in: bool
    path: Callable[[Portal], str]
    status: int = 200


def _sub(rest: str = "") -> Callable[[Portal], str]:
    return lambda p: f"/api/subscriptions/{p.subscription_id}{rest}"


PAGES: dict[str, Visit] = {
    "welcome": Visit(False, lambda p: "/api/dashboard"),
    "purchase": Visit(True, lambda p: "/api/purchase?separate=1"),  # with the owner's subscription offered
    "dashboard": Visit(True, lambda p: "/api/dashboard"),
    "subscription": Visit(True, _sub()),  # with the delegates section
    "setup": Visit(True, _sub("/setup")),
    "licenses": Visit(True, _sub("/licenses")),
    "license-revoke": Visit(True, lambda p: f"/api/subscriptions/{p.subscription_id}/licenses/revoke?email={p.seat}"),
    "license-reassign": Visit(True,
                              lambda p: f"/api/subscriptions/{p.subscription_id}/licenses/reassign?email={p.seat}"),
    "audit": Visit(True, _sub("/audit")),
    "billing": Visit(True, _sub("/billing")),
    "quantity": Visit(True, _sub("/quantity")),
    "cancellation": Visit(True, _sub("/cancellation")),
    "merge": Visit(True, _sub("/merge")),
    "consent": Visit(True, lambda p: "/api/consent"),
    "consent-result": Visit(True, lambda p: "/api/consent/check"),
    "outbox": Visit(True, lambda p: "/api/dev/outbox"),
    "invitation": Visit(False, lambda p: f"/api/invitations/{p.invitation_token}"),
    "not-found": Visit(True, lambda p: "/api/no-such-page", status=404),
    "error": Visit(False, lambda p: "/api/auth/callback", status=400),  # a callback without a sign-in
}


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_is_accessible(name, language, visitors, stack, portal):
    visit = PAGES[name]
    page = visitors.page(language, visit.signed_in)
    response = page.goto(stack.url + visit.path(portal))
    assert response is not None and response.status == visit.status, f"{name}: {response and response.status}"
    check_page(page, name, language)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_signed_out_page_is_accessible(language, visitors, stack, portal):
    page = visitors.new_page(language)  # its own context: signing out ends the session
    sign_in(page, stack, portal.owner)
    page.locator("form[action='/api/signout'] button").click()
    page.wait_for_url(f"{stack.url}/api/signout")
    check_page(page, "signed-out", language)


# --- keyboard only ----------------------------------------------------------------------------------


@pytest.fixture
def keyboard_page(browser) -> Iterator[Page]:
    ctx, page = new_page(browser)
    yield page
    ctx.close()


def focused(page: Page) -> dict[str, Any] | None:
    value: dict[str, Any] | None = page.evaluate(_FOCUS)
    return value


def has_focus(target: Locator) -> bool:
    return bool(target.evaluate("el => el === document.activeElement"))


def tab_to(page: Page, target: Locator, backwards: bool = False, limit: int = 80) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus; each element that takes the focus on the
    way must show it."""
    expect(target).to_have_count(1)
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        now = focused(page)
        if now is None:
            continue  # past the end of the page: the browser's own controls, then the page again
        assert now["visible"], f"the focus is not visible on {now['element']}"
        if has_focus(target):
            return
    raise AssertionError(f"{target} not reached with {limit} presses of {'Shift+' if backwards else ''}Tab")


def start_at_top(page: Page) -> None:
    """The focus as on a newly loaded page: nowhere, so the next Tab reaches the skip link."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")


def test_keyboard_skips_to_the_content_and_every_stop_shows_its_focus(keyboard_page, stack, portal):
    """The subscription page (header, delegates, their forms) from the skip link to its last control."""
    page = keyboard_page
    sign_in(page, stack, portal.owner, next_path=f"/api/subscriptions/{portal.subscription_id}")
    start_at_top(page)
    page.keyboard.press("Tab")
    skip = page.locator("a.skip")
    assert has_focus(skip)
    now = focused(page)
    assert now is not None and now["visible"]
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0, "the skip link is on screen while it has the focus"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.querySelector('main').contains(document.activeElement)"), \
        "after the skip link, Tab continues in the main content"
    controls = page.locator("main").locator(
        "a[href], button:visible, input:not([type=hidden]):visible, select, textarea")
    tab_to(page, controls.last, limit=controls.count() + 10)  # + the table's scrolling region


def test_keyboard_only_purchase_reaches_checkout(keyboard_page, stack):
    page = keyboard_page
    buyer = new_user(stack.identity_provider)["preferred_username"]
    sign_in(page, stack, buyer, next_path="/api/purchase")
    start_at_top(page)
    tab_to(page, page.locator("#quantity"))
    page.keyboard.press("Control+A")
    page.keyboard.type("12")
    for field, text in (("#bd-company", "Contoso GmbH"), ("#bd-line1", "Hauptstraße 1"),
                        ("#bd-postal_code", "80331"), ("#bd-city", "München")):
        tab_to(page, page.locator(field))
        page.keyboard.type(text)
    tab_to(page, page.locator("#bd-country"))
    page.keyboard.type("Germany")  # a focused list box selects the option typed
    expect(page.locator("#bd-country")).to_have_value("DE")
    tab_to(page, page.get_by_role("button", name="Continue to secure payment"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/checkout/**")
    assert "57.60" in page.content() or "57,60" in page.content()  # 12 × 4.80 €


def _owner_with_licenses(stack, addresses: list[str], quantity: int = 5) -> tuple[str, str]:
    """(the owner's sign-in name, subscription id) of a new subscription with `addresses` licensed."""
    owner_user = new_user(stack.identity_provider)
    owner = idp_person(stack, owner_user["preferred_username"])
    sub = purchased_subscription(stack, owner, quantity=quantity)
    if addresses:
        seat_assignment.assign(context(stack, person=owner), sub.id, addresses)
    return owner_user["preferred_username"], sub.id


def submit(page: Page, key: str = "Enter") -> None:
    """Press `key` on the focused button and wait for the page the form answers with (the same address
    as before: waiting for the address would return at once)."""
    with page.expect_navigation(wait_until="load"):
        page.keyboard.press(key)


def _listed(page: Page) -> list[str]:
    emails: list[str] = page.locator("#seats tbody tr").evaluate_all("rows => rows.map(r => r.dataset.email)")
    return emails


def test_keyboard_only_assign(keyboard_page, stack):
    tag = uuid.uuid4().hex[:6]
    first, added = f"first.{tag}@contoso.example", [f"kim.{tag}@contoso.example", f"lou.{tag}@contoso.example"]
    owner, sub_id = _owner_with_licenses(stack, [first])
    page = keyboard_page
    sign_in(page, stack, owner, next_path=f"/api/subscriptions/{sub_id}/licenses")
    start_at_top(page)
    emails = page.get_by_label("E-mail addresses")
    fold = page.locator("details:has(#emails)")
    if fold.count() and fold.get_attribute("open") is None:  # the form folded away under the list: open it
        tab_to(page, fold.locator("summary"))
        page.keyboard.press("Enter")
    tab_to(page, emails)
    page.keyboard.type(f"{added[0]}\n{added[1]}")
    tab_to(page, page.get_by_role("button", name="Assign licenses"))
    submit(page)
    expect(page.locator("#seat-count")).to_contain_text("3 of 5")
    assert sorted(_listed(page)) == sorted([first, *added])


# The revoke and reassign dialogs (issue 15, defect 3): opened from the row, the focus moves into the
# dialog, Escape closes it and gives the focus back to the row's button.


def _open_dialog(page: Page, opener: Locator, key: str) -> Locator:
    tab_to(page, opener)
    page.keyboard.press(key)
    dialog = page.locator("dialog[open]")
    expect(dialog).to_have_count(1)
    assert page.evaluate("() => document.querySelector('dialog[open]').contains(document.activeElement)"), \
        "the focus moves into the dialog"
    now = focused(page)
    assert now is not None and now["visible"], f"the focus is not visible on {now}"
    return dialog


def test_keyboard_only_revoke_with_confirmation(keyboard_page, stack):
    tag = uuid.uuid4().hex[:6]
    kept, gone = f"kept.{tag}@contoso.example", f"gone.{tag}@contoso.example"
    owner, sub_id = _owner_with_licenses(stack, [kept, gone])
    page = keyboard_page
    sign_in(page, stack, owner, next_path=f"/api/subscriptions/{sub_id}/licenses")
    start_at_top(page)
    opener = page.get_by_role("button", name=f"Revoke the license of {gone}")

    _open_dialog(page, opener, "Enter")
    page.keyboard.press("Escape")  # changed their mind: nothing happens
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert has_focus(opener), "the focus returns to the row's button"
    assert gone in _listed(page)

    dialog = _open_dialog(page, opener, "Enter")
    expect(dialog).to_contain_text(gone)
    violations = blocking_violations(page)
    assert not violations, f"the open revoke dialog:\n{violations}"
    tab_to(page, dialog.get_by_role("button", name=re.compile("^Revoke")))
    submit(page, "Space")
    assert _listed(page) == [kept]


def test_keyboard_only_reassign(keyboard_page, stack):
    tag = uuid.uuid4().hex[:6]
    leaver, successor = f"leaver.{tag}@contoso.example", f"successor.{tag}@contoso.example"
    owner, sub_id = _owner_with_licenses(stack, [leaver])
    page = keyboard_page
    sign_in(page, stack, owner, next_path=f"/api/subscriptions/{sub_id}/licenses")
    start_at_top(page)
    dialog = _open_dialog(page, page.get_by_role("button", name=re.compile(f"^Reassign.*{re.escape(leaver)}")), "Space")
    expect(dialog).to_contain_text(leaver)
    violations = blocking_violations(page)
    assert not violations, f"the open reassign dialog:\n{violations}"
    tab_to(page, dialog.get_by_label("New e-mail address"))
    page.keyboard.type(successor)
    tab_to(page, dialog.get_by_role("button", name=re.compile("^Reassign")))
    submit(page)
    assert _listed(page) == [successor]
