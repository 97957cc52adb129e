"""The e-invoice documents of a Stripe invoice (PRODUCT.md capability 13): XRechnung XML and the
ZUGFeRD PDF, for the download routes (handlers/e_invoice.py) and the accounting mail.

What is read through the gateway: the invoice (with all its lines), the tax rates its taxes name (for
their percentages), the customer's bank-transfer IBAN when the invoice is paid by transfer, and, for
ZUGFeRD, Stripe's own PDF, which gets the XML embedded. The seller comes from the SELLER_* settings;
until they are set, e-invoices are refused with `NotConfigured`, which names the missing settings.

Refusals are `EInvoiceUnavailable` (services/e_invoice.py; `NotConfigured` is one); Stripe outages stay
`StripeUnavailable` (retry later).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from adapters.stripe_gateway import StripeGateway, StripeNotFound
from services.billing_events import invoice_subscription_id
from services.e_invoice import (
    PROFILES,
    XRECHNUNG,
    ZUGFERD,
    Address,
    BankAccount,
    EInvoice,
    EInvoiceUnavailable,
    Seller,
    check_invoice_state,
    check_profile,
    from_stripe_invoice,
    tax_rate_ids,
)
from services.mail.message import Attachment
from services.settings import Settings
from services.subscription import Subscription

log = logging.getLogger(__name__)

XML = "application/xml"
PDF = "application/pdf"
# A Stripe invoice id as it may appear in a URL; anything else is never sent to Stripe.
INVOICE_ID = re.compile(r"in_[A-Za-z0-9_]{1,100}")
_REQUIRED = (
    ("SELLER_LEGAL_NAME", "seller_legal_name"),
    ("SELLER_STREET", "seller_street"),
    ("SELLER_POSTAL_CODE", "seller_postal_code"),
    ("SELLER_CITY", "seller_city"),
    ("SELLER_VAT_ID", "seller_vat_id"),
    ("SELLER_REGISTER", "seller_register"),
)


class NotConfigured(EInvoiceUnavailable):
    """Seller settings are missing; the message names them."""

    def __init__(self, missing: list[str], profile: str | None = None):
        extra = " (XRechnung requires the seller's telephone, rule BR-DE-6)" if missing == ["SELLER_PHONE"] else ""
        super().__init__("not_configured", f"e-invoices are not configured: set {', '.join(missing)}{extra}")
        self.missing = missing
        self.profile = profile


class InvoiceNotFound(LookupError):
    """No such invoice of this subscription (the same answer for another customer's invoice)."""


def missing_settings(settings: Settings, profile: str | None = None) -> list[str]:
    """The SELLER_* settings still missing for e-invoices (for `profile`, when given: XRechnung also
    needs SELLER_PHONE)."""
    missing = [name for name, field in _REQUIRED if not (getattr(settings, field) or "").strip()]
    if profile == XRECHNUNG and not (settings.seller_phone or "").strip():
        missing.append("SELLER_PHONE")
    return missing


def available_profiles(settings: Settings) -> tuple[str, ...]:
    """The formats this deployment can produce (the billing page links those)."""
    return tuple(profile for profile in PROFILES if not missing_settings(settings, profile))


def seller(settings: Settings, profile: str | None = None) -> Seller:
    missing = missing_settings(settings, profile)
    if missing:
        raise NotConfigured(missing, profile)
    return Seller(
        legal_name=str(settings.seller_legal_name).strip(),
        address=Address(line1=str(settings.seller_street).strip(), postal_code=str(settings.seller_postal_code).strip(),
                        city=str(settings.seller_city).strip(), country=settings.seller_country),
        vat_id=str(settings.seller_vat_id), register=str(settings.seller_register).strip(),
        email=settings.seller_email or settings.support_email,
        phone=(settings.seller_phone or "").strip() or None,
    )


def subscription_invoice(stripe: StripeGateway, subscription: Subscription, invoice_id: str) -> dict[str, Any]:
    """The invoice, if it belongs to the subscription and its customer; InvoiceNotFound otherwise."""
    if not INVOICE_ID.fullmatch(invoice_id):
        raise InvoiceNotFound(invoice_id)
    try:
        invoice = stripe.invoice(invoice_id)
    except StripeNotFound as exc:
        raise InvoiceNotFound(invoice_id) from exc
    customer = invoice.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    if invoice_subscription_id(invoice) != subscription.id or (
            subscription.stripe_customer_id and customer_id != subscription.stripe_customer_id):
        raise InvoiceNotFound(invoice_id)
    return invoice


def e_invoice(stripe: StripeGateway, settings: Settings, invoice: dict[str, Any], profile: str | None = None
              ) -> EInvoice:
    """The invoice as an e-invoice, checked for `profile` when given. Everything is decided before the
    tax rates and the IBAN are fetched that can be (settings, the invoice's state)."""
    the_seller = seller(settings, profile)
    check_invoice_state(invoice)
    rates = {rate_id: stripe.tax_rate(rate_id) for rate_id in tax_rate_ids(invoice)}
    account = None
    customer = invoice.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    if invoice.get("collection_method") == "send_invoice" and customer_id:
        found = stripe.funding_iban(str(customer_id))
        if found:
            account = BankAccount(iban=found["iban"], bic=found.get("bic") or None,
                                  holder=found.get("account_holder_name") or None)
    einvoice = from_stripe_invoice(invoice, rates, the_seller, account)
    if profile is not None:
        check_profile(einvoice, profile)
    return einvoice


def xrechnung(einvoice: EInvoice) -> Attachment:
    from adapters.e_invoice_cii import cii_xml

    return Attachment(f"{_safe(einvoice.number)}-xrechnung.xml", XML, cii_xml(einvoice, XRECHNUNG))


def zugferd(stripe: StripeGateway, einvoice: EInvoice, invoice: dict[str, Any]) -> Attachment:
    from adapters.e_invoice_cii import cii_xml, embed_in_pdf

    xml = cii_xml(einvoice, ZUGFERD)
    return Attachment(f"{_safe(einvoice.number)}-zugferd.pdf", PDF, embed_in_pdf(stripe.invoice_pdf(invoice), xml))


def document(stripe: StripeGateway, settings: Settings, invoice: dict[str, Any], profile: str) -> Attachment:
    """One format of the invoice: `xrechnung` (XML) or `zugferd` (the Stripe PDF with the XML inside)."""
    if profile not in PROFILES:
        raise ValueError(f"format: one of {', '.join(PROFILES)}")
    einvoice = e_invoice(stripe, settings, invoice, profile)
    return xrechnung(einvoice) if profile == XRECHNUNG else zugferd(stripe, einvoice, invoice)


def e_invoice_documents(stripe: StripeGateway, settings: Settings, invoice: dict[str, Any]) -> list[Attachment]:
    """The XRechnung XML and the ZUGFeRD PDF of a finalized invoice, to attach to the accounting mail.

    `invoice` is Stripe's invoice object (a webhook event's copy will do: when its lines are cut off they
    are read again). Raises EInvoiceUnavailable (NotConfigured among them) when the invoice cannot be an
    e-invoice, and StripeUnavailable when Stripe cannot be reached. Without SELLER_PHONE only the ZUGFeRD PDF is made
    (XRechnung requires the phone), and the log says so.
    """
    if (invoice.get("lines") or {}).get("has_more"):  # a webhook's copy lists only the first lines
        invoice = stripe.invoice(str(invoice["id"]))
    einvoice = e_invoice(stripe, settings, invoice)
    documents = []
    try:
        check_profile(einvoice, XRECHNUNG)
    except EInvoiceUnavailable as exc:
        log.warning("invoice %s: no XRechnung: %s", einvoice.number, exc)
    else:
        documents.append(xrechnung(einvoice))
    documents.append(zugferd(stripe, einvoice, invoice))
    return documents


def _safe(number: str) -> str:
    """The invoice number as a file name (Stripe numbers are letters, digits and dashes already)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", number) or "invoice"
