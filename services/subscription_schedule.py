"""What a subscription's Stripe schedule says about its billing interval, and keeping its phases
at the subscription's number of licenses (PRODUCT.md 2.13 annual billing).

A switch between monthly and annual billing at the next renewal is planned at Stripe, in a
subscription schedule attached to the subscription (services/interval_change.py writes it): the
current phase is the current period, the next phase bills the other price. This module reads a
subscription object whose `schedule` is expanded down to its phases' prices
(adapters/stripe_gateway.py asks for that on every read of a subscription), so one read answers
"billed how, and switching to what, when".

Stripe does not carry a change made to the subscription itself (a new number of licenses) into
the schedule's next phase: that phase would bring back the old number at the renewal. So the
phases are kept in step (`keep_in_step`) after every quantity change made here and after every
subscription update Stripe reports (services/billing_events.py), a change made elsewhere
included.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.stripe_gateway import StripeGateway

INTERVALS = ("month", "year")
# Schedules that still plan something (Stripe's other statuses: completed, released, canceled).
OPEN = ("not_started", "active")
# The schedule's metadata key naming the request of this app that planned its phases.
REQUEST_METADATA = "securemailmerge_request"


@dataclass(frozen=True)
class ScheduledSwitch:
    """A change of the billing interval that Stripe will make when a phase starts."""

    interval: str  # billed per this interval from `at` on: "month" or "year"
    at: int  # unix seconds: the start of the phase that bills it (a renewal)


def seat_item(subscription: Mapping[str, Any]) -> Mapping[str, Any]:
    """The subscription's license item (a subscription of this app has one item)."""
    items = ((subscription.get("items") or {}).get("data")) or []
    return items[0] if items else {}


def interval_of(price: Any) -> str:
    """A price's billing interval ("" when only its id is known)."""
    if not isinstance(price, Mapping):
        return ""
    return str(((price.get("recurring") or {}).get("interval")) or "")


def current_interval(subscription: Mapping[str, Any]) -> str:
    item = seat_item(subscription)
    return interval_of(item.get("price")) or str(((item.get("plan") or {}).get("interval")) or "")


def open_schedule(subscription: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The subscription's schedule while it still plans something (expanded; None otherwise)."""
    schedule = subscription.get("schedule")
    if isinstance(schedule, Mapping) and schedule.get("status") in OPEN:
        return schedule
    return None


def schedule_id(subscription: Mapping[str, Any]) -> str | None:
    """The id of the subscription's schedule, expanded or not."""
    schedule = subscription.get("schedule")
    if isinstance(schedule, Mapping):
        schedule = schedule.get("id")
    return str(schedule) if schedule else None


def current_phase_start(subscription: Mapping[str, Any]) -> int | None:
    """When the open schedule's current phase began (an update must give it unchanged)."""
    schedule = open_schedule(subscription) or {}
    start = (schedule.get("current_phase") or {}).get("start_date")
    return int(start) if start else None


def coming_phases(schedule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The current phase and those after it (past phases are history)."""
    current = schedule.get("current_phase") or {}
    start = int(current.get("start_date") or 0)
    return [phase for phase in schedule.get("phases") or [] if int(phase.get("start_date") or 0) >= start]


def _phase_price(phase: Mapping[str, Any]) -> Any:
    items = phase.get("items") or []
    return items[0].get("price") if items else None


def scheduled_switch(subscription: Mapping[str, Any]) -> ScheduledSwitch | None:
    """The first coming phase billed at another interval than the subscription is now, if any."""
    schedule = open_schedule(subscription)
    now = current_interval(subscription)
    if schedule is None or not now:
        return None
    for phase in coming_phases(schedule)[1:]:
        interval = interval_of(_phase_price(phase))
        if interval and interval != now:
            return ScheduledSwitch(interval=interval, at=int(phase["start_date"]))
    return None


def planned_by(subscription: Mapping[str, Any]) -> str:
    """The request of this app that planned the open schedule's phases ("" if none did)."""
    schedule = open_schedule(subscription) or {}
    return str((schedule.get("metadata") or {}).get(REQUEST_METADATA) or "")


def phase_params(phase: Mapping[str, Any], quantity: int, *, first: bool) -> dict[str, Any]:
    """A coming phase as `phases[]` of an update, with its license item at `quantity`."""
    items: list[dict[str, Any]] = []
    for index, item in enumerate(phase.get("items") or []):
        price = item.get("price")
        items.append({"price": str(price.get("id") if isinstance(price, Mapping) else price),
                      "quantity": quantity if index == 0 else int(item.get("quantity") or 0)})
    params: dict[str, Any] = {"items": items, "end_date": int(phase["end_date"]),
                              "proration_behavior": str(phase.get("proration_behavior") or "none")}
    if first:
        params["start_date"] = int(phase["start_date"])
    return params


def keep_in_step(stripe: StripeGateway, subscription_id: str, key: str) -> bool:
    """Set the license item of the schedule's coming phases to the subscription's number of
    licenses if one differs; True when the schedule was changed. `key` (an event or request id)
    makes the update idempotent; its parameters are part of the key, so a later different change
    is never answered from Stripe's replay of an earlier one."""
    from adapters.stripe_gateway import as_dict  # the Stripe adapter: off the license check's import path

    subscription = as_dict(stripe.subscription(subscription_id))
    schedule = open_schedule(subscription)
    quantity = seat_item(subscription).get("quantity")
    if schedule is None or quantity is None:
        return False
    phases = coming_phases(schedule)
    if not phases or all(int((phase.get("items") or [{}])[0].get("quantity") or 0) == int(quantity)
                         for phase in phases):
        return False
    wanted = [phase_params(phase, int(quantity), first=index == 0) for index, phase in enumerate(phases)]
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    stripe.update_subscription_schedule(str(schedule["id"]), wanted, idempotency_key=f"{key}-phases-{digest}")
    return True
