"""The rules of switching between monthly and annual billing at the next renewal (services/interval_change.py,
services/subscription_schedule.py) against the in-memory storage and a fake Stripe that keeps what they rely on:
one seat item, a subscription schedule with phases (created from the subscription, updated, released, entered at
the renewal), Stripe's idempotency keys, its refusal to cancel a subscription a schedule manages, and outages.
tests/integration/test_billing_interval_api.py runs the same services through HTTP against the emulator.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory_storage import InMemoryStorage
from adapters.stripe_gateway import PriceTier, SeatPrice, StripeRejected, StripeUnavailable
from services import cancellation, interval_change, quantity_change, subscription_store
from services.audit import Actor
from services.billing_changes import NotChangeable
from services.billing_events import Billing, apply, refresh
from services.interval_change import (
    IntervalUnchanged,
    InvalidInterval,
    NotScheduled,
    SubscriptionCancelling,
    SwitchScheduled,
)
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.factories import local_values
from tests.unit.test_quantity_and_billing import END, START, TIERS, FakeStripe

DAY = 86400
YEAR_END = END + 365 * DAY
OWNER = Actor("tid-1", "oid-owner", "owner@contoso.example", "Owner")
BILLING = Actor("tid-1", "oid-finance", "finance@contoso.example", "Finance")
PRICES = {"month": "price_month", "year": "price_year"}


def price(interval: str) -> dict[str, Any]:
    return {"id": PRICES[interval], "object": "price", "recurring": {"interval": interval},
            "lookup_key": f"securemailmerge_seat_{'monthly' if interval == 'month' else 'yearly'}"}


class ScheduleStripe(FakeStripe):
    """FakeStripe with the monthly and yearly prices and Stripe's subscription schedules."""

    def __init__(self, quantity: int = 12, interval: str = "month") -> None:
        super().__init__(quantity=quantity)
        self.sub["items"]["data"][0]["price"] = price(interval)
        self.sub["automatic_tax"] = {"enabled": True}
        self.schedule: dict[str, Any] | None = None
        self.writes: list[tuple[str, str]] = []  # (operation, idempotency key) that changed Stripe
        self.keys: dict[str, tuple[str, Any]] = {}
        self.fail_next: set[str] = set()  # operations that find Stripe unreachable once

    def _replay(self, operation: str, key: str, params: Any) -> Any:
        fingerprint = json.dumps([operation, params], sort_keys=True, default=str)
        if key in self.keys:
            seen, answer = self.keys[key]
            if seen != fingerprint:
                raise StripeRejected("Keys for idempotent requests can only be used with the same parameters")
            return answer
        return None

    def _unreachable(self, operation: str) -> None:
        self._check()
        if operation in self.fail_next:
            self.fail_next.discard(operation)
            raise StripeUnavailable("connection reset")

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        data = super().subscription(subscription_id)
        schedule = copy.deepcopy(self.schedule)
        if schedule is not None:  # expanded to the phases' prices, as the gateway asks
            for phase in schedule["phases"]:
                for item in phase["items"]:
                    item["price"] = price("year" if item["price"] == PRICES["year"] else "month")
        data["schedule"] = schedule
        return data

    def seat_price(self, interval: str = "month") -> SeatPrice:
        factor = 10 if interval == "year" else 1
        return SeatPrice(PRICES[interval], "eur", interval, tuple(PriceTier(u, a * factor) for u, a in TIERS))

    def preview_first_invoice(self, customer_id: str, price_id: str, quantity: int, *, start: int, interval: str,
                              automatic_tax: bool) -> dict[str, Any]:
        self._unreachable("preview")
        unit = self.seat_price(interval).unit_amount_for(quantity)
        subtotal = unit * quantity
        tax = round(subtotal * 0.19) if automatic_tax else 0
        return {"id": "upcoming_in_1", "object": "invoice", "currency": "eur", "subtotal": subtotal,
                "subtotal_excluding_tax": subtotal, "total": subtotal + tax, "amount_due": subtotal + tax,
                "period_start": start, "billing_reason": "subscription_create"}

    def create_subscription_schedule(self, subscription_id: str, *, idempotency_key: str) -> dict[str, Any]:
        self._unreachable("create")
        replayed = self._replay("create", idempotency_key, subscription_id)
        if replayed is not None:
            return copy.deepcopy(replayed)
        if self.schedule is not None:
            raise StripeRejected("You cannot migrate a subscription that is already attached to a schedule")
        item = self.sub["items"]["data"][0]
        self.schedule = {"id": "sub_sched_1", "object": "subscription_schedule", "status": "active",
                         "current_phase": {"start_date": START, "end_date": END}, "metadata": {},
                         "phases": [{"start_date": START, "end_date": END, "proration_behavior": "create_prorations",
                                     "items": [{"price": item["price"]["id"], "quantity": item["quantity"]}]}]}
        self.writes.append(("create", idempotency_key))
        self.keys[idempotency_key] = (json.dumps(["create", subscription_id], sort_keys=True), self.schedule)
        return copy.deepcopy(self.schedule)

    def update_subscription_schedule(self, schedule_id: str, phases: list[dict[str, Any]], *, idempotency_key: str,
                                     metadata: dict[str, str] | None = None) -> dict[str, Any]:
        self._unreachable("update")
        params = {"phases": phases, "metadata": metadata}
        replayed = self._replay("update", idempotency_key, params)
        if replayed is not None:
            return copy.deepcopy(replayed)
        assert self.schedule is not None and schedule_id == self.schedule["id"]
        if self.schedule["status"] != "active":
            raise StripeRejected(f"You cannot update a subscription schedule that is {self.schedule['status']}")
        if phases[0]["start_date"] != self.schedule["current_phase"]["start_date"]:
            raise StripeRejected("You can not modify the start date of the current phase.")
        stored, start = [], phases[0]["start_date"]
        for phase in phases:
            end = phase.get("end_date") or start + (365 if phase["duration"]["interval"] == "year" else 30) * DAY
            stored.append({"start_date": start, "end_date": end, "proration_behavior": phase["proration_behavior"],
                           "items": [dict(item) for item in phase["items"]]})
            start = end
        self.schedule["phases"] = stored
        self.schedule["metadata"].update(metadata or {})
        self.writes.append(("update", idempotency_key))
        self.keys[idempotency_key] = (json.dumps(["update", params], sort_keys=True, default=str), self.schedule)
        return copy.deepcopy(self.schedule)

    def release_subscription_schedule(self, schedule_id: str, *, idempotency_key: str) -> dict[str, Any]:
        self._unreachable("release")
        replayed = self._replay("release", idempotency_key, schedule_id)
        if replayed is not None:
            return copy.deepcopy(replayed)
        assert self.schedule is not None and self.schedule["status"] == "active"
        released = {**self.schedule, "status": "released"}
        self.schedule = None
        self.writes.append(("release", idempotency_key))
        self.keys[idempotency_key] = (json.dumps(["release", schedule_id], sort_keys=True), released)
        return copy.deepcopy(released)

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> dict[str, Any]:
        if self.schedule is not None:
            raise StripeRejected("The subscription is managed by the subscription schedule `sub_sched_1`, and "
                                 "updating any cancelation behavior directly is not allowed.")
        return super().set_cancel_at_period_end(subscription_id, cancel)

    def renew(self) -> None:
        """The period ends: a schedule's next phase takes over the item (its price and quantity)."""
        item = self.sub["items"]["data"][0]
        start = item["current_period_end"]
        if self.schedule is not None:
            phase = next((p for p in self.schedule["phases"] if p["start_date"] == start), None)
            if phase is None:
                self.schedule = None  # completed: the subscription goes on as it is
            else:
                interval = "year" if phase["items"][0]["price"] == PRICES["year"] else "month"
                item.update(price=price(interval), quantity=phase["items"][0]["quantity"])
                self.schedule["current_phase"] = {"start_date": phase["start_date"], "end_date": phase["end_date"]}
        yearly = item["price"]["recurring"]["interval"] == "year"
        item.update(current_period_start=start, current_period_end=start + (365 if yearly else 30) * DAY)


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def stripe() -> ScheduleStripe:
    return ScheduleStripe()


