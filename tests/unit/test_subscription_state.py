"""What a subscription's Stripe state means for its licenses: no storage, no network.

Expectations come from PRODUCT.md capability 2 (grace counted from the first `past_due`, Stripe's own
dunning ends in `unpaid` or `canceled`, unknown enum values tolerated, both payload shapes) and
capability 3 (`suspended` = unpaid past grace, `expired` = subscription ended). Stripe object shapes come
from Stripe's own published examples (/work/shared/stripe/fixtures3.json).
"""

from __future__ import annotations

import copy
import json
import pathlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
import stripe

from services.subscription import LicenseState, StripeSubscriptionState, Subscription

STRIPE_FIXTURES = pathlib.Path("/work/shared/stripe/fixtures3.json")
GRACE_DAYS = 14
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PERIOD_END = NOW + timedelta(days=20)


def a_subscription(status: str = "active", **overrides: Any) -> Subscription:
    return replace(Subscription(
        id="sub_unit", kind="organisation", status=status, quantity=5, assigned_count=3,
        tenant_id="tenant-a", owner_tid="tenant-a", owner_oid="owner-oid", owner_email="owner@contoso.example",
        owner_name="Owner", language="en", stripe_customer_id="cus_unit", checkout_session_id="cs_unit",
        current_period_end=PERIOD_END, seat_sequence=3, created_at=NOW - timedelta(days=60),
        updated_at=NOW - timedelta(days=1), etag="W/\"etag-1\"",
    ), **overrides)


def past_due(days_ago: float, **overrides: Any) -> Subscription:
    return a_subscription("past_due", past_due_since=NOW - timedelta(days=days_ago), **overrides)


@cache
def _fixtures() -> dict:
    if not STRIPE_FIXTURES.exists():
        pytest.skip(f"Stripe's published fixtures are not at {STRIPE_FIXTURES}")
    return json.loads(STRIPE_FIXTURES.read_text())["resources"]


def stripe_example(name: str) -> dict:
    """A fresh copy of Stripe's published example object `name` (e.g. "subscription")."""
    return copy.deepcopy(_fixtures()[name])


def unix(at: datetime) -> int:
    return int(at.timestamp())


# --- license state per Stripe status ----------------------------------------------------------------


@pytest.mark.parametrize("status, expected", [
    ("active", LicenseState.ACTIVE),
    ("trialing", LicenseState.ACTIVE),  # a trial is a working subscription
    ("incomplete", LicenseState.PENDING_PAYMENT),  # first payment not through yet
    ("unpaid", LicenseState.SUSPENDED),  # dunning gave up: unpaid past grace (capability 3)
    ("paused", LicenseState.SUSPENDED),  # trial ended without a payment method; can resume
    ("canceled", LicenseState.EXPIRED),  # the subscription ended
    ("incomplete_expired", LicenseState.EXPIRED),  # never paid, ended by Stripe
])
def test_license_state_of_each_known_status(status, expected):
    assert a_subscription(status).license_state(GRACE_DAYS, NOW) is expected


@pytest.mark.parametrize("status", ["some_future_status", "", "ACTIVE", "active "])
def test_an_unknown_status_suspends_never_raises_never_activates(status, caplog):
    state = a_subscription(status).license_state(GRACE_DAYS, NOW)

    assert state is LicenseState.SUSPENDED
    assert not state.valid
    assert "unknown Stripe status" in caplog.text


@pytest.mark.parametrize("days_ago, expected", [
    (0, LicenseState.PAST_DUE_GRACE),
    (1, LicenseState.PAST_DUE_GRACE),
    (GRACE_DAYS - 0.001, LicenseState.PAST_DUE_GRACE),
    (GRACE_DAYS, LicenseState.SUSPENDED),  # the grace days have run out
    (GRACE_DAYS + 1, LicenseState.SUSPENDED),
    (365, LicenseState.SUSPENDED),
])
def test_past_due_is_valid_for_the_grace_days_counted_from_past_due_since(days_ago, expected):
    assert past_due(days_ago).license_state(GRACE_DAYS, NOW) is expected


def test_grace_is_counted_from_past_due_since_not_from_the_period_or_the_last_update():
    # Long in the past due state; the subscription row was updated (another event) yesterday and its
    # period (advanced by Stripe on the failed renewal) is far from over: still out of grace.
    subscription = past_due(GRACE_DAYS + 2, updated_at=NOW - timedelta(days=1),
                            current_period_end=NOW + timedelta(days=28))
    assert subscription.license_state(GRACE_DAYS, NOW) is LicenseState.SUSPENDED


def test_the_grace_days_are_configurable():
    subscription = past_due(3)
    assert subscription.license_state(grace_days=7, now=NOW) is LicenseState.PAST_DUE_GRACE
    assert subscription.license_state(grace_days=3, now=NOW) is LicenseState.SUSPENDED
    assert subscription.license_state(grace_days=0, now=NOW) is LicenseState.SUSPENDED


