"""A purchase paid by SEPA Direct Debit on the dashboard: "payment pending" with what happens next until
the bank confirms (then the subscription is there), or "payment failed" when it does not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from adapters.stripe_gateway import StripeGateway
from services import subscription_store
from tests.browser.conftest import sign_in
from tests.builders import checkout
from tests.conftest import wait_for
from tests.license_fixtures import new_user, person_of

pytestmark = pytest.mark.browser


@pytest.fixture
def payments_wait(stack) -> Iterator[None]:
    """The emulator's delayed payments settle only when the test says so."""
    before = stack.emulator_get("config")["async_payment_delay_seconds"]
    stack.emulator_control("config", {"async_payment_delay_seconds": 3600})
    yield
    stack.emulator_control("config", {"async_payment_delay_seconds": before})


def _pay_by_sepa(page, stack, quantity: int) -> tuple[dict, str]:
    """A new buyer signs in, pays on the hosted checkout page by SEPA debit and comes back."""
    user = new_user(stack.identity_provider)
    session_id = checkout(stack, person_of(user), quantity=quantity)
    sign_in(page, stack, user["preferred_username"])
    page.goto(StripeGateway(stack.settings).checkout_session(session_id).url)
    billing_address = page.locator("#billing-address")
    if billing_address.get_by_label("Address line 1").count():  # Checkout asks for it (Stripe Tax)
        billing_address.get_by_label("Address line 1").fill("Hauptstraße 1")
        billing_address.get_by_label("Postal code").fill("10115")
        billing_address.get_by_label("City").fill("Berlin")
        billing_address.get_by_label("Country or region").select_option("DE")
    page.get_by_role("button", name="Pay with SEPA Direct Debit (delayed)").click()
    page.wait_for_url("**/api/purchase/complete*")
    return user, session_id


def test_a_sepa_purchase_is_payment_pending_until_the_bank_confirms(page, stack, payments_wait):
    user, session_id = _pay_by_sepa(page, stack, quantity=7)
    page.goto(f"{stack.url}/api/dashboard")
    pending = page.locator("#pending-purchases .card")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("7 licenses")
    expect(pending.locator(".badge")).to_have_text("Payment pending")
    expect(pending).to_contain_text("the subscription appears here")
    expect(page.get_by_text("You do not own or administer a subscription yet")).to_have_count(0)

    stack.settle()  # checkout.session.completed arrives as well: still one purchase, still pending
    page.reload()
    expect(page.locator("#pending-purchases .card")).to_have_count(1)

    stack.emulator_control(f"checkout/{session_id}/async", {"result": "succeeded"})
    stack.settle()
    owned = wait_for(lambda: subscription_store.by_checkout_session(stack.storage(), session_id),
                     message="subscription created after the payment")
    page.reload()
    expect(page.locator("#pending-purchases")).to_have_count(0)
    expect(page.locator(f'#my-subscriptions tr[data-subscription="{owned.id}"]')).to_contain_text("0 / 7")


def test_a_failed_sepa_payment_says_so_in_german_too(page, stack, payments_wait):
    _, session_id = _pay_by_sepa(page, stack, quantity=3)
    stack.emulator_control(f"checkout/{session_id}/async", {"result": "failed"})
    stack.settle()
    page.goto(f"{stack.url}/api/dashboard")
    failed = page.locator('#pending-purchases .card[data-state="failed"]')
    expect(failed.locator(".badge")).to_have_text("Payment failed")
    expect(failed).to_contain_text("no subscription was created and nothing was charged")
    expect(failed.get_by_role("link", name="Buy licenses")).to_have_attribute("href", "/api/purchase")
    page.get_by_role("link", name="Deutsch").click()
    expect(page.locator('#pending-purchases .card[data-state="failed"] .badge')).to_have_text(
        "Zahlung fehlgeschlagen")
    assert subscription_store.by_checkout_session(stack.storage(), session_id) is None
