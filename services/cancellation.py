"""Cancelling at the end of the paid period, and taking it back (PRODUCT.md capability 5; owner only).

The subscription keeps working until the end of the period it is paid for; then Stripe ends it and
its licenses expire (the webhook does that, like any end of a subscription). Before that date the
owner can undo the cancellation. Either way Stripe's new state is stored at once and audited as the
owner's (services/billing_changes.py), and the owner is mailed the date licenses stop, or that the
subscription continues (services/billing_events.py mails it when the stored state changes, whoever
changed it: here, or at Stripe by support).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services import billing_changes, interval_change
from services.audit import Actor
from services.billing_changes import StripeSeats, changeable, stripe_refusals, stripe_seats
from services.billing_events import Billing, refresh
from services.subscription import Subscription
from services.unit_of_work import Refused


class NotScheduled(Refused):
    code, status = "not_scheduled", 409

    def __init__(self) -> None:
        super().__init__("the subscription is not cancelled: there is nothing to undo")


@dataclass(frozen=True)
class Cancellation:
    subscription: Subscription  # as stored now
    scheduled: bool  # the subscription ends at the end of the period
    ends_at: datetime | None  # when licenses stop (None: it continues)
    changed: bool  # False: Stripe had it so already


def schedule(billing: Billing, actor: Actor, subscription: Subscription) -> Cancellation:
    """Cancel at the end of the paid period; licenses stop then."""
    return _set(billing, actor, subscription, cancel=True)


def undo(billing: Billing, actor: Actor, subscription: Subscription) -> Cancellation:
    """Take a scheduled cancellation back (before the period ends): the subscription renews as before."""
    return _set(billing, actor, subscription, cancel=False)


def _set(billing: Billing, actor: Actor, subscription: Subscription, cancel: bool) -> Cancellation:
    seats = stripe_seats(billing, subscription.id)
    changeable(seats)
    if not cancel and not seats.cancel_at_period_end:
        raise NotScheduled()
    # One key per direction and period: a double click is audited once, a later undo and re-cancel again.
    key = billing_changes.request_key("cancel" if cancel else "resume", subscription.id, actor,
                                      str(seats.period_end))
    changed = seats.cancel_at_period_end != cancel
    if changed:
        if cancel:  # a planned switch of the billing interval is withdrawn first (Stripe requires it)
            interval_change.before_cancelling(billing, seats, key)
        with stripe_refusals():
            billing.stripe.set_cancel_at_period_end(subscription.id, cancel)
    _, after = refresh(subscription.id, billing, "cancellation", billing_changes.attributed(
        actor, key, "cancellation.scheduled" if cancel else "cancellation.undone", "cancellation",
        made_by_us=lambda updated: changed and updated.cancel_at_period_end == cancel,
        describe=lambda current, updated: ({"cancel_at_period_end": not cancel},
                                           {"cancel_at_period_end": cancel, "ends_at": _ends(seats, cancel)})))
    stored = after or subscription
    return Cancellation(stored, cancel, seats.period_ends_at if cancel else None, changed)


def _ends(seats: StripeSeats, cancel: bool) -> str | None:
    return seats.period_ends_at.isoformat() if cancel else None
