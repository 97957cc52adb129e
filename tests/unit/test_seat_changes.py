"""The seat rules through the unit of work, against the in-memory storage: milliseconds, no Azurite.

The same services run against Azurite in tests/integration (and the storage contract that makes
the fake trustworthy is tests/integration/test_storage_contract.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters import keys
from adapters.memory_storage import InMemoryStorage
from adapters.subscription_repository import PartitionWrites
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES, ConcurrencyConflict
from services import seat_assignment, seat_listing, seat_reconciliation, seat_revocation, subscription_store
from services.audit import Actor
from services.over_quantity import apply_quantity
from services.seat import Seat, over_quantity_flags
from services.seat_change import (
    SEATS_PER_TRANSACTION,
    AlreadyAssigned,
    Context,
    ListTooLarge,
    NoSeatsFree,
    NotAssigned,
    SubscriptionEnded,
)
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import Plan, SubscriptionNotFound, UnitOfWork
from tests.assignment_jobs_support import drain
from tests.factories import local_values
from tests.mail_support import queued_mails

ADMIN = Actor("tid-1", "oid-admin", "admin@contoso.example", "Admin")


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def ctx(store: InMemoryStorage) -> Context:
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    return Context(UnitOfWork(store), settings, ADMIN)


def subscription(store: InMemoryStorage, quantity: int = 5, status: str = "active", sid: str = "sub_1") -> Subscription:
    sub = Subscription(id=sid, kind="organisation", status=status, quantity=quantity, assigned_count=0,
                       tenant_id="tid-1", owner_tid="tid-1", owner_oid="oid-owner", owner_email="owner@contoso.example",
                       owner_name="Contoso", language="de", stripe_customer_id="cus_1", checkout_session_id="cs_1",
                       current_period_end=datetime.now(UTC) + timedelta(days=30))
    assert subscription_store.create(store, sub)
    return sub


def seats_of(store: InMemoryStorage, sid: str = "sub_1") -> list[str]:
    return [s.email for s in UnitOfWork(store).subscriptions.seats(sid)]


# --- assign -----------------------------------------------------------------------------------------


def test_assign_writes_seats_count_audit_lookups_and_welcome_mails(store, ctx):
    subscription(store)
    outcome = seat_assignment.assign(ctx, "sub_1", ["a@contoso.example", "b@contoso.example"])
    assert outcome.assigned == ["a@contoso.example", "b@contoso.example"]
    assert outcome.subscription is not None and outcome.subscription.assigned_count == 2
    assert seats_of(store) == ["a@contoso.example", "b@contoso.example"]
    assert store.get(USER_LICENSES, keys.licenses_of_address("a@contoso.example"), "sub_1") is not None
    assert sorted(m["to"] for m in queued_mails(store)) == ["a@contoso.example", "b@contoso.example"]
    assert {m["language"] for m in queued_mails(store)} == {"de"}
    entries = list(UnitOfWork(store).subscriptions.audit_entries("sub_1"))
    assert [e.action for e in entries] == ["licenses.assigned"]


def test_assign_more_than_free_writes_nothing(store, ctx):
    subscription(store, quantity=2)
    seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"])
    with pytest.raises(NoSeatsFree) as refused:
        seat_assignment.assign(ctx, "sub_1", ["b@contoso.example", "c@contoso.example"])
    assert (refused.value.needed, refused.value.free) == (2, 1)
    assert seats_of(store) == ["a@contoso.example"]
    assert subscription_store.load(store, "sub_1").assigned_count == 1


def test_assigning_an_assigned_address_again_is_reported_not_counted(store, ctx):
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"])
    outcome = seat_assignment.assign(ctx, "sub_1", ["a@contoso.example", "b@contoso.example"])
    assert outcome.results == {"a@contoso.example": "already_assigned", "b@contoso.example": "assigned"}
    assert outcome.subscription.assigned_count == 2


def test_a_retried_request_is_idempotent_and_mails_once_per_seat(store, ctx):
    subscription(store)
    first = seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"], request_id="req-1")
    again = seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"], request_id="req-1")
    assert first.assigned == again.assigned == ["a@contoso.example"]
    assert subscription_store.load(store, "sub_1").assigned_count == 1
    # The retry enqueues the same mail id again; delivery sends an id once.
    assert len({m["id"] for m in queued_mails(store)}) == 1


@pytest.mark.parametrize("status", ["canceled", "incomplete_expired"])
def test_an_ended_subscription_takes_no_assignments(store, ctx, status):
    subscription(store, status=status)
    with pytest.raises(SubscriptionEnded):
        seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"])
    assert seats_of(store) == []


def test_an_address_a_mail_cannot_go_to_is_refused_before_anything_is_written(store, ctx):
    subscription(store)
    with pytest.raises(ValueError):
        seat_assignment.assign(ctx, "sub_1", ["not-an-address"])
    assert seats_of(store) == [] and queued_mails(store) == []
    assert subscription_store.load(store, "sub_1").assigned_count == 0


def test_unknown_subscription(store, ctx):
    with pytest.raises(SubscriptionNotFound):
        seat_assignment.assign(ctx, "sub_missing", ["a@contoso.example"])


# --- bulk: reservations -------------------------------------------------------------------------------


def test_a_bulk_assignment_reserves_then_writes_batches_within_azure_limits(store, ctx):
    subscription(store, quantity=300)
    addresses = [f"u{i:03d}@contoso.example" for i in range(250)]
    outcome = seat_assignment.assign(ctx, "sub_1", addresses, request_id="bulk")
    assert sorted(outcome.assigned) == addresses
    # Up to BULK_ASSIGN_THRESHOLD the request writes the seats itself; lookup rows and mails follow (queue).
    assert len(seats_of(store)) == 250 and outcome.subscription.assigned_count == 250
    assert outcome.job is not None and not outcome.background
    drain(ctx, store)
    assert UnitOfWork(store).subscriptions.reservations("sub_1") == []
    sequences = sorted(s.sequence for s in UnitOfWork(store).subscriptions.seats("sub_1"))
    assert sequences == list(range(1, 251))


class FailingStore(InMemoryStorage):
    """Its Nth transaction fails as if the connection dropped."""

    def __init__(self, fail_on: int):
        super().__init__()
        self.fail_on, self.transactions = fail_on, 0

    def transact(self, table, operations):
        ops = list(operations)
        if table == SUBSCRIPTIONS:
            self.transactions += 1
            if self.transactions == self.fail_on:
                raise ConnectionError("injected storage failure")
        return super().transact(table, ops)


def test_an_interrupted_bulk_assignment_is_completed_by_its_retry(ctx):
    store = FailingStore(fail_on=4)  # 1 creates the subscription, 2 reserves, 3 the first batch, 4 fails
    subscription(store, quantity=300)
    ctx = replace(ctx, uow=UnitOfWork(store))
    addresses = [f"u{i:03d}@contoso.example" for i in range(250)]
    with pytest.raises(ConnectionError):
        seat_assignment.assign(ctx, "sub_1", addresses, request_id="bulk")
    assert subscription_store.load(store, "sub_1").assigned_count == 250  # reserved: nobody else takes them
    assert len(seats_of(store)) == SEATS_PER_TRANSACTION + 1
    outcome = seat_assignment.assign(ctx, "sub_1", addresses, request_id="bulk")
    assert sorted(outcome.assigned) == addresses
    assert len(seats_of(store)) == 250 == subscription_store.load(store, "sub_1").assigned_count
    drain(ctx, store)
    assert UnitOfWork(store).subscriptions.reservations("sub_1") == []
    assert len({m["to"] for m in queued_mails(store)}) == 250


def test_reconciliation_releases_seats_a_stale_reservation_no_longer_needs(ctx):
    store = FailingStore(fail_on=3)  # reserved, then the first batch fails
    subscription(store, quantity=200)
    ctx = replace(ctx, uow=UnitOfWork(store))
    addresses = [f"r{i:03d}@contoso.example" for i in range(150)]
    with pytest.raises(ConnectionError):
        seat_assignment.assign(ctx, "sub_1", addresses, request_id="bulk")
    # Someone assigns one of the reserved addresses themselves meanwhile.
    seat_assignment.assign(ctx, "sub_1", ["r149@contoso.example"])
    assert subscription_store.load(store, "sub_1").assigned_count == 151
    done = seat_reconciliation.reconcile(ctx.uow, ctx.settings, "sub_1", stale_after=timedelta(0))
    assert done["reservations"] == 1
    drain(ctx, store)  # the reservation's job writes the rest (services/assignment_job.py)
    assert subscription_store.load(store, "sub_1").assigned_count == 150 == len(seats_of(store))


def test_a_fresh_reservation_is_left_to_its_own_request(ctx):
    store = FailingStore(fail_on=3)
    subscription(store, quantity=200)
    ctx = replace(ctx, uow=UnitOfWork(store))
    with pytest.raises(ConnectionError):
        seat_assignment.assign(ctx, "sub_1", [f"r{i:03d}@contoso.example" for i in range(120)], request_id="bulk")
    done = seat_reconciliation.reconcile(ctx.uow, ctx.settings, "sub_1")
    assert done["reservations"] == 0 and len(UnitOfWork(store).subscriptions.reservations("sub_1")) == 1


# --- revoke and reassign ------------------------------------------------------------------------------


def test_revoke_frees_the_seat_and_deletes_both_lookup_rows(store, ctx):
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"])
    seat = UnitOfWork(store).subscriptions.seat("sub_1", "a@contoso.example")
    assert seat is not None
    UnitOfWork(store).subscriptions.bind_seat("sub_1", seat, "tid-1", "oid-a", datetime.now(UTC))
    store.upsert(USER_LICENSES, {"PartitionKey": keys.licenses_of_oid("oid-a"), "RowKey": "sub_1"})
    after = seat_revocation.revoke(ctx, "sub_1", "A@Contoso.example")
    assert after.assigned_count == 0 and seats_of(store) == []
    # The person's row is a tombstone (a license check binding the seat right now cannot write it back).
    assert UnitOfWork(store).lookups.licenses_of_oid("oid-a") == []
    assert store.get(USER_LICENSES, keys.licenses_of_oid("oid-a"), "sub_1")["Revoked"] is True
    assert store.get(USER_LICENSES, keys.licenses_of_address("a@contoso.example"), "sub_1") is None
    with pytest.raises(NotAssigned):
        seat_revocation.revoke(ctx, "sub_1", "a@contoso.example")


def test_reassign_moves_the_seat_in_one_step(store, ctx):
    subscription(store, quantity=1)
    seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"])
    after = seat_revocation.reassign(ctx, "sub_1", "a@contoso.example", "b@contoso.example")
    assert after.assigned_count == 1 and seats_of(store) == ["b@contoso.example"]
    assert store.get(USER_LICENSES, keys.licenses_of_address("a@contoso.example"), "sub_1") is None
    assert store.get(USER_LICENSES, keys.licenses_of_address("b@contoso.example"), "sub_1") is not None
    subscription_store.update(store, "sub_1", lambda s: (replace(s, quantity=2), []))
    seat_assignment.assign(ctx, "sub_1", ["c@contoso.example"])
    with pytest.raises(AlreadyAssigned):
        seat_revocation.reassign(ctx, "sub_1", "b@contoso.example", "c@contoso.example")
    assert seats_of(store) == ["b@contoso.example", "c@contoso.example"]


# --- over quantity -------------------------------------------------------------------------------------


def test_over_quantity_flags_the_newest_seats_first():
    seats = [Seat(f"s{i}@x.example", sequence=i) for i in range(1, 6)]
    flags = over_quantity_flags(seats, 3)
    assert [email for email, over in flags.items() if over] == ["s5@x.example", "s4@x.example"]
    assert not any(over_quantity_flags(seats, 5).values()) and not any(over_quantity_flags(seats, 9).values())
    assert all(over_quantity_flags(seats, 0).values())


def test_lowering_and_raising_the_quantity_flags_and_unflags_seats(store, ctx):
    subscription(store, quantity=5)
    seat_assignment.assign(ctx, "sub_1", [f"a{i}@contoso.example" for i in range(1, 6)])
    subscription_store.update(store, "sub_1", lambda s: (replace(s, quantity=3), []))
    assert apply_quantity(ctx.uow, ctx.settings, "sub_1") == 2
    over = {s.email for s in UnitOfWork(store).subscriptions.seats("sub_1") if s.over_quantity}
    assert over == {"a4@contoso.example", "a5@contoso.example"}
    lookup = store.get(USER_LICENSES, keys.licenses_of_address("a5@contoso.example"), "sub_1")
    assert lookup is not None and lookup["OverQuantity"] is True
    assert [m["template"] for m in queued_mails(store)].count("over_quantity") == 1
    # Revoking one of the seats within the quantity brings the oldest over-quantity seat back.
    seat_revocation.revoke(ctx, "sub_1", "a1@contoso.example")
    over = {s.email for s in UnitOfWork(store).subscriptions.seats("sub_1") if s.over_quantity}
    assert over == {"a5@contoso.example"}
    subscription_store.update(store, "sub_1", lambda s: (replace(s, quantity=10), []))
    assert apply_quantity(ctx.uow, ctx.settings, "sub_1") == 0
    assert not any(s.over_quantity for s in UnitOfWork(store).subscriptions.seats("sub_1"))


def test_over_quantity_across_more_seats_than_one_transaction(store, ctx):
    subscription(store, quantity=250)
    seat_assignment.assign(ctx, "sub_1", [f"u{i:03d}@contoso.example" for i in range(250)])
    subscription_store.update(store, "sub_1", lambda s: (replace(s, quantity=10), []))
    assert apply_quantity(ctx.uow, ctx.settings, "sub_1") == 240
    assert sum(s.over_quantity for s in UnitOfWork(store).subscriptions.seats("sub_1")) == 240


# --- listing ------------------------------------------------------------------------------------------


def test_listing_filters_by_status_and_prefix_and_pages(store, ctx):
    subscription(store, quantity=10)
    seat_assignment.assign(ctx, "sub_1", [f"a{i}@contoso.example" for i in range(5)] + ["zed@contoso.example"])
    seat = UnitOfWork(store).subscriptions.seat("sub_1", "a0@contoso.example")
    assert seat is not None
    UnitOfWork(store).subscriptions.bind_seat("sub_1", seat, "tid-1", "oid-a0", datetime.now(UTC))
    sub = subscription_store.load(store, "sub_1")
    assert sub is not None
    active = seat_listing.list_seats(store, sub, 14, status="active")
    assert [v.email for v in active.seats] == ["a0@contoso.example"]
    assert len(seat_listing.list_seats(store, sub, 14, status="pending").seats) == 5
    assert [v.email for v in seat_listing.list_seats(store, sub, 14, search="Z").seats] == ["zed@contoso.example"]
    first = seat_listing.list_seats(store, sub, 14, limit=4)
    second = seat_listing.list_seats(store, sub, 14, limit=4, continuation=first.continuation)
    assert len(first.seats) == 4 and len(second.seats) == 2 and second.continuation is None
    assert seat_listing.list_seats(store, sub, 14, status="expired").seats == []


# --- the unit of work itself ----------------------------------------------------------------------------


def test_a_conflict_is_retried_on_fresh_state_and_a_persistent_one_gives_up(store):
    subscription(store)
    uow = UnitOfWork(store)
    seen = []

    def decide(current: Subscription) -> Plan[int]:
        seen.append(current.quantity)
        if len(seen) == 1:  # a rival writes between our read and our commit
            subscription_store.update(store, "sub_1", lambda s: (replace(s, quantity=7), []))
        return Plan(current.quantity, PartitionWrites(replace(current, assigned_count=1)))

    assert uow.change("sub_1", decide) == 7
    assert seen == [5, 7]

    def always_stale(current: Subscription) -> Plan[None]:
        return Plan(None, PartitionWrites(replace(current, etag='W/"stale"')))

    with pytest.raises(ConcurrencyConflict):
        uow.change("sub_1", always_stale, attempts=3)


# --- the bootstrap wires the in-memory storage for the entry points too ---------------------------------


def test_the_reservation_timer_runs_on_storage_the_bootstrap_wired(monkeypatch):
    from handlers.seat_timers import reconcile_seat_reservations
    from services import bootstrap

    for name, value in local_values(AzureWebJobsStorage="UseDevelopmentStorage=true").items():
        monkeypatch.setenv(name, value)
    store = FailingStore(fail_on=3)  # reserved, then the first batch fails
    subscription(store, quantity=200)
    bootstrap.reset()
    bootstrap.use_storage(store)
    try:
        ctx = Context(bootstrap.unit_of_work(), bootstrap.settings(), ADMIN)
        with pytest.raises(ConnectionError):
            seat_assignment.assign(ctx, "sub_1", [f"r{i:03d}@contoso.example" for i in range(120)], request_id="b")
        # Make the reservation stale, as if its request died ten minutes ago.
        reservation = ctx.uow.subscriptions.reservation("sub_1", "b")
        row = store.get(SUBSCRIPTIONS, "sub_1", keys.reservation_row("b"))
        assert row is not None
        store.upsert(SUBSCRIPTIONS, {**row, "CreatedAt": reservation.created_at - timedelta(minutes=11)})
        reconcile_seat_reservations(None)
        drain(ctx, store)  # the reservation's job writes the rest (services/assignment_job.py)
        assert len(seats_of(store)) == 120 and ctx.uow.subscriptions.reservations("sub_1") == []
    finally:
        bootstrap.reset()


# --- addresses that are valid in Microsoft 365 but not as raw Table Storage keys ---------------------------

GUEST = "guest_fabrikam.example#ext#@contoso.onmicrosoft.com"


# (A backslash is no address character (RFC 5321 dot-atom): the one grammar refuses it before any key is
# built; its key encoding is covered in tests/unit/test_address_grammar.py.)
@pytest.mark.parametrize("address", [GUEST, "a/b@contoso.example", "a?b@contoso.example", "a%b@contoso.example"])
def test_addresses_with_characters_azure_forbids_in_keys_round_trip(store, ctx, address):
    # The in-memory storage refuses what Azure refuses (Azurite would accept these keys).
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", [address])
    assert seats_of(store) == [address]
    assert UnitOfWork(store).lookups.licenses_of_address(address)[0].email == address
    sub = subscription_store.load(store, "sub_1")
    assert sub is not None
    listed = seat_listing.list_seats(store, sub, 14, search=address[:6])
    assert [v.email for v in listed.seats] == [address]
    seat_revocation.revoke(ctx, "sub_1", address)
    assert seats_of(store) == [] and UnitOfWork(store).lookups.licenses_of_address(address) == []


def test_a_guest_binds_on_first_license_check(store, ctx):
    from services.identity import Principal
    from services.license_check import Code, LicenseChecker
    from services.subscription_cache import SubscriptionCache

    subscription(store)
    seat_assignment.assign(ctx, "sub_1", [GUEST])
    principal = Principal(tid="tid-1", oid="oid/guest#1", scopes=frozenset({"access_as_user"}), version="2.0",
                          preferred_username=GUEST.upper())
    decision = LicenseChecker(SubscriptionCache(ttl=0), 14).check(store, principal)
    assert decision.code is Code.VALID
    assert UnitOfWork(store).subscriptions.seat("sub_1", GUEST).bound_oid == "oid/guest#1"
    assert LicenseChecker(SubscriptionCache(ttl=0), 14).check(store, principal).code is Code.VALID


def test_a_long_bulk_list_spreads_over_rows_within_azure_limits(store, ctx):
    # 6,000 addresses of about 200 characters: 1.2 M characters, far beyond one 1 MiB entity. The
    # in-memory storage refuses entities over 1 MiB, properties over 32K characters and batches over 4 MiB.
    subscription(store, quantity=10_000)
    # (Long and valid: a local part holds at most 64 characters, so the length is in the domain.)
    addresses = [f"{i:05d}.{'x' * 58}@{'d' * 63}.{'e' * 50}.contoso.example" for i in range(6_000)]
    store_rows = store._rows(SUBSCRIPTIONS)
    # A big list answers at once (202): the reservation stays open until its job has written the seats.
    outcome = seat_assignment.assign(ctx, "sub_1", addresses, request_id="long")
    assert outcome.background and outcome.subscription.assigned_count == 6_000
    parts = [k for k in store_rows if k[1].startswith(keys.RESERVATION_PART_PREFIX)]
    assert len(parts) >= 2
    [reservation] = UnitOfWork(store).subscriptions.reservations("sub_1")
    assert reservation.addresses == tuple(addresses)
    drain(ctx, store)
    assert len(seats_of(store)) == 6_000 == subscription_store.load(store, "sub_1").assigned_count
    assert not [k for k in store_rows if k[1].startswith(("reservation", keys.RESERVATION_PART_PREFIX))]


def test_a_list_too_long_for_one_assignment_is_refused_up_front(store, ctx):
    subscription(store, quantity=10_000)
    addresses = [f"{i:05d}.{'x' * 58}@{'d' * 63}.{'e' * 63}.{'f' * 49}.example" for i in range(8_000)]  # 250 each
    with pytest.raises(ListTooLarge):
        seat_assignment.assign(ctx, "sub_1", addresses)
    assert seats_of(store) == [] and subscription_store.load(store, "sub_1").assigned_count == 0
