"""Applying Stripe events from the queue: idempotent per event id, right in any order.

Order: subscription events do not trust their payload's snapshot; they re-read the subscription from
Stripe, so a late or repeated event can only ever write the newest state. Payloads are read only for
ids, in both the current and the pre-2025 shapes (`invoice.parent.subscription_details.subscription`
or `invoice.subscription`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.lookup_repository import LookupRepository
from adapters.stripe_gateway import StripeGateway, StripeNotFound, StripeRejected, as_dict
from adapters.table_storage import STRIPE_EVENTS_QUEUE, TableStore
from services import delayed_payment, invoice_mail, observability, subscription_schedule, subscription_store
from services.audit import Actor, AuditEntry
from services.fulfilment import PURCHASE_BY_INVOICE, fulfil, fulfil_invoice_purchase
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
    delayed_payment.failed(billing.storage, session)  # the buyer's dashboard says so
    return "payment failed; nothing created"


def _setup_reminder(subscription_id: str, billing: Billing) -> str:
    subscription = subscription_store.load(billing.storage, subscription_id)
    if subscription is None or subscription.setup_seen_at is not None:
        return "setup already seen"
    enqueue(billing.storage, compose.subscription_ready(billing.settings, subscription))
    return "finish-setup mail queued"


# --- subscription state ------------------------------------------------------------------------


# How a change read back from Stripe is written and audited: by default as Stripe's own
# ("subscription.updated"); a change this app just made at Stripe (services/quantity_change.py,
# services/cancellation.py) names the person who made it. Gets (stored, as Stripe says it), returns
# what to write with its audit entries, or None when there is nothing to write.
Attribution = Callable[[Subscription, Subscription], "tuple[Subscription, list[AuditEntry]] | None"]
ENDED_STATUSES = ("canceled", "incomplete_expired")


def refresh(subscription_id: str, billing: Billing, reason: str,
            attribution: Attribution | None = None) -> tuple[Subscription | None, Subscription | None]:
    """Re-read the subscription from Stripe and store it; returns (before, after).

    The one way Stripe's state reaches the stored subscription: webhooks, reconciliation, and the
    answer to a change this app made (which passes `attribution`); whichever comes second finds
    nothing left to change, so a change is never applied or audited twice.
    """
    observability.annotate(subscription_id=subscription_id)
    try:
        state = StripeSubscriptionState.from_stripe(billing.stripe.subscription(subscription_id))
    except StripeNotFound:
        log.warning("Stripe does not know subscription %s", subscription_id)
        return None, None
    before = subscription_store.load(billing.storage, subscription_id)
    # The stored state this call's transaction changed, if it was this call that wrote: only the writer
    # tells the owner.
    committed: list[Subscription] = []

    def change(current: Subscription) -> tuple[Subscription, list[AuditEntry]] | None:
        committed.clear()
        updated = current.with_stripe_state(state)
        outcome: tuple[Subscription, list[AuditEntry]] | None
        if attribution is not None:
            outcome = attribution(current, updated)
        elif same_state(current, updated):
            # Only the copy of the billing interval kept for the pages may differ: stored, not audited.
            outcome = None if same_interval(current, updated) else (updated, [])
        else:
            outcome = updated, [stripe_entry(current, updated, reason)]
        if outcome is not None:
            committed.append(current)
        return outcome

    after = subscription_store.update(billing.storage, subscription_id, change)
    over = 0
    if before is not None and after is not None and before.quantity != after.quantity:
        # Seats beyond a lowered quantity go over quantity (nothing is deleted), and back when it rises.
        over = apply_quantity(UnitOfWork(billing.storage), billing.settings, after.id)
    if committed and after is not None:
        _tell_owner(billing, committed[0], after, over, by_stripe=attribution is None)
    return before, after


def _tell_owner(billing: Billing, old: Subscription, new: Subscription, over: int, by_stripe: bool) -> None:
    """Mail the owner what changed: a cancellation scheduled or taken back (whoever did it, here or at
    Stripe), and a quantity changed at Stripe directly (dashboard, support); a lowered quantity that put
    seats over quantity is told by the over-quantity mail instead."""
    mails = []
    # A merged individual subscription's person is told by the merge's own mail (services/merge.py).
    if old.cancel_at_period_end != new.cancel_at_period_end and new.status not in ENDED_STATUSES \
            and not new.merged_into:
        mails.append(compose.cancellation(billing.settings, new))
    if by_stripe and old.quantity != new.quantity and not (new.quantity < old.quantity and over):
        mails.append(compose.quantity_changed(billing.settings, new, old.quantity))
    for mail in mails:
        enqueue(billing.storage, mail)


def stripe_entry(current: Subscription, updated: Subscription, reason: str) -> AuditEntry:
    """The audit entry of a change Stripe told us about (webhook, reconciliation)."""
    before: dict[str, Any] = {"status": current.status, "quantity": current.quantity}
    after: dict[str, Any] = {"status": updated.status, "quantity": updated.quantity}
    if current.billing_interval and current.billing_interval != updated.billing_interval:
        # A switch of the billing interval took effect (services/interval_change.py).
        before["interval"], after["interval"] = current.billing_interval, updated.billing_interval
    return AuditEntry(STRIPE, "subscription.updated", target=reason, before=before, after=after)


def same_state(a: Subscription, b: Subscription) -> bool:
    """Whether the two agree on everything Stripe decides."""
    keys = ("status", "quantity", "current_period_end", "cancel_at_period_end", "trial_end", "past_due_since")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def same_interval(a: Subscription, b: Subscription) -> bool:
    """Whether the two agree on the billing interval and a switch planned at Stripe (the copy kept
    for the pages)."""
    keys = ("billing_interval", "scheduled_interval", "scheduled_interval_at")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _subscription_event(event: dict[str, Any], billing: Billing) -> str:
    obj = event["data"]["object"]
    before, after = refresh(obj["id"], billing, event["type"])
    if after is not None and after.scheduled_interval and event["type"] == "customer.subscription.updated":
        # A new number of licenses (made here or elsewhere) also for the planned interval switch.
        try:
            subscription_schedule.keep_in_step(billing.stripe, obj["id"], str(event["id"]))
        except (StripeRejected, StripeNotFound) as exc:  # the schedule went meanwhile: nothing to keep
            log.warning("schedule of %s not kept in step: %s", obj["id"], exc)
    if after is None and (obj.get("metadata") or {}).get("purchase") == PURCHASE_BY_INVOICE:
        # Bought by invoice (no Checkout session): this event fulfils it if the purchase request
        # did not get that far. The current state is read from Stripe, not from the payload.
        result = fulfil_invoice_purchase(as_dict(billing.stripe.subscription(obj["id"])), storage=billing.storage)
        return f"invoice purchase {result.outcome}"
    if after is None:
        # Not fulfilled yet (created arrives before checkout.session.completed): fulfilment will
        # read the current state itself.
        return "no such subscription yet"
    return f"status {after.status}, quantity {after.quantity}"


def _schedule_event(event: dict[str, Any], billing: Billing) -> str:
    """A subscription schedule changed (a switch of the billing interval planned, entered, withdrawn
    or done): the subscription is read again for the copy the pages show."""
    schedule = event["data"]["object"]
    subscription_id = schedule.get("subscription") or schedule.get("released_subscription")
    if isinstance(subscription_id, dict):
        subscription_id = subscription_id.get("id")
    if not subscription_id:
        return "schedule without subscription"
    _, after = refresh(str(subscription_id), billing, event["type"])
    if after is None:
        return "no such subscription yet"
    return f"interval {after.billing_interval or '?'}, switching to {after.scheduled_interval or 'nothing'}"


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


def _invoice_finalized(event: dict[str, Any], billing: Billing) -> str:
    """Every invoice to the subscription's accounting address (services/invoice_mail.py)."""
    invoice = event["data"]["object"]
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id:
        return "invoice without subscription"
    return invoice_mail.mail_accounting(billing.storage, billing.settings, subscription_id, invoice)


