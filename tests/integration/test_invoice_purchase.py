"""Buying by invoice through the running stack (PRODUCT.md 2.13): the purchase page's form, the Stripe
customer and send_invoice subscription in the emulator (real SDK), licenses valid at once, past due after
the due date, restored by paying."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from adapters.stripe_gateway import StripeGateway, as_dict
from services import subscription_store
from services.subscription import LicenseState
from tests.billing_support import own_stack, stripe_subscription
from tests.conftest import wait_for
from tests.license_fixtures import new_user, person_of, token_for
from tests.licenses_support import call
from tests.pages_support import page, signed_in


@pytest.fixture(scope="module")
def stack(identity_provider, tmp_path_factory):
    # Its own emulator: these tests move the emulated clock past invoice due dates.
    with own_stack(identity_provider, tmp_path_factory) as running:
        yield running

AUSTRIA = {"company": "Alpenblick Handels GmbH", "line1": "Mariahilfer Straße 1", "postal_code": "1060",
           "city": "Wien", "country": "AT", "vat_id": "ATU13585627", "po_number": "PO-2026-0815",
           "accounting_email": "buchhaltung@alpenblick.example"}


def _buyer(stack):
    user = new_user(stack.identity_provider)
    return user, person_of(user)


def _form(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf, "kind": "organisation", "quantity": "25", "interval": "month",
            "payment": "invoice", "attempt": uuid.uuid4().hex, "action": "checkout", "separate": "1",
            **AUSTRIA, **fields}


def test_a_purchase_by_invoice_licenses_at_once_and_follows_the_due_date(stack):
    user, buyer = _buyer(stack)
    cookie, csrf = signed_in(stack, buyer)
    status, _, html = page(stack.url, "GET", "/api/purchase?quantity=25", cookie)
    assert status == 200 and 'name="payment" value="invoice"' in html, stack.host.logs()[-3000:]

    form = _form(csrf)
    status, headers, _ = page(stack.url, "POST", "/api/purchase", cookie, form)
    assert status == 303, headers
    location = headers["Location"]
    bought = re.fullmatch(r"/api/subscriptions/(sub_[A-Za-z0-9]+)/setup\?invoice=sent", location)
    assert bought is not None, location
    subscription_id = bought[1]
    # The same form submitted again (a double click) is the same purchase.
    status, headers, _ = page(stack.url, "POST", "/api/purchase", cookie, form)
    assert status == 303 and headers["Location"] == location

    stored = subscription_store.load(stack.storage(), subscription_id)
    assert stored is not None and stored.quantity == 25 and stored.owner_email == buyer.email
    assert (stored.po_number, stored.accounting_email) == (AUSTRIA["po_number"], AUSTRIA["accounting_email"])

    at_stripe = stripe_subscription(stack, subscription_id)
    assert at_stripe["status"] == "active" and at_stripe["collection_method"] == "send_invoice"
    assert at_stripe["days_until_due"] == stack.settings.invoice_days_until_due
    client = StripeGateway(stack.settings).client()
    customer = as_dict(client.v1.customers.retrieve(at_stripe["customer"], params={"expand": ["tax_ids"]}))
    assert customer["name"] == AUSTRIA["company"] and customer["address"]["country"] == "AT"
    assert [(t["type"], t["value"]) for t in customer["tax_ids"]["data"]] == [("eu_vat", "ATU13585627")]
    assert customer["invoice_settings"]["custom_fields"] == [{"name": "PO number", "value": "PO-2026-0815"}]

    invoice = as_dict(client.v1.invoices.list(params={"subscription": subscription_id}).data[0])
    assert invoice["status"] == "open" and invoice["custom_fields"] == [
        {"name": "PO number", "value": "PO-2026-0815"}]
    # The invoice says how to pay: the IBAN Stripe assigned to this customer, and the PO number.
    iban = StripeGateway(stack.settings).funding_iban(at_stripe["customer"])
    assert iban is not None
    hosted = requests.get(invoice["hosted_invoice_url"], timeout=10).text
    assert iban["iban"] in hosted and iban["bic"] in hosted and "PO-2026-0815" in hosted
    # An Austrian business with a valid VAT ID: reverse charge, no German VAT.
    assert invoice["total"] == invoice["total_excluding_tax"] == 25 * 480
    assert [t["taxability_reason"] for t in invoice["total_taxes"]] == ["reverse_charge"]

    # The licenses work before the invoice is paid.
    owner_token = token_for(stack, user)
    status, body, _ = call(stack.url, "POST", f"/api/v1/subscriptions/{subscription_id}/licenses", owner_token,
                           {"emails": [buyer.email]})
    assert status == 200, body
    status, body, _ = call(stack.url, "GET", "/api/license", owner_token)
    assert status == 200 and body["valid"] is True and body["code"] == "VALID"

    # Past the due date unpaid: past due, licenses in grace; the bank transfer arrives: active again.
    stack.emulator_control("clock/advance", {"seconds": (stack.settings.invoice_days_until_due + 1) * 86400})
    wait_for(lambda: subscription_store.load(stack.storage(), subscription_id).status == "past_due")
    # (The license check reads subscriptions through its 60-second cache; the rule is what it applies.)
    overdue = subscription_store.load(stack.storage(), subscription_id)
    assert overdue.license_state(stack.settings.grace_days) is LicenseState.PAST_DUE_GRACE
    stack.emulator_control(f"invoices/{invoice['id']}/pay", {})
    wait_for(lambda: subscription_store.load(stack.storage(), subscription_id).status == "active")


def test_a_german_buyer_pays_german_vat_and_bad_details_are_refused_before_stripe(stack):
    _, buyer = _buyer(stack)
    cookie, csrf = signed_in(stack, buyer)
    german = {"company": "Contoso Deutschland GmbH", "line1": "Hauptstraße 1", "postal_code": "80331",
              "city": "München", "country": "DE", "vat_id": "DE 136 695 976", "po_number": "",
              "accounting_email": ""}
    for change, field in (({"vat_id": "DE136695975"}, "vat_id"), ({"company": ""}, "company"),
                          ({"quantity": "5"}, "payment")):
        status, _, html = page(stack.url, "POST", "/api/purchase", cookie, _form(csrf, **{**german, **change}))
        assert status == 400 and 'id="purchase-error"' in html, (change, html[:300])
        if field != "payment":
            assert f'id="bd-{field}" name="{field}"' in html and 'aria-invalid="true"' in html
    status, headers, _ = page(stack.url, "POST", "/api/purchase", cookie, _form(csrf, **german))
    assert status == 303
    subscription_id = headers["Location"].split("/")[3]
    client = StripeGateway(stack.settings).client()
    invoice = as_dict(client.v1.invoices.list(params={"subscription": subscription_id}).data[0])
    assert invoice["total_excluding_tax"] == 25 * 480 and invoice["total"] == round(25 * 480 * 1.19)
    assert [t["taxability_reason"] for t in invoice["total_taxes"]] == ["standard_rated"]


def test_an_organisation_paying_by_card_brings_its_details_to_checkout(stack):
    _, buyer = _buyer(stack)
    cookie, csrf = signed_in(stack, buyer)
    form = _form(csrf, payment="stripe", quantity="3", country="DE", vat_id="DE136695976", line1="Hauptstraße 1",
                 postal_code="80331", city="München")
    status, headers, _ = page(stack.url, "POST", "/api/purchase", cookie, form)
    assert status == 303 and "/checkout/" in headers["Location"], headers
    session_id = headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    client = StripeGateway(stack.settings).client()
    session = as_dict(client.v1.checkout.sessions.retrieve(session_id))
    assert session["automatic_tax"]["enabled"] is True and session["tax_id_collection"]["enabled"] is True
    assert session["customer"] and not session.get("customer_email")
    customer = as_dict(client.v1.customers.retrieve(session["customer"], params={"expand": ["tax_ids"]}))
    assert customer["name"] == AUSTRIA["company"] and customer["address"]["city"] == "München"
    assert [t["value"] for t in customer["tax_ids"]["data"]] == ["DE136695976"]

    stack.emulator_control(f"checkout/{session_id}/pay", {"outcome": "paid"})
    status, headers, _ = page(stack.url, "GET", f"/api/purchase/complete?session_id={session_id}", cookie)
    assert status == 303 and headers["Location"].endswith("/setup"), headers
    stored = subscription_store.load(stack.storage(), headers["Location"].split("/")[3])
    assert stored is not None
    assert (stored.po_number, stored.accounting_email) == (AUSTRIA["po_number"], AUSTRIA["accounting_email"])
    invoice = as_dict(client.v1.invoices.list(params={"subscription": stored.id}).data[0])
    assert invoice["total_excluding_tax"] == 3 * 600 and invoice["total"] == 3 * 714  # 19 % German VAT
