"""Switching between monthly and annual billing at the next renewal (PRODUCT.md 2.13 annual
billing, 2.5 billing; owner or `billing.manage`).

A subscription switches when its current period ends, never in the middle of one: nothing is
prorated or charged now, and the renewal invoice bills the new price for the whole new period
(the same volume tiers; a year costs ten months). Stripe makes the switch itself, planned in a
subscription schedule attached to the subscription (`from_subscription`): the current phase is
the current period as it is, the next phase the other price at the same number of licenses for
one of its periods; then the schedule completes (`end_behavior=release`) and the subscription
renews on its own at the new interval.

- `preview`: from when, and what the new interval costs at the current number of licenses: the
  first invoice of the new phase as Stripe previews it (`Invoice.create_preview` with
  `schedule_details`, tax included) and the price per license by volume tier. Nothing is written.
- `schedule`: plan the switch (a schedule is created if the subscription has none, then its
  phases set) under idempotency keys made from the caller's request id, so a retry or a double
  click plans it once; audited `billing.interval_scheduled` as the person's (the schedule's
  metadata names the request, so a retry after a lost answer is audited too).
- `unschedule`: withdraw it before the renewal: the schedule is released and the subscription
  goes on as it is; audited `billing.interval_unscheduled`.
- `before_cancelling` (services/cancellation.py): Stripe refuses a cancellation of a subscription
  that a schedule manages; a planned switch must be withdrawn first (refused with a clear
  message), a schedule that plans nothing more is released.

What is planned lives in Stripe; the stored subscription keeps a copy for the pages
(`billing_interval`, `scheduled_interval`, `scheduled_interval_at`), written by every refresh from
Stripe (services/billing_events.py, webhooks included). A new number of licenses reaches the next
phase through services/subscription_schedule.keep_in_step.

Refused before anything changes at Stripe: another interval than month or year (400
`invalid_interval`); the interval billed now with nothing planned, or while a switch away from it is
planned (409 `interval_unchanged`: withdraw that one instead); a subscription that ends at the end of
its period (409 `subscription_cancelling`) or has ended (409 `subscription_not_active`). Individual
subscriptions may switch too: they choose the interval at purchase like organisations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.stripe_gateway import SeatPrice, StripeNotFound, StripeRejected, StripeUnavailable, as_dict
from services import billing_changes, subscription_schedule
from services.audit import Actor
from services.billing_changes import StripeSeats, changeable, stripe_refusals, stripe_seats
from services.billing_events import Billing, refresh
from services.subscription import Subscription
from services.subscription_schedule import INTERVALS, REQUEST_METADATA
from services.unit_of_work import Refused

log = logging.getLogger(__name__)


# --- refusals -------------------------------------------------------------------------------------


class InvalidInterval(Refused):
    code, status = "invalid_interval", 400
    field = "interval"

    def __init__(self) -> None:
        super().__init__('interval: "month" (monthly billing) or "year" (annual billing)')


class IntervalUnchanged(Refused):
    code, status = "interval_unchanged", 409

    def __init__(self, interval: str, scheduled: str | None = None):
        billed = "monthly" if interval == "month" else "annually"
        if scheduled:
            message = (f"the subscription is billed {billed} now; the switch planned for the next renewal is "
                       f"withdrawn with DELETE .../billing-interval")
        else:
            message = f"the subscription is billed {billed} already"
        super().__init__(message)
        self.interval = interval
        self.scheduled = scheduled


class NotScheduled(Refused):
    code, status = "not_scheduled", 409

    def __init__(self) -> None:
        super().__init__("no switch of the billing interval is planned: there is nothing to withdraw")


class SubscriptionCancelling(Refused):
    code, status = "subscription_cancelling", 409

    def __init__(self, ends_at: datetime):
        super().__init__(f"the subscription ends on {ends_at.date().isoformat()}: undo the cancellation first")
        self.ends_at = ends_at


class SwitchScheduled(Refused):
    """A cancellation while a switch is planned: Stripe lets only the schedule change the subscription."""

    code, status = "interval_switch_scheduled", 409

    def __init__(self, interval: str, at: datetime):
        billing = "annual" if interval == "year" else "monthly"
        super().__init__(f"a switch to {billing} billing is planned for {at.date().isoformat()}: withdraw it on the "
                         "billing page (or DELETE .../billing-interval) first, then cancel")
        self.interval = interval
        self.at = at


# --- rules ----------------------------------------------------------------------------------------


def parse_interval(value: object) -> str:
    """"month" or "year" (from JSON or a form); InvalidInterval otherwise."""
    if isinstance(value, str) and value.strip() in INTERVALS:
        return value.strip()
    raise InvalidInterval()


def _check(seats: StripeSeats, interval: str) -> None:
    changeable(seats)
    if seats.cancel_at_period_end:
        raise SubscriptionCancelling(seats.period_ends_at)
    if interval == seats.interval:
        raise IntervalUnchanged(interval, seats.switch.interval if seats.switch else None)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- preview --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntervalPreview:
    subscription_id: str
    current: str  # billed per this interval now
    interval: str  # and per this one from `starts_at` on
    starts_at: datetime  # the next renewal
    quantity: int
    currency: str
    unit_amount: int  # per license and new interval, by the volume tier of the quantity
    subtotal: int  # the first invoice at the new interval, before tax
    tax: int
    total: int
    amount_due: int  # after any credit balance
    current_unit_amount: int  # per license and current interval, for comparison
    current_total: int  # per current interval, before tax
    scheduled: bool  # this switch is planned already

    @property
    def yearly_difference(self) -> int:
        """What the new interval saves (positive) or costs more (negative) per year, before tax."""
        per_year = {"month": 12, "year": 1}
        return self.current_total * per_year[self.current] - self.subtotal * per_year[self.interval]


def preview(billing: Billing, subscription: Subscription, interval: str) -> IntervalPreview:
    seats = stripe_seats(billing, subscription.id)
    _check(seats, interval)
    with stripe_refusals():
        price = billing.stripe.seat_price(interval)
        current = billing.stripe.seat_price(seats.interval)
        invoice = billing.stripe.preview_first_invoice(seats.customer_id, price.id, seats.quantity,
                                                       start=seats.period_end, interval=interval,
                                                       automatic_tax=seats.automatic_tax)
    subtotal = int(invoice.get("subtotal_excluding_tax", invoice.get("subtotal")) or 0)
    total = int(invoice.get("total") or 0)
    return IntervalPreview(
        subscription_id=subscription.id, current=seats.interval, interval=interval,
        starts_at=seats.period_ends_at, quantity=seats.quantity,
        currency=str(invoice.get("currency") or price.currency), unit_amount=_unit(price, seats.quantity),
        subtotal=subtotal, tax=total - subtotal, total=total, amount_due=int(invoice.get("amount_due") or 0),
        current_unit_amount=_unit(current, seats.quantity), current_total=_total(current, seats.quantity),
        scheduled=seats.switch is not None and seats.switch.interval == interval)


def _unit(price: SeatPrice, quantity: int) -> int:
    try:
        return price.unit_amount_for(quantity)
    except ValueError:
        return 0


def _total(price: SeatPrice, quantity: int) -> int:
    return _unit(price, quantity) * quantity


# --- schedule and withdraw ------------------------------------------------------------------------


@dataclass(frozen=True)
class IntervalChange:
    subscription: Subscription  # as stored now
    interval: str  # billed per this interval now
    scheduled_interval: str | None  # and per this one from `starts_at` on (None: nothing planned)
    starts_at: datetime | None
    changed: bool  # False: Stripe had it so already (a repeated confirmation)


def schedule(billing: Billing, actor: Actor, subscription: Subscription, interval: str,
             request: str) -> IntervalChange:
    """Plan the switch to `interval` at the next renewal (once per `request`, the caller's
    idempotency key) and store Stripe's state at once. StripeUnavailable when Stripe cannot be
    reached: retry with the same `request`."""
    seats = stripe_seats(billing, subscription.id)
    _check(seats, interval)
    key = billing_changes.request_key("interval", subscription.id, actor, request)
    changed = seats.switch is None or seats.switch.interval != interval
    if changed:
        with stripe_refusals():
            price = billing.stripe.seat_price(interval)
            if seats.schedule is None:
                created = billing.stripe.create_subscription_schedule(subscription.id,
                                                                      idempotency_key=f"{key}-schedule")
                schedule_id, start = str(created["id"]), int(created["current_phase"]["start_date"])
            else:
                schedule_id, start = seats.schedule, seats.schedule_phase_start or seats.period_start
            phases = _phases(seats, price, start)
            # Until this succeeds, a new schedule plans nothing: it ends with the period and lets the
            # subscription go on as it is; a retry with the same request id finds it and goes on here.
            billing.stripe.update_subscription_schedule(schedule_id, phases, idempotency_key=f"{key}-phases",
                                                        metadata={REQUEST_METADATA: key})
    planned_here = changed or subscription_schedule_request(billing, subscription.id) == key
    _, after = refresh(subscription.id, billing, "billing interval", billing_changes.attributed(
        actor, key, "billing.interval_scheduled", "billing interval",
        made_by_us=lambda updated: planned_here and updated.scheduled_interval == interval,
        describe=lambda current, updated: (
            {"interval": seats.interval, "scheduled_interval": current.scheduled_interval or None},
            {"interval": seats.interval, "scheduled_interval": interval,
             "from": seats.period_ends_at.isoformat()})))
    stored = after or subscription
    return IntervalChange(stored, seats.interval, interval, seats.period_ends_at, changed)


def subscription_schedule_request(billing: Billing, subscription_id: str) -> str:
    """The request of this app that planned the subscription's schedule, as Stripe has it."""
    with stripe_refusals():
        return subscription_schedule.planned_by(as_dict(billing.stripe.subscription(subscription_id)))


