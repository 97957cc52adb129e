"""The index the timers read instead of scanning partitions (adapters/subscription_index.py): kept on every
write path, and a reconciliation finds exactly the work that changed. In-memory storage, no Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters import keys, subscription_index
from adapters.memory_storage import InMemoryStorage
from adapters.subscription_index import CHANGED, MERGES, RESERVATIONS, SUBSCRIPTIONS_LIST, SubscriptionIndex
from adapters.subscription_repository import PartitionWrites
from adapters.table_storage import SUBSCRIPTION_INDEX, SUBSCRIPTIONS, USER_LICENSES
from services import seat_assignment, seat_reconciliation, seat_revocation, subscription_store
from services.audit import Actor
from services.merge_record import COMPLETED, Merge
from services.seat_change import Context
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.assignment_jobs_support import drain
from tests.factories import local_values

ADMIN = Actor("tid-1", "oid-admin", "admin@contoso.example", "Admin")
DAY_1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY_2 = DAY_1 + timedelta(days=1)
DAY_3 = DAY_1 + timedelta(days=2)


class Clock:
    """The time the storage adapters see (what they stamp on rows and list changes under)."""

    current = DAY_1


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> type[Clock]:
    monkeypatch.setattr("adapters.subscription_index.utc_now", lambda: Clock.current)
    Clock.current = DAY_1
    subscription_index._changed_memo.clear()
    return Clock


class Store(InMemoryStorage):
    """Counts calls per table; can lose the next writes of lookup rows (a request that died after its
    partition commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_lookup_writes = 0
        self.by_table: dict[str, int] = {}

    def _count(self, table: str) -> None:
        self.by_table[table] = self.by_table.get(table, 0) + 1

    def get(self, table: str, partition_key: str, row_key: str) -> Any:
        self._count(table)
        return super().get(table, partition_key, row_key)

    def query(self, table: str, **kwargs: Any) -> Iterator[Any]:
        self._count(table)
        return super().query(table, **kwargs)

    def transact(self, table: str, operations: Any) -> list[str | None]:
        ops = list(operations)
        if table == USER_LICENSES and self.lose_lookup_writes:
            self.lose_lookup_writes -= 1
            raise ConnectionError("the request died after its commit")
        self._count(table)
        return super().transact(table, ops)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def ctx(store: Store) -> Context:
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    return Context(UnitOfWork(store), settings, ADMIN)


def subscribe(store: Store, sid: str, quantity: int = 300) -> None:
    assert subscription_store.create(store, Subscription(
        id=sid, kind="organisation", status="active", quantity=quantity, assigned_count=0, tenant_id="tid-1",
        owner_tid="tid-1", owner_oid="oid-owner", owner_email="owner@contoso.example", owner_name="Contoso",
        language="en", stripe_customer_id="", checkout_session_id=f"cs_{sid}",
        current_period_end=datetime.now(UTC) + timedelta(days=30)))


def listed(store: Store, partition: str) -> list[str]:
    return [row["RowKey"] for row in store.query(SUBSCRIPTION_INDEX, partition_key=partition)]


def address_row(store: Store, sid: str, address: str) -> Any:
    return store.get(USER_LICENSES, keys.licenses_of_address(address), sid)


def first_run(ctx: Context, clock: type[Clock]) -> None:
    """Day 1's changes, then day 2 begins with the first daily run (it goes through everything)."""
    clock.current = DAY_2
    assert seat_reconciliation.reconcile_changed(ctx.uow, ctx.settings, now=DAY_2).first_run


def next_run(ctx: Context, clock: type[Clock]) -> seat_reconciliation.LookupRun:
    """Day 3's daily run: day 2's changes."""
    clock.current = DAY_3
    return seat_reconciliation.reconcile_changed(ctx.uow, ctx.settings, now=DAY_3)


# --- kept on every write path -------------------------------------------------------------------------


def test_a_new_subscription_is_listed_and_every_partition_change_lists_it_as_changed(store, ctx, clock):
    subscribe(store, "sub_a")
    assert listed(store, SUBSCRIPTIONS_LIST) == ["sub_a"]
    assert listed(store, CHANGED) == ["2026-03-01|sub_a"]
    clock.current = DAY_2
    seat_assignment.assign(ctx, "sub_a", ["a@contoso.example"])  # the unit of work's commit
    assert listed(store, CHANGED) == ["2026-03-01|sub_a", "2026-03-02|sub_a"]
    seat_revocation.revoke(ctx, "sub_a", "a@contoso.example")  # the same day: listed once
    assert len(listed(store, CHANGED)) == 2


def test_the_subscription_list_is_filled_once_from_a_scan_when_the_index_is_new(store):
    subscribe(store, "sub_a")
    subscribe(store, "sub_b")
    # As if both were created before the index existed.
    for sid in ("sub_a", "sub_b"):
        store.delete(SUBSCRIPTION_INDEX, SUBSCRIPTIONS_LIST, sid)
    assert sorted(subscription_store.all_ids(store)) == ["sub_a", "sub_b"]
    subscribe(store, "sub_c")
    before = store.by_table.get(SUBSCRIPTIONS, 0)
    assert sorted(subscription_store.all_ids(store)) == ["sub_a", "sub_b", "sub_c"]
    assert store.by_table.get(SUBSCRIPTIONS, 0) == before  # listed from the index: no scan


def test_reservations_are_listed_while_open(store, ctx):
    subscribe(store, "sub_a")
    addresses = [f"u{i:03d}@contoso.example" for i in range(120)]
    seat_assignment.assign(ctx, "sub_a", addresses, request_id="bulk")
    assert listed(store, RESERVATIONS) == ["sub_a|bulk"]  # a bulk assignment's reservation, open
    drain(ctx, store)  # its job writes the seats and closes it
    assert listed(store, RESERVATIONS) == []
    index = SubscriptionIndex(store)
    index.reservation_opened("sub_a", "gone", DAY_1 - timedelta(hours=1))  # listed, never committed
    assert seat_reconciliation.complete_stale_reservations(ctx.uow, ctx.settings, now=DAY_1) == 0
    assert listed(store, RESERVATIONS) == []  # found closed: taken off the list


def test_the_reservation_timer_completes_a_stale_one_it_finds_in_the_index(store, ctx, clock):
    clock.current = datetime.now(UTC)
    subscribe(store, "sub_a")
    seat_assignment.assign(ctx, "sub_a", [f"u{i:03d}@contoso.example" for i in range(120)], request_id="bulk")
    store.queues.clear()  # the job's messages are lost: only the timer can finish it
    clock.current = now = datetime.now(UTC)
    assert seat_reconciliation.complete_stale_reservations(ctx.uow, ctx.settings, now=now) == 0  # not stale
    assert seat_reconciliation.complete_stale_reservations(ctx.uow, ctx.settings,
                                                           now=now + timedelta(minutes=11)) == 1
    drain(ctx, store)  # the job's chunks, sent again
    assert len(list(ctx.uow.subscriptions.seats("sub_a"))) == 120 and listed(store, RESERVATIONS) == []


def test_a_revoke_leaves_a_seat_gone_row_in_its_own_transaction(store, ctx):
    subscribe(store, "sub_a")
    seat_assignment.assign(ctx, "sub_a", ["a@contoso.example"])
    seat_revocation.revoke(ctx, "sub_a", "a@contoso.example")
    assert [g.email for g in ctx.uow.subscriptions.seats_gone("sub_a")] == ["a@contoso.example"]


# --- a reconciliation finds exactly the changed work ---------------------------------------------------


def test_the_daily_run_visits_only_the_subscriptions_changed_since_the_last_run(store, ctx, clock):
    for sid in ("sub_a", "sub_b", "sub_c"):
        subscribe(store, sid)
        seat_assignment.assign(ctx, sid, [f"u{n}@{sid.replace('_', '-')}.example" for n in range(5)])
    first_run(ctx, clock)
    # Day 2: sub_b's assignment commits but its request dies before the lookup row.
    store.lose_lookup_writes = 1
    with pytest.raises(ConnectionError):
        seat_assignment.assign(ctx, "sub_b", ["new@sub-b.example"])
    assert address_row(store, "sub_b", "new@sub-b.example") is None

    # The day's changes wait for the next day's run (the day must be over).
    assert seat_reconciliation.reconcile_changed(ctx.uow, ctx.settings, now=DAY_2).subscriptions == []
    run = next_run(ctx, clock)
    assert run.subscriptions == ["sub_b"] and not run.first_run
    assert run.lookups == 1  # only the seat written on day 2, not the five older ones
    assert address_row(store, "sub_b", "new@sub-b.example") is not None
    # Done: the next run has nothing to do.
    assert seat_reconciliation.reconcile_changed(ctx.uow, ctx.settings, now=DAY_3).subscriptions == []


def test_the_lookup_rows_of_a_revoke_that_died_after_its_commit_are_removed(store, ctx, clock):
    subscribe(store, "sub_a")
    seat_assignment.assign(ctx, "sub_a", ["a@contoso.example", "b@contoso.example"])
    first_run(ctx, clock)
    store.lose_lookup_writes = 1
    with pytest.raises(ConnectionError):
        seat_revocation.revoke(ctx, "sub_a", "a@contoso.example")
    assert address_row(store, "sub_a", "a@contoso.example") is not None  # the revoked user is still licensed
    next_run(ctx, clock)
    assert address_row(store, "sub_a", "a@contoso.example") is None
    assert address_row(store, "sub_a", "b@contoso.example") is not None
    assert ctx.uow.subscriptions.seats_gone("sub_a") == []


def test_a_revoked_address_assigned_again_keeps_its_new_row(store, ctx, clock):
    subscribe(store, "sub_a")
    seat_assignment.assign(ctx, "sub_a", ["a@contoso.example"])
    first_run(ctx, clock)
    seat_revocation.revoke(ctx, "sub_a", "a@contoso.example")
    seat_assignment.assign(ctx, "sub_a", ["a@contoso.example"])
    next_run(ctx, clock)
    assert address_row(store, "sub_a", "a@contoso.example") is not None


def test_a_run_costs_the_same_whatever_the_size_of_the_unchanged_subscriptions(ctx, clock):
    def calls_of_one_run(store: Store, subscriptions: int, seats_each: int) -> int:
        clock.current = DAY_1
        uow = UnitOfWork(store)
        local = Context(uow, ctx.settings, ADMIN)
        subscribe(store, "sub_changed")
        for n in range(subscriptions):
            subscribe(store, f"sub_{n}", quantity=seats_each)
            seat_assignment.assign(local, f"sub_{n}", [f"u{i}@s{n}.example" for i in range(seats_each)])
        first_run(local, clock)
        seat_assignment.assign(local, "sub_changed", ["x@contoso.example"])
        before = store.calls
        assert next_run(local, clock).subscriptions == ["sub_changed"]
        return store.calls - before

    assert calls_of_one_run(Store(), 2, 5) == calls_of_one_run(Store(), 6, 90)


def test_the_address_row_left_by_a_binding_is_removed_with_the_seats_repair(store, ctx, clock):
    subscribe(store, "sub_a")
    seat_assignment.assign(ctx, "sub_a", ["a@contoso.example"])
    first_run(ctx, clock)
    lookup = ctx.uow.lookups.licenses_of_address("a@contoso.example")[0]
    ctx.uow.subscriptions.bind_seat_at("sub_a", "a@contoso.example", lookup.seat_etag, "tid-1", "oid-a", DAY_2)
    seat_assignment.assign(ctx, "sub_a", ["b@contoso.example"])  # lists the subscription as changed
    next_run(ctx, clock)
    assert address_row(store, "sub_a", "a@contoso.example") is None
    assert ctx.uow.lookups.licenses_of_oid("oid-a")[0].subscription_id == "sub_a"
    assert store.get(SUBSCRIPTIONS, "sub_a", keys.seat_row("a@contoso.example"))["BoundOid"] == "oid-a"


# --- merges still running (the resume timer, services/merge.py) ------------------------------------------


def test_running_merges_are_listed_and_found_without_a_scan(store, ctx, clock):
    subscribe(store, "sub_a")
    sub = ctx.uow.load("sub_a")
    merge = Merge("m1", ADMIN, people=(), quantity=1)
    ctx.uow.subscriptions.commit(PartitionWrites(sub, create=[merge]))
    assert listed(store, MERGES) == ["sub_a|m1"]
    list(ctx.uow.subscriptions.open_merges())  # the first call ever also lists older merges, once
    before = store.by_table.get(SUBSCRIPTIONS, 0)
    assert [(sid, m.id) for sid, m in ctx.uow.subscriptions.open_merges()] == [("sub_a", "m1")]
    assert store.by_table[SUBSCRIPTIONS] == before + 1  # the merge read by its key, no scan
    stored = ctx.uow.subscriptions.merge("sub_a", "m1")
    ctx.uow.subscriptions.commit(PartitionWrites(ctx.uow.load("sub_a"), put=[replace(stored, status=COMPLETED)]))
    assert list(ctx.uow.subscriptions.open_merges()) == [] and listed(store, MERGES) == []


def test_merges_running_before_the_index_existed_are_listed_once(store, ctx):
    subscribe(store, "sub_a")
    ctx.uow.subscriptions.commit(PartitionWrites(ctx.uow.load("sub_a"), create=[Merge("old", ADMIN, (), 1)]))
    store.delete(SUBSCRIPTION_INDEX, MERGES, "sub_a|old")  # as if written before the index
    assert [m.id for _, m in ctx.uow.subscriptions.open_merges()] == ["old"]
    assert listed(store, MERGES) == ["sub_a|old"]