@pytest.fixture
def billing(store, stripe) -> Billing:
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true", MAX_QUANTITY="500"))
    return Billing(storage=store, stripe=stripe, settings=settings)


def stored(store: InMemoryStorage, kind: str = "organisation") -> Subscription:
    sub = Subscription(id="sub_1", kind=kind, status="active", quantity=12, assigned_count=0, tenant_id="tid-1",
                       owner_tid="tid-1", owner_oid="oid-owner", owner_email="owner@contoso.example",
                       owner_name="Contoso", language="de", stripe_customer_id="cus_1", checkout_session_id="cs_1",
                       current_period_end=datetime.fromtimestamp(END, tz=UTC), billing_interval="month")
    assert subscription_store.create(store, sub)
    return load(store)


def load(store: InMemoryStorage) -> Subscription:
    found = subscription_store.load(store, "sub_1")
    assert found is not None
    return found


def audit(store: InMemoryStorage) -> list[tuple[str, str, Any, Any]]:
    return [(e.action, e.actor.email or e.actor.name, e.before, e.after)
            for e in UnitOfWork(store).subscriptions.audit_entries("sub_1")]


def phases(stripe: ScheduleStripe) -> list[tuple[int, int, str, int]]:
    assert stripe.schedule is not None
    return [(p["start_date"], p["end_date"], p["items"][0]["price"], p["items"][0]["quantity"])
            for p in stripe.schedule["phases"]]


