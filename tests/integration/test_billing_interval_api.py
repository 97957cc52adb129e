"""Switching to annual billing at the next renewal through real HTTP (PRODUCT.md 2.13): the app under the local
host, the real Stripe SDK against the emulator's subscription schedules, identity-provider tokens, webhooks.

The switch is planned, the emulator's clock moves past the period end, and Stripe (the emulator) bills the year:
these tests move the clock, so they run on a stack of their own (tests/billing_support.py). Amounts are computed
here from the price tiers (a year is ten months' price), not asked of the app or the emulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from local_host import launch as launch_host
from services import delegation, subscription_store
from services.audit import Actor
from services.delegate import Acceptor
from services.i18n import format_money
from services.unit_of_work import UnitOfWork
from services.web_session import Person
from standins.stripe_emulator.periods import add_interval
from tests.billing_support import invoices_of, own_stack, seat_item, stripe_subscription, volume_total
from tests.builders import purchased_subscription
from tests.conftest import REPO_ROOT, wait_for
from tests.license_fixtures import new_user, person_of, token_for
from tests.licenses_support import call
from tests.pages_support import page, signed_in

DAY = 86400


@pytest.fixture(scope="module")
def stack(identity_provider, tmp_path_factory):
    with own_stack(identity_provider, tmp_path_factory) as running:
        yield running


@dataclass
class Who:
    person: Person
    token: str


def _owned(stack, quantity: int = 12) -> tuple[str, Who, Who]:
    """A monthly subscription (bought through Checkout, paid), its owner and a delegate with billing.manage."""
    users = {name: new_user(stack.identity_provider) for name in ("owner", "finance")}
    people = {name: person_of(user) for name, user in users.items()}
    owner = people["owner"]
    sub = purchased_subscription(stack, owner, quantity=quantity)
    finance = people["finance"]
    uow = UnitOfWork(stack.storage())
    issued = delegation.invite(uow, stack.settings, Actor(owner.tid, owner.oid, owner.email, owner.name), sub.id,
                               finance.email, frozenset({"billing.manage"}))
    delegation.accept(uow, issued.token, Acceptor(finance.tid, finance.oid, finance.name, finance.email,
                                                  frozenset(finance.sign_in_names)))
    stack.settle()
    return sub.id, Who(owner, token_for(stack, users["owner"])), Who(finance, token_for(stack, users["finance"]))


def _path(sub_id: str, tail: str = "") -> str:
    return f"/api/v1/subscriptions/{sub_id}/billing-interval{tail}"


def _put(stack, who: Who, sub_id: str, body: Any, key: str | None):
    return call(stack.url, "PUT", _path(sub_id), who.token, body, headers={"Idempotency-Key": key} if key else None)


def _audit(stack, sub_id: str) -> list[tuple[str, str, Any, Any]]:
    return [(e.action, e.actor.email or e.actor.name, e.before, e.after)
            for e in UnitOfWork(stack.storage()).subscriptions.audit_entries(sub_id)]


def _stored(stack, sub_id: str):
    found = subscription_store.load(stack.storage(), sub_id)
    assert found is not None
    return found


def _clock(stack, seconds: int = 0) -> int:
    return int(stack.emulator_control("clock/advance", {"seconds": seconds})["now"])


def _past(stack, moment: int) -> None:
    """Move the emulator's clock just past `moment` and let the app apply what Stripe announced."""
    _clock(stack, max(0, moment - _clock(stack)) + 60)
    stack.settle(timeout=120)


def _schedule(stack, sub_id: str) -> dict[str, Any] | None:
    schedule = stripe_subscription(stack, sub_id)["schedule"]
    return schedule if isinstance(schedule, dict) else None


def _phases(stack, sub_id: str) -> list[tuple[str, int]]:
    schedule = _schedule(stack, sub_id)
    assert schedule is not None
    return [(p["items"][0]["price"]["recurring"]["interval"], p["items"][0]["quantity"]) for p in schedule["phases"]]


def _mails_to(stack, address: str, subject_part: str) -> list[dict]:
    return [m for m in stack.outbox() if m["to"] == address and subject_part in m["subject"]]


def _reminder(stack, address: str) -> Callable[[], list[dict] | None]:
    return lambda: _mails_to(stack, address, "renews") or None


