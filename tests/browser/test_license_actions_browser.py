"""Revoke and reassign on the license page (issue 15, defect 3): one compact table, each action
through a small dialog with a confirmation (a confirmation page without JavaScript), an undo after a
revoke, and all of it by keyboard alone."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from adapters import keys
from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import SUBSCRIPTIONS
from services import seat_assignment
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.conftest import REPO_ROOT
from tests.license_fixtures import new_user
from tests.licenses_support import context, idp_person

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
# The focused element shows where it is: an outline, or a box-shadow.
_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  return {inDialog: !!el.closest('dialog[open]'), text: (el.getAttribute('aria-label') || el.textContent).trim(),
          name: el.getAttribute('name') || '',
          visible: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none'};
}"""


@dataclass
class Licensed:
    owner: str  # the owner's sign-in name at the identity provider
    subscription_id: str
    addresses: list[str]

    @property
    def path(self) -> str:
        return f"/api/subscriptions/{self.subscription_id}/licenses"


def licensed(stack, count: int, quantity: int | None = None) -> Licensed:
    """A new owner's subscription with `count` licenses assigned (a fresh owner per test)."""
    user = new_user(stack.identity_provider)
    owner = idp_person(stack, user["preferred_username"])
    sub = purchased_subscription(stack, owner, quantity=quantity or count)
    tag = uuid.uuid4().hex[:6]
    addresses = [f"person{n:02d}.{tag}@contoso.example" for n in range(count)]
    seat_assignment.assign(context(stack, person=owner), sub.id, addresses)
    return Licensed(user["preferred_username"], sub.id, addresses)


def holds_seat(stack, subscription_id: str, address: str) -> bool:
    return stack.storage().get(SUBSCRIPTIONS, subscription_id, keys.seat_row(address)) is not None


def rows(page: Page) -> list[str]:
    return page.locator("#seats tbody tr").evaluate_all("rows => rows.map(r => r.dataset.email)")


def test_a_revoke_needs_its_confirmation_and_can_be_undone(page, stack):
    lic = licensed(stack, 2, quantity=3)
    gone, kept = lic.addresses
    sign_in(page, stack, lic.owner, next_path=lic.path)

    # The row's button only asks: the dialog names the address, nothing is revoked yet.
    page.get_by_role("button", name=f"Revoke the license of {gone}").click()
    dialog = page.get_by_role("dialog", name="Revoke license?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{gone} can no longer use SecureMailMerge")
    expect(dialog).to_contain_text("undo this for 10 minutes")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "licenses-revoke-dialog-en.png"))
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert holds_seat(stack, lic.subscription_id, gone) and rows(page) == [gone, kept]

    # A form posted without the confirmation (an old page, a crafted post) revokes nothing either.
    csrf = page.locator("#revoke-dialog input[name=csrf_token]").input_value()
    answer = page.request.post(f"{stack.url}/api/subscriptions/{lic.subscription_id}/licenses/revoke",
                               form={"csrf_token": csrf, "email": gone})
    assert answer.status == 200 and "Revoke license?" in answer.text()
    assert holds_seat(stack, lic.subscription_id, gone)

    page.get_by_role("button", name=f"Revoke the license of {gone}").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke license").click()
    expect(page.get_by_role("status").first).to_contain_text(
        f"The license of {gone} was revoked. You can undo this for 10 minutes.")
    expect(page.locator("#seats tbody tr")).to_have_count(1)
    assert not holds_seat(stack, lic.subscription_id, gone)

    # Undo: the same address is licensed again, as a new (pending) seat, audited on its own.
    expect(page.locator("#undo")).to_contain_text(gone)
    page.get_by_role("button", name=f"Undo the revoke of {gone}").click()
    expect(page.get_by_role("status").first).to_contain_text(f"{gone} has the license again.")
    expect(page.locator("#seats tbody tr")).to_have_count(2)
    expect(page.locator(f'#seats tr[data-email="{gone}"] .badge')).to_have_text("Pending")
    expect(page.locator("#undo")).to_have_count(0)
    assert holds_seat(stack, lic.subscription_id, gone)
    latest = next(SubscriptionRepository(stack.storage()).audit_entries(lic.subscription_id))
    assert (latest.action, latest.target, latest.actor.email) == ("license.restored", gone, lic.owner)
    expect(page.locator("#seat-count")).to_contain_text("2 of 3")


def test_an_undo_says_so_when_the_license_was_taken_meanwhile(browser, stack):
    lic = licensed(stack, 1)
    (gone,) = lic.addresses
    ctx = browser.new_context(ignore_https_errors=True, locale="de-DE")
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, stack, lic.owner, next_path=lic.path)
        page.get_by_role("button", name=f"Lizenz von {gone} entziehen").click()
        dialog = page.get_by_role("dialog", name="Lizenz entziehen?")
        expect(dialog).to_contain_text("Du kannst das 10 Minuten lang rückgängig machen.")
        dialog.get_by_role("button", name="Lizenz entziehen").click()
        expect(page.get_by_role("status").first).to_contain_text(f"Die Lizenz von {gone} wurde entzogen.")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "licenses-undo-de.png"), full_page=True)

        # Someone else gets the only license before the undo.
        owner = idp_person(stack, lic.owner)
        seat_assignment.assign(context(stack, person=owner), lic.subscription_id, ["nachfolger@contoso.example"])
        page.get_by_role("button", name=f"Entziehen der Lizenz von {gone} rückgängig machen").click()
        expect(page.get_by_role("status").first).to_contain_text(
            f"Das Entziehen der Lizenz von {gone} kann nicht rückgängig gemacht werden: Die Lizenz ist nicht mehr frei")
        assert rows(page) == ["nachfolger@contoso.example"]
        assert not holds_seat(stack, lic.subscription_id, gone)
    finally:
        ctx.close()


