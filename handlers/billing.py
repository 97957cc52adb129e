"""Stripe webhooks: verified and queued fast, applied by a queue trigger; daily reconciliation."""

from __future__ import annotations

import logging

import azure.functions as func

from adapters.table_storage import STRIPE_EVENTS_QUEUE
from handlers.blueprint import new_blueprint
from handlers.responses import error, json_response, when_configured
from services import api_spec, bootstrap, observability
from services.billing_events import Billing, apply, enqueue_event, reconcile

log = logging.getLogger(__name__)
bp = new_blueprint()

api_spec.describe(
    "/stripe/webhook",
    "post",
    {
        "summary": "Stripe webhook endpoint",
        "description": "Authenticated by the Stripe-Signature header (no session, no CSRF). "
        "Verified events are queued and applied asynchronously.",
        "parameters": [{"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "event accepted"},
            "400": api_spec.error_response("bad signature or not a Stripe event"),
        },
    },
)


def _billing() -> Billing:
    return Billing(storage=bootstrap.storage(), stripe=bootstrap.stripe(), settings=bootstrap.settings())


@bp.route(route="stripe/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def stripe_webhook(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from adapters.stripe_gateway import InvalidWebhook

    try:
        # The signature covers the raw body: verify the bytes exactly as received.
        event = bootstrap.stripe().verify_event(req.get_body(), req.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        return error(400, "invalid_webhook", str(exc))
    with observability.correlation(context, stripe_event_id=event["id"]):
        enqueue_event(bootstrap.storage(), event)
        log.info("stripe event %s (%s) queued", event["id"], event["type"])
    return json_response({"received": True})


@bp.queue_trigger(arg_name="msg", queue_name=STRIPE_EVENTS_QUEUE, connection="AzureWebJobsStorage")
def apply_stripe_event(msg: func.QueueMessage, context: func.Context) -> None:
    with observability.correlation(context):
        log.info("applied: %s", apply(msg.get_body(), _billing()))


@bp.timer_trigger(arg_name="timer", schedule="0 15 3 * * *", run_on_startup=False)
def reconcile_subscriptions(timer: func.TimerRequest) -> None:
    repaired = reconcile(_billing())
    log.info("reconciliation finished; repaired %d subscriptions", len(repaired))
