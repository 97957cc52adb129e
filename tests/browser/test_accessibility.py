"""Accessibility of every portal page (issue 15, "What to build beyond the fixes").

axe-core (npm, node_modules/axe-core) runs in Chromium over each page in English and German, at a
laptop's 1280 px and a phone's 390 px: no serious or critical violation. Each page is saved as a
screenshot, test-output/screenshots/<page>-<language>-<width>.png, for a reviewer to look at.

Keyboard-only use: assigning, revoking and reassigning a license and starting a purchase with
Tab/Shift+Tab/Enter/Space/Escape and typing, no mouse; every element that takes the focus on the way
shows it (an outline or a box-shadow).

One browser; one signed-in context per language is reused by all pages of that language.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from services import access, delegation, seat_assignment, seat_revocation
from services.audit import Actor
from services.unit_of_work import UnitOfWork
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.conftest import REPO_ROOT, wait_for
from tests.license_fixtures import new_user
from tests.licenses_support import context, idp_person

pytestmark = pytest.mark.browser

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
WIDTHS = (1280, 390)
LANGUAGES = {"en": "en-US", "de": "de-DE"}
BLOCKING = ("serious", "critical")

# The focused element shows where it is: an outline of some width, or a box-shadow.
_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const label = el.getAttribute('aria-label') || el.textContent.trim().slice(0, 40) || el.getAttribute('name') || '';
  return {tag: el.tagName.toLowerCase(), id: el.id, label,
          visible: outline || style.boxShadow !== 'none'};
}"""


# --- the data every page shows ---------------------------------------------------------------------


@dataclass
class Portal:
    owner: str  # preferred_username of the owner at the identity provider
    subscription_id: str
    invitation_token: str
    seats: list[str]


@pytest.fixture(scope="module")
def portal(stack) -> Portal:
    """An owner with an organisation subscription: licenses assigned (one revoked, so the audit log has
    more than one kind of entry), a pending delegate invitation, and an individual subscription in the
    same tenant that the merge page offers."""
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
                               f"it.{tag}@contoso.example", frozenset({access.LICENSES_ASSIGN, access.SUBSCRIPTION_VIEW}))
    colleague = new_user(provider)
    purchased_subscription(stack, idp_person(stack, colleague["preferred_username"]), quantity=1, kind="individual")
    return Portal(owner_user["preferred_username"], sub.id, issued.token, seats[:-1])


class Visitors:
    """Browser contexts reused across tests: per language one signed in as the owner, one anonymous.

    axe is injected as a script, which the pages' Content-Security-Policy would refuse: these contexts
    bypass the CSP (the keyboard tests below use ordinary contexts)."""

    def __init__(self, browser: Browser, stack: Any, portal: Portal) -> None:
        self.browser, self.stack, self.portal = browser, stack, portal
        self.pages: dict[tuple[str, bool], Page] = {}
        self.contexts: list[BrowserContext] = []

    def new_page(self, language: str) -> Page:
        ctx = self.browser.new_context(ignore_https_errors=True, locale=LANGUAGES[language], bypass_csp=True,
                                       viewport={"width": WIDTHS[0], "height": 800})
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        return page

    def page(self, language: str, signed_in: bool) -> Page:
        key = (language, signed_in)
        if key not in self.pages:
            page = self.new_page(language)
            if signed_in:
                sign_in(page, self.stack, self.portal.owner)
            self.pages[key] = page
        return self.pages[key]

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


@pytest.fixture(scope="module")
def visitors(browser, stack, portal) -> Iterator[Visitors]:
    made = Visitors(browser, stack, portal)
    yield made
    made.close()