def _phases(seats: StripeSeats, price: SeatPrice, start: int) -> list[dict[str, Any]]:
    """The current phase (from `start`) to the end of the period as it is, then `price` at the same
    number of licenses for one period of its interval."""
    return [
        {"items": [{"price": seats.price_id, "quantity": seats.quantity}], "start_date": start,
         "end_date": seats.period_end, "proration_behavior": "none"},
        {"items": [{"price": price.id, "quantity": seats.quantity}],
         "duration": {"interval": price.interval, "interval_count": 1}, "proration_behavior": "none"},
    ]


def unschedule(billing: Billing, actor: Actor, subscription: Subscription) -> IntervalChange:
    """Withdraw a planned switch before the renewal: the subscription goes on as it is."""
    seats = stripe_seats(billing, subscription.id)
    changeable(seats)
    if seats.switch is None or seats.schedule is None:
        raise NotScheduled()
    switch = seats.switch
    # One key per schedule: a double click releases it once and is audited once.
    key = billing_changes.request_key("interval-undo", subscription.id, actor, seats.schedule)
    with stripe_refusals():
        billing.stripe.release_subscription_schedule(seats.schedule, idempotency_key=key)
    _, after = refresh(subscription.id, billing, "billing interval", billing_changes.attributed(
        actor, key, "billing.interval_unscheduled", "billing interval",
        made_by_us=lambda updated: not updated.scheduled_interval,
        describe=lambda current, updated: (
            {"interval": seats.interval, "scheduled_interval": switch.interval, "from": _at(switch.at).isoformat()},
            {"interval": seats.interval, "scheduled_interval": None})))
    stored = after or subscription
    return IntervalChange(stored, seats.interval, None, None, changed=True)


# --- around cancellation and quantity changes ----------------------------------------------------


def before_cancelling(billing: Billing, seats: StripeSeats, request: str) -> None:
    """Stripe refuses to cancel a subscription its schedule manages: a planned switch must be
    withdrawn by the person first; a schedule that plans nothing more (its switch is done) is
    released."""
    if seats.schedule is None:
        return
    if seats.switch is not None:
        raise SwitchScheduled(seats.switch.interval, _at(seats.switch.at))
    with stripe_refusals():
        billing.stripe.release_subscription_schedule(seats.schedule, idempotency_key=f"{request}-release")


def follow_quantity(billing: Billing, seats: StripeSeats, key: str) -> None:
    """After a quantity change: the planned phases get the new number too. The change itself is
    done; if this fails, the webhook of the change repeats it (services/billing_events.py)."""
    if seats.schedule is None:
        return
    try:
        subscription_schedule.keep_in_step(billing.stripe, seats.subscription_id, key)
    except (StripeUnavailable, StripeRejected, StripeNotFound) as exc:
        log.warning("the schedule of %s follows the new quantity when Stripe reports it: %s",
                    seats.subscription_id, exc)
