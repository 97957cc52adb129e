"""E-invoice downloads through the running stack (PRODUCT.md capability 13): invoices bought by invoice
in the Stripe emulator (real SDK, Stripe Tax and funding instructions emulated), fetched over real
HTTP with a bearer token and with the dashboard session, then checked independently: the EN 16931 XSD,
the EN 16931 schematron, XRechnung's BR-DE rules, and the numbers against Stripe's own invoice.

These tests run on a stack of their own whose host has the SELLER_* settings; the shared stack has
none, and shows what an unconfigured deployment answers.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from typing import Any

import pytest

from adapters.stripe_gateway import StripeGateway, as_dict
from services.fulfilment import fulfil
from tests import e_invoice_support as support
from tests.billing_support import own_stack
from tests.builders import checkout
from tests.license_fixtures import new_user, person_of, token_for
from tests.licenses_support import call
from tests.pages_support import page, signed_in

AUSTRIA = {"company": "Alpenblick Handels GmbH", "line1": "Mariahilfer Straße 1", "postal_code": "1060",
           "city": "Wien", "country": "AT", "vat_id": "ATU13585627", "po_number": "PO-2026-0815",
           "cost_centre": "KST 4711", "accounting_email": "buchhaltung@alpenblick.example"}
GERMANY = {"company": "Contoso Deutschland GmbH", "line1": "Hauptstraße 1", "postal_code": "80331",
           "city": "München", "country": "DE", "vat_id": "DE136695976", "po_number": "", "cost_centre": "",
           "accounting_email": ""}


@pytest.fixture(scope="module")
def configured(identity_provider, tmp_path_factory):
    with own_stack(identity_provider, tmp_path_factory, **support.SELLER_VALUES) as running:
        yield running


def _bought_by_invoice(stack, details: dict[str, str], quantity: int = 25) -> tuple[str, str, str]:
    """A purchase by invoice through the purchase page: (subscription id, owner's token, owner's cookie)."""
    user = new_user(stack.identity_provider)
    cookie, csrf = signed_in(stack, person_of(user))
    form = {"csrf_token": csrf, "kind": "organisation", "quantity": str(quantity), "interval": "month",
            "payment": "invoice", "attempt": uuid.uuid4().hex, "action": "checkout", "separate": "1", **details}
    status, headers, html = page(stack.url, "POST", "/api/purchase", cookie, form)
    assert status == 303, html[:500]
    found = re.fullmatch(r"/api/subscriptions/(sub_[A-Za-z0-9]+)/setup\?invoice=sent", headers["Location"])
    assert found is not None, headers
    return found[1], token_for(stack, user), cookie


def _stripe_invoice(stack, subscription_id: str) -> dict[str, Any]:
    client = StripeGateway(stack.settings).client()
    return as_dict(client.v1.invoices.list(params={"subscription": subscription_id}).data[0])


def _download(stack, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(stack.url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _path(subscription_id: str, invoice_id: str, fmt: str, api: bool = True) -> str:
    prefix = "/api/v1/subscriptions" if api else "/api/subscriptions"
    return f"{prefix}/{subscription_id}/invoices/{invoice_id}/e-invoice?format={fmt}"


def _same_as_stripe(xml: bytes, invoice: dict[str, Any]) -> None:
    c = support.cents
    assert support.text(xml, "//rsm:ExchangedDocument/ram:ID") == invoice["number"]
    assert support.amount(xml, "LineTotalAmount") == c(sum(line["amount"] for line in invoice["lines"]["data"]))
    assert support.amount(xml, "TaxBasisTotalAmount") == c(invoice["total_excluding_tax"])
    assert support.amount(xml, "TaxTotalAmount") == c(sum(t["amount"] for t in invoice["total_taxes"]))
    assert support.amount(xml, "GrandTotalAmount") == c(invoice["total"])
    assert support.amount(xml, "TotalPrepaidAmount") == c(invoice["amount_paid"])
    assert support.amount(xml, "DuePayableAmount") == c(invoice["amount_remaining"])
    assert sorted((basis, tax) for _, _, basis, tax in support.breakdown(xml)) == sorted(
        (c(t["taxable_amount"]), c(t["amount"])) for t in invoice["total_taxes"])
    vat_ids = [t["value"] for t in invoice["customer_tax_ids"] if t["type"] == "eu_vat"]
    assert support.vat_ids(xml, "BuyerTradeParty") == vat_ids


def test_reverse_charge_invoice_by_bank_transfer_as_xrechnung_and_zugferd(configured):
    stack = configured
    subscription_id, token, _ = _bought_by_invoice(stack, AUSTRIA)
    invoice = _stripe_invoice(stack, subscription_id)
    assert invoice["status"] == "open" and invoice["collection_method"] == "send_invoice"
    assert [t["taxability_reason"] for t in invoice["total_taxes"]] == ["reverse_charge"]

    status, headers, xml = _download(stack, _path(subscription_id, invoice["id"], "xrechnung"), token)
    assert status == 200, xml[:500]
    assert headers["content-type"] == "application/xml"
    assert headers["content-disposition"] == f'attachment; filename="{invoice["number"]}-xrechnung.xml"'
    assert headers["cache-control"] == "private, no-store"
    assert support.xsd_errors(xml) == []
    assert support.schematron_failures(xml, support.ACCEPTED_FOR_XRECHNUNG) == []
    assert support.xrechnung_failures(xml) == []
    _same_as_stripe(xml, invoice)
    assert support.breakdown(xml) == [("AE", Decimal("0.00"), Decimal("120.00"), Decimal("0.00"))]
    assert support.text(xml, "//ram:BuyerReference") == "PO-2026-0815"
    assert support.text(xml, "//ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID") == "PO-2026-0815"
    # The IBAN is the customer's own, as Stripe's funding instructions give it (asked here directly).
    client = StripeGateway(stack.settings).client()
    funding = as_dict(client.v1.customers.funding_instructions.create(invoice["customer"], params={
        "funding_type": "bank_transfer", "currency": "eur",
        "bank_transfer": {"type": "eu_bank_transfer", "eu_bank_transfer": {"country": "DE"}}}))
    iban = funding["bank_transfer"]["financial_addresses"][0]["iban"]["iban"]
    assert support.text(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "58"
    assert support.text(xml, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == iban

    status, headers, pdf = _download(stack, _path(subscription_id, invoice["id"], "zugferd"), token)
    assert status == 200, pdf[:500]
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"] == f'attachment; filename="{invoice["number"]}-zugferd.pdf"'
    from facturx import get_xml_from_pdf
    from pypdf import PdfReader

    filename, embedded = get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert support.xsd_errors(embedded) == [] and support.schematron_failures(embedded) == []
    _same_as_stripe(embedded, invoice)
    with urllib.request.urlopen(invoice["invoice_pdf"], timeout=10) as original:
        pages = len(PdfReader(io.BytesIO(original.read())).pages)
    assert pdf.startswith(b"%PDF-1.6") and len(PdfReader(io.BytesIO(pdf)).pages) == pages


def test_german_invoice_with_19_percent_through_the_billing_page(configured):
    stack = configured
    subscription_id, _, cookie = _bought_by_invoice(stack, GERMANY, quantity=12)
    invoice = _stripe_invoice(stack, subscription_id)
    assert [t["taxability_reason"] for t in invoice["total_taxes"]] == ["standard_rated"]

    status, _, html = page(stack.url, "GET", f"/api/subscriptions/{subscription_id}/billing", cookie)
    assert status == 200
    links = re.findall(r'href="([^"]+/e-invoice\?format=(\w+))"', html)
    assert [fmt for _, fmt in links] == ["xrechnung", "zugferd"]
    status, headers, xml = _download(stack, links[0][0].replace("&amp;", "&"), cookie=cookie)
    assert status == 200, xml[:300]
    assert headers["content-disposition"] == f'attachment; filename="{invoice["number"]}-xrechnung.xml"'
    assert support.xsd_errors(xml) == [] and support.xrechnung_failures(xml) == []
    assert support.schematron_failures(xml, support.ACCEPTED_FOR_XRECHNUNG) == []
    _same_as_stripe(xml, invoice)
    assert support.breakdown(xml) == [("S", Decimal("19.00"), Decimal("57.60"), Decimal("10.94"))]
    assert support.text(xml, "//ram:BuyerReference") == invoice["customer"]  # no PO number: the customer id


def test_refusals_name_the_field_or_the_reason_and_other_customers_invoices_are_not_found(configured):
    stack = configured
    subscription_id, token, cookie = _bought_by_invoice(stack, GERMANY, quantity=11)
    other_id, _, _ = _bought_by_invoice(stack, AUSTRIA, quantity=10)
    invoice_id = _stripe_invoice(stack, subscription_id)["id"]
    other_invoice = _stripe_invoice(stack, other_id)["id"]

    status, body, _ = call(stack.url, "GET", _path(subscription_id, invoice_id, "ubl"), token)
    assert (status, body["error"], body["field"]) == (400, "invalid_format", "format")
    status, body, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{subscription_id}/invoices/{invoice_id}/e-invoice",
                           token)
    assert (status, body["field"]) == (400, "format")
    status, body, _ = call(stack.url, "GET", _path(subscription_id, "inv_1", "xrechnung"), token)
    assert (status, body["error"], body["field"]) == (400, "invalid_invoice_id", "invoice_id")
    status, body, _ = call(stack.url, "GET", _path(subscription_id, other_invoice, "xrechnung"), token)
    assert (status, body["error"]) == (404, "invoice_not_found")
    status, body, _ = call(stack.url, "GET", _path(subscription_id, "in_doesnotexist", "zugferd"), token)
    assert (status, body["error"]) == (404, "invoice_not_found")
    status, _, html = page(stack.url, "GET", _path(subscription_id, other_invoice, "zugferd", api=False), cookie)
    assert status == 404 and "does not belong to this subscription" in html


def test_a_card_purchase_through_checkout_is_an_e_invoice_charged_automatically(configured):
    stack = configured
    user = new_user(stack.identity_provider)
    owner = person_of(user)
    session_id = checkout(stack, owner, quantity=3)
    stack.emulator_control(f"checkout/{session_id}/pay", {
        "outcome": "paid", "business_name": GERMANY["company"], "line1": GERMANY["line1"],
        "postal_code": GERMANY["postal_code"], "city": GERMANY["city"], "country": "DE", "tax_id": GERMANY["vat_id"]})
    result = fulfil(session_id, storage=stack.storage(), stripe=StripeGateway(stack.settings),
                    buyer=(owner.tid, owner.oid))
    assert result.subscription is not None, result.outcome
    invoice = _stripe_invoice(stack, result.subscription.id)
    assert invoice["collection_method"] == "charge_automatically" and invoice["status"] == "paid"

    status, headers, xml = _download(stack, _path(result.subscription.id, invoice["id"], "xrechnung"),
                                     token_for(stack, user))
    assert status == 200, xml[:500]
    assert support.xsd_errors(xml) == [] and support.xrechnung_failures(xml) == []
    assert support.schematron_failures(xml, support.ACCEPTED_FOR_XRECHNUNG) == []
    _same_as_stripe(xml, invoice)
    assert support.amount(xml, "DuePayableAmount") == 0 and support.amount(xml, "TotalPrepaidAmount") > 0
    assert support.breakdown(xml) == [("S", Decimal("19.00"), Decimal("18.00"), Decimal("3.42"))]


def test_without_seller_settings_the_download_says_which_and_the_page_has_no_links(stack):
    subscription_id, token, cookie = _bought_by_invoice(stack, GERMANY, quantity=10)
    invoice_id = _stripe_invoice(stack, subscription_id)["id"]
    status, body, _ = call(stack.url, "GET", _path(subscription_id, invoice_id, "xrechnung"), token)
    assert status == 409 and body["error"] == "e_invoice_not_configured"
    assert body["message"].startswith("e-invoices are not configured: set SELLER_LEGAL_NAME")
    assert "SELLER_PHONE" in body["missing"]
    status, _, html = page(stack.url, "GET", f"/api/subscriptions/{subscription_id}/billing", cookie)
    assert status == 200 and invoice_id in html and "e-invoice?format=" not in html
