"""Applying Stripe events from the queue: idempotent per event id, right in any order.

Order: subscription events do not trust their payload's snapshot; they re-read the subscription from
Stripe, so a late or repeated event can only ever write the newest state. Payloads are read only for
ids, in both the current and the pre-2025 shapes (`invoice.parent.subscription_details.subscription`
or `invoice.subscription`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.lookup_repository import LookupRepository
from adapters.stripe_gateway import StripeGateway, StripeNotFound, as_dict
from adapters.table_storage import STRIPE_EVENTS_QUEUE, TableStore
from services import observability, subscription_store
from services.audit import Actor, AuditEntry
from services.fulfilment import fulfil
from services.mail import compose, enqueue
from services.over_quantity import apply_quantity
from services.settings import Settings
from services.subscription import StripeSubscriptionState, Subscription
from services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

STRIPE = Actor.system("Stripe")
# Our own follow-up message on the Stripe events queue (never from Stripe: no `evt_` id).
SETUP_REMINDER = "internal.setup_reminder"


@dataclass
class Billing:
    """What applying events needs; built by the handler from the production adapters."""

    storage: TableStore
    stripe: StripeGateway
    settings: Settings


def enqueue_event(storage: TableStore, event: dict[str, Any]) -> None:
    storage.send(STRIPE_EVENTS_QUEUE, json.dumps(event).encode("utf-8"))


def apply(body: bytes, billing: Billing) -> str:
    """Apply one queued message; returns what was done (for the invocation log)."""
    event = json.loads(body)
    event_type = str(event.get("type", ""))
    if event_type == SETUP_REMINDER:
        return _setup_reminder(event["subscription"], billing)

    event_id = str(event["id"])
    observability.annotate(stripe_event_id=event_id)
    _warn_on_other_api_version(event, billing.settings)
    applied = LookupRepository(billing.storage)
    if applied.event_applied(event_id):
        return f"{event_type} {event_id}: already applied"
    handler = _HANDLERS.get(event_type)
    result = handler(event, billing) if handler else "ignored (not an event this server uses)"
    # Recorded after applying: a crash in between re-applies, which every handler tolerates.
    applied.record_event(event_id, event_type, datetime.now(UTC))
    return f"{event_type} {event_id}: {result}"


def _warn_on_other_api_version(event: dict[str, Any], settings: Settings) -> None:
    """Stripe shapes an event by its endpoint's API version; the code reads the version it calls Stripe with."""
    version = event.get("api_version")
    if version and version != settings.stripe_api_version:
        log.warning(
            "Stripe event %s has api_version %s but STRIPE_API_VERSION is %s: set the webhook endpoint's API "
            "version to %s (docs/operations.md, Connect Stripe)",
            event.get("id"), version, settings.stripe_api_version, settings.stripe_api_version,
        )


# --- checkout --------------------------------------------------------------------------------------


def _checkout_completed(event: dict[str, Any], billing: Billing) -> str:
    session = event["data"]["object"]
    result = fulfil(session["id"], storage=billing.storage, stripe=billing.stripe)
    if result.created and result.subscription is not None:
        # The buyer may never come back through the redirect: remind them unless they do.
        billing.storage.send(
            STRIPE_EVENTS_QUEUE,
            json.dumps({"type": SETUP_REMINDER, "subscription": result.subscription.id}).encode(),
            visibility_timeout=billing.settings.setup_reminder_minutes * 60,
        )
    return result.outcome.value


def _async_payment_failed(event: dict[str, Any], billing: Billing) -> str:
    session = event["data"]["object"]
    log.warning("delayed payment for checkout session %s failed; no subscription is created", session.get("id"))
    return "payment failed; nothing created"


def _setup_reminder(subscription_id: str, billing: Billing) -> str:
    subscription = subscription_store.load(billing.storage, subscription_id)
    if subscription is None or subscription.setup_seen_at is not None:
        return "setup already seen"
    enqueue(billing.storage, compose.subscription_ready(billing.settings, subscription))
    return "finish-setup mail queued"


# --- subscription state ------------------------------------------------------------------------


def refresh(subscription_id: str, billing: Billing, reason: str) -> tuple[Subscription | None, Subscription | None]:
    """Re-read the subscription from Stripe and store it; returns (before, after)."""
    observability.annotate(subscription_id=subscription_id)
    try:
        state = StripeSubscriptionState.from_stripe(billing.stripe.subscription(subscription_id))
    except StripeNotFound:
        log.warning("Stripe does not know subscription %s", subscription_id)
        return None, None
    before = subscription_store.load(billing.storage, subscription_id)

    def change(current: Subscription) -> tuple[Subscription, list[AuditEntry]] | None:
        updated = current.with_stripe_state(state)
        if _same_state(current, updated):
            return None
        audit = AuditEntry(
            STRIPE,
            "subscription.updated",
            target=reason,
            before={"status": current.status, "quantity": current.quantity},
            after={"status": updated.status, "quantity": updated.quantity},
        )
        return updated, [audit]

    after = subscription_store.update(billing.storage, subscription_id, change)
    if before is not None and after is not None and before.quantity != after.quantity:
        # Seats beyond a lowered quantity go over quantity (nothing is deleted), and back when it rises.
        apply_quantity(UnitOfWork(billing.storage), billing.settings, after.id)
    return before, after