# --- the rules ----------------------------------------------------------------------------------------------


def test_only_month_or_year(store):
    assert [interval_change.parse_interval(v) for v in ("month", " year ")] == ["month", "year"]
    for bad in ("yearly", "annual", "", None, 12, ["year"]):
        with pytest.raises(InvalidInterval) as refused:
            interval_change.parse_interval(bad)
        assert (refused.value.code, refused.value.status, refused.value.field) == ("invalid_interval", 400, "interval")


def test_the_preview_shows_from_when_and_what_a_year_costs_and_changes_nothing(store, billing, stripe):
    sub = stored(store)
    preview = interval_change.preview(billing, sub, "year")
    assert (preview.current, preview.interval, preview.quantity) == ("month", "year", 12)
    assert preview.starts_at == datetime.fromtimestamp(END, tz=UTC)
    # 12 licenses are in the 4.80 tier: 48.00 a year each, ten months' price.
    assert (preview.unit_amount, preview.subtotal, preview.current_unit_amount, preview.current_total) == (
        4800, 57600, 480, 5760)
    assert (preview.tax, preview.total, preview.amount_due) == (10944, 68544, 68544)
    assert preview.yearly_difference == 12 * 5760 - 57600 == 11520
    assert not preview.scheduled
    assert stripe.writes == [] and stripe.schedule is None and audit(store) == []


def test_what_the_preview_and_the_switch_refuse(store, billing, stripe):
    sub = stored(store)
    with pytest.raises(IntervalUnchanged) as unchanged:
        interval_change.preview(billing, sub, "month")
    assert (unchanged.value.status, unchanged.value.scheduled) == (409, None)
    stripe.sub["cancel_at_period_end"] = True
    with pytest.raises(SubscriptionCancelling):
        interval_change.schedule(billing, OWNER, sub, "year", "req-1")
    stripe.sub.update(cancel_at_period_end=False, status="canceled")
    with pytest.raises(NotChangeable):
        interval_change.preview(billing, sub, "year")
    stripe.sub["status"] = "active"
    stripe.fail_next.add("preview")
    with pytest.raises(StripeUnavailable):
        interval_change.preview(billing, sub, "year")
    assert stripe.writes == [] and audit(store) == []


# --- planning the switch ---------------------------------------------------------------------------------------


