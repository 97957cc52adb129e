"""An e-invoice (services/e_invoice.py) as UN/CEFACT CII XML, and the ZUGFeRD/Factur-X PDF carrying it.

drafthorse builds and serializes the XML (no hand-written XML) and validates it against the Factur-X
EN 16931 XSD it ships, on every call: an invoice that does not validate is an error here, never a
download. XRechnung is the same CII document with XRechnung's guideline id (BT-24); its extra rules
(seller contact, telephone, e-mail; payment instructions; buyer reference) are met by what
services/e_invoice.py decides. factur-x embeds the XML into the invoice PDF as `factur-x.xml`
(PDF/A-3 attachment with the Factur-X XMP metadata, `AFRelationship=Data`).

drafthorse, factur-x and lxml are imported inside the functions: they are heavy and only the
e-invoice routes need them (the license check's cold start must not grow).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.e_invoice import XRECHNUNG, ZUGFERD, Address, EInvoice, TaxCategory

GUIDELINES = {
    # Factur-X / ZUGFeRD 2 profile EN 16931 ("COMFORT"): the plain EN 16931 specification identifier.
    ZUGFERD: "urn:cen.eu:en16931:2017",
    XRECHNUNG: "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
}
# BT-23: the Peppol billing process, which XRechnung recipients expect.
BUSINESS_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
SCHEMA = "FACTUR-X_EN16931"  # the XSD drafthorse ships for the profile (Factur-X 1.0.07 EN16931)
UNIT = "C62"  # UN/ECE Rec. 20: one (a license)
FACTURX_FILENAME = "factur-x.xml"


class InvalidEInvoice(RuntimeError):
    """The XML did not validate against the EN 16931 schema: a bug, never the buyer's input."""


