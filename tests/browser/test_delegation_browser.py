"""Delegated administration in the browser (issue 11's acceptance): finance keeps the subscription,
IT manages licenses.

The owner invites an IT colleague with "assign/revoke" and "view" on the subscription page; the
colleague opens the link from the mail, signs in through the local identity provider as the invited
account, accepts, finds the subscription on their dashboard, assigns a license, and is offered
nothing they may not do: no delegate management, no ownership transfer, no quantity, no billing.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.license_fixtures import new_user
from tests.licenses_support import idp_person

pytestmark = pytest.mark.browser

INVITATION_LINK = re.compile(r"https?://[^\s\"'<>]+/api/invitations/[A-Za-z0-9_-]+")
# Where the owner's controls live: a delegate's pages must not link or post to any of them.
OWNER_AND_MONEY = re.compile(r"/(delegates|owner-transfer|quantity|billing|portal|cancel|invoices|payment)\b"
                             r"|#delegates\b")


def _invitation_link(stack, to: str) -> str:
    """The link in the invitation mail to `to` (the outbox holds the rendered mail)."""
    mails = wait_for(lambda: [m for m in stack.outbox() if m["to"] == to], timeout=30, message=f"mail to {to}")
    assert len(mails) == 1, [m["subject"] for m in mails]
    found = INVITATION_LINK.findall(mails[0]["text"])
    assert found, mails[0]["text"]
    assert len(set(found)) == 1
    return found[0]


def _targets(page) -> list[str]:
    """Every link and form target on the page."""
    return page.eval_on_selector_all(
        "a[href], form[action]", "els => els.map(e => e.getAttribute('href') || e.getAttribute('action'))")


def test_owner_invites_it_colleague_who_accepts_and_assigns_a_license(page, browser, stack, tmp_path):
    provider = stack.identity_provider
    owner_user = new_user(provider)
    colleague_user = new_user(provider)
    owner = idp_person(stack, owner_user["preferred_username"])
    colleague_address = colleague_user["preferred_username"]
    sub = purchased_subscription(stack, owner, quantity=5)
    subscription_path = f"/api/subscriptions/{sub.id}"

    # --- the owner invites on the subscription page ------------------------------------------------
    sign_in(page, stack, owner_user["preferred_username"], next_path=subscription_path)
    section = page.locator("section#delegates")
    expect(section.get_by_role("heading", name="Delegated administrators")).to_be_visible()
    form = page.locator("#invite-form")
    form.get_by_label("E-mail address of the person who should manage licenses").fill(colleague_address)
    form.get_by_label("Assign/revoke licenses").check()
    form.get_by_label("View subscription").check()
    # Billing is unchecked by default, with the hint that IT staff usually do not need it.
    expect(form.get_by_label("Manage billing")).not_to_be_checked()
    expect(form.get_by_label("Manage billing")).to_have_accessible_name(re.compile("usually not needed for IT staff"))
    form.get_by_label("Manage quantity").uncheck()
    form.get_by_role("button", name="Send invitation").click()
    shown = page.locator("#invitation-link")
    expect(shown).to_be_visible()
    pending = page.locator(f'#delegate-list tr[data-email="{colleague_address}"]')
    expect(pending).to_have_attribute("data-state", "pending")
    # The permissions column lists what was offered, nothing more.
    expect(pending.locator("td").nth(1).locator("li")).to_have_text(["Assign/revoke licenses", "View subscription"])

    link = _invitation_link(stack, colleague_address)
    assert link == shown.input_value(), "the mail and the owner's page carry the same one-time link"
    assert link.startswith(stack.settings.public_base_url + "/api/invitations/")

    # --- the colleague, in a browser of their own -----------------------------------------------------
    context = browser.new_context(ignore_https_errors=True, locale="en-US")
    try:
        it = context.new_page()
        it.set_default_timeout(15_000)
        it.goto(link)
        expect(it.locator("#invited-email")).to_have_text(colleague_address)
        invited = it.locator("#invited-permissions li")
        expect(invited).to_have_count(2)
        assert [li.get_attribute("data-permission") for li in invited.all()] == ["licenses.assign",
                                                                                 "subscription.view"]
        # Not signed in yet: the way to accept is signing in with Microsoft 365, then back here.
        it.get_by_role("link", name="Sign in with Microsoft 365 to accept").click()
        it.locator("button[name=select_user]", has_text=colleague_address).first.click()
        it.wait_for_url(link)
        accept = it.get_by_role("button", name="Accept invitation")
        expect(accept).to_be_visible()
        expect(it.get_by_text(f"You are signed in as {colleague_address}")).to_be_visible()
        it.screenshot(path=str(tmp_path / "invitation-page.png"), full_page=True)
        accept.click()

        it.wait_for_url(f"{stack.url}{subscription_path}")
        expect(it.get_by_role("status").filter(has_text="Invitation accepted")).to_have_count(1)
        expect(it.locator("h1")).to_contain_text(owner.email)
        it.screenshot(path=str(tmp_path / "delegate-subscription-page.png"), full_page=True)
        # The owner's part of the page is not there for a delegate.
        expect(it.locator("#delegates")).to_have_count(0)
        expect(it.locator("#invite-form")).to_have_count(0)
        expect(it.locator("#transfer-form")).to_have_count(0)
        expect(it.get_by_text("Delegated administrators")).to_have_count(0)
        expect(it.get_by_text("Transfer ownership")).to_have_count(0)
        links = it.locator("#subscription-links")
        expect(links.get_by_role("link", name="Assign and manage licenses")).to_be_visible()
        expect(links.get_by_role("link", name="Audit log")).to_be_visible()

        # The dashboard lists the subscription, as administered by them, with only their actions.
        it.goto(f"{stack.url}/api/dashboard")
        row = it.locator(f'#my-subscriptions tr[data-subscription="{sub.id}"]')
        expect(row).to_have_attribute("data-role", "delegate")
        expect(row).to_contain_text("Delegated administrator")
        expect(row.get_by_role("link", name="Assign and manage licenses")).to_be_visible()
        expect(row.get_by_role("link", name="Delegated administrators")).to_have_count(0)

        # They assign a license.
        row.get_by_role("link", name="Assign and manage licenses").click()
        it.wait_for_url(f"{stack.url}{subscription_path}/licenses")
        newcomer = f"new.{uuid.uuid4().hex[:6]}@contoso.example"
        it.get_by_label("E-mail addresses").fill(newcomer)
        it.get_by_role("button", name="Assign licenses").click()
        it.wait_for_url(f"{stack.url}{subscription_path}/licenses")
        expect(it.get_by_role("status").filter(has_text="1 license assigned;")).to_have_count(1)
        expect(it.locator(f'#seats tr[data-email="{newcomer}"]')).to_have_count(1)
        it.goto(f"{stack.url}{subscription_path}/audit")
        latest = it.locator("#audit tbody tr").first
        expect(latest).to_contain_text(re.compile(r"licenses?\.assigned"))
        expect(latest).to_contain_text(colleague_address)

        # Nowhere a control for delegates, ownership, quantity or billing.
        for path in ("/api/dashboard", subscription_path, f"{subscription_path}/licenses",
                     f"{subscription_path}/audit", f"{subscription_path}/setup"):
            it.goto(f"{stack.url}{path}")
            offered = [t for t in _targets(it) if OWNER_AND_MONEY.search(t)]
            assert offered == [], f"{path} offers the delegate {offered}"
            for text in ("Send invitation", "Offer ownership", "Manage quantity", "Manage billing"):
                expect(it.get_by_role("button", name=text)).to_have_count(0)
    finally:
        context.close()

    # The owner sees the colleague as an active delegate with exactly those permissions.
    page.goto(f"{stack.url}{subscription_path}")
    active = page.locator(f'#delegate-list tr[data-email="{colleague_address}"]')
    expect(active).to_have_attribute("data-state", "active")
    expect(active.get_by_label("Assign/revoke licenses")).to_be_checked()
    expect(active.get_by_label("View subscription")).to_be_checked()
    expect(active.get_by_label("Manage quantity")).not_to_be_checked()
    expect(active.get_by_label("Manage billing")).not_to_be_checked()
