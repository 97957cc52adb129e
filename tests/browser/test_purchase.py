"""Buying licenses end to end in the browser: purchase page -> the Stripe emulator's hosted
checkout -> completion redirect -> setup page; and the buyer who abandons checkout."""

import pytest
from playwright.sync_api import expect

from services import subscription_store
from tests.browser.conftest import sign_in
from tests.conftest import wait_for
from tests.license_fixtures import new_user
from tests.licenses_support import idp_person

pytestmark = pytest.mark.browser


def fill_business_details(page, *, company: str = "Contoso GmbH", country: str = "DE",
                          vat_id: str = "", po_number: str = "") -> None:
    """An organisation's business details on the purchase page (required whichever way it pays)."""
    page.locator("#bd-company").fill(company)
    page.locator("#bd-line1").fill("Hauptstraße 1" if country == "DE" else "Mariahilfer Straße 1")
    page.locator("#bd-postal_code").fill("80331" if country == "DE" else "1060")
    page.locator("#bd-city").fill("München" if country == "DE" else "Wien")
    page.locator("#bd-country").select_option(country)
    page.locator("#bd-vat_id").fill(vat_id)
    page.locator("#bd-po_number").fill(po_number)


def test_checkout_is_for_the_number_on_screen_even_without_updating_the_price(page, stack):
    """Typing 12 and going straight to payment must not check out the 10 the page was rendered with."""
    buyer = new_user(stack.identity_provider)["preferred_username"]
    sign_in(page, stack, buyer, next_path="/api/purchase?quantity=10")
    expect(page.locator("#quote")).to_contain_text("10 × 4.80 €")
    page.get_by_label("Number of licenses").fill("12")
    fill_business_details(page)
    page.get_by_role("button", name="Continue to secure payment").click()
    page.wait_for_url("**/checkout/**")
    assert "57.60" in page.content() or "57,60" in page.content()
    assert "48.00" not in page.content() and "48,00" not in page.content()


def test_buy_12_licenses_and_land_on_the_setup_page(page, stack):
    # A buyer who owns no subscription yet (one who does is offered to add licenses to it first:
    # tests/browser/test_billing_browser.py).
    buyer = new_user(stack.identity_provider)["preferred_username"]
    sign_in(page, stack, buyer, next_path="/api/purchase")
    # The tiers come from the Stripe price: 1-9 at 6.00, 10+ at 4.80 (volume pricing).
    expect(page.get_by_text("6.00 € per license")).to_be_visible()
    expect(page.get_by_text("4.80 € per license")).to_be_visible()
    page.get_by_label("Number of licenses").fill("12")
    page.get_by_role("button", name="Update price").click()
    expect(page.locator("#quote")).to_have_text("12 × 4.80 € = 57.60 € per month (plus applicable tax).")
    fill_business_details(page)
    page.get_by_role("button", name="Continue to secure payment").click()

    page.wait_for_url("**/checkout/**")
    assert "57.60" in page.content() or "57,60" in page.content()
    page.get_by_role("button", name="Pay", exact=True).click()

    page.wait_for_url("**/api/subscriptions/*/setup")
    expect(page.get_by_role("heading", name="Set up SecureMailMerge")).to_be_visible()
    expect(page.get_by_text("Your subscription for 12 licenses is ready")).to_be_visible()
    steps = page.locator("ol.checklist > li h2").all_inner_texts()
    assert [s.split("\n")[0] for s in steps][:3] == [
        "1. Assign licenses",
        "2. Deploy the add-in",
        '3. Grant admin consent if users see "Need admin approval"',
    ]
    expect(page.get_by_role("cell", name="Microsoft 365 admin center > Settings > Integrated apps")).to_be_visible()
    subscription_id = page.url.rstrip("/").split("/")[-2]
    admin = idp_person(stack, buyer)
    stored = subscription_store.load(stack.storage(), subscription_id)
    assert stored.quantity == 12 and stored.owner_oid == admin.oid and stored.setup_seen_at is not None

    # The dashboard lists it, and the webhook that arrives as well does not create a second one.
    page.goto(f"{stack.url}/api/dashboard")
    expect(page.get_by_role("cell", name="0 / 12")).to_be_visible()
    wait_for(lambda: stack.storage().get("StripeIndex", "session", stored.checkout_session_id),
             message="webhook applied")
    assert len(subscription_store.for_user(stack.storage(), admin.tid, admin.oid)) >= 1
    subscriptions = subscription_store.for_user(stack.storage(), admin.tid, admin.oid)
    assert [s.id for s, _ in subscriptions].count(subscription_id) == 1


def test_out_of_range_quantity_is_explained(page, stack):
    sign_in(page, stack, "bob@contoso.example", next_path="/api/purchase")
    response = page.goto(f"{stack.url}/api/purchase?quantity=10001")
    assert response.status == 400
    assert "from 1 to 10000" in page.locator("#purchase-error").inner_text()
    response = page.goto(f"{stack.url}/api/purchase?quantity=abc")
    assert response.status == 400


def test_cancelled_checkout_returns_to_the_purchase_page(page, stack):
    sign_in(page, stack, "bob@contoso.example", next_path="/api/purchase")
    fill_business_details(page)
    page.get_by_role("button", name="Continue to secure payment").click()
    page.wait_for_url("**/checkout/**")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url("**/api/purchase?cancelled=1")
    expect(page.get_by_text("Payment was cancelled")).to_be_visible()
def test_completion_with_unknown_or_foreign_session_shows_a_clear_page(page, stack):
    sign_in(page, stack, "bob@contoso.example")
    response = page.goto(f"{stack.url}/api/purchase/complete?session_id=cs_test_unknown")
    assert response.status == 404 and page.get_by_role("heading", name="Unknown purchase").is_visible()
    response = page.goto(f"{stack.url}/api/purchase/complete")
    assert response.status == 400