def _invoice_upcoming(event: dict[str, Any], billing: Billing) -> str:
    """An annual subscription renews soon: remind who pays (services/invoice_mail.py)."""
    upcoming = event["data"]["object"]
    subscription_id = invoice_subscription_id(upcoming)
    if not subscription_id:
        return "upcoming invoice without subscription"
    return invoice_mail.remind_renewal(billing.storage, billing.stripe, billing.settings, subscription_id, upcoming)


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
    "invoice.finalized": _invoice_finalized,
    "invoice.upcoming": _invoice_upcoming,
    "subscription_schedule.created": _schedule_event,
    "subscription_schedule.updated": _schedule_event,
    "subscription_schedule.released": _schedule_event,
    "subscription_schedule.completed": _schedule_event,
    "subscription_schedule.canceled": _schedule_event,
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
        for stripe_sub in billing.stripe.subscriptions_created_since(since):
            bought = as_dict(stripe_sub)
            if (bought.get("metadata") or {}).get("purchase") != PURCHASE_BY_INVOICE:
                continue
            result = fulfil_invoice_purchase(bought, storage=billing.storage)
            if result.created and result.subscription is not None:
                repaired.append(result.subscription.id)
                log.warning("reconciliation fulfilled invoice purchase %s (its webhook never came)", bought["id"])
    ids = [subscription_id] if subscription_id else list(subscription_store.all_ids(billing.storage))
    for sub_id in ids:
        before, after = refresh(sub_id, billing, "reconciliation")
        if after is not None:
            subscription_store.index(billing.storage, after)
        if before is not None and after is not None and not same_state(before, after):
            repaired.append(sub_id)
            log.warning("reconciliation repaired subscription %s: %s -> %s", sub_id, before.status, after.status)
    return repaired
