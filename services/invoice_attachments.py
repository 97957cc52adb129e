"""The documents that go with an invoice mail (PRODUCT.md 2.13), fetched from Stripe when it is sent.

A queued mail names its invoice (`MailMessage.invoice_id`); it cannot carry the documents (a queue
message holds at most 64 KiB). When the mail is sent, the invoice is read from Stripe and attached as
e-invoices, the ZUGFeRD PDF (Stripe's PDF with the EN 16931 XML inside) and the XRechnung XML
(services/e_invoice_documents.py), or, where e-invoices are not configured (SELLER_* settings) or this
invoice cannot be one, as Stripe's own PDF. Stripe unreachable raises StripeUnavailable, so the mail is
retried by the queue; an invoice Stripe does not know is undeliverable (the poison queue).
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.stripe_gateway import StripeGateway, StripeNotFound
from services.e_invoice import EInvoiceUnavailable
from services.e_invoice_documents import NotConfigured, e_invoice_documents
from services.mail.delivery import UndeliverableMessage
from services.mail.message import Attachment, MailMessage
from services.settings import Settings

log = logging.getLogger(__name__)

PDF = "application/pdf"


def attachments(stripe: StripeGateway, settings: Settings, message: MailMessage) -> tuple[Attachment, ...]:
    """The documents of the invoice the message names (none when it names none), fetched now."""
    if not message.invoice_id:
        return ()
    try:
        invoice = stripe.invoice(message.invoice_id)
    except StripeNotFound as exc:
        # Finalized invoices are never deleted at Stripe: an id of another Stripe account, or a test's.
        # Retrying cannot help.
        raise UndeliverableMessage(f"Stripe does not know invoice {message.invoice_id}") from exc
    documents = _e_invoices(stripe, settings, invoice)
    if documents:
        return documents
    number = str(invoice.get("number") or invoice.get("id"))
    name = "Rechnung" if message.language == "de" else "Invoice"
    return (Attachment(filename=f"{name}-{number}.pdf", content_type=PDF, content=stripe.invoice_pdf(invoice)),)


def _e_invoices(stripe: StripeGateway, settings: Settings, invoice: dict[str, Any]) -> tuple[Attachment, ...]:
    """ZUGFeRD PDF and XRechnung XML; () when this deployment or this invoice has none (Stripe's plain
    PDF goes instead). StripeUnavailable raises."""
    try:
        documents = e_invoice_documents(stripe, settings, invoice)
    except NotConfigured as exc:
        log.info("invoice %s mailed without e-invoice: %s", invoice.get("id"), exc)
        return ()
    except EInvoiceUnavailable as exc:
        log.warning("invoice %s mailed without e-invoice (%s): %s", invoice.get("id"), exc.code, exc)
        return ()
    return tuple(documents)
