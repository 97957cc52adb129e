"""Buying as a German-speaking business (PRODUCT.md 2.13), in the browser with de-DE: VAT follows the billing
address and the VAT ID (19 % in Germany, reverse charge for an Austrian business), a wrong VAT ID is refused on
the purchase page before anything reaches Stripe, and paying by invoice licenses at once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from adapters.stripe_gateway import StripeGateway, as_dict
from services import subscription_store
from tests.browser.conftest import sign_in
from tests.browser.test_purchase import fill_business_details
from tests.license_fixtures import new_user

pytestmark = pytest.mark.browser


def _invoice(stack, subscription_id: str) -> dict:
    client = StripeGateway(stack.settings).client()
    return as_dict(client.v1.invoices.list(params={"subscription": subscription_id}).data[0])


def _buy(page, stack, quantity: int, **details: str) -> str:
    """Fill the German purchase page and go on to Stripe's checkout page."""
    buyer = new_user(stack.identity_provider)["preferred_username"]
    sign_in(page, stack, buyer, next_path=f"/api/purchase?quantity={quantity}")
    expect(page.get_by_role("heading", name="SecureMailMerge-Lizenzen kaufen")).to_be_visible()
    fill_business_details(page, **details)
    page.get_by_role("button", name="Weiter zur sicheren Zahlung").click()
    return buyer


def _pay_and_land(page, stack) -> str:
    page.get_by_role("button", name="Pay", exact=True).click()
    page.wait_for_url("**/api/subscriptions/*/setup")
    return page.url.rstrip("/").split("/")[-2]


def test_a_german_business_pays_19_percent_vat(german_page, stack):
    page = german_page
    _buy(page, stack, 3, country="DE", vat_id="DE 136 695 976")
    page.wait_for_url("**/checkout/**")
    # 3 × 6.00 € net, 19 % German VAT on top; the buyer's details are already there.
    expect(page.locator("#tax-label")).to_have_text("VAT")
    expect(page.locator("#tax")).to_contain_text("3.42")
    expect(page.locator("#total")).to_contain_text("21.42")
    subscription_id = _pay_and_land(page, stack)
    invoice = _invoice(stack, subscription_id)
    assert (invoice["total_excluding_tax"], invoice["total"]) == (1800, 2142)
    assert invoice["customer_tax_ids"] == [{"type": "eu_vat", "value": "DE136695976"}]
    assert invoice["customer_address"]["country"] == "DE"


def test_an_austrian_business_with_a_vat_id_gets_reverse_charge(german_page, stack):
    page = german_page
    _buy(page, stack, 3, company="Alpenblick Handels GmbH", country="AT", vat_id="ATU13585627")
    page.wait_for_url("**/checkout/**")
    expect(page.locator("#tax-label")).to_have_text("VAT (reverse charge)")
    expect(page.locator("#total")).to_contain_text("18.00")
    subscription_id = _pay_and_land(page, stack)
    invoice = _invoice(stack, subscription_id)
    assert invoice["total"] == invoice["total_excluding_tax"] == 1800
    assert [t["taxability_reason"] for t in invoice["total_taxes"]] == ["reverse_charge"]


def test_a_wrong_vat_id_is_refused_before_checkout(german_page, stack):
    page = german_page
    _buy(page, stack, 3, country="DE", vat_id="DE136695975")
    # Still on the purchase page: nothing went to Stripe, the field is marked and the reason said in German.
    expect(page.locator("#purchase-error")).to_have_text(
        "Die Prüfziffer der USt-IdNr. stimmt nicht: Wahrscheinlich hast du dich vertippt.")
    expect(page.locator("#bd-vat_id")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#bd-company")).to_have_value("Contoso GmbH")  # what was typed stays
    assert "/checkout/" not in page.url
    # An Austrian VAT ID with a German address is refused too.
    page.locator("#bd-vat_id").fill("ATU13585627")
    page.get_by_role("button", name="Weiter zur sicheren Zahlung").click()
    expect(page.locator("#purchase-error")).to_have_text(
        "Die USt-IdNr. ist aus einem anderen Land als die Rechnungsadresse.")


def test_paying_by_invoice_licenses_at_once(german_page, stack):
    page = german_page
    buyer = new_user(stack.identity_provider)["preferred_username"]
    sign_in(page, stack, buyer, next_path="/api/purchase?quantity=25")
    page.get_by_label("Auf Rechnung (Überweisung)").check()
    fill_business_details(page, country="DE", vat_id="DE136695976", po_number="4500012345")
    page.get_by_role("button", name="Weiter zur sicheren Zahlung").click()
    page.wait_for_url(re.compile(r"/api/subscriptions/sub_\w+/setup\?invoice=sent$"))
    expect(page.locator("#invoice-sent")).to_contain_text("Deine Lizenzen funktionieren ab sofort.")
    subscription_id = page.url.split("/")[-2]
    stored = subscription_store.load(stack.storage(), subscription_id)
    assert stored is not None and stored.quantity == 25 and stored.po_number == "4500012345"
    invoice = _invoice(stack, subscription_id)
    assert invoice["collection_method"] == "send_invoice" and invoice["status"] == "open"
    assert invoice["custom_fields"] == [{"name": "Bestellnummer", "value": "4500012345"}]
    assert invoice["total"] == round(25 * 480 * 1.19)
