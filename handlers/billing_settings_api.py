"""Finance settings and billing details through the JSON API (PRODUCT.md 2.13; owner or `billing.manage`).

- `GET  v1/subscriptions/{id}/billing-settings`: the PO number, cost centre and accounting address,
  with the Stripe customer's billing details (company name, address, tax ids; changed in Stripe's
  billing portal, `POST .../billing-portal`).
- `PUT  v1/subscriptions/{id}/billing-settings`: `{"po_number", "cost_centre", "accounting_email"}`,
  strings. A key left out keeps its value, `""` clears it, so a script can set one field alone; other
  keys are refused (400 naming them).

Thin: the gate authenticates, loads the subscription, checks the permission and answers Stripe outages
(503); services/billing_settings.py checks and changes. The OpenAPI description is in
handlers/billing_openapi.py.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from handlers import billing_openapi, gate  # noqa: F401 - billing_openapi describes these routes
from handlers.billing_api import billing
from handlers.blueprint import new_blueprint
from handlers.inputs import json_object
from handlers.responses import error, json_response
from handlers.seat_changes import actor
from services import access, billing_settings
from services.billing_account import NoCustomer
from services.billing_settings import BillingDetails, BillingSettings, InvalidBillingSetting
from services.subscription import Subscription

bp = new_blueprint()

ROUTE = "v1/subscriptions/{subscription_id}/billing-settings"


def settings_json(subscription: Subscription) -> dict[str, Any]:
    return {"po_number": subscription.po_number, "cost_centre": subscription.cost_centre,
            "accounting_email": subscription.accounting_email,
            "invoice_custom_fields": [{"name": name, "value": value} for name, value in
                                      billing_settings.invoice_custom_fields(subscription.language,
                                                                             subscription.po_number,
                                                                             subscription.cost_centre)]}


def details_json(details: BillingDetails | None) -> dict[str, Any] | None:
    if details is None:
        return None
    return {"name": details.name, "email": details.email,
            "address": {"line1": details.line1, "line2": details.line2, "postal_code": details.postal_code,
                        "city": details.city, "state": details.state, "country": details.country},
            "tax_ids": [{"type": t.type, "value": t.value, "country": t.country, "verification": t.verification}
                        for t in details.tax_ids]}


@bp.route(route=ROUTE, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE)
def api_billing_settings(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                         ) -> func.HttpResponse:
    """The finance settings and the Stripe customer's billing details (null without a customer)."""
    try:
        details: BillingDetails | None = billing_settings.billing_details(billing(), subscription)
    except NoCustomer:
        details = None
    return json_response({**settings_json(subscription), "billing_details": details_json(details)})


@bp.route(route=ROUTE, methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.BILLING_MANAGE)
def api_change_billing_settings(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                                ) -> func.HttpResponse:
    """Change the finance settings; keys left out keep their values. Audited once per change."""
    payload = json_object(req.get_body(), 'send a JSON object, e.g. {"po_number": "4500012345"}')
    try:
        wanted = billing_settings.parse_settings(payload, BillingSettings.of(subscription))
        done = billing_settings.change(billing(), actor(caller), subscription, wanted)
    except InvalidBillingSetting as exc:
        extra: dict[str, Any] = {"maximum": exc.maximum} if exc.maximum is not None else {}
        if exc.reason:
            extra["reason"] = exc.reason
        return error(400, exc.code, str(exc), field=exc.field, **extra)
    return json_response({**settings_json(done.subscription), "changed": list(done.changed)})