def _same_state(a: Subscription, b: Subscription) -> bool:
    keys = ("status", "quantity", "current_period_end", "cancel_at_period_end", "trial_end", "past_due_since")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _subscription_event(event: dict[str, Any], billing: Billing) -> str:
    obj = event["data"]["object"]
    before, after = refresh(obj["id"], billing, event["type"])
    if after is None:
        # Not fulfilled yet (created arrives before checkout.session.completed): fulfilment will
        # read the current state itself.
        return "no such subscription yet"
    return f"status {after.status}, quantity {after.quantity}"


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """Both shapes: current (`parent.subscription_details.subscription`) and pre-2025 (`subscription`)."""
    details = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    found = details or invoice.get("subscription")
    if isinstance(found, dict):
        found = found.get("id")
    return found or None


def _invoice_paid(event: dict[str, Any], billing: Billing) -> str:
    subscription_id = invoice_subscription_id(event["data"]["object"])
    if not subscription_id:
        return "invoice without subscription"
    _, after = refresh(subscription_id, billing, event["type"])
    return f"status {after.status}" if after else "no such subscription yet"


def _invoice_payment_failed(event: dict[str, Any], billing: Billing) -> str:
    invoice = event["data"]["object"]
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id:
        return "invoice without subscription"
    _, after = refresh(subscription_id, billing, event["type"])
    if after is None:
        return "no such subscription yet"
    grace_until = after.grace_ends_at(billing.settings.grace_days) or (
        datetime.now(UTC) + timedelta(days=billing.settings.grace_days)
    )
    # One mail per failed invoice event; a redelivered event has the same id and is not mailed twice.
    _mail_owner(billing, after, "payment_failed", f"payment-failed-{event['id']}",
                grace_until=grace_until.date().isoformat())
    return f"status {after.status}; owner mailed"


def _trial_will_end(event: dict[str, Any], billing: Billing) -> str:
    obj = as_dict(event["data"]["object"])
    _, after = refresh(obj["id"], billing, event["type"])
    if after is None:
        return "no such subscription yet"
    trial_end = after.trial_end or datetime.now(UTC)
    _mail_owner(billing, after, "trial_ending", f"trial-ending-{event['id']}", trial_end=trial_end.date().isoformat())
    return "owner mailed"


def _mail_owner(billing: Billing, subscription: Subscription, template: str, mail_id: str, **params: Any) -> None:
    enqueue(billing.storage, compose.to_owner(billing.settings, subscription, template, mail_id, **params))


_HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.async_payment_failed": _async_payment_failed,
    "customer.subscription.created": _subscription_event,
    "customer.subscription.updated": _subscription_event,
    "customer.subscription.deleted": _subscription_event,
    "customer.subscription.paused": _subscription_event,
    "customer.subscription.resumed": _subscription_event,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
    "customer.subscription.trial_will_end": _trial_will_end,
}


# Completed checkouts this recent are fulfilled by reconciliation if their webhook never came.
RECONCILE_CHECKOUT_DAYS = 7


def reconcile(billing: Billing, subscription_id: str | None = None) -> list[str]:
    """Compare subscriptions with Stripe and repair drift (missed webhooks); one or all.

    Returns the ids of the subscriptions it changed or created.
    """
    repaired = []
    if subscription_id is None:
        since = int((datetime.now(UTC) - timedelta(days=RECONCILE_CHECKOUT_DAYS)).timestamp())
        for session in billing.stripe.completed_checkout_sessions(since):
            result = fulfil(session["id"], storage=billing.storage, stripe=billing.stripe)
            if result.created and result.subscription is not None:
                repaired.append(result.subscription.id)
                log.warning("reconciliation fulfilled checkout session %s (its webhook never came)", session["id"])
    ids = [subscription_id] if subscription_id else list(subscription_store.all_ids(billing.storage))
    for sub_id in ids:
        before, after = refresh(sub_id, billing, "reconciliation")
        if after is not None:
            subscription_store.index(billing.storage, after)
        if before is not None and after is not None and not _same_state(before, after):
            repaired.append(sub_id)
            log.warning("reconciliation repaired subscription %s: %s -> %s", sub_id, before.status, after.status)
    return repaired
