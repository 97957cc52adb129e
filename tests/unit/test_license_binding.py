"""The license check against the in-memory storage: how many storage calls a first check and the steady
state cost, and that binding stays race-free with one write fewer (PRODUCT.md sections 3 and 4).

Seats are assigned through the real assignment service, so the lookup rows carry what it writes (the
seat's ETag); races are staged by a storage that runs the rival's step right after a given call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters import keys
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES
from services import seat_assignment, seat_revocation, subscription_store
from services.audit import Actor
from services.identity import Principal
from services.license_check import Code, LicenseChecker
from services.seat_change import Context
from services.settings import load_settings
from services.subscription import Subscription
from services.subscription_cache import SubscriptionCache
from services.unit_of_work import UnitOfWork
from tests.factories import local_values

TENANT = "11111111-1111-4111-8111-111111111111"
OTHER_TENANT = "22222222-2222-4222-8222-222222222222"
ADMIN = Actor(TENANT, "oid-admin", "admin@contoso.example", "Admin")
ADDRESS = "alice@contoso.example"


class RivalStorage(InMemoryStorage):
    """Runs `rival()` once, right after the first call that `when(method, args)` picks."""

    def __init__(self) -> None:
        super().__init__()
        self.when: Callable[[str, tuple[Any, ...]], bool] | None = None
        self.rival: Callable[[], None] | None = None

    def _after(self, method: str, args: tuple[Any, ...]) -> None:
        if self.when is not None and self.rival is not None and self.when(method, args):
            rival, self.rival = self.rival, None
            rival()

    def merge(self, table: str, entity: dict[str, Any], etag: str | None = None) -> bool:
        done = super().merge(table, entity, etag)
        self._after("merge", (table, entity))
        return done


@pytest.fixture
def store() -> RivalStorage:
    return RivalStorage()


@pytest.fixture
def ctx(store: RivalStorage) -> Context:
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    subscription_store.create(store, Subscription(
        id="sub_1", kind="organisation", status="active", quantity=5, assigned_count=0, tenant_id=TENANT,
        owner_tid=TENANT, owner_oid="oid-owner", owner_email="owner@contoso.example", owner_name="Contoso",
        language="en", stripe_customer_id="cus_1", checkout_session_id="cs_1",
        current_period_end=datetime.now(UTC) + timedelta(days=30)))
    return Context(UnitOfWork(store), settings, ADMIN)


def person(oid: str, address: str = ADDRESS, tid: str = TENANT) -> Principal:
    return Principal(tid=tid, oid=oid, scopes=frozenset({"access_as_user"}), version="2.0",
                     preferred_username=address)


def checker() -> LicenseChecker:
    return LicenseChecker(SubscriptionCache(), grace_days=14)


def calls(store: InMemoryStorage, check: Callable[[], Any]) -> tuple[Any, int]:
    before = store.calls
    result = check()
    return result, store.calls - before


def seat_row(store: InMemoryStorage) -> Any:
    return store.get(SUBSCRIPTIONS, "sub_1", keys.seat_row(ADDRESS))


def person_row(store: InMemoryStorage, oid: str) -> Any:
    return store.get(USER_LICENSES, keys.licenses_of_oid(oid), "sub_1")


def test_a_first_check_binds_the_seat_in_four_storage_calls_and_the_steady_state_in_one(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    licenses = checker()
    licenses.cache.get(store, "sub_1")  # the subscription is cached per instance: not counted here

    decision, first = calls(store, lambda: licenses.check(store, person("oid-a")))
    assert decision.code is Code.VALID and first <= 4
    assert seat_row(store)["BoundOid"] == "oid-a"
    assert person_row(store, "oid-a")["AddressRow"] is True

    decision, steady = calls(store, lambda: licenses.check(store, person("oid-a")))
    assert decision.code is Code.VALID and steady == 1


def test_a_stale_seat_etag_costs_one_read_and_still_binds(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    # The seat changes without its lookup row (as if that write were lost): the row's ETag is stale.
    store.merge(SUBSCRIPTIONS, {"PartitionKey": "sub_1", "RowKey": keys.seat_row(ADDRESS), "AssignedBy": "x"})
    licenses = checker()
    licenses.cache.get(store, "sub_1")
    decision, first = calls(store, lambda: licenses.check(store, person("oid-a")))
    assert decision.code is Code.VALID and first == 6  # + the seat read and the retried bind
    assert seat_row(store)["BoundOid"] == "oid-a"


def test_two_people_claiming_one_address_bind_it_once(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    licenses = checker()
    assert licenses.check(store, person("oid-a")).code is Code.VALID
    # Another person of the tenant whose sign-in name is the same address: the seat is taken.
    assert licenses.check(store, person("oid-b")).code is Code.NO_LICENSE
    assert person_row(store, "oid-b") is None and seat_row(store)["BoundOid"] == "oid-a"
    assert licenses.check(store, person("oid-a")).code is Code.VALID


def test_a_person_of_another_tenant_never_binds(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    assert checker().check(store, person("oid-x", tid=OTHER_TENANT)).code is Code.NO_LICENSE
    assert seat_row(store)["BoundOid"] == "" and person_row(store, "oid-x") is None


def test_a_revoke_between_binding_the_seat_and_writing_the_row_leaves_no_license(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    # Right after the check bound the seat, an admin revokes it (the revoke sees it bound).
    store.when = lambda method, args: args[0] == SUBSCRIPTIONS and "BoundOid" in args[1]
    store.rival = lambda: seat_revocation.revoke(ctx, "sub_1", ADDRESS)
    assert checker().check(store, person("oid-a")).code is Code.NO_LICENSE
    assert seat_row(store) is None
    assert UnitOfWork(store).lookups.licenses_of_oid("oid-a") == []  # the tombstone stayed
    assert checker().check(store, person("oid-a")).code is Code.NO_LICENSE


def test_a_revoke_before_the_seat_is_bound_leaves_no_license(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    licenses = checker()
    licenses.cache.get(store, "sub_1")
    # The check has read the address row; the seat goes before it binds it.
    store.when = lambda method, args: False
    original = store.query

    def query(table: str, **kwargs: Any) -> Any:
        rows = list(original(table, **kwargs))
        if kwargs.get("partition_key") == keys.licenses_of_address(ADDRESS):
            seat_revocation.revoke(ctx, "sub_1", ADDRESS)
        return iter(rows)

    store.query = query
    assert licenses.check(store, person("oid-a")).code is Code.NO_LICENSE
    assert person_row(store, "oid-a") is None


def test_a_check_that_stopped_after_binding_the_seat_is_completed_by_the_next(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    lookup = UnitOfWork(store).lookups.licenses_of_address(ADDRESS)[0]
    UnitOfWork(store).subscriptions.bind_seat_at("sub_1", ADDRESS, lookup.seat_etag, TENANT, "oid-a",
                                                 datetime.now(UTC))  # ... and the process died
    assert checker().check(store, person("oid-a")).code is Code.VALID
    assert UnitOfWork(store).lookups.licenses_of_oid("oid-a")[0].subscription_id == "sub_1"


def test_the_next_days_last_seen_write_removes_the_address_row(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    licenses = checker()
    today = datetime.now(UTC)
    assert licenses.check(store, person("oid-a"), now=today).code is Code.VALID
    assert store.get(USER_LICENSES, keys.licenses_of_address(ADDRESS), "sub_1") is not None  # left over
    licenses.cache.get(store, "sub_1")
    decision, next_day = calls(store, lambda: licenses.check(store, person("oid-a"), now=today + timedelta(days=1)))
    assert decision.code is Code.VALID and next_day == 4  # read, seat, address row, person's row
    assert store.get(USER_LICENSES, keys.licenses_of_address(ADDRESS), "sub_1") is None
    assert person_row(store, "oid-a")["AddressRow"] is False
    assert seat_row(store)["LastSeenOn"] == (today + timedelta(days=1)).date().isoformat()
    _, later = calls(store, lambda: licenses.check(store, person("oid-a"), now=today + timedelta(days=1)))
    assert later == 1


def test_assigning_again_after_a_revoke_replaces_the_tombstone(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    licenses = checker()
    assert licenses.check(store, person("oid-a")).code is Code.VALID
    seat_revocation.revoke(ctx, "sub_1", ADDRESS)
    licenses.cache.forget()
    assert licenses.check(store, person("oid-a")).code is Code.NO_LICENSE
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    assert licenses.check(store, person("oid-a")).code is Code.VALID
    assert person_row(store, "oid-a").get("Revoked") is None


def test_an_old_tombstone_is_removed_by_the_persons_next_check(store, ctx):
    seat_assignment.assign(ctx, "sub_1", [ADDRESS])
    licenses = checker()
    assert licenses.check(store, person("oid-a")).code is Code.VALID
    seat_revocation.revoke(ctx, "sub_1", ADDRESS)
    assert person_row(store, "oid-a") is not None
    licenses.check(store, person("oid-a"), now=datetime.now(UTC) + timedelta(hours=1))
    assert person_row(store, "oid-a") is not None  # still young: a binding may be in flight
    licenses.check(store, person("oid-a"), now=datetime.now(UTC) + timedelta(days=2))
    assert person_row(store, "oid-a") is None
