"""Changes this app makes at Stripe on a person's behalf (PRODUCT.md capability 5): the number of
licenses, a cancellation at period end and its undo.

Each one is: read the subscription at Stripe, change it there, then apply Stripe's state to the
stored subscription at once through the same code the webhooks use (`billing_events.refresh`), with an
`Attribution` that audits the change as the person's. Whichever comes second, the answer or the
webhook, finds nothing left to change: a change is applied and audited once. The stored subscription
remembers the last such request (`last_change_request`), so a request that reaches the store twice
(a double click, a retry racing the first) is audited once too.

Stripe's refusals become the rules' refusals here (`Refused`: nothing was changed); an unreachable
Stripe stays `StripeUnavailable` (answer 503: retry, with the same idempotency key where there is one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from adapters.stripe_gateway import (
    StripeCardDeclined,
    StripeIdempotencyConflict,
    StripeNotFound,
    StripeRejected,
    as_dict,
)
from services.audit import Actor, AuditEntry
from services.billing_events import Attribution, Billing, same_state, stripe_entry
from services.subscription import Subscription
from services.subscription_schedule import ScheduledSwitch, current_phase_start, schedule_id, scheduled_switch
from services.unit_of_work import Refused, SubscriptionNotFound

# Stripe statuses in which the subscription can still be changed (quantity, cancellation).
CHANGEABLE = ("active", "trialing", "past_due")


class CardDeclined(Refused):
    """The card declined the charge of the change; nothing changed (Stripe's `error_if_incomplete`)."""

    code, status = "card_declined", 402

    def __init__(self, message: str, decline_code: str | None):
        super().__init__(message)
        self.decline_code = decline_code


class IdempotencyConflict(Refused):
    code, status = "idempotency_conflict", 409

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different change; send a new key for a new "
                         "change")


class StripeRefusedChange(Refused):
    """Stripe refused the request for a reason of its own (the subscription changed meanwhile...)."""

    code, status = "stripe_refused", 409


class NotChangeable(Refused):
    code, status = "subscription_not_active", 409

    def __init__(self, status: str):
        super().__init__(f"the subscription is {status}: it cannot be changed any more")
        self.stripe_status = status


@contextmanager
def stripe_refusals() -> Iterator[None]:
    """Stripe's refusals of a change as the rules' refusals (nothing was changed at Stripe)."""
    try:
        yield
    except StripeCardDeclined as exc:
        raise CardDeclined(str(exc), exc.decline_code) from exc
    except StripeIdempotencyConflict as exc:
        raise IdempotencyConflict() from exc
    except StripeRejected as exc:
        raise StripeRefusedChange(f"the payment provider refused the change: {exc}") from exc
    except StripeNotFound as exc:
        raise SubscriptionNotFound(str(exc)) from exc


@dataclass(frozen=True)
class StripeSeats:
    """The subscription as Stripe has it right now: its seat item, status and period."""

    subscription_id: str
    customer_id: str
    status: str
    item_id: str
    quantity: int
    period_start: int  # unix seconds
    period_end: int
    cancel_at_period_end: bool
    latest_invoice: str | None
    interval: str = "month"  # the seat price's billing interval: "month" or "year"
    # The seat price's id; the subscription's schedule and the interval switch it plans for a
    # renewal (services/subscription_schedule.py); whether Stripe computes tax.
    price_id: str = ""
    schedule: str | None = None
    schedule_phase_start: int | None = None  # the start of its current phase
    switch: ScheduledSwitch | None = None
    automatic_tax: bool = False

    @property
    def period_ends_at(self) -> datetime:
        return datetime.fromtimestamp(self.period_end, tz=UTC)

    @classmethod
    def from_stripe(cls, obj: Any, price_lookup_keys: tuple[str, ...]) -> StripeSeats:
        data = as_dict(obj)
        items = ((data.get("items") or {}).get("data")) or []
        if not items:
            raise StripeRefusedChange(f"the subscription {data.get('id')} has no license item at the payment provider")
        # The seat price's item (found by its lookup key, monthly or annual); a subscription of this app has
        # only that one.
        item = next((i for i in items if ((i.get("price") or {}).get("lookup_key")) in price_lookup_keys), items[0])
        interval = (((item.get("price") or {}).get("recurring") or {}).get("interval")) or "month"
        customer = data.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        latest = data.get("latest_invoice")
        if isinstance(latest, dict):
            latest = latest.get("id")
        start = item.get("current_period_start") or data.get("current_period_start") or 0
        end = item.get("current_period_end") or data.get("current_period_end") or 0
        return cls(subscription_id=str(data["id"]), customer_id=str(customer or ""),
                   status=str(data.get("status") or ""), item_id=str(item["id"]),
                   quantity=int(item.get("quantity") or 0), period_start=int(start), period_end=int(end),
                   cancel_at_period_end=bool(data.get("cancel_at_period_end")),
                   latest_invoice=str(latest) if latest else None, interval=str(interval),
                   price_id=str((item.get("price") or {}).get("id") or ""), schedule=schedule_id(data),
                   schedule_phase_start=current_phase_start(data), switch=scheduled_switch(data),
                   automatic_tax=bool((data.get("automatic_tax") or {}).get("enabled")))


def stripe_seats(billing: Billing, subscription_id: str) -> StripeSeats:
    """Read the subscription at Stripe (refusals as the rules' refusals; StripeUnavailable as it is)."""
    with stripe_refusals():
        obj = billing.stripe.subscription(subscription_id)
    settings = billing.settings
    return StripeSeats.from_stripe(obj, (settings.stripe_price_lookup_key, settings.stripe_yearly_price_lookup_key))


def changeable(seats: StripeSeats) -> None:
    if seats.status not in CHANGEABLE:
        raise NotChangeable(seats.status)


def request_key(kind: str, subscription_id: str, actor: Actor, request: str) -> str:
    """A request's key at Stripe and in the stored subscription: one per subscription, person and the
    request id they sent (so two people's ids, or two subscriptions', never meet)."""
    digest = hashlib.sha256(f"{subscription_id}|{actor.tid}|{actor.oid}|{request}".encode()).hexdigest()[:40]
    return f"{kind}-{digest}"


def attributed(actor: Actor, request: str, action: str, reason: str, made_by_us: Callable[[Subscription], bool],
               describe: Callable[[Subscription, Subscription], tuple[Any, Any]]) -> Attribution:
    """Apply Stripe's state after a change this app made: audited as `actor`'s `action` when Stripe's
    state shows the change (`made_by_us(as Stripe says it)`) and this request has not been recorded yet;
    any other difference as Stripe's own update (`reason`); nothing when nothing differs."""

    def attribute(current: Subscription, updated: Subscription) -> tuple[Subscription, list[AuditEntry]] | None:
        if made_by_us(updated) and current.last_change_request != request:
            before, after = describe(current, updated)
            entry = AuditEntry(actor, action, target=reason, before=before, after=after)
            return replace(updated, last_change_request=request), [entry]
        if same_state(current, updated):
            return None
        return updated, [stripe_entry(current, updated, reason)]

    return attribute