def test_switch_to_annual_at_the_renewal_with_a_quantity_change_in_between(stack):
    sid, owner, finance = _owned(stack, quantity=12)
    end = seat_item(stack, sid)["current_period_end"]
    renewal = datetime.fromtimestamp(end, tz=UTC).isoformat()

    # Preview (a delegate with billing.manage): from the renewal on, 12 × 48.00 a year; nothing changes.
    status, preview, _ = call(stack.url, "POST", _path(sid, "/preview"), finance.token, {"interval": "year"})
    assert status == 200, preview
    assert (preview["interval"], preview["starts_at"], preview["quantity"]) == (
        {"current": "month", "new": "year"}, renewal, 12)
    assert preview["unit_amount"] == {"current": 480, "new": 4800}
    # The buyer is Swiss (tests/builders.py): no VAT, so the invoice is the net price of a year.
    assert preview["first_invoice"]["total"] == preview["first_invoice"]["subtotal"] == 10 * volume_total(12)
    assert preview["current_total"] == volume_total(12) and preview["yearly_difference"] == 2 * volume_total(12)
    assert _schedule(stack, sid) is None and not any(a[0].startswith("billing.interval") for a in _audit(stack, sid))

    # Clear refusals, before anything changes.
    for body, key, want in (({"interval": "year"}, None, (400, "idempotency_key_required")),
                            ({"interval": "weekly"}, "k-1", (400, "invalid_interval")),
                            ({"interval": "month"}, "k-2", (409, "interval_unchanged"))):
        status, answer, _ = _put(stack, finance, sid, body, key)
        assert (status, answer["error"]) == want, answer
    status, answer, _ = _put(stack, finance, sid, {"interval": "weekly"}, "k-3")
    assert answer["field"] == "interval" and answer["allowed"] == ["month", "year"]
    assert _schedule(stack, sid) is None

    status, planned, _ = _put(stack, finance, sid, {"interval": "year"}, "annual-1")
    assert status == 200, planned
    assert (planned["changed"], planned["interval"], planned["scheduled_interval"], planned["starts_at"]) == (
        True, "month", "year", renewal)
    assert planned["subscription"]["scheduled_interval"] == {"interval": "year", "at": renewal}
    status, again, _ = _put(stack, finance, sid, {"interval": "year"}, "annual-1")  # a retry
    assert status == 200 and again["changed"] is False
    assert _phases(stack, sid) == [("month", 12), ("year", 12)]
    stored = _stored(stack, sid)
    assert (stored.billing_interval, stored.scheduled_interval, stored.scheduled_interval_at) == (
        "month", "year", datetime.fromtimestamp(end, tz=UTC))

    # The subscription page says so; cancelling waits until the switch is withdrawn.
    cookie, _ = signed_in(stack, owner.person)
    status, _, html = page(stack, "GET", f"/api/subscriptions/{sid}", cookie, headers={"Accept-Language": "en"})
    assert status == 200 and f"Switches to annual billing on {renewal[:10]}" in html
    status, refused, _ = call(stack.url, "POST", f"/api/v1/subscriptions/{sid}/cancellation", owner.token)
    assert (status, refused["error"]) == (409, "interval_switch_scheduled"), refused

    # More licenses meanwhile: charged now for the month, and the year bills the new number.
    status, quote, _ = call(stack.url, "POST", f"/api/v1/subscriptions/{sid}/quantity/preview", owner.token,
                            {"quantity": 15})
    assert status == 200, quote
    # The next invoice is the renewal's: a year for 15 licenses (no VAT for the Swiss buyer).
    assert quote["next_invoice"] == {"amount": 10 * volume_total(15), "date": renewal, "quantity": 15,
                                     "unit_amount": 4800, "interval": "year"}
    status, _, html = page(stack, "GET", f"/api/subscriptions/{sid}/quantity?quantity=15", cookie,
                           headers={"Accept-Language": "en"})
    assert status == 200 and f"From {renewal[:10]} the subscription is billed annually" in html
    status, more, _ = call(stack.url, "PUT", f"/api/v1/subscriptions/{sid}/quantity", owner.token,
                           {"quantity": 15, "proration_date": quote["proration_date"]},
                           headers={"Idempotency-Key": "more-15"})
    assert status == 200 and more["changed"], more
    assert _phases(stack, sid) == [("month", 15), ("year", 15)]

    # Past the period end: Stripe bills the year for 15 licenses, and the app follows from its webhooks.
    _past(stack, end)
    item = seat_item(stack, sid)
    assert (item["price"]["recurring"]["interval"], item["quantity"]) == ("year", 15)
    assert (item["current_period_start"], item["current_period_end"]) == (end, add_interval(end, "year"))
    renewed = [i for i in invoices_of(stack, sid) if i["billing_reason"] == "subscription_cycle"]
    assert len(renewed) == 1 and renewed[0]["status"] == "paid"
    assert [(line["amount"], line["quantity"]) for line in renewed[0]["lines"]["data"]] == [
        (10 * volume_total(15), 15)]
    assert renewed[0]["total"] == 10 * volume_total(15) == 72000
    after = _stored(stack, sid)
    assert (after.billing_interval, after.scheduled_interval, after.quantity) == ("year", "", 15)
    assert after.current_period_end == datetime.fromtimestamp(add_interval(end, "year"), tz=UTC)
    audited = _audit(stack, sid)
    [scheduled] = [a for a in audited if a[0] == "billing.interval_scheduled"]
    assert scheduled == ("billing.interval_scheduled", finance.person.email,
                         {"interval": "month", "scheduled_interval": None},
                         {"interval": "month", "scheduled_interval": "year", "from": renewal})
    assert any(a[:2] == ("subscription.updated", "Stripe") and a[2].get("interval") == "month"
               and a[3].get("interval") == "year" for a in audited), audited

    # The annual renewal reminder still comes: 30 days before the yearly renewal, to the owner and finance.
    _past(stack, add_interval(end, "year") - 30 * DAY)
    amount = format_money(10 * volume_total(15), "eur", "en")
    for address in (owner.person.email, finance.person.email):
        [mail] = wait_for(_reminder(stack, address), timeout=60, message=f"renewal reminder to {address}")
        assert "15 licenses" in mail["text"] and amount in mail["text"], mail["text"]


