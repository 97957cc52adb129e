"""Subscription schedules in the Stripe emulator, driven through the real stripe SDK: a monthly
subscription switches to yearly billing at its renewal (and back), a schedule released before
then changes nothing, a quantity changed on the subscription reaches the next phase only when the
phases say so, Stripe's refusals, and every schedule and event checked against Stripe's schema.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import stripe

from standins.stripe_emulator.bootstrap import YEARLY_PRICE_LOOKUP_KEY
from standins.stripe_emulator.periods import add_interval
from tests.standins.stripe_schema import assert_stripe_shape, wire

DAY = 86400
GERMANY = {"line1": "Hauptstraße 5", "postal_code": "10115", "city": "Berlin", "country": "DE"}


def vat(amount: int) -> int:
    """19 % German VAT on one line, rounded to the cent, halves away from zero."""
    return int((Decimal(amount) * Decimal("0.19")).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def yearly_id(env) -> str:
    return env.client.v1.prices.list(params={"lookup_keys": [YEARLY_PRICE_LOOKUP_KEY]}).data[0].id


def monthly_subscription(env, quantity=12):
    customer = env.client.v1.customers.create(params={
        "email": "billing@contoso.example", "name": "Contoso GmbH", "address": GERMANY})
    return env.client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": env.price_id, "quantity": quantity}],
        "automatic_tax": {"enabled": True}})


def switch_phases(env, sub, price, quantity=12, current_quantity=None) -> list[dict[str, Any]]:
    """The current period as it is, then `price` from the renewal on, for one of its intervals."""
    item = sub["items"].data[0]
    interval = "year" if price != env.price_id else "month"
    return [
        {"items": [{"price": item.price.id, "quantity": current_quantity or quantity}],
         "start_date": item.current_period_start, "end_date": item.current_period_end,
         "proration_behavior": "none"},
        {"items": [{"price": price, "quantity": quantity}],
         "duration": {"interval": interval, "interval_count": 1}, "proration_behavior": "none"},
    ]


def schedule_switch(env, sub, price, **phase_options):
    client = env.client
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    return client.v1.subscription_schedules.update(schedule.id, params={
        "end_behavior": "release", "phases": switch_phases(env, sub, price, **phase_options)})


def clock(env, seconds=0):
    return env.control("clock/advance", {"seconds": seconds})["now"]


def lines_of(invoice):
    return [(line.amount, line.quantity, line.parent.subscription_item_details.proration)
            for line in invoice.lines.data]


def events_of(receiver, prefix):
    return [event for event in receiver.events() if event.type.startswith(prefix)]


# -- from a subscription, to yearly at the renewal ---------------------------------------------

def test_a_monthly_subscription_switches_to_yearly_billing_at_its_renewal(stripe_env,
                                                                         webhook_receiver):
    client = stripe_env.client
    sub = monthly_subscription(stripe_env)
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    yearly = yearly_id(stripe_env)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()

    created = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert (created.status, created.end_behavior, created.subscription) == ("active", "release", sub.id)
    assert (created.current_phase.start_date, created.current_phase.end_date) == (start, end)
    [phase] = created.phases
    assert (phase.start_date, phase.end_date, phase.currency) == (start, end, "eur")
    assert [(i.price, i.quantity) for i in phase["items"]] == [(stripe_env.price_id, 12)]
    assert client.v1.subscriptions.retrieve(sub.id).schedule == created.id

    updated = client.v1.subscription_schedules.update(created.id, params={
        "end_behavior": "release", "phases": switch_phases(stripe_env, sub, yearly)})
    assert [(p.start_date, p.end_date) for p in updated.phases] == [
        (start, end), (end, add_interval(end, "year"))]
    assert [(p["items"][0].price, p["items"][0].quantity, p.proration_behavior)
            for p in updated.phases] == [(stripe_env.price_id, 12, "none"), (yearly, 12, "none")]
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == stripe_env.price_id

    # The renewal's invoice, previewed: through the schedule, and as a new schedule's first one.
    expected = 12 * 4800 + vat(12 * 4800)
    upcoming = client.v1.invoices.create_preview(params={"schedule": created.id})
    assert [(line.amount, line.quantity, line.period.start) for line in upcoming.lines.data] == [
        (12 * 4800, 12, end)]
    assert upcoming.total == expected
    fresh = client.v1.invoices.create_preview(params={
        "customer": sub.customer, "automatic_tax": {"enabled": True},
        "schedule_details": {"phases": [{"start_date": end, "items": [{"price": yearly, "quantity": 12}],
                                         "duration": {"interval": "year"}}]}})
    assert (fresh.total, fresh.amount_due, fresh.billing_reason, fresh.parent) == (
        expected, expected, "subscription_create", None)
    assert (fresh.lines.data[0].period.start, fresh.lines.data[0].period.end) == (
        end, add_interval(end, "year"))
    # The schedule, expanded down to its prices, from the subscription.
    expanded = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["schedule.phases.items.price"]})
    assert [p["items"][0].price.recurring.interval for p in expanded.schedule.phases] == ["month", "year"]

    now = clock(stripe_env)
    clock(stripe_env, end - now - 60)
    assert client.v1.subscriptions.retrieve(sub.id).latest_invoice == sub.latest_invoice
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    clock(stripe_env, 120)
    switched = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    new_item = switched["items"].data[0]
    assert (new_item.id, new_item.price.id, new_item.quantity) == (item.id, yearly, 12)
    assert (new_item.current_period_start, new_item.current_period_end) == (end, add_interval(end, "year"))
    assert switched.billing_cycle_anchor == end and switched.schedule == created.id
    renewal = switched.latest_invoice
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    assert lines_of(renewal) == [(12 * 4800, 12, False)]
    assert renewal.total == renewal.amount_paid == expected
    entered = client.v1.subscription_schedules.retrieve(created.id)
    assert (entered.status, entered.current_phase.start_date) == ("active", end)
    stripe_env.wait_for_webhooks()
    assert [e.type for e in webhook_receiver.events()] == [
        "subscription_schedule.updated", "invoice.created", "invoice.finalized", "invoice.paid",
        "invoice.payment_succeeded", "customer.subscription.updated"]
    changed = webhook_receiver.events()[-1].data
    assert changed.previous_attributes["items"]["data"][0]["price"]["id"] == stripe_env.price_id
    assert changed.object["items"].data[0].price.recurring.interval == "year"

    # The yearly phase runs one year; then the schedule completes and the subscription goes on yearly.
    webhook_receiver.clear()
    clock(stripe_env, add_interval(end, "year") - end + 60)
    completed = client.v1.subscription_schedules.retrieve(created.id)
    assert (completed.status, completed.completed_at, completed.current_phase) == (
        "completed", add_interval(end, "year"), None)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.schedule is None and after.status == "active"
    assert after["items"].data[0].current_period_start == add_interval(end, "year")
    assert after["items"].data[0].price.id == yearly
    stripe_env.wait_for_webhooks()
    assert "subscription_schedule.completed" in [e.type for e in webhook_receiver.events()]
    for schedule in (created, updated, entered, completed):
        assert_stripe_shape(schedule, "subscription_schedule")


def test_back_from_yearly_to_monthly_at_the_renewal(stripe_env):
    client = stripe_env.client
    customer = client.v1.customers.create(params={"email": "a@contoso.example", "address": GERMANY})
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": yearly_id(stripe_env), "quantity": 3}]})
    end = sub["items"].data[0].current_period_end
    schedule_switch(stripe_env, sub, stripe_env.price_id, quantity=3)
    clock(stripe_env, end - clock(stripe_env) + 60)
    back = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert back["items"].data[0].price.recurring.interval == "month"
    assert back["items"].data[0].current_period_end == add_interval(end, "month")
    assert lines_of(back.latest_invoice) == [(3 * 600, 3, False)]


# -- withdrawn, and quantities ------------------------------------------------------------------

def test_a_schedule_released_before_the_renewal_changes_nothing(stripe_env, webhook_receiver):
    client = stripe_env.client
    sub = monthly_subscription(stripe_env, quantity=5)
    end = sub["items"].data[0].current_period_end
    schedule = schedule_switch(stripe_env, sub, yearly_id(stripe_env), quantity=5)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    released = client.v1.subscription_schedules.release(schedule.id)
    assert (released.status, released.released_subscription, released.subscription) == (
        "released", sub.id, None)
    assert released.current_phase is None and released.released_at
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    with pytest.raises(stripe.InvalidRequestError, match="`released` status"):
        client.v1.subscription_schedules.release(schedule.id)
    clock(stripe_env, end - clock(stripe_env) + 60)
    kept = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert kept["items"].data[0].price.id == stripe_env.price_id
    assert kept["items"].data[0].current_period_end == add_interval(end, "month")
    assert lines_of(kept.latest_invoice) == [(5 * 600, 5, False)]
    stripe_env.wait_for_webhooks()
    assert [e.type for e in events_of(webhook_receiver, "subscription_schedule")] == [
        "subscription_schedule.released"]
    assert_stripe_shape(released, "subscription_schedule")


def test_a_quantity_changed_on_the_subscription_reaches_the_next_phase_only_through_the_phases(
        stripe_env):
    client = stripe_env.client
    yearly = yearly_id(stripe_env)
    left_alone, kept_in_step = monthly_subscription(stripe_env), monthly_subscription(stripe_env)
    for sub in (left_alone, kept_in_step):
        schedule_switch(stripe_env, sub, yearly)
        client.v1.subscriptions.update(sub.id, params={
            "items": [{"id": sub["items"].data[0].id, "quantity": 15}],
            "proration_behavior": "always_invoice"})
    # As in Stripe: the subscription changed, the phases did not; the server updates them.
    schedule = client.v1.subscriptions.retrieve(kept_in_step.id).schedule
    client.v1.subscription_schedules.update(schedule, params={
        "proration_behavior": "none",
        "phases": switch_phases(stripe_env, kept_in_step, yearly, quantity=15)})
    end = kept_in_step["items"].data[0].current_period_end
    clock(stripe_env, end - clock(stripe_env) + 60)
    assert client.v1.subscriptions.retrieve(left_alone.id)["items"].data[0].quantity == 12
    renewed = client.v1.subscriptions.retrieve(kept_in_step.id, params={"expand": ["latest_invoice"]})
    assert renewed["items"].data[0].quantity == 15
    assert lines_of(renewed.latest_invoice) == [(15 * 4800, 15, False)]


def test_a_current_phase_with_another_quantity_changes_the_subscription_now(stripe_env):
    client = stripe_env.client
    sub = monthly_subscription(stripe_env)
    schedule = schedule_switch(stripe_env, sub, yearly_id(stripe_env))
    client.v1.subscription_schedules.update(schedule.id, params={
        "proration_behavior": "always_invoice",
        "phases": switch_phases(stripe_env, sub, yearly_id(stripe_env), quantity=14)})
    changed = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert changed["items"].data[0].quantity == 14
    assert changed.latest_invoice.billing_reason == "subscription_update"
    assert [proration for _, _, proration in lines_of(changed.latest_invoice)] == [True, True]


# -- what Stripe refuses ------------------------------------------------------------------------

def test_what_schedules_refuse(stripe_env):
    client = stripe_env.client
    sub = monthly_subscription(stripe_env)
    item = sub["items"].data[0]
    yearly = yearly_id(stripe_env)
    with pytest.raises(stripe.InvalidRequestError, match="from_subscription"):
        client.v1.subscription_schedules.create(params={"customer": sub.customer})
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError, match="already attached to a schedule"):
        client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError, match="cancelation behavior") as refused:
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert refused.value.param == "cancel_at_period_end"
    phases = switch_phases(stripe_env, sub, yearly)
    moved = [{**phases[0], "start_date": item.current_period_start + 1}, phases[1]]
    with pytest.raises(stripe.InvalidRequestError, match="start date of the current phase"):
        client.v1.subscription_schedules.update(schedule.id, params={"phases": moved})
    mid_period = [{**phases[0], "end_date": item.current_period_end - 5 * DAY}, phases[1]]
    with pytest.raises(stripe.InvalidRequestError, match="end of a billing period") as limit:
        client.v1.subscription_schedules.update(schedule.id, params={"phases": mid_period})
    assert limit.value.param == "phases[0][end_date]"
    both = [phases[0], {**phases[1], "end_date": item.current_period_end + 400 * DAY}]
    with pytest.raises(stripe.InvalidRequestError, match="both `end_date` and `duration`"):
        client.v1.subscription_schedules.update(schedule.id, params={"phases": both})
    with pytest.raises(stripe.InvalidRequestError, match="No such price"):
        client.v1.subscription_schedules.update(schedule.id, params={"phases": [
            phases[0], {**phases[1], "items": [{"price": "price_missing", "quantity": 1}]}]})
    unchanged = client.v1.subscription_schedules.retrieve(schedule.id)
    assert len(unchanged.phases) == 1  # every refusal changed nothing
    client.v1.subscription_schedules.release(schedule.id)
    with pytest.raises(stripe.InvalidRequestError, match="`released` status"):
        client.v1.subscription_schedules.update(schedule.id, params={"phases": phases})
    assert client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True}).cancel_at_period_end


def test_cancelling_a_schedule_ends_its_subscription(stripe_env, webhook_receiver):
    client = stripe_env.client
    sub = monthly_subscription(stripe_env)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    canceled = client.v1.subscription_schedules.cancel(schedule.id)
    assert canceled.status == "canceled" and canceled.canceled_at
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    stripe_env.wait_for_webhooks()
    assert [e.type for e in webhook_receiver.events()] == [
        "subscription_schedule.canceled", "customer.subscription.deleted"]


# -- the renewal notice and the schema ----------------------------------------------------------

def test_the_renewal_notice_of_a_yearly_subscription_follows_its_schedule(stripe_env,
                                                                         webhook_receiver):
    client = stripe_env.client
    customer = client.v1.customers.create(params={"email": "a@contoso.example", "address": GERMANY})
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": yearly_id(stripe_env), "quantity": 12}],
        "automatic_tax": {"enabled": True}})
    end = sub["items"].data[0].current_period_end
    schedule_switch(stripe_env, sub, stripe_env.price_id)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    clock(stripe_env, end - 29 * DAY - clock(stripe_env))
    stripe_env.wait_for_webhooks()
    [notice] = [e for e in webhook_receiver.events() if e.type == "invoice.upcoming"]
    [line] = notice.data.object.lines.data
    assert (line.amount, line.period.start, line.period.end) == (12 * 480, end, add_interval(end, "month"))


def test_schedules_and_their_events_match_stripes_schema(stripe_env, webhook_receiver):
    client = stripe_env.client
    sub = monthly_subscription(stripe_env)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    schedule = schedule_switch(stripe_env, sub, yearly_id(stripe_env))
    raw = stripe_env.api("GET", f"/v1/subscription_schedules/{schedule.id}").json()
    listed = stripe_env.api("GET", f"/v1/subscription_schedules?customer={sub.customer}").json()
    assert [s["id"] for s in listed["data"]] == [schedule.id]
    expanded = stripe_env.api(
        "GET", f"/v1/subscriptions/{sub.id}?expand[]=schedule.phases.items.price").json()
    for obj in (raw, listed["data"][0], expanded["schedule"]):
        assert_stripe_shape(obj, "subscription_schedule")
    assert_stripe_shape(expanded, "subscription")
    client.v1.subscription_schedules.release(schedule.id)
    stripe_env.wait_for_webhooks()
    events = events_of(webhook_receiver, "subscription_schedule")
    assert [e.type for e in events] == ["subscription_schedule.created", "subscription_schedule.updated",
                                        "subscription_schedule.released"]
    for event in events:
        assert_stripe_shape(event, "event")
        assert_stripe_shape(wire(event.data.object), "subscription_schedule")
    assert "phases" in events[1].data.previous_attributes
