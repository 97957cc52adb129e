"""Switching between monthly and annual billing at the next renewal through the JSON API
(PRODUCT.md 2.13 annual billing; owner or `billing.manage`).

- `POST   v1/subscriptions/{id}/billing-interval/preview` `{"interval": "year"}`: from when, and what
  the new interval costs (Stripe's preview of its first invoice, tax included). Nothing changes.
- `PUT    v1/subscriptions/{id}/billing-interval` `{"interval": "year"}` with an `Idempotency-Key`:
  plan the switch; retrying with the same key plans it once.
- `DELETE v1/subscriptions/{id}/billing-interval`: withdraw a planned switch before the renewal.

Thin: the gate authenticates, loads the subscription, checks the permission and answers Stripe
outages (503); services/interval_change.py decides and changes. Every refusal is answered here
(`refusal`, which the gate calls). The OpenAPI description is in handlers/billing_openapi.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.functions as func

from handlers import billing_openapi, gate  # noqa: F401 - billing_openapi describes these routes
from handlers.billing_api import IDEMPOTENCY_HEADER, billing
from handlers.blueprint import new_blueprint
from handlers.delegates_api import subscription_json
from handlers.inputs import InvalidBody, json_object
from handlers.responses import error, json_response
from handlers.seat_changes import actor, request_id
from services import access, interval_change
from services.interval_change import (
    IntervalChange,
    IntervalPreview,
    IntervalUnchanged,
    InvalidInterval,
    SubscriptionCancelling,
)
from services.subscription import Subscription
from services.subscription_schedule import INTERVALS
from services.unit_of_work import Refused

bp = new_blueprint()

ROUTE = "v1/subscriptions/{subscription_id}/billing-interval"


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def refusal(exc: Refused) -> func.HttpResponse:
    """A refusal as JSON with what the caller needs to act on it; nothing was changed."""
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInterval):
        extra = {"field": "interval", "allowed": list(INTERVALS)}
    elif isinstance(exc, IntervalUnchanged):
        extra = {"interval": exc.interval, "scheduled_interval": exc.scheduled}
    elif isinstance(exc, SubscriptionCancelling):
        extra = {"ends_at": _at(exc.ends_at)}
    return error(exc.status, exc.code, str(exc), **extra)


def _interval(req: func.HttpRequest) -> str:
    payload = json_object(req.get_body(), 'send a JSON object, e.g. {"interval": "year"}')
    return interval_change.parse_interval(payload.get("interval"))


def preview_json(preview: IntervalPreview) -> dict[str, Any]:
    return {
        "subscription_id": preview.subscription_id,
        "interval": {"current": preview.current, "new": preview.interval},
        "starts_at": _at(preview.starts_at),
        "quantity": preview.quantity,
        "currency": preview.currency,
        "unit_amount": {"current": preview.current_unit_amount, "new": preview.unit_amount},
        "first_invoice": {"date": _at(preview.starts_at), "subtotal": preview.subtotal, "tax": preview.tax,
                          "total": preview.total, "amount_due": preview.amount_due},
        "current_total": preview.current_total,
        "yearly_difference": preview.yearly_difference,
        "scheduled": preview.scheduled,
    }


def change_json(done: IntervalChange, caller: access.Caller) -> dict[str, Any]:
    return {"changed": done.changed, "interval": done.interval, "scheduled_interval": done.scheduled_interval,
            "starts_at": _at(done.starts_at), "subscription": subscription_json(done.subscription, caller, detail=True)}


@bp.route(route=f"{ROUTE}/preview", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE, refusal=refusal)
def api_preview_billing_interval(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                                 ) -> func.HttpResponse:
    """What the other interval costs from the next renewal on, before anything changes (not audited)."""
    interval = _interval(req)
    return json_response(preview_json(interval_change.preview(billing(), subscription, interval)))


@bp.route(route=ROUTE, methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE, refusal=refusal)
def api_schedule_billing_interval(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                                  ) -> func.HttpResponse:
    """Switch to `interval` at the next renewal; the Idempotency-Key makes a retry plan it once."""
    key = request_id(req.headers.get(IDEMPOTENCY_HEADER), IDEMPOTENCY_HEADER)
    if key is None:
        raise InvalidBody("idempotency_key_required", f"send an {IDEMPOTENCY_HEADER} header (1 to 100 letters, "
                          "digits, '-', '_' or '.'; a new one per change, the same one to retry)",
                          field=IDEMPOTENCY_HEADER)
    interval = _interval(req)
    done = interval_change.schedule(billing(), actor(caller), subscription, interval, key)
    return json_response(change_json(done, caller))


@bp.route(route=ROUTE, methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE, refusal=refusal)
def api_unschedule_billing_interval(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                                    ) -> func.HttpResponse:
    """Withdraw the planned switch before the renewal: the subscription goes on as it is billed now."""
    return json_response(change_json(interval_change.unschedule(billing(), actor(caller), subscription), caller))