def test_the_switch_is_planned_in_a_schedule_stored_for_the_pages_and_audited_once(store, billing, stripe):
    sub = stored(store)
    done = interval_change.schedule(billing, BILLING, sub, "year", "req-1")
    assert done.changed and (done.interval, done.scheduled_interval) == ("month", "year")
    assert done.starts_at == datetime.fromtimestamp(END, tz=UTC)
    # The current period as it is, then the yearly price at the same number for one year; nothing prorated.
    assert phases(stripe) == [(START, END, "price_month", 12), (END, YEAR_END, "price_year", 12)]
    assert {p["proration_behavior"] for p in stripe.schedule["phases"]} == {"none"}
    assert [op for op, _ in stripe.writes] == ["create", "update"]
    after = load(store)
    assert (after.billing_interval, after.scheduled_interval, after.scheduled_interval_at) == (
        "month", "year", datetime.fromtimestamp(END, tz=UTC))
    [entry] = audit(store)
    renewal = datetime.fromtimestamp(END, tz=UTC).isoformat()
    assert entry == ("billing.interval_scheduled", "finance@contoso.example",
                     {"interval": "month", "scheduled_interval": None},
                     {"interval": "month", "scheduled_interval": "year", "from": renewal})

    # A double click, and a later request for the same: Stripe is changed once, the switch audited once.
    again = interval_change.schedule(billing, BILLING, load(store), "year", "req-1")
    later = interval_change.schedule(billing, OWNER, load(store), "year", "req-2")
    assert not again.changed and not later.changed
    assert len(stripe.writes) == 2 and len(audit(store)) == 1
    # The webhooks of it find nothing left to write.
    etag = load(store).etag
    refresh("sub_1", billing, "subscription_schedule.updated")
    assert load(store).etag == etag


def test_a_retry_after_stripe_went_away_half_way_plans_it_once_and_audits_it(store, billing, stripe):
    sub = stored(store)
    stripe.fail_next.add("update")  # the schedule was created, its phases not set
    with pytest.raises(StripeUnavailable):
        interval_change.schedule(billing, OWNER, sub, "year", "req-1")
    assert load(store).scheduled_interval == "" and audit(store) == []
    assert phases(stripe) == [(START, END, "price_month", 12)]  # plans nothing: billing unchanged
    interval_change.schedule(billing, OWNER, load(store), "year", "req-1")
    assert [op for op, _ in stripe.writes] == ["create", "update"]
    assert phases(stripe)[1] == (END, YEAR_END, "price_year", 12)
    assert [a[0] for a in audit(store)] == ["billing.interval_scheduled"]


def test_the_answer_lost_after_stripe_planned_it_is_still_audited_as_the_persons(store, billing, stripe, monkeypatch):
    sub = stored(store)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the instance went away before storing")

    with monkeypatch.context() as patched:
        patched.setattr(interval_change, "refresh", crash)
        with pytest.raises(ConnectionError):
            interval_change.schedule(billing, OWNER, sub, "year", "req-1")
    retried = interval_change.schedule(billing, OWNER, load(store), "year", "req-1")
    assert not retried.changed and len(stripe.writes) == 2
    assert [a[:2] for a in audit(store)] == [("billing.interval_scheduled", "owner@contoso.example")]