def test_twelve_licenses_make_a_compact_page(browser, stack):
    lic = licensed(stack, 12)
    ctx = browser.new_context(ignore_https_errors=True, locale="en-US", viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, stack, lic.owner, next_path=lic.path)
        expect(page.locator("#seats tbody tr")).to_have_count(12)
        height = page.evaluate("() => document.documentElement.scrollHeight")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "licenses-12-seats-en-1280.png"), full_page=True)
        assert height < 1200, f"the page with 12 licenses is {height} px high"
        # One row each: no form or field per row, two small buttons.
        assert page.locator("#seats tbody input").count() == 0
        assert page.locator("#seats tbody tr").first.bounding_box()["height"] < 48
    finally:
        ctx.close()


def _tab_to(page: Page, accessible_name: str, backwards: bool = False, limit: int = 80) -> dict:
    """Tab (or Shift+Tab) until the element with this label or text has the focus; every stop on the
    way must show its focus."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        focused = page.evaluate(_FOCUS)
        if focused is None:
            continue
        assert focused["visible"], f"focus not visible on {focused}"
        if focused["text"] == accessible_name:
            return focused
    raise AssertionError(f"{accessible_name!r} not reached with {limit} presses of Tab")


def test_keyboard_only_revoke_and_reassign(browser, stack):
    lic = licensed(stack, 3)
    gone, moved, kept = lic.addresses
    ctx = browser.new_context(ignore_https_errors=True, locale="en-US", viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, stack, lic.owner, next_path=lic.path)
        page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")

        # Enter opens the dialog with the focus inside it; Escape closes it, the focus goes back.
        _tab_to(page, f"Revoke the license of {gone}")
        page.keyboard.press("Enter")
        focused = page.evaluate(_FOCUS)
        assert focused["inDialog"] and focused["visible"], focused
        page.keyboard.press("Escape")
        expect(page.locator("dialog[open]")).to_have_count(0)
        assert page.evaluate(_FOCUS)["text"] == f"Revoke the license of {gone}"
        assert holds_seat(stack, lic.subscription_id, gone)

        # Again, to the confirmation.
        page.keyboard.press("Enter")
        _tab_to(page, "Revoke license")
        assert page.evaluate(_FOCUS)["inDialog"]
        page.keyboard.press("Enter")
        expect(page.get_by_role("status").first).to_contain_text(f"The license of {gone} was revoked.")
        assert rows(page) == [moved, kept]

        # Reassign: the focus lands in the new address's field; Enter sends the form.
        page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
        _tab_to(page, f"Reassign the license of {moved}")
        page.keyboard.press("Enter")
        focused = page.evaluate(_FOCUS)
        assert focused["inDialog"] and focused["name"] == "to", focused
        newcomer = f"newcomer.{uuid.uuid4().hex[:6]}@contoso.example"
        page.keyboard.type(newcomer)
        page.keyboard.press("Enter")
        expect(page.get_by_role("status").first).to_contain_text(f"The license of {moved} now belongs to {newcomer}.")
        assert sorted(rows(page)) == sorted([kept, newcomer])
    finally:
        ctx.close()


def test_without_javascript_each_action_is_a_confirmation_page(browser, stack):
    lic = licensed(stack, 2)
    gone, moved = lic.addresses
    ctx = browser.new_context(ignore_https_errors=True, locale="en-US", java_script_enabled=False)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, stack, lic.owner, next_path=lic.path)
        page.get_by_role("link", name=f"Revoke the license of {gone}").click()
        page.wait_for_url(re.compile(r".*/licenses/revoke\?email="))
        expect(page.get_by_role("heading", level=1)).to_have_text("Revoke license?")
        expect(page.locator("#license-action")).to_contain_text(f"{gone} can no longer use SecureMailMerge")
        assert holds_seat(stack, lic.subscription_id, gone)  # showing the page changes nothing
        page.get_by_role("button", name="Revoke license").click()
        page.wait_for_url(f"{stack.url}{lic.path}")
        assert rows(page) == [moved] and not holds_seat(stack, lic.subscription_id, gone)

        page.get_by_role("link", name=f"Reassign the license of {moved}").click()
        page.wait_for_url(re.compile(r".*/licenses/reassign\?email="))
        # Not an address: the form again, 400, the field named (the browser's own check stops a typed one).
        csrf = page.locator("input[name=csrf_token]").last.input_value()
        answer = page.request.post(f"{stack.url}{lic.path}/reassign",
                                   form={"csrf_token": csrf, "email": moved, "to": "no address"})
        assert answer.status == 400
        assert "no address&#34; is not a valid e-mail address." in answer.text()
        assert 'aria-invalid="true"' in answer.text()
        newcomer = f"newcomer.{uuid.uuid4().hex[:6]}@contoso.example"
        page.get_by_label("New e-mail address").fill(newcomer)
        page.get_by_role("button", name="Reassign license").click()
        page.wait_for_url(f"{stack.url}{lic.path}")
        assert rows(page) == [newcomer]

        # An address that holds no license (anymore): the page says so, 404; no address: 400.
        missing = page.goto(f"{stack.url}{lic.path}/revoke?email={gone}")
        assert missing is not None and missing.status == 404
        expect(page.get_by_role("alert")).to_contain_text(f"{gone} holds no license in this subscription.")
        bad = page.goto(f"{stack.url}{lic.path}/reassign?email=")
        assert bad is not None and bad.status == 400
        expect(page.get_by_role("alert")).to_contain_text("“email” field")
    finally:
        ctx.close()