def test_only_active_and_past_due_grace_are_valid_states():
    assert {state for state in LicenseState if state.valid} == {LicenseState.ACTIVE, LicenseState.PAST_DUE_GRACE}


# --- grace end and license expiry --------------------------------------------------------------------


def test_grace_ends_grace_days_after_past_due_since():
    since = NOW - timedelta(days=2)
    assert past_due(2).grace_ends_at(GRACE_DAYS) == since + timedelta(days=GRACE_DAYS)
    assert past_due(2).grace_ends_at(7) == since + timedelta(days=7)


@pytest.mark.parametrize("status", ["active", "trialing", "unpaid", "canceled", "incomplete", "paused"])
def test_no_grace_end_unless_past_due(status):
    # Even with a past_due_since left over (e.g. kept through unpaid): grace runs only while past due.
    subscription = a_subscription(status, past_due_since=NOW - timedelta(days=3))
    assert subscription.grace_ends_at(GRACE_DAYS) is None


def test_license_expires_at_the_grace_end_while_past_due_else_at_the_period_end():
    assert past_due(2).license_expires_at(GRACE_DAYS) == NOW - timedelta(days=2) + timedelta(days=GRACE_DAYS)
    assert a_subscription("active").license_expires_at(GRACE_DAYS) == PERIOD_END
    trial = a_subscription("trialing", current_period_end=NOW + timedelta(days=7))
    assert trial.license_expires_at(GRACE_DAYS) == NOW + timedelta(days=7)
    assert a_subscription("canceled").license_expires_at(GRACE_DAYS) == PERIOD_END
    assert a_subscription("active", current_period_end=None).license_expires_at(GRACE_DAYS) is None


# --- applying Stripe's view ----------------------------------------------------------------------------


def stripe_state(status: str = "active", **overrides: Any) -> StripeSubscriptionState:
    return replace(StripeSubscriptionState(
        id="sub_unit", status=status, quantity=5, customer_id="cus_unit", current_period_end=PERIOD_END,
        cancel_at_period_end=False, trial_end=None, metadata={},
    ), **overrides)


def test_past_due_since_starts_at_the_first_past_due():
    updated = a_subscription("active").with_stripe_state(stripe_state("past_due"), now=NOW)
    assert (updated.status, updated.past_due_since) == ("past_due", NOW)


def test_a_second_past_due_keeps_the_first_start_so_grace_is_not_extended():
    first = a_subscription("active").with_stripe_state(stripe_state("past_due"), now=NOW)
    again = first.with_stripe_state(stripe_state("past_due"), now=NOW + timedelta(days=10))
    assert again.past_due_since == NOW
    assert again.license_state(GRACE_DAYS, NOW + timedelta(days=GRACE_DAYS)) is LicenseState.SUSPENDED


@pytest.mark.parametrize("status", ["active", "trialing"])
def test_paying_again_ends_the_grace_period(status):
    paid = past_due(5).with_stripe_state(stripe_state(status), now=NOW)
    assert paid.past_due_since is None and paid.status == status
    # A later failure starts a fresh grace period.
    failed_again = paid.with_stripe_state(stripe_state("past_due"), now=NOW + timedelta(days=40))
    assert failed_again.past_due_since == NOW + timedelta(days=40)


def test_with_stripe_state_takes_stripes_fields_and_keeps_ours():
    before = a_subscription("active")
    trial_end = NOW + timedelta(days=3)
    state = stripe_state("trialing", quantity=9, current_period_end=NOW + timedelta(days=30),
                         cancel_at_period_end=True, trial_end=trial_end)
    after = before.with_stripe_state(state, now=NOW)

    assert (after.status, after.quantity, after.current_period_end, after.cancel_at_period_end, after.trial_end) == (
        "trialing", 9, NOW + timedelta(days=30), True, trial_end)
    assert after.updated_at == NOW
    # Ours: who owns it, what is assigned, the seat sequence, and the ETag it was read with.
    for name in ("id", "kind", "tenant_id", "owner_tid", "owner_oid", "owner_email", "assigned_count",
                 "seat_sequence", "created_at", "checkout_session_id", "stripe_customer_id", "etag"):
        assert getattr(after, name) == getattr(before, name), name
    assert before.status == "active"  # frozen: a new object, the old one unchanged


# --- reading Stripe subscription objects -----------------------------------------------------------------