def test_a_switch_away_from_the_interval_billed_now_is_withdrawn_not_asked_for_again(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    with pytest.raises(IntervalUnchanged) as refused:
        interval_change.schedule(billing, OWNER, load(store), "month", "req-2")
    assert refused.value.scheduled == "year" and "DELETE" in str(refused.value)


def test_withdrawing_releases_the_schedule_and_is_audited(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    done = interval_change.unschedule(billing, BILLING, load(store))
    assert done.scheduled_interval is None and stripe.schedule is None
    assert load(store).scheduled_interval == "" and load(store).scheduled_interval_at is None
    entry = audit(store)[0]
    assert entry[:3] == ("billing.interval_unscheduled", "finance@contoso.example",
                         {"interval": "month", "scheduled_interval": "year",
                          "from": datetime.fromtimestamp(END, tz=UTC).isoformat()})
    with pytest.raises(NotScheduled):
        interval_change.unschedule(billing, BILLING, load(store))
    stripe.renew()
    assert stripe.sub["items"]["data"][0]["price"]["id"] == "price_month"  # stays monthly


def test_at_the_renewal_stripe_switches_and_the_stored_copy_and_audit_follow(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    stripe.renew()
    apply(event("customer.subscription.updated", "evt_renewed"), billing)
    after = load(store)
    assert (after.billing_interval, after.scheduled_interval, after.current_period_end) == (
        "year", "", datetime.fromtimestamp(YEAR_END, tz=UTC))
    entry = audit(store)[0]
    assert entry[:2] == ("subscription.updated", "Stripe")
    assert (entry[2]["interval"], entry[3]["interval"]) == ("month", "year")
    # Back to monthly from the next renewal: the same schedule, now in its yearly phase, plans it.
    interval_change.schedule(billing, OWNER, after, "month", "req-3")
    assert phases(stripe)[:2] == [(END, YEAR_END, "price_year", 12), (YEAR_END, YEAR_END + 30 * DAY, "price_month", 12)]


# --- quantity changes and cancelling meanwhile -------------------------------------------------------------------


def event(event_type: str, event_id: str) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "data": {"object": {"id": "sub_1", "object": "subscription"}}}).encode()


def test_a_quantity_change_carries_over_to_the_planned_phase(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    quantity_change.change(billing, OWNER, load(store), 15, "more-1", stripe.now)
    assert [q for *_, q in phases(stripe)] == [15, 15]
    stripe.renew()
    item = stripe.sub["items"]["data"][0]
    assert (item["price"]["id"], item["quantity"]) == ("price_year", 15)


def test_the_quantity_preview_shows_the_next_invoice_at_the_planned_interval(store, billing, stripe):
    plain = quantity_change.preview(billing, stored(store), 15)
    assert (plain.next_invoice_interval, plain.next_invoice_unit_amount, plain.next_invoice_total) == (
        "month", 480, 15 * 480)
    interval_change.schedule(billing, OWNER, load(store), "year", "req-1")
    preview = quantity_change.preview(billing, load(store), 15)
    # The renewal bills a year for 15 licenses (Stripe's preview of it, 19 % tax included); due now is the month's.
    assert (preview.next_interval, preview.next_invoice_unit_amount) == ("year", 4800)
    assert preview.next_invoice_total == 15 * 4800 + round(15 * 4800 * 0.19)
    assert (preview.unit_amount_current, preview.unit_amount_new, preview.interval) == (480, 480, "month")
    assert preview.due_now == plain.due_now


def test_a_quantity_changed_at_stripe_directly_reaches_the_phase_with_its_webhook(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    stripe.sub["items"]["data"][0]["quantity"] = 20  # in Stripe's dashboard: the phases keep 12
    assert [q for *_, q in phases(stripe)] == [12, 12]
    apply(event("customer.subscription.updated", "evt_1"), billing)
    assert [q for *_, q in phases(stripe)] == [20, 20]
    writes = len(stripe.writes)
    apply(event("customer.subscription.updated", "evt_2"), billing)  # in step already: nothing to write
    assert len(stripe.writes) == writes


def test_a_quantity_change_stays_done_when_the_phases_cannot_follow_at_once(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    stripe.fail_next.add("update")
    done = quantity_change.change(billing, OWNER, load(store), 15, "more-1", stripe.now)
    assert done.changed and done.quantity == 15
    assert [q for *_, q in phases(stripe)] == [12, 12]
    apply(event("customer.subscription.updated", "evt_after_change"), billing)  # the webhook repeats it
    assert [q for *_, q in phases(stripe)] == [15, 15]


def test_cancelling_waits_for_the_planned_switch_to_be_withdrawn(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    with pytest.raises(SwitchScheduled) as refused:
        cancellation.schedule(billing, OWNER, load(store))
    assert (refused.value.status, refused.value.code) == (409, "interval_switch_scheduled")
    assert not stripe.sub["cancel_at_period_end"]
    interval_change.unschedule(billing, OWNER, load(store))
    assert cancellation.schedule(billing, OWNER, load(store)).scheduled


def test_after_the_switch_a_cancellation_releases_the_schedule_that_plans_nothing_more(store, billing, stripe):
    interval_change.schedule(billing, OWNER, stored(store), "year", "req-1")
    stripe.renew()
    refresh("sub_1", billing, "customer.subscription.updated")
    done = cancellation.schedule(billing, OWNER, load(store))
    assert done.scheduled and stripe.schedule is None and stripe.sub["cancel_at_period_end"]
