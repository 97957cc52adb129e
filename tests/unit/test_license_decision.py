"""The license decision and the seat status, for every subscription state: no storage, no network.

Expectations are written from PRODUCT.md, not from the code's tables:
- capability 7: the add-in gets `valid` separate from `code`; a person holding seats in several
  subscriptions gets the best one (section 4); the lease never outlives what was paid for.
- capability 2: licenses stay valid during the grace days counted from the first `past_due`.
- capability 3: seat status `pending` (assigned, never used), `active` (used), `suspended`
  (subscription unpaid past grace), `expired` (subscription ended), `over_quantity` (beyond a quantity
  that Stripe lowered).
Where PRODUCT.md is silent (an `incomplete` subscription, `paused`), the test says what it assumes.

The rules are reached through their modules (`license_check.decide`, `seat.seat_status`), so moving
them is one edit here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

import pytest

from services import license_check, seat
from services.subscription import Subscription

GRACE_DAYS = 14
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PERIOD_END = NOW + timedelta(days=20)
PAST_DUE_SINCE_IN_GRACE = NOW - timedelta(days=3)
PAST_DUE_SINCE_OUT_OF_GRACE = NOW - timedelta(days=GRACE_DAYS + 1)

Code = license_check.Code


def a_subscription(status: str, past_due_since: datetime | None = None, **overrides: Any) -> Subscription:
    return replace(Subscription(
        id=f"sub_{status or 'blank'}", kind="organisation", status=status, quantity=5, assigned_count=5,
        tenant_id="tenant-a", owner_tid="tenant-a", owner_oid="owner-oid", owner_email="owner@contoso.example",
        owner_name="Owner", language="en", stripe_customer_id="cus_unit", checkout_session_id="cs_unit",
        current_period_end=PERIOD_END, past_due_since=past_due_since,
    ), **overrides)


# Every subscription state the license check can meet, by name.
SUBSCRIPTIONS = {
    "active": a_subscription("active"),
    "trialing": a_subscription("trialing"),
    "past_due in grace": a_subscription("past_due", PAST_DUE_SINCE_IN_GRACE),
    "past_due after grace": a_subscription("past_due", PAST_DUE_SINCE_OUT_OF_GRACE),
    "incomplete": a_subscription("incomplete"),
    "unpaid": a_subscription("unpaid", PAST_DUE_SINCE_OUT_OF_GRACE),
    "paused": a_subscription("paused"),
    "canceled": a_subscription("canceled"),
    "incomplete_expired": a_subscription("incomplete_expired"),
    "unknown status": a_subscription("some_future_status"),
}

# (code for a seat within quantity, code for a seat over quantity)
EXPECTED_CODE = {
    "active": (Code.VALID, Code.OVER_QUANTITY),
    "trialing": (Code.VALID, Code.OVER_QUANTITY),
    # Valid in grace; a seat beyond the purchased quantity is not a license, in grace or not.
    "past_due in grace": (Code.PAST_DUE_GRACE, Code.OVER_QUANTITY),
    # Unpaid past grace: suspended, whatever the seat (the subscription's reason comes first).
    "past_due after grace": (Code.SUSPENDED, Code.SUSPENDED),
    # Not in PRODUCT.md: the first payment is not through yet; the subscription's reason comes first.
    "incomplete": (Code.PENDING_PAYMENT, Code.PENDING_PAYMENT),
    "unpaid": (Code.SUSPENDED, Code.SUSPENDED),
    # Not in PRODUCT.md: Stripe pauses a trial that ended without a payment method; it can resume.
    "paused": (Code.SUSPENDED, Code.SUSPENDED),
    "canceled": (Code.EXPIRED, Code.EXPIRED),
    "incomplete_expired": (Code.EXPIRED, Code.EXPIRED),
    # Stripe adds enum values: never valid, never an error.
    "unknown status": (Code.SUSPENDED, Code.SUSPENDED),
}


def test_the_tables_cover_every_state():
    assert set(EXPECTED_CODE) == set(SUBSCRIPTIONS) == set(EXPECTED_SEAT_STATUS)


# --- decide ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("over_quantity", [False, True], ids=["within quantity", "over quantity"])
@pytest.mark.parametrize("state", list(SUBSCRIPTIONS))
def test_decide_for_every_subscription_state_and_over_quantity_flag(state, over_quantity):
    subscription = SUBSCRIPTIONS[state]

    decision = license_check.decide(subscription, "user@contoso.example", over_quantity, GRACE_DAYS, NOW)

    assert decision.code is EXPECTED_CODE[state][over_quantity]
    assert decision.valid is (decision.code in (Code.VALID, Code.PAST_DUE_GRACE))
    assert (decision.subscription, decision.email) == (subscription, "user@contoso.example")


def test_valid_only_for_valid_and_past_due_grace():
    assert {code for code in Code if code.valid} == {Code.VALID, Code.PAST_DUE_GRACE}
    for code in Code:
        assert license_check.Decision(code).valid is (code in (Code.VALID, Code.PAST_DUE_GRACE))
    assert license_check.NO_LICENSE.valid is False
    assert license_check.NO_LICENSE.code is Code.NO_LICENSE


def test_grace_boundary_is_the_configured_days_after_the_first_past_due():
    since = NOW - timedelta(days=GRACE_DAYS)
    subscription = a_subscription("past_due", since)
    just_before = NOW - timedelta(microseconds=1)

    assert license_check.decide(subscription, "u@x", False, GRACE_DAYS, just_before).code is Code.PAST_DUE_GRACE
    assert license_check.decide(subscription, "u@x", False, GRACE_DAYS, NOW).code is Code.SUSPENDED
    assert license_check.decide(subscription, "u@x", False, GRACE_DAYS + 1, NOW).code is Code.PAST_DUE_GRACE


def test_expiry_told_to_the_add_in_is_the_grace_end_while_past_due_else_the_period_end():
    in_grace = license_check.decide(SUBSCRIPTIONS["past_due in grace"], "u@x", False, GRACE_DAYS, NOW)
    active = license_check.decide(SUBSCRIPTIONS["active"], "u@x", False, GRACE_DAYS, NOW)

    assert in_grace.expires_at == PAST_DUE_SINCE_IN_GRACE + timedelta(days=GRACE_DAYS)
    assert active.expires_at == PERIOD_END


# --- the best of several seats --------------------------------------------------------------------------


def test_valid_beats_grace_beats_every_invalid_code_and_no_license_is_worst():
    decisions = {code: license_check.Decision(code) for code in Code}
    valid = [c for c in Code if c.valid]
    invalid = [c for c in Code if not c.valid]

    assert decisions[Code.VALID].better_than(decisions[Code.PAST_DUE_GRACE])
    for good in valid:
        for bad in invalid:
            assert decisions[good].better_than(decisions[bad]), (good, bad)
            assert not decisions[bad].better_than(decisions[good]), (bad, good)
    for code in Code:
        if code is not Code.NO_LICENSE:
            assert decisions[code].better_than(license_check.NO_LICENSE), code


def test_among_invalid_codes_the_one_easiest_to_fix_wins():
    # Not in PRODUCT.md; the documented design: an admin lowering assignments or a payment fixes the
    # first ones, a new purchase the last.
    order = [Code.OVER_QUANTITY, Code.PENDING_PAYMENT, Code.SUSPENDED, Code.EXPIRED, Code.NO_LICENSE]
    for better, worse in combinations(order, 2):
        assert license_check.Decision(better).better_than(license_check.Decision(worse)), (better, worse)


def test_better_than_is_a_strict_total_order_matching_rank():
    decisions = [license_check.Decision(code) for code in Code]
    assert set(license_check.RANK) == set(Code) and len(license_check.RANK) == len(Code)
    for a in decisions:
        assert not a.better_than(a)
        for b in decisions:
            if a is not b:
                assert a.better_than(b) != b.better_than(a), (a.code, b.code)
    ranked = sorted(decisions, key=lambda d: sum(d.better_than(other) for other in decisions), reverse=True)
    assert [d.code for d in ranked] == list(license_check.RANK)


@pytest.mark.parametrize("held, best", [
    ((("active", True), ("active", False)), Code.VALID),  # over quantity in one, a seat in another
    ((("past_due in grace", False), ("active", False)), Code.VALID),
    ((("canceled", False), ("past_due in grace", False)), Code.PAST_DUE_GRACE),
    ((("canceled", False), ("unpaid", False)), Code.SUSPENDED),
    ((("canceled", False), ("active", True)), Code.OVER_QUANTITY),
])
def test_a_person_with_seats_in_several_subscriptions_gets_the_best(held, best):
    # What LicenseChecker.check does with the decisions of each seat.
    chosen = license_check.NO_LICENSE
    for state, over_quantity in held:
        decision = license_check.decide(SUBSCRIPTIONS[state], "u@x", over_quantity, GRACE_DAYS, NOW)
        if decision.better_than(chosen):
            chosen = decision
    assert chosen.code is best


# --- lease_not_after ------------------------------------------------------------------------------------


def test_lease_ends_at_the_grace_end_while_past_due():
    subscription = SUBSCRIPTIONS["past_due in grace"]
    grace_end = PAST_DUE_SINCE_IN_GRACE + timedelta(days=GRACE_DAYS)

    assert license_check.lease_not_after(subscription, GRACE_DAYS) == grace_end
    assert grace_end < PERIOD_END  # so the period end is not what bounds it
    assert license_check.decide(subscription, "u@x", False, GRACE_DAYS, NOW).lease_not_after == grace_end


@pytest.mark.parametrize("state", ["active", "trialing", "canceled", "unpaid", "incomplete"])
def test_lease_ends_grace_days_after_the_period_end_otherwise(state):
    subscription = SUBSCRIPTIONS[state]
    assert license_check.lease_not_after(subscription, GRACE_DAYS) == PERIOD_END + timedelta(days=GRACE_DAYS)
    assert license_check.lease_not_after(subscription, 0) == PERIOD_END


def test_no_lease_bound_without_a_period():
    assert license_check.lease_not_after(a_subscription("active", current_period_end=None), GRACE_DAYS) is None
    decision = license_check.decide(a_subscription("active", current_period_end=None), "u@x", False, GRACE_DAYS, NOW)
    assert decision.lease_not_after is None and decision.expires_at is None


# --- seat status ----------------------------------------------------------------------------------------

PENDING, ACTIVE, OVER, SUSPENDED, EXPIRED = "pending", "active", "over_quantity", "suspended", "expired"

# Per subscription state: (unbound, bound, unbound over quantity, bound over quantity)
EXPECTED_SEAT_STATUS = {
    "active": (PENDING, ACTIVE, OVER, OVER),
    "trialing": (PENDING, ACTIVE, OVER, OVER),
    "past_due in grace": (PENDING, ACTIVE, OVER, OVER),  # licenses stay valid in grace
    "past_due after grace": (SUSPENDED,) * 4,
    # Not in PRODUCT.md: nothing says the seats of an incomplete subscription are suspended or expired.
    "incomplete": (PENDING, ACTIVE, OVER, OVER),
    "unpaid": (SUSPENDED,) * 4,
    "paused": (SUSPENDED,) * 4,
    "canceled": (EXPIRED,) * 4,
    "incomplete_expired": (EXPIRED,) * 4,
    "unknown status": (SUSPENDED,) * 4,
}
SEATS = {
    "unbound": seat.Seat(email="user@contoso.example", sequence=1),
    "bound": seat.Seat(email="user@contoso.example", sequence=1, bound_tid="tenant-a", bound_oid="user-oid"),
    "unbound over quantity": seat.Seat(email="user@contoso.example", sequence=6, over_quantity=True),
    "bound over quantity": seat.Seat(email="user@contoso.example", sequence=6, bound_tid="tenant-a",
                                     bound_oid="user-oid", over_quantity=True),
}


@pytest.mark.parametrize("seat_state", list(SEATS))
@pytest.mark.parametrize("state", list(SUBSCRIPTIONS))
def test_seat_status_for_every_subscription_state_and_seat_state(state, seat_state):
    expected = EXPECTED_SEAT_STATUS[state][list(SEATS).index(seat_state)]
    status = seat.seat_status(SEATS[seat_state], SUBSCRIPTIONS[state], GRACE_DAYS, NOW)
    assert status == expected
    assert status in seat.STATUSES


@pytest.mark.parametrize("state, expected", [
    ("active", None), ("trialing", None), ("past_due in grace", None), ("incomplete", None),
    ("past_due after grace", SUSPENDED), ("unpaid", SUSPENDED), ("paused", SUSPENDED),
    ("unknown status", SUSPENDED), ("canceled", EXPIRED), ("incomplete_expired", EXPIRED),
])
def test_subscription_seat_status_is_what_every_seat_has_because_of_the_subscription(state, expected):
    assert seat.subscription_seat_status(SUBSCRIPTIONS[state], GRACE_DAYS, NOW) == expected


def test_seat_status_follows_the_grace_clock():
    subscription = a_subscription("past_due", NOW - timedelta(days=GRACE_DAYS))
    bound = SEATS["bound"]
    assert seat.seat_status(bound, subscription, GRACE_DAYS, NOW - timedelta(seconds=1)) == ACTIVE
    assert seat.seat_status(bound, subscription, GRACE_DAYS, NOW) == SUSPENDED


# The license check also tells the add-in a seat status; for a bound seat it must be the one the
# license list shows.
def _bound_seat_cases():
    for state in SUBSCRIPTIONS:
        for over_quantity in (False, True):
            yield pytest.param(state, over_quantity,
                               id=f"{state}-{'over quantity' if over_quantity else 'within quantity'}")


@pytest.mark.parametrize("state, over_quantity", list(_bound_seat_cases()))
def test_the_license_checks_seat_status_matches_the_license_list(state, over_quantity):
    subscription = SUBSCRIPTIONS[state]
    bound = SEATS["bound over quantity" if over_quantity else "bound"]

    decision = license_check.decide(subscription, bound.email, over_quantity, GRACE_DAYS, NOW)

    assert decision.seat_status == seat.seat_status(bound, subscription, GRACE_DAYS, NOW)


def test_between_equal_codes_the_organisations_license_answers():
    organisation = SUBSCRIPTIONS["active"]
    individual = replace(organisation, id="sub_individual", kind="individual")
    org_decision = license_check.decide(organisation, "a@contoso.example", False, GRACE_DAYS, NOW)
    own_decision = license_check.decide(individual, "a@contoso.example", False, GRACE_DAYS, NOW)
    assert org_decision.better_than(own_decision) and not own_decision.better_than(org_decision)
    # A better code still wins whatever the kind.
    suspended = license_check.decide(replace(organisation, status="unpaid"), "a@contoso.example", False,
                                     GRACE_DAYS, NOW)
    assert own_decision.better_than(suspended)