def test_current_shape_from_stripes_example_period_end_on_items():
    example = stripe_example("subscription")
    assert "current_period_end" not in example  # Stripe's current shape
    item_end = example["items"]["data"][0]["current_period_end"]

    state = StripeSubscriptionState.from_stripe(example)

    assert state.id == example["id"]
    assert state.status == "active"
    assert state.quantity == example["items"]["data"][0]["quantity"]
    assert state.customer_id == example["customer"]
    assert state.current_period_end == datetime.fromtimestamp(item_end, tz=UTC)
    assert state.trial_end == datetime.fromtimestamp(example["trial_end"], tz=UTC)
    assert state.metadata == {}


def test_the_same_example_as_the_sdk_hands_it_over():
    example = stripe_example("subscription")
    as_sdk_object = stripe.Subscription.construct_from(example, "sk_test_unit")

    assert StripeSubscriptionState.from_stripe(as_sdk_object) == StripeSubscriptionState.from_stripe(example)


def test_pre_2025_shape_period_end_on_the_subscription():
    legacy = stripe_example("subscription")
    for item in legacy["items"]["data"]:
        item.pop("current_period_end")
        item.pop("current_period_start")
    legacy["current_period_start"] = unix(NOW - timedelta(days=10))
    legacy["current_period_end"] = unix(PERIOD_END)

    state = StripeSubscriptionState.from_stripe(legacy)

    assert state.current_period_end == PERIOD_END.replace(microsecond=0)
    assert state.quantity == 1


def test_both_shapes_of_the_same_subscription_read_the_same():
    current = stripe_example("subscription")
    current["items"]["data"][0]["current_period_end"] = unix(PERIOD_END)
    legacy = copy.deepcopy(current)
    legacy["current_period_end"] = legacy["items"]["data"][0].pop("current_period_end")

    assert StripeSubscriptionState.from_stripe(current) == StripeSubscriptionState.from_stripe(legacy)


def test_quantity_is_summed_over_items_and_the_latest_item_period_end_wins():
    example = stripe_example("subscription")
    second = stripe_example("subscription_item")
    example["items"]["data"][0].update(quantity=3, current_period_end=unix(NOW + timedelta(days=10)))
    second.update(quantity=4, current_period_end=unix(NOW + timedelta(days=40)))
    example["items"]["data"].append(second)

    state = StripeSubscriptionState.from_stripe(example)

    assert state.quantity == 7
    assert state.current_period_end == (NOW + timedelta(days=40)).replace(microsecond=0)


def test_quantity_without_items_is_the_subscriptions_own():
    state = StripeSubscriptionState.from_stripe({"id": "sub_1", "status": "active", "customer": "cus_1", "quantity": 6})
    assert state.quantity == 6
    assert state.current_period_end is None


def test_customer_as_id_or_as_expanded_object():
    example = stripe_example("subscription")
    customer = stripe_example("customer")
    assert StripeSubscriptionState.from_stripe(example).customer_id == example["customer"]

    example["customer"] = customer
    assert StripeSubscriptionState.from_stripe(example).customer_id == customer["id"]
    as_sdk_object = stripe.Subscription.construct_from(example, "sk_test_unit")
    assert StripeSubscriptionState.from_stripe(as_sdk_object).customer_id == customer["id"]


def test_cancel_at_counts_as_cancelling():
    # Since 2025 Stripe may express "cancel at period end" as cancel_at with cancel_at_period_end false.
    example = stripe_example("subscription")
    assert example["cancel_at"]
    example["cancel_at_period_end"] = False
    assert StripeSubscriptionState.from_stripe(example).cancel_at_period_end is True

    example["cancel_at"] = None
    assert StripeSubscriptionState.from_stripe(example).cancel_at_period_end is False
    example["cancel_at_period_end"] = True
    assert StripeSubscriptionState.from_stripe(example).cancel_at_period_end is True


def test_unknown_status_and_missing_fields_are_kept_not_rejected():
    state = StripeSubscriptionState.from_stripe({"id": "sub_1", "status": "some_future_status",
                                                 "customer": {"id": "cus_2"}, "trial_end": None})
    assert state.status == "some_future_status"
    assert (state.customer_id, state.quantity, state.trial_end, state.current_period_end) == ("cus_2", 0, None, None)
    assert state.cancel_at_period_end is False


def test_a_new_status_read_from_stripe_suspends_the_stored_subscription():
    state = StripeSubscriptionState.from_stripe({**stripe_example("subscription"), "status": "some_future_status"})
    updated = a_subscription("active").with_stripe_state(state, now=NOW)
    assert updated.license_state(GRACE_DAYS, NOW) is LicenseState.SUSPENDED


def test_timestamps_are_utc_and_zero_means_none():
    state = StripeSubscriptionState.from_stripe({"id": "sub_1", "status": "trialing", "customer": "cus_1",
                                                 "trial_end": 1_900_000_000, "current_period_end": 0})
    assert state.trial_end == datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
    assert state.current_period_end is None
