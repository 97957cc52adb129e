"""Purchases waiting for a delayed payment, against the in-memory storage: recorded once per session,
gone once fulfilled, "failed" for good when the payment fails, in any order of Stripe's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.lookup_repository import LookupRepository
from adapters.memory_storage import InMemoryStorage
from adapters.stripe_gateway import StripeNotFound
from services import delayed_payment
from services.pending_purchase import FAILED, PENDING

TID, OID = "tid-1", "oid-buyer"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class StripeSubscriptions:
    """Answers `subscription(id)` like the Stripe gateway: the quantity of an incomplete subscription."""

    def __init__(self, quantities: dict[str, int]):
        self.quantities = quantities
        self.calls = 0

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        self.calls += 1
        if subscription_id not in self.quantities:
            raise StripeNotFound(subscription_id)
        return {"id": subscription_id, "status": "incomplete", "customer": "cus_1",
                "items": {"data": [{"quantity": self.quantities[subscription_id]}]}}


def session(session_id: str = "cs_1", subscription: str = "sub_1", kind: str = "organisation") -> dict[str, Any]:
    return {"id": session_id, "subscription": subscription, "status": "complete", "payment_status": "unpaid",
            "metadata": {"buyer_tid": TID, "buyer_oid": OID, "kind": kind}}


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


def shown(store: InMemoryStorage, now: datetime = T0) -> list[tuple[str, str, int]]:
    return [(p.session_id, p.state, p.quantity) for p in delayed_payment.of_person(store, TID, OID, now=now)]


def test_a_purchase_waiting_for_its_payment_is_shown_to_its_buyer_only(store):
    stripe = StripeSubscriptions({"sub_1": 12})
    delayed_payment.record(store, stripe, session(), now=T0)
    assert shown(store) == [("cs_1", PENDING, 12)]
    assert delayed_payment.of_person(store, TID, "someone-else") == []
    # The completion page reloaded, the webhook arriving too: recorded once, Stripe asked once.
    delayed_payment.record(store, stripe, session(), now=T0 + timedelta(hours=1))
    assert shown(store) == [("cs_1", PENDING, 12)] and stripe.calls == 1
    assert delayed_payment.of_person(store, TID, OID)[0].started_at == T0


def test_paid_the_purchase_is_no_longer_pending(store):
    delayed_payment.record(store, StripeSubscriptions({"sub_1": 3}), session(), now=T0)
    delayed_payment.settled(store, session())
    assert shown(store) == []
    delayed_payment.settled(store, session())  # again: nothing to do


def test_a_fulfilled_purchase_is_not_shown_even_before_its_row_goes(store):
    delayed_payment.record(store, StripeSubscriptions({"sub_1": 3}), session(), now=T0)
    LookupRepository(store).index_checkout_session("cs_1", "sub_1")
    assert shown(store) == []


def test_a_failed_payment_stays_failed_whatever_comes_late(store):
    stripe = StripeSubscriptions({"sub_1": 4})
    delayed_payment.record(store, stripe, session(), now=T0)
    delayed_payment.failed(store, session(), now=T0 + timedelta(days=3))
    assert shown(store, T0 + timedelta(days=3)) == [("cs_1", FAILED, 4)]
    # A late "checkout.session.completed" (the session is still unpaid at Stripe) changes nothing.
    delayed_payment.record(store, stripe, session(), now=T0 + timedelta(days=4))
    assert shown(store, T0 + timedelta(days=4)) == [("cs_1", FAILED, 4)]
    # Shown for two weeks after the failure, then no more.
    assert shown(store, T0 + timedelta(days=3 + delayed_payment.FAILED_SHOWN_DAYS + 1)) == []


def test_a_failure_that_arrives_first_is_recorded_too(store):
    delayed_payment.failed(store, session("cs_2", "sub_2"), now=T0)
    delayed_payment.record(store, StripeSubscriptions({"sub_2": 2}), session("cs_2", "sub_2"), now=T0)
    assert shown(store) == [("cs_2", FAILED, 0)]


def test_several_purchases_oldest_first_and_an_unknown_quantity(store):
    delayed_payment.record(store, StripeSubscriptions({}), session("cs_b", "sub_gone"),
                           now=T0 + timedelta(minutes=5))
    delayed_payment.record(store, StripeSubscriptions({"sub_a": 1}), session("cs_a", "sub_a", "individual"),
                           now=T0)
    purchases = delayed_payment.of_person(store, TID, OID, now=T0)
    assert [(p.session_id, p.kind, p.quantity) for p in purchases] == [("cs_a", "individual", 1),
                                                                        ("cs_b", "organisation", 0)]


def test_a_session_without_a_buyer_is_not_recorded(store):
    delayed_payment.record(store, StripeSubscriptions({"sub_1": 1}), {"id": "cs_x", "metadata": {}})
    delayed_payment.failed(store, {"id": "cs_x", "metadata": {}})
    assert list(store.query("StripeIndex")) == []
