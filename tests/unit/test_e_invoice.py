"""German e-invoices (PRODUCT.md capability 13): Stripe invoice -> EN 16931 -> XRechnung / ZUGFeRD.

The invoices are shaped as Stripe documents them (tests/e_invoice_support.py), independent of the
emulator. Every XML written here is validated against the EN 16931 XSD drafthorse ships, run through
the EN 16931 schematron (Saxon-HE), checked against XRechnung's BR-DE rules, and read back: its totals,
VAT breakdown and buyer VAT id must be the Stripe invoice's.
"""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

from adapters.e_invoice_cii import cii_xml, embed_in_pdf
from adapters.stripe_gateway import StripeGateway
from services import e_invoice_documents
from services.e_invoice import (
    REVERSE_CHARGE,
    XRECHNUNG,
    ZUGFERD,
    BankAccount,
    EInvoiceUnavailable,
    check_profile,
    from_stripe_invoice,
    tax_rate_ids,
)
from services.e_invoice_documents import NotConfigured, missing_settings, seller
from services.settings import load_settings
from tests import e_invoice_support as support
from tests.factories import local_values

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = BankAccount(iban=support.AT_IBAN, bic="COBADEFFXXX", holder="SecureMailMerge Example GmbH")


def _settings(**overrides: Any):
    return load_settings(local_values(**{**support.SELLER_VALUES, **overrides}))


SELLER = seller(_settings())


def _einvoice(invoice: dict[str, Any], account: BankAccount | None = None):
    return from_stripe_invoice(invoice, support.TAX_RATES, SELLER, account)


def _valid(xml: bytes, profile: str) -> None:
    assert support.xsd_errors(xml) == []
    accepted = support.ACCEPTED_FOR_XRECHNUNG if profile == XRECHNUNG else support.ACCEPTED
    assert support.schematron_failures(xml, accepted) == []
    if profile == XRECHNUNG:
        assert support.xrechnung_failures(xml) == []


def _same_numbers_as_stripe(xml: bytes, invoice: dict[str, Any]) -> None:
    c = support.cents
    assert support.amount(xml, "LineTotalAmount") == c(sum(line["amount"] for line in invoice["lines"]["data"]))
    assert support.amount(xml, "TaxBasisTotalAmount") == c(invoice["total_excluding_tax"])
    assert support.amount(xml, "TaxTotalAmount") == c(sum(t["amount"] for t in invoice["total_taxes"]))
    assert support.amount(xml, "GrandTotalAmount") == c(invoice["total"])
    assert support.amount(xml, "TotalPrepaidAmount") == c(invoice["amount_paid"])
    assert support.amount(xml, "DuePayableAmount") == c(invoice["amount_remaining"])
    expected = sorted((c(t["taxable_amount"]), c(t["amount"])) for t in invoice["total_taxes"])
    assert sorted((basis, tax) for _, _, basis, tax in support.breakdown(xml)) == expected


