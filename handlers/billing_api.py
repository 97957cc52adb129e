"""Quantity, invoices, the billing portal and cancellation through the JSON API (PRODUCT.md capability 5).

Thin: the gate (`handlers/gate.py`) authenticates the bearer token and hands over the subscription
the caller may use (owner or `quantity.manage` for the quantity, owner or `billing.manage` for invoices
and the billing portal, the owner alone for cancellation); the views parse the request, call
services/quantity_change.py, services/billing_account.py or services/cancellation.py and answer. Every
refusal is answered in one place (`refusal`, through the gate, as Stripe outages are); nothing is ever a 500
because Stripe said no or could not be reached. The OpenAPI description is in `handlers/billing_openapi.py`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import azure.functions as func

from handlers import billing_openapi, gate  # noqa: F401 - billing_openapi describes these routes
from handlers.blueprint import new_blueprint
from handlers.delegates_api import subscription_json
from handlers.inputs import InvalidBody, json_object
from handlers.responses import error, json_response
from handlers.seat_changes import actor, request_id
from services import access, billing_account, bootstrap, cancellation, quantity_change
from services.billing_changes import CardDeclined
from services.billing_events import Billing
from services.quantity_change import BelowAssigned, InvalidQuantity, QuantityPreview, QuantityUnchanged
from services.subscription import Subscription
from services.unit_of_work import Refused

log = logging.getLogger(__name__)
bp = new_blueprint()

INVOICES_PAGE = 10
IDEMPOTENCY_HEADER = "Idempotency-Key"


def billing() -> Billing:
    """What the billing services need, from the production adapters."""
    return Billing(storage=bootstrap.storage(), stripe=bootstrap.stripe(), settings=bootstrap.settings())


# --- answers ----------------------------------------------------------------------------------------


def refusal(exc: Refused) -> func.HttpResponse:
    """A refusal as JSON, with what the caller needs to act on it; nothing was changed."""
    extra: dict[str, Any] = {}
    if isinstance(exc, BelowAssigned):
        extra = {"assigned": exc.assigned, "revoke": exc.revoke}
    elif isinstance(exc, InvalidQuantity):
        extra = {"field": "quantity", "minimum": 1, "maximum": exc.maximum}
    elif isinstance(exc, QuantityUnchanged):
        extra = {"quantity": exc.quantity}
    elif isinstance(exc, CardDeclined):
        extra = {"decline_code": exc.decline_code,
                 "hint": "nothing was changed or charged; update the payment method (POST .../billing-portal), then "
                         "send the change again with a new Idempotency-Key"}
    return error(exc.status, exc.code, str(exc), **extra)


def _quantity(payload: dict[str, Any]) -> int:
    """`quantity` of a JSON body: an integer from 1 to MAX_QUANTITY (not a string, not a boolean)."""
    settings = bootstrap.settings()
    value = payload.get("quantity")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12.0 is an integer to JSON Schema (and to the API description)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantity(settings.max_quantity)
    return quantity_change.parse_quantity(value, settings)


def _body(req: func.HttpRequest) -> dict[str, Any]:
    return json_object(req.get_body(), 'send a JSON object, e.g. {"quantity": 12}')


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def preview_json(preview: QuantityPreview) -> dict[str, Any]:
    return {
        "subscription_id": preview.subscription_id,
        "currency": preview.currency,
        "interval": preview.interval,
        "quantity": {"current": preview.current, "new": preview.quantity},
        "proration_date": preview.proration_date,
        "due_now": {
            "amount": preview.due_now, "total": preview.due_now_total, "credit": preview.credit,
            "lines": [{"description": line.description, "amount": line.amount, "quantity": line.quantity,
                       "proration": line.proration,
                       "period": {"start": _at(line.period_start), "end": _at(line.period_end)}}
                      for line in preview.lines],
        },
        "next_invoice": {"amount": preview.next_invoice_total, "date": _at(preview.next_invoice_on),
                         "quantity": preview.quantity, "unit_amount": preview.next_invoice_unit_amount,
                         "interval": preview.next_invoice_interval},
        "unit_amount": {"current": preview.unit_amount_current, "new": preview.unit_amount_new},
        "tier_changed": preview.tier_changed,
    }


def invoice_json(invoice: billing_account.Invoice | quantity_change.ChargedInvoice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": invoice.id, "number": invoice.number, "currency": invoice.currency, "total": invoice.total,
        "amount_due": invoice.amount_due, "amount_paid": invoice.amount_paid, "status": invoice.status,
        "hosted_invoice_url": invoice.hosted_invoice_url, "invoice_pdf": invoice.invoice_pdf,
    }
    if isinstance(invoice, billing_account.Invoice):
        out.update(created=_at(invoice.created), amount_remaining=invoice.amount_remaining,
                   period={"start": _at(invoice.period_start), "end": _at(invoice.period_end)})
    return out


# --- quantity -------------------------------------------------------------------------------------------


@bp.route(route="v1/subscriptions/{subscription_id}/quantity/preview", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.QUANTITY_MANAGE, refusal=refusal)
def api_preview_quantity(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                         ) -> func.HttpResponse:
    """What a new number of licenses costs, before anything changes (not audited)."""
    context = billing()
    quantity = _quantity(_body(req))
    return json_response(preview_json(quantity_change.preview(context, subscription, quantity)))


@bp.route(route="v1/subscriptions/{subscription_id}/quantity", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.QUANTITY_MANAGE, refusal=refusal)
def api_change_quantity(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                        ) -> func.HttpResponse:
    """Change the number of licenses; the Idempotency-Key makes a retry change Stripe once."""
    context = billing()
    key = request_id(req.headers.get(IDEMPOTENCY_HEADER), IDEMPOTENCY_HEADER)
    if key is None:
        raise InvalidBody("idempotency_key_required", f"send an {IDEMPOTENCY_HEADER} header (1 to 100 letters, "
                          "digits, '-', '_' or '.'; a new one per change, the same one to retry)",
                          field=IDEMPOTENCY_HEADER)
    payload = _body(req)
    quantity = _quantity(payload)
    proration_date = payload.get("proration_date")
    if proration_date is not None and (isinstance(proration_date, bool) or not isinstance(proration_date, int)):
        raise InvalidBody("invalid_proration_date", "proration_date: the integer from the preview (Unix seconds)",
                          field="proration_date")
    changed = quantity_change.change(context, actor(caller), subscription, quantity, key, proration_date)
    return json_response({
        "changed": changed.changed,
        "quantity": {"before": changed.before, "after": changed.quantity},
        "invoice": invoice_json(changed.invoice) if changed.invoice else None,
        "subscription": subscription_json(changed.subscription, caller, detail=True),
    })


# --- invoices and the billing portal ---------------------------------------------------------------------


@bp.route(route="v1/subscriptions/{subscription_id}/invoices", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE, refusal=refusal)
def api_list_invoices(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                      ) -> func.HttpResponse:
    raw = req.params.get("limit")
    try:
        size = int(raw) if raw else INVOICES_PAGE
    except ValueError:
        size = 0
    if not 1 <= size <= billing_account.MAX_PAGE:
        raise InvalidBody("invalid_limit", f"limit: 1 to {billing_account.MAX_PAGE}", field="limit")
    page = billing_account.invoices(billing(), subscription, size, req.params.get("starting_after") or None)
    return json_response({"invoices": [invoice_json(i) for i in page.invoices], "has_more": bool(page.next_cursor),
                          "next_starting_after": page.next_cursor})


@bp.route(route="v1/subscriptions/{subscription_id}/billing-portal", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE, refusal=refusal)
def api_billing_portal(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                       ) -> func.HttpResponse:
    """A Stripe billing-portal session (payment method, billing address, tax ids, invoices)."""
    language = "de" if subscription.language == "de" else "en"
    return json_response({"url": billing_account.billing_portal(billing(), actor(caller), subscription, language)})


# --- cancellation (the owner's) -----------------------------------------------------------------------------


def _cancellation_json(done: cancellation.Cancellation, caller: access.Caller) -> dict[str, Any]:
    return {"cancel_at_period_end": done.scheduled, "ends_at": _at(done.ends_at), "changed": done.changed,
            "subscription": subscription_json(done.subscription, caller, detail=True)}


@bp.route(route="v1/subscriptions/{subscription_id}/cancellation", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_schedule_cancellation(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                              ) -> func.HttpResponse:
    """Cancel at the end of the paid period: licenses stop at `ends_at`; the owner is mailed."""
    return json_response(_cancellation_json(cancellation.schedule(billing(), actor(caller), subscription), caller))


@bp.route(route="v1/subscriptions/{subscription_id}/cancellation", methods=["DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_undo_cancellation(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                          ) -> func.HttpResponse:
    """Undo a scheduled cancellation before the period ends."""
    return json_response(_cancellation_json(cancellation.undo(billing(), actor(caller), subscription), caller))