# --- axe and the screenshots ---------------------------------------------------------------------------


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (all rules axe runs by default)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
      const result = await axe.run(document, {resultTypes: ['violations'], rules: {'target-size': {enabled: true}}});
      return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
    }""")


# Every element the keyboard can reach, focused in turn (after a real Tab, so the browser shows the focus
# as it does for the keyboard: :focus-visible): those whose focus shows neither outline nor box-shadow.
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
# At a phone's width the page must not scroll sideways (WCAG 1.4.10): the outermost elements that reach
# past the right edge.
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


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines += [f"    {n['target']}: {' '.join(n['summary'].split())}" for n in v["nodes"][:8]]
    return "\n".join(lines)


def check_page(page: Page, name: str, language: str) -> None:
    """At each width: a screenshot, then axe; fails listing every serious or critical violation."""
    assert page.locator("html").get_attribute("lang") == language
    found: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{language}-{width}.png"), full_page=True)
        blocking = [v for v in axe_violations(page) if v["impact"] in BLOCKING]
        if blocking:
            found.append(f"at {width} px:\n{describe(blocking)}")
        sideways = page.evaluate(_SIDEWAYS)
        if sideways:
            found.append(f"at {width} px the page scrolls sideways:\n    " + "\n    ".join(sideways))
    page.set_viewport_size({"width": WIDTHS[0], "height": 800})
    duplicates = page.evaluate(_DUPLICATE_IDS)
    if duplicates:
        found.append(f"duplicate ids: {duplicates}")
    page.keyboard.press("Tab")  # from here on the browser treats focus as keyboard focus
    invisible = page.evaluate(_INVISIBLE_FOCUS)
    if invisible:
        found.append("focus not visible on:\n    " + "\n    ".join(invisible))
    assert not found, f"{name} ({language}) is not accessible\n" + "\n".join(found)


# --- every page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    signed_in: bool
    path: Callable[[Portal], str]
    status: int = 200
    post: str | None = None  # the button (CSS) to press after loading, for a page that answers a POST


def _sub(rest: str = "") -> Callable[[Portal], str]:
    return lambda p: f"/api/subscriptions/{p.subscription_id}{rest}"


PAGES: dict[str, Visit] = {
    "welcome": Visit(False, lambda p: "/api/dashboard"),
    "purchase": Visit(True, lambda p: "/api/purchase?separate=1"),
    "dashboard": Visit(True, lambda p: "/api/dashboard"),
    "subscription": Visit(True, _sub()),  # with the delegates section
    "setup": Visit(True, _sub("/setup")),
    "licenses": Visit(True, _sub("/licenses")),
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
    "error": Visit(False, lambda p: "/api/auth/callback", status=400),
}


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_has_no_serious_accessibility_violations(name, language, visitors, stack, portal):
    visit = PAGES[name]
    page = visitors.page(language, visit.signed_in)
    response = page.goto(stack.url + visit.path(portal))
    assert response is not None and response.status == visit.status, f"{name}: {response and response.status}"
    check_page(page, name, language)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_signed_out_page_has_no_serious_accessibility_violations(language, visitors, stack, portal):
    page = visitors.new_page(language)  # its own: signing out ends the session
    sign_in(page, stack, portal.owner)
    page.locator("form[action='/api/signout'] button").click()
    page.wait_for_url(f"{stack.url}/api/signout")
    check_page(page, "signed-out", language)


# --- keyboard only ----------------------------------------------------------------------------------


@pytest.fixture
def keyboard_page(browser) -> Iterator[Page]:
    """An ordinary context (the page's CSP applies), laptop-sized."""
    ctx = browser.new_context(ignore_https_errors=True, locale="en-US", viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    yield page
    ctx.close()


def tab_to(page: Page, selector: str, backwards: bool = False, limit: int = 80) -> None:
    """Press Tab (or Shift+Tab) until the element matching `selector` has the focus; every element
    that takes the focus on the way must show it."""
    target = page.locator(selector)
    expect(target).to_have_count(1)
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        focused = page.evaluate(_FOCUS)
        if focused is None:
            continue  # past the end of the page: the browser's own UI, then the page again
        assert focused["visible"], f"focus not visible on {focused}"
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{selector} not reached with {limit} presses of Tab")


def start_at_top(page: Page) -> None:
    """The focus where a newly loaded page has it: nowhere (the next Tab reaches the skip link)."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")


def test_keyboard_reaches_a_visible_focus_on_everything_of_the_subscription_page(keyboard_page, stack, portal):
    """Tab through the whole subscription page (header, delegates, forms): every stop shows its focus,
    the skip link comes first and moves the focus to the main content."""
    page = keyboard_page
    sign_in(page, stack, portal.owner, next_path=f"/api/subscriptions/{portal.subscription_id}")
    start_at_top(page)
    page.keyboard.press("Tab")
    skip = page.evaluate(_FOCUS)
    assert skip is not None and skip["visible"] and page.locator("a.skip").evaluate(
        "el => el === document.activeElement")
    assert page.locator("a.skip").bounding_box()["x"] >= 0, "the skip link appears when focused"
    page.keyboard.press("Enter")
    assert page.evaluate("() => location.hash") == "#main"
    stops = page.locator("main a[href], main button, main input:not([type=hidden]), main select, main textarea")
    tab_to(page, f"main :is(a[href], button, input:not([type=hidden]), select, textarea) >> nth={stops.count() - 1}",
           limit=stops.count() + 5)


def test_keyboard_only_purchase_reaches_checkout(keyboard_page, stack):
    page = keyboard_page
    buyer = new_user(stack.identity_provider)["preferred_username"]
    sign_in(page, stack, buyer, next_path="/api/purchase")
    start_at_top(page)
    tab_to(page, "#quantity")
    page.keyboard.press("Control+A")
    page.keyboard.type("12")
    for field, text in (("#bd-company", "Contoso GmbH"), ("#bd-line1", "Hauptstraße 1"),
                        ("#bd-postal_code", "80331"), ("#bd-city", "München")):
        tab_to(page, field)
        page.keyboard.type(text)
    tab_to(page, "#bd-country")
    page.keyboard.type("Germany")  # a focused select picks the option typed
    expect(page.locator("#bd-country")).to_have_value("DE")
    tab_to(page, "#checkout")
    page.keyboard.press("Enter")
    page.wait_for_url("**/checkout/**")
    assert "57.60" in page.content() or "57,60" in page.content()


def test_keyboard_only_assign(keyboard_page, stack):
    owner_user = new_user(stack.identity_provider)
    sub = purchased_subscription(stack, idp_person(stack, owner_user["preferred_username"]), quantity=3)
    licenses = f"/api/subscriptions/{sub.id}/licenses"
    page = keyboard_page
    sign_in(page, stack, owner_user["preferred_username"], next_path=licenses)
    start_at_top(page)
    tab_to(page, "#emails")
    page.keyboard.type("kim@contoso.example\nlou@contoso.example")
    tab_to(page, "form[enctype='multipart/form-data'] button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#seats tbody tr")).to_have_count(2)
    expect(page.locator("#seat-count")).to_contain_text("2 of 3")