# --- a German invoice: 19 % VAT ------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [XRECHNUNG, ZUGFERD])
def test_german_invoice_with_19_percent_is_valid_and_has_stripes_numbers(profile):
    invoice = support.german_invoice()
    xml = cii_xml(_einvoice(invoice), profile)

    _valid(xml, profile)
    _same_numbers_as_stripe(xml, invoice)
    assert support.breakdown(xml) == [("S", Decimal("19.00"), Decimal("57.60"), Decimal("10.94"))]
    assert support.vat_ids(xml, "BuyerTradeParty") == ["DE136695976"]
    assert support.vat_ids(xml, "SellerTradeParty") == ["DE999999999"]
    assert support.text(xml, "//rsm:ExchangedDocument/ram:ID") == "A1B2C3D4-0001"
    # Finalized 2026-01-01 01:00 UTC: the invoice date in Germany.
    assert support.text(xml, "//ram:IssueDateTime/udt:DateTimeString") == "20260101"
    assert support.text(xml, "//ram:BuyerReference") == "cus_de"  # no PO number: the customer id (BR-DE-15)
    assert support.text(xml, "//ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID") == ""
    line = "//ram:IncludedSupplyChainTradeLineItem"
    assert support.text(xml, f"{line}/ram:SpecifiedLineTradeDelivery/ram:BilledQuantity") == "12"
    assert support.text(xml, f"{line}//ram:NetPriceProductTradePrice/ram:ChargeAmount") == "4.80"
    assert support.text(xml, f"{line}//ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString") == "20260101"
    assert support.text(xml, f"{line}//ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString") == "20260201"
    assert support.text(xml, "//ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID") == (
        "Amtsgericht München, HRB 999999")
    guideline = support.text(xml, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID")
    assert guideline == (support.XRECHNUNG_ID if profile == XRECHNUNG else "urn:cen.eu:en16931:2017")


def test_a_proration_credit_line_has_a_negative_quantity_at_a_positive_price():
    invoice = support.proration_invoice()
    xml = cii_xml(_einvoice(invoice), XRECHNUNG)

    _valid(xml, XRECHNUNG)
    _same_numbers_as_stripe(xml, invoice)
    quantities = support.root(xml).xpath("//ram:BilledQuantity/text()", namespaces=support.NS)
    prices = support.root(xml).xpath("//ram:NetPriceProductTradePrice/ram:ChargeAmount/text()", namespaces=support.NS)
    nets = support.root(xml).xpath("//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount/text()",
                                   namespaces=support.NS)
    assert (quantities, prices, nets) == (["-8", "12"], ["3.00", "2.40"], ["-24.00", "28.80"])


# --- an Austrian company: reverse charge, PO number, bank transfer ------------------------------------------


@pytest.mark.parametrize("profile", [XRECHNUNG, ZUGFERD])
def test_austrian_reverse_charge_invoice_by_bank_transfer_with_po_number(profile):
    invoice = support.austrian_invoice()
    einvoice = _einvoice(invoice, ACCOUNT)
    xml = cii_xml(einvoice, profile)

    _valid(xml, profile)
    _same_numbers_as_stripe(xml, invoice)
    assert einvoice.taxes[0].category == REVERSE_CHARGE
    tax = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"
    assert support.breakdown(xml) == [("AE", Decimal("0.00"), Decimal("480.00"), Decimal("0.00"))]
    assert support.text(xml, f"{tax}/ram:ExemptionReason") == "Reverse charge"
    assert support.text(xml, f"{tax}/ram:ExemptionReasonCode") == "VATEX-EU-AE"
    assert support.vat_ids(xml, "BuyerTradeParty") == ["ATU12345678"]  # BR-AE-02: both VAT ids
    assert support.vat_ids(xml, "SellerTradeParty") == ["DE999999999"]
    # The PO number is the buyer reference (BT-10) and the order reference (BT-13); the cost centre BT-19.
    assert support.text(xml, "//ram:BuyerReference") == "PO-4711"
    assert support.text(xml, "//ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID") == "PO-4711"
    assert support.text(xml, "//ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID") == "KST 12"
    # SEPA credit transfer to the customer's funding IBAN, quoting the invoice number; due in 30 days.
    means = "//ram:SpecifiedTradeSettlementPaymentMeans"
    assert support.text(xml, f"{means}/ram:TypeCode") == "58"
    assert support.text(xml, f"{means}/ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == support.AT_IBAN
    assert support.text(xml, f"{means}/ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID") == "COBADEFFXXX"
    assert support.text(xml, "//ram:ApplicableHeaderTradeSettlement/ram:PaymentReference") == "F00D-0007"
    assert support.text(xml, "//ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString") == "20260131"
    assert support.text(xml, "//ram:BuyerTradeParty/ram:PostalTradeAddress/ram:CountryID") == "AT"


def test_custom_field_names_match_case_insensitively_in_english_too():
    invoice = support.austrian_invoice()
    invoice["custom_fields"] = [{"name": "Cost Centre", "value": "4100"}, {"name": "po NUMBER", "value": "4500012"}]
    einvoice = _einvoice(invoice, ACCOUNT)
    assert (einvoice.buyer_reference, einvoice.purchase_order, einvoice.cost_centre) == ("4500012", "4500012", "4100")


def test_without_funding_instructions_a_transfer_invoice_says_where_to_pay():
    einvoice = _einvoice(support.austrian_invoice(), None)
    assert einvoice.payment.code == "1" and "invoice.stripe.com" in (einvoice.payment.text or "")
    _valid(cii_xml(einvoice, XRECHNUNG), XRECHNUNG)


# --- not subject to VAT (outside the EU) --------------------------------------------------------------------


def test_a_customer_outside_the_eu_is_not_subject_to_vat_without_vat_ids():
    invoice = support.us_invoice()
    xml = cii_xml(_einvoice(invoice), XRECHNUNG)

    _valid(xml, XRECHNUNG)
    _same_numbers_as_stripe(xml, invoice)
    assert [b[0] for b in support.breakdown(xml)] == ["O"]
    assert support.vat_ids(xml, "SellerTradeParty") == [] and support.vat_ids(xml, "BuyerTradeParty") == []  # BR-O-02
    assert support.text(xml, "//ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID")  # BR-CO-26


# --- refusals ----------------------------------------------------------------------------------------------


def _refused(invoice: dict[str, Any]) -> EInvoiceUnavailable:
    with pytest.raises(EInvoiceUnavailable) as caught:
        _einvoice(invoice, ACCOUNT)
    return caught.value


def test_a_draft_a_void_invoice_and_missing_buyer_data_are_refused_with_the_reason():
    draft = support.german_invoice()
    draft.update(status="draft", number=None)
    assert _refused(draft).code == "draft"
    void = support.german_invoice()
    void["status"] = "void"
    assert _refused(void).code == "void"
    no_address = support.german_invoice()
    no_address["customer_address"] = {"line1": None, "postal_code": None, "city": None, "country": "DE"}
    assert _refused(no_address).code == "buyer_address"
    no_vat_id = support.austrian_invoice()
    no_vat_id["customer_tax_ids"] = []
    refused = _refused(no_vat_id)
    assert refused.code == "vat_id" and "BR-AE-02" in refused.reason


def test_numbers_that_do_not_add_up_are_refused_not_guessed():
    wrong_total = support.german_invoice()
    wrong_total["total"] += 1
    assert _refused(wrong_total).code == "totals"
    wrong_basis = support.german_invoice()
    wrong_basis["total_taxes"][0]["taxable_amount"] = 5000
    assert _refused(wrong_basis).code == "tax"
    no_tax_information = support.german_invoice()
    no_tax_information["total_taxes"] = []
    no_tax_information["lines"]["data"][0]["taxes"] = []
    no_tax_information["total"] = no_tax_information["total_excluding_tax"]
    assert _refused(no_tax_information).code == "tax"
    exempt = support.german_invoice()
    exempt["total_taxes"][0]["taxability_reason"] = "customer_exempt"
    assert _refused(exempt).code == "tax"


def test_xrechnung_needs_the_seller_phone_and_the_buyer_email():
    no_phone = from_stripe_invoice(support.german_invoice(), support.TAX_RATES, seller(_settings(SELLER_PHONE="")),
                                   None)
    check_profile(no_phone, ZUGFERD)
    with pytest.raises(EInvoiceUnavailable, match="BR-DE-6"):
        check_profile(no_phone, XRECHNUNG)
    no_email = support.german_invoice()
    no_email["customer_email"] = None
    with pytest.raises(EInvoiceUnavailable, match="BT-49"):
        check_profile(_einvoice(no_email), XRECHNUNG)


def test_tax_rates_to_fetch_are_named_once():
    invoice = support.proration_invoice()
    assert tax_rate_ids(invoice) == ["txr_de19"]


# --- settings ---------------------------------------------------------------------------------------------


def test_missing_seller_settings_are_named_and_the_email_defaults_to_support():
    bare = load_settings(local_values())
    assert bare.seller_country == "DE"
    assert missing_settings(bare) == ["SELLER_LEGAL_NAME", "SELLER_STREET", "SELLER_POSTAL_CODE", "SELLER_CITY",
                                      "SELLER_VAT_ID", "SELLER_REGISTER"]
    with pytest.raises(NotConfigured) as caught:
        seller(bare)
    assert str(caught.value).startswith("e-invoices are not configured: set SELLER_LEGAL_NAME, SELLER_STREET")
    assert e_invoice_documents.available_profiles(bare) == ()
    no_phone = _settings(SELLER_PHONE="", SELLER_EMAIL="")
    assert missing_settings(no_phone) == [] and missing_settings(no_phone, XRECHNUNG) == ["SELLER_PHONE"]
    assert e_invoice_documents.available_profiles(no_phone) == (ZUGFERD,)
    assert seller(no_phone).email == "support@securemailmerge.example"


# --- the documents, through a gateway fake ------------------------------------------------------------------


def _pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class FakeStripe:
    """The gateway methods the documents use, answering from dicts (and counting the calls)."""

    def __init__(self, invoice: dict[str, Any], iban: str | None = support.AT_IBAN):
        self.invoices = {invoice["id"]: invoice}
        self.iban = iban
        self.calls: list[str] = []

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        self.calls.append(f"invoice {invoice_id}")
        return copy.deepcopy(self.invoices[invoice_id])

    def tax_rate(self, tax_rate_id: str) -> dict[str, Any]:
        self.calls.append(f"tax_rate {tax_rate_id}")
        return support.TAX_RATES[tax_rate_id]

    def funding_iban(self, customer_id: str) -> dict[str, str] | None:
        self.calls.append(f"funding_iban {customer_id}")
        if not self.iban:
            return None
        return {"iban": self.iban, "bic": "COBADEFFXXX", "account_holder_name": "SecureMailMerge"}

    def invoice_pdf(self, invoice: dict[str, Any]) -> bytes:
        self.calls.append(f"invoice_pdf {invoice['id']}")
        return _pdf()


def test_e_invoice_documents_for_the_accounting_mail():
    from facturx import get_xml_from_pdf

    invoice = support.austrian_invoice()
    fake = FakeStripe(invoice)
    documents = e_invoice_documents.e_invoice_documents(cast(StripeGateway, fake), _settings(), invoice)

    assert [(d.filename, d.content_type) for d in documents] == [
        ("F00D-0007-xrechnung.xml", "application/xml"), ("F00D-0007-zugferd.pdf", "application/pdf")]
    xml, pdf = documents[0].content, documents[1].content
    _valid(xml, XRECHNUNG)
    assert support.text(xml, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == support.AT_IBAN
    assert fake.calls == ["tax_rate txr_at0", "funding_iban cus_at", "invoice_pdf in_at_rc"]
    filename, embedded = get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    _valid(embedded, ZUGFERD)
    _same_numbers_as_stripe(embedded, invoice)
    assert _xmp(pdf)["ConformanceLevel"] == "EN 16931" and _xmp(pdf)["DocumentFileName"] == "factur-x.xml"


def test_without_the_seller_phone_the_mail_gets_the_zugferd_pdf_only():
    invoice = support.german_invoice()
    documents = e_invoice_documents.e_invoice_documents(cast(StripeGateway, FakeStripe(invoice)),
                                                        _settings(SELLER_PHONE=""), invoice)
    assert [d.filename for d in documents] == ["A1B2C3D4-0001-zugferd.pdf"]


def test_a_webhook_copy_with_cut_off_lines_is_read_again():
    invoice = support.german_invoice()
    fake = FakeStripe(invoice)
    cut = copy.deepcopy(invoice)
    cut["lines"] = {"object": "list", "has_more": True, "data": []}
    documents = e_invoice_documents.e_invoice_documents(cast(StripeGateway, fake), _settings(), cut)
    assert fake.calls[0] == "invoice in_de19" and len(documents) == 2
    _same_numbers_as_stripe(documents[0].content, invoice)


def test_nothing_is_fetched_for_a_draft_or_without_seller_settings():
    draft = support.german_invoice()
    draft.update(status="draft", number=None)
    fake = FakeStripe(draft)
    with pytest.raises(EInvoiceUnavailable):
        e_invoice_documents.document(cast(StripeGateway, fake), _settings(), draft, ZUGFERD)
    with pytest.raises(NotConfigured, match="SELLER_PHONE"):
        e_invoice_documents.document(cast(StripeGateway, fake), _settings(SELLER_PHONE=""), support.german_invoice(),
                                     XRECHNUNG)
    assert fake.calls == []


def _xmp(pdf: bytes) -> dict[str, str]:
    """The Factur-X extension schema's values in the PDF's XMP metadata (fx:...)."""
    from lxml import etree
    from pypdf import PdfReader

    root: Any = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    metadata = root["/Metadata"].get_object().get_data()
    namespace = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
    return {etree.QName(e).localname: e.text for e in etree.fromstring(metadata).iter(f"{{{namespace}}}*")}


def test_embed_in_pdf_keeps_the_pages_and_attaches_the_xml_as_factur_x():
    from facturx import get_xml_from_pdf
    from pypdf import PdfReader

    xml = cii_xml(_einvoice(support.german_invoice()), ZUGFERD)
    pdf = embed_in_pdf(_pdf(), xml)
    # One PDF, written from its start (no piece of the input before it), still with its page.
    assert pdf.startswith(b"%PDF-1.6") and pdf.count(b"%PDF-") == 1 and pdf.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 1
    catalog: Any = reader.trailer["/Root"]
    files = catalog["/AF"]
    assert [f.get_object()["/F"] for f in files] == ["factur-x.xml"]
    assert files[0].get_object()["/AFRelationship"] == "/Data"
    assert get_xml_from_pdf(pdf, check_xsd=True) == ("factur-x.xml", xml)
    assert _xmp(pdf) == {"DocumentType": "INVOICE", "DocumentFileName": "factur-x.xml", "Version": "1.0",
                         "ConformanceLevel": "EN 16931"}


# --- cold start ---------------------------------------------------------------------------------------------


def test_the_app_imports_no_e_invoice_library_at_cold_start():
    probe = "import sys, function_app; print(' '.join(sorted(m for m in sys.modules)))"
    modules = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    assert {"drafthorse", "facturx", "lxml", "pypdf", "saxonche"} & modules == set()
