"""The owner settles the optional setup steps: admin consent marked "not needed" ends the "Setup is not
finished" banner (before, only granted consent did), the mark is audited and can be taken back."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from playwright.sync_api import expect

from adapters.subscription_repository import SubscriptionRepository
from services import seat_assignment, subscription_store
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.license_fixtures import new_user, person_of
from tests.licenses_support import context

pytestmark = pytest.mark.browser

BANNER = "Setup is not finished yet"


def test_marking_admin_consent_not_needed_ends_the_setup_banner(page, stack):
    user = new_user(stack.identity_provider)
    owner = person_of(user)
    sub = purchased_subscription(stack, owner, quantity=3)
    # A tenant of its own, so no admin consent is on record for it (other tests grant consent).
    subscription_store.update(stack.storage(), sub.id,
                              lambda current: (replace(current, tenant_id=str(uuid.uuid4())), []))
    seat_assignment.assign(context(stack, person=owner), sub.id, [f"first.{uuid.uuid4().hex[:6]}@contoso.example"])
    overview = f"/api/subscriptions/{sub.id}"
    sign_in(page, stack, user["preferred_username"], next_path=overview)

    # Licenses are assigned; only admin consent holds the banner.
    page.get_by_role("link", name=BANNER).click()
    consent_step = page.locator("#step-consent")
    expect(consent_step.get_by_role("button", name="Not needed")).to_be_visible()
    expect(page.locator("#step-assign").get_by_role("button")).to_have_count(0)  # the server tells
    consent_step.get_by_role("button", name="Not needed").click()

    expect(page.get_by_role("status").first).to_have_text('"Admin consent" is marked as not needed.')
    expect(page.locator("#step-consent .badge")).to_have_text("Not needed")
    page.goto(f"{stack.url}{overview}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_text(BANNER)).to_have_count(0)
    stored = subscription_store.load(stack.storage(), sub.id)
    assert stored is not None and stored.setup_consent == "not_needed"
    entry = next(SubscriptionRepository(stack.storage()).audit_entries(sub.id))
    assert (entry.action, entry.target, entry.actor.oid) == ("setup.step_marked", "consent", owner.oid)

    # Taken back, the banner returns.
    page.goto(f"{stack.url}{overview}/setup")
    page.locator("#step-consent").get_by_role("button", name="Undo the mark").click()
    expect(page.get_by_role("status").first).to_have_text('The mark on "Admin consent" is taken back.')
    page.goto(f"{stack.url}{overview}")
    expect(page.get_by_role("link", name=BANNER)).to_be_visible()


def test_a_step_the_server_decides_cannot_be_marked(page, stack):
    user = new_user(stack.identity_provider)
    sub = purchased_subscription(stack, person_of(user), quantity=2)
    sign_in(page, stack, user["preferred_username"], next_path=f"/api/subscriptions/{sub.id}/setup")
    # A tampered form: "assign" is done when licenses are assigned, never by a mark.
    page.locator("#step-delegates input[name=step]").evaluate("input => input.value = 'assign'")
    with page.expect_navigation() as navigation:
        page.locator("#step-delegates").get_by_role("button", name="Mark as done").click()
    assert navigation.value is not None and navigation.value.status == 400
    expect(page.get_by_role("heading", name="This step cannot be marked")).to_be_visible()
    stored = subscription_store.load(stack.storage(), sub.id)
    assert stored is not None and (stored.setup_consent, stored.setup_delegates) == ("", "")