def cii_xml(einvoice: EInvoice, profile: str) -> bytes:
    """The invoice as CII XML for `profile` ("xrechnung" or "zugferd"), validated against the XSD."""
    from drafthorse.models.accounting import ApplicableTradeTax, TradeAllowanceCharge
    from drafthorse.models.document import Document
    from drafthorse.models.party import TaxRegistration
    from drafthorse.models.payment import PaymentMeans, PaymentTerms
    from drafthorse.models.tradelines import LineItem
    from lxml import etree

    if profile not in GUIDELINES:
        raise ValueError(f"profile: one of {', '.join(GUIDELINES)}")
    currency = einvoice.currency
    doc = Document()
    doc.context.business_parameter.id = BUSINESS_PROCESS
    doc.context.guideline_parameter.id = GUIDELINES[profile]
    doc.header.id = einvoice.number
    doc.header.type_code = einvoice.type_code
    doc.header.issue_date_time = einvoice.issue_date

    agreement = doc.trade.agreement
    agreement.buyer_reference = einvoice.buyer_reference

    seller = einvoice.seller
    party = agreement.seller
    party.name = seller.legal_name
    party.legal_organization.id = seller.register
    party.contact.person_name = seller.contact
    if seller.phone:
        party.contact.telephone.number = seller.phone
    party.contact.email.address = seller.email
    _address(party.address, seller.address)
    party.electronic_address.uri_ID = ("EM", seller.email)
    if "O" not in einvoice.categories:  # BR-O-02: no VAT ids when not subject to VAT
        party.tax_registrations.add(TaxRegistration(id=("VA", seller.vat_id)))

    buyer = einvoice.buyer
    agreement.buyer.name = buyer.name
    _address(agreement.buyer.address, buyer.address)
    if buyer.email:
        agreement.buyer.electronic_address.uri_ID = ("EM", buyer.email)
    if buyer.vat_id:
        agreement.buyer.tax_registrations.add(TaxRegistration(id=("VA", buyer.vat_id)))
    if einvoice.purchase_order:
        agreement.buyer_order.issuer_assigned_id = einvoice.purchase_order

    for line in einvoice.lines:
        item = LineItem()
        item.document.line_id = line.id
        item.product.name = line.name
        item.agreement.net.amount = line.unit_price
        item.delivery.billed_quantity = (line.quantity, UNIT)
        _tax(item.settlement.trade_tax, line.tax, line_level=True)
        if line.period_start or line.period_end:
            if line.period_start:
                item.settlement.period.start = line.period_start
            if line.period_end:
                item.settlement.period.end = line.period_end
        if line.allowance:
            item.settlement.allowance_charge.add(TradeAllowanceCharge(
                indicator=False, actual_amount=line.allowance, reason="Discount"))
        item.settlement.monetary_summation.total_amount = line.net_amount
        doc.trade.items.add(item)

    settlement = doc.trade.settlement
    settlement.currency_code = currency
    means = einvoice.payment
    if means.reference:
        settlement.payment_reference = means.reference
    payment = PaymentMeans()
    payment.type_code = means.code
    if means.text:
        payment.information.add(means.text)
    if means.account is not None:
        payment.payee_account.iban = means.account.iban
        if means.account.holder:
            payment.payee_account.account_name = means.account.holder
        if means.account.bic:
            payment.payee_institution.bic = means.account.bic
    if means.card_last_digits:
        payment.financial_card.id = means.card_last_digits
        if means.card_holder:
            payment.financial_card.cardholder_name = means.card_holder
    settlement.payment_means.add(payment)

    for breakdown in einvoice.taxes:
        tax = ApplicableTradeTax()
        tax.calculated_amount = breakdown.tax
        tax.basis_amount = breakdown.basis
        _tax(tax, breakdown.category, line_level=False)
        settlement.trade_tax.add(tax)

    terms = PaymentTerms()
    terms.description = einvoice.payment_terms
    if einvoice.due_date is not None:
        terms.due = einvoice.due_date
    settlement.terms.add(terms)
    if einvoice.cost_centre:
        settlement.accounting_account.id = einvoice.cost_centre

    totals = einvoice.totals
    summation = settlement.monetary_summation
    summation.line_total = totals.line_total
    summation.charge_total = Decimal("0.00")
    summation.allowance_total = Decimal("0.00")
    summation.tax_basis_total = totals.tax_basis
    summation.tax_total = (totals.tax_total, currency)
    summation.grand_total = totals.grand_total
    summation.prepaid_total = totals.prepaid
    summation.due_amount = totals.due

    try:
        xml: bytes = doc.serialize(schema=SCHEMA)
    except etree.XMLSyntaxError as exc:  # the schema check of drafthorse's serialize
        raise InvalidEInvoice(f"{einvoice.number}: the CII XML does not validate against {SCHEMA}: {exc}") from exc
    return xml


def embed_in_pdf(pdf: bytes, xml: bytes) -> bytes:
    """The PDF with `xml` attached as factur-x.xml and the Factur-X metadata (PDF/A-3 attachment).

    Through factur-x's `generate_from_file` with separate input and output files: its
    `generate_from_binary` (7.8) writes the result into its temporary copy of the input at the position
    where reading stopped, so the bytes it returns start with a piece of the original PDF.
    """
    import tempfile
    from pathlib import Path

    from facturx import generate_from_file

    with tempfile.TemporaryDirectory(prefix="e-invoice-") as folder:
        source, target = Path(folder) / "invoice.pdf", Path(folder) / "factur-x.pdf"
        source.write_bytes(pdf)
        generate_from_file(str(source), xml, flavor="factur-x", level="en16931", check_xsd=True,
                           afrelationship="data", output_pdf_file=str(target))
        return target.read_bytes()


def _address(target: Any, address: Address) -> None:
    target.line_one = address.line1
    if address.line2:
        target.line_two = address.line2
    target.postcode = address.postal_code
    target.city_name = address.city
    target.country_id = address.country


def _tax(target: Any, category: TaxCategory, line_level: bool) -> None:
    target.type_code = "VAT"
    target.category_code = category.code
    if not line_level and category.exemption_reason:
        target.exemption_reason = category.exemption_reason
    if not line_level and category.exemption_code:
        target.exemption_reason_code = category.exemption_code
    if category.percent is not None:
        target.rate_applicable_percent = category.percent
    elif not line_level:
        # O has no rate on its lines (BR-O-05); XRechnung wants one in the breakdown (BR-DE-14): 0.
        target.rate_applicable_percent = Decimal("0")

