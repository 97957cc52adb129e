"""Undoing a revoke (services/seat_revocation.undo_revoke): the same address assigned again through the
assignment's rules, for UNDO_WINDOW after the revoke, audited on its own; against the in-memory storage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters import keys
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import USER_LICENSES
from services import seat_assignment, seat_revocation, subscription_store
from services.audit import Actor, AuditEntry
from services.seat_change import AlreadyAssigned, Context, SeatTaken, SubscriptionEnded, UndoExpired
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.factories import local_values
from tests.mail_support import queued_mails

ADMIN = Actor("tid-1", "oid-admin", "admin@contoso.example", "Admin")
GONE = "j.gross@contoso.example"


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def ctx(store: InMemoryStorage) -> Context:
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    return Context(UnitOfWork(store), settings, ADMIN)


def subscription(store: InMemoryStorage, quantity: int = 2) -> Subscription:
    sub = Subscription(id="sub_1", kind="organisation", status="active", quantity=quantity, assigned_count=0,
                       tenant_id="tid-1", owner_tid="tid-1", owner_oid="oid-owner", owner_email="owner@contoso.example",
                       owner_name="Contoso", language="de", stripe_customer_id="cus_1", checkout_session_id="cs_1",
                       current_period_end=datetime.now(UTC) + timedelta(days=30))
    assert subscription_store.create(store, sub)
    return sub


def mails_to(store: InMemoryStorage, address: str) -> int:
    return sum(mail["to"] == address for mail in queued_mails(store))


def actions(store: InMemoryStorage) -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in UnitOfWork(store).subscriptions.audit_entries("sub_1")]


def test_an_undo_assigns_the_same_address_again_audited_on_its_own_without_a_second_welcome(store, ctx):
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", [GONE])
    seat_revocation.revoke(ctx, "sub_1", GONE)
    assert [r.email for r in seat_revocation.recent_revocations(ctx.uow, "sub_1")] == [GONE]

    after = seat_revocation.undo_revoke(ctx, "sub_1", GONE.upper(), "undo-1")

    assert after.assigned_count == 1
    seat = ctx.uow.subscriptions.seat("sub_1", GONE)
    assert seat is not None and not seat.bound  # a new seat: pending until the next license check binds it
    assert store.get(USER_LICENSES, keys.licenses_of_address(GONE), "sub_1") is not None
    assert actions(store)[:2] == [("license.restored", GONE), ("license.revoked", GONE)]
    assert mails_to(store, GONE) == 1  # the first assignment's welcome only
    assert seat_revocation.recent_revocations(ctx.uow, "sub_1") == []  # nothing left to undo
    # A retry of the same undo answers as the first did and writes nothing more.
    seat_revocation.undo_revoke(ctx, "sub_1", GONE, "undo-1")
    assert [a for a, _ in actions(store)].count("license.restored") == 1


def test_an_undo_after_the_seat_was_taken_is_refused_and_changes_nothing(store, ctx):
    subscription(store, quantity=1)
    seat_assignment.assign(ctx, "sub_1", [GONE])
    seat_revocation.revoke(ctx, "sub_1", GONE)
    seat_assignment.assign(ctx, "sub_1", ["newcomer@contoso.example"])
    with pytest.raises(SeatTaken) as refused:
        seat_revocation.undo_revoke(ctx, "sub_1", GONE)
    assert refused.value.status == 409 and "no longer free" in str(refused.value)
    assert ctx.uow.subscriptions.seat("sub_1", GONE) is None
    assert ctx.uow.load("sub_1").assigned_count == 1
    assert actions(store)[0] == ("license.assigned", "newcomer@contoso.example")


def test_an_undo_of_an_address_licensed_again_meanwhile_is_refused(store, ctx):
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", [GONE])
    seat_revocation.revoke(ctx, "sub_1", GONE)
    seat_assignment.assign(ctx, "sub_1", [GONE])
    with pytest.raises(AlreadyAssigned):
        seat_revocation.undo_revoke(ctx, "sub_1", GONE)
    assert seat_revocation.recent_revocations(ctx.uow, "sub_1") == []


def test_only_revokes_of_the_last_ten_minutes_can_be_undone(store, ctx):
    subscription(store)
    old = datetime.now(UTC) - seat_revocation.UNDO_WINDOW - timedelta(seconds=5)
    ctx.uow.subscriptions.create_rows("sub_1", [AuditEntry(ADMIN, "license.revoked", target=GONE, at=old)])
    assert seat_revocation.recent_revocations(ctx.uow, "sub_1") == []
    with pytest.raises(UndoExpired):
        seat_revocation.undo_revoke(ctx, "sub_1", GONE)
    with pytest.raises(UndoExpired):  # never revoked at all
        seat_revocation.undo_revoke(ctx, "sub_1", "someone@contoso.example")
    assert ctx.uow.subscriptions.seat("sub_1", GONE) is None


def test_an_undo_follows_the_assignment_rules_an_ended_subscription_takes_none(store, ctx):
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", [GONE])
    seat_revocation.revoke(ctx, "sub_1", GONE)
    subscription_store.update(store, "sub_1", lambda current: (replace(current, status="canceled"), []))
    with pytest.raises(SubscriptionEnded):
        seat_revocation.undo_revoke(ctx, "sub_1", GONE)


def test_the_recent_revokes_are_newest_first_one_per_address(store, ctx):
    subscription(store, quantity=3)
    seat_assignment.assign(ctx, "sub_1", ["a@contoso.example", "b@contoso.example"])
    seat_revocation.revoke(ctx, "sub_1", "a@contoso.example")
    seat_revocation.revoke(ctx, "sub_1", "b@contoso.example")
    recent = seat_revocation.recent_revocations(ctx.uow, "sub_1")
    assert [r.email for r in recent] == ["b@contoso.example", "a@contoso.example"]
    assert recent[0].by == "admin@contoso.example"
    assert recent[0].undo_until == recent[0].at + timedelta(minutes=10)