def test_withdrawn_before_the_renewal_it_stays_monthly(stack):
    sid, owner, _ = _owned(stack, quantity=5)
    end = seat_item(stack, sid)["current_period_end"]
    status, planned, _ = _put(stack, owner, sid, {"interval": "year"}, f"annual-{uuid.uuid4().hex[:8]}")
    assert status == 200 and planned["scheduled_interval"] == "year", planned

    status, withdrawn, _ = call(stack.url, "DELETE", _path(sid), owner.token)
    assert status == 200, withdrawn
    assert (withdrawn["changed"], withdrawn["interval"], withdrawn["scheduled_interval"]) == (True, "month", None)
    assert withdrawn["subscription"]["scheduled_interval"] is None
    status, again, _ = call(stack.url, "DELETE", _path(sid), owner.token)
    assert (status, again["error"]) == (409, "not_scheduled")
    assert _schedule(stack, sid) is None

    _past(stack, end)
    item = seat_item(stack, sid)
    assert (item["price"]["recurring"]["interval"], item["current_period_end"]) == ("month", add_interval(end, "month"))
    [renewed] = [i for i in invoices_of(stack, sid) if i["billing_reason"] == "subscription_cycle"]
    assert renewed["total"] == volume_total(5)
    stored = _stored(stack, sid)
    assert (stored.billing_interval, stored.scheduled_interval) == ("month", "")
    actions = [a[0] for a in _audit(stack, sid) if a[0].startswith("billing.interval")]
    assert actions == ["billing.interval_unscheduled", "billing.interval_scheduled"]


def test_stripe_down_answers_503_and_plans_nothing(stack):
    sid, owner, _ = _owned(stack, quantity=3)
    stack.settle()
    # A second host on the same storage whose Stripe does not answer (nothing listens on port 9).
    host = launch_host(REPO_ROOT, env={**stack.env, "STRIPE_API_BASE": "http://127.0.0.1:9"})
    try:
        status, answer, headers = call(host.url, "PUT", _path(sid), owner.token, {"interval": "year"},
                                       headers={"Idempotency-Key": "annual-down"})
        assert (status, answer["error"]) == (503, "stripe_unavailable"), answer
        assert int(headers["Retry-After"]) > 0
    finally:
        host.stop()
    assert _schedule(stack, sid) is None
    assert _stored(stack, sid).scheduled_interval == ""
    assert not any(a[0].startswith("billing.interval") for a in _audit(stack, sid))
    # The same request again once Stripe answers: planned once.
    status, planned, _ = _put(stack, owner, sid, {"interval": "year"}, "annual-down")
    assert status == 200 and planned["changed"] is True, planned
    assert _phases(stack, sid) == [("month", 3), ("year", 3)]
