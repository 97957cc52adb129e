"""E-invoice downloads (PRODUCT.md capability 13): XRechnung XML or the ZUGFeRD PDF of an invoice.

- `v1/subscriptions/{id}/invoices/{invoice_id}/e-invoice?format=xrechnung|zugferd` (bearer token), and
- `subscriptions/{id}/invoices/{invoice_id}/e-invoice?format=...` (the dashboard session: the links on
  the billing page),

both for the owner and delegates with `billing.manage`. The order of refusals: `format` (400 naming
it), the invoice id's shape (400 naming `invoice_id`), the seller settings (409 naming the missing
SELLER_* settings), the invoice (404 unless it is one of this subscription's customer), its state
(409: a draft, a voided invoice, or one EN 16931 cannot express, with the reason). Thin: the documents
are made by services/e_invoice_documents.py. Answers are attachments that are never cached.
"""

from __future__ import annotations

import logging

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from handlers import billing_openapi, gate  # noqa: F401 - billing_openapi describes the API route
from handlers.blueprint import new_blueprint
from handlers.inputs import InvalidInput
from handlers.responses import SECURITY_HEADERS, error
from handlers.web import WebRequest, refusal_text
from services import access, bootstrap, e_invoice_documents
from services.e_invoice import PROFILES, EInvoiceUnavailable
from services.e_invoice_documents import InvoiceNotFound, NotConfigured
from services.i18n import translator
from services.mail.message import Attachment
from services.subscription import Subscription

log = logging.getLogger(__name__)
bp = new_blueprint()

# Downloads hold a customer's invoice: for the one browser that asked, never for a shared cache.
DOWNLOAD_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "private, no-store"}


def _format(value: str | None) -> str:
    if value not in PROFILES:
        raise InvalidInput("format", f"one of {', '.join(PROFILES)}", code="invalid_format")
    return value


def _invoice_id(value: str) -> str:
    if not e_invoice_documents.INVOICE_ID.fullmatch(value):
        raise InvalidInput("invoice_id", "a Stripe invoice id (in_...)", code="invalid_invoice_id")
    return value


def _download(document: Attachment) -> func.HttpResponse:
    return func.HttpResponse(document.content, status_code=200, mimetype=document.content_type,
                             headers={**DOWNLOAD_HEADERS,
                                      "Content-Disposition": f'attachment; filename="{document.filename}"'})


def _document(subscription: Subscription, invoice_id: str, profile: str) -> Attachment:
    """The document, or the refusal (NotConfigured, InvoiceNotFound, EInvoiceUnavailable)."""
    settings = bootstrap.settings()
    missing = e_invoice_documents.missing_settings(settings, profile)
    if missing:  # before Stripe is asked anything
        raise NotConfigured(missing, profile)
    stripe = bootstrap.stripe()
    invoice = e_invoice_documents.subscription_invoice(stripe, subscription, invoice_id)
    return e_invoice_documents.document(stripe, settings, invoice, profile)


@bp.route(route="v1/subscriptions/{subscription_id}/invoices/{invoice_id}/e-invoice", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE)
def api_e_invoice(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The invoice as XRechnung (XML) or ZUGFeRD (PDF with the XML embedded)."""
    profile = _format(req.params.get("format"))
    invoice_id = _invoice_id(req.route_params.get("invoice_id", ""))
    try:
        return _download(_document(subscription, invoice_id, profile))
    except InvoiceNotFound:
        return error(404, "invoice_not_found", f"no invoice {invoice_id} of subscription {subscription.id}")
    except NotConfigured as exc:
        return error(409, "e_invoice_not_configured", str(exc), missing=exc.missing)
    except EInvoiceUnavailable as exc:
        return error(409, "e_invoice_unavailable", str(exc), reason=exc.code)


@bp.route(route="subscriptions/{subscription_id}/invoices/{invoice_id}/e-invoice", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.BILLING_MANAGE)
def e_invoice_download(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The billing page's e-invoice links (session cookie); refusals as pages in the person's language."""
    t = translator(web.language)
    title = t("e_invoice.error.title")
    invoice_id = web.req.route_params.get("invoice_id", "")
    try:
        profile = _format(web.req.params.get("format"))
        _invoice_id(invoice_id)
    except InvalidInput:
        return web.error_page(400, title, t("e_invoice.error.format"))
    try:
        return _download(_document(subscription, invoice_id, profile))
    except InvoiceNotFound:
        return web.error_page(404, t("error.not_found.title"), t("e_invoice.error.not_found"))
    except NotConfigured as exc:
        return web.error_page(409, title, t("e_invoice.error.not_configured", settings=", ".join(exc.missing)))
    except EInvoiceUnavailable as exc:
        return web.error_page(409, title, refusal_text(web.language, exc, f"e_invoice.error.{exc.code}"))
    except StripeUnavailable as exc:
        log.warning("Stripe unavailable: %s", exc)
        return web.error_page(503, title, t("billing.error.stripe_unavailable"))
