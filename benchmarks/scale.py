"""Work that does not grow with the customer base: the license check and the timers at two sizes.

    .venv/bin/python benchmarks/scale.py [--users 100000] [--subscriptions 1000] [--checks 400]

Two worlds in one run, each in its own Azurite (in memory): 1,000 users over 10 subscriptions, and
--users over --subscriptions (100,000 over 1,000 by default). Each is seeded directly, as the app would
have written it: the subscription entity and its seats (bound to their users) in transactions of 100,
and each user's lookup row (every user has a partition of their own, so those go one by one, many at a
time), plus the index the timers read (adapters/subscription_index.py), as a first daily run leaves it.

Then, the same in both worlds:
- license check p50/p99: steady-state checks of random users (LicenseChecker against Azurite, the
  subscription cache warm, as on an instance that has been serving for a while);
- one day's work for the timers: five subscriptions get an assignment, one a revoke, one a bulk
  assignment stalls; storage calls of the next daily lookup reconciliation and of the reservation
  cleanup, counted by a proxy in front of Azurite (HTTP requests, so a query's pages count);
- what the index replaces: listing every subscription for the daily comparison with Stripe through the
  index against the old scan of the Subscriptions table, and one subscription's old lookup repair (a
  scan of the whole UserLicenses table) against the new one.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from adapters import keys  # noqa: E402
from adapters.lookup_repository import LookupRepository  # noqa: E402
from adapters.subscription_index import (  # noqa: E402
    LISTED,
    RESERVATIONS_LISTED,
    STATE,
    SUBSCRIPTIONS_LIST,
    SubscriptionIndex,
)
from adapters.subscription_repository import PartitionWrites, seat_entity, subscription_entity  # noqa: E402
from adapters.table_storage import (  # noqa: E402
    MAX_TRANSACTION_OPERATIONS,
    SUBSCRIPTION_INDEX,
    SUBSCRIPTIONS,
    USER_LICENSES,
    Op,
    Storage,
    StorageUnavailable,
    hot_path_retry,
)
from benchmarks.license_check import CountingProxy, percentile  # noqa: E402
from local_host.azurite import connection_string, start_azurite  # noqa: E402
from services import seat_assignment, seat_reconciliation, seat_revocation  # noqa: E402
from services.audit import Actor  # noqa: E402
from services.identity import Principal  # noqa: E402
from services.license_check import LicenseChecker  # noqa: E402
from services.seat import Reservation, Seat  # noqa: E402
from services.seat_change import Context  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.subscription import Subscription  # noqa: E402
from services.subscription_cache import SubscriptionCache  # noqa: E402
from services.unit_of_work import UnitOfWork  # noqa: E402
from tests.factories import local_values  # noqa: E402

TENANT = "11111111-1111-4111-8111-111111111111"
ADMIN = Actor(TENANT, "oid-admin", "admin@contoso.example", "Admin")
SEEDED_AT = datetime.now(UTC) - timedelta(days=2)
CHANGED_SUBSCRIPTIONS = 5


def oid_of(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def address_of(n: int) -> str:
    return f"user{n}@contoso.example"


def subscription_id(n: int) -> str:
    return f"sub_scale{n:05d}"


class World:
    """One Azurite with `users` users over `subscriptions` subscriptions, its table port behind a proxy."""

    def __init__(self, users: int, subscriptions: int) -> None:
        self.users, self.subscriptions = users, subscriptions
        self.per_subscription = users // subscriptions
        self.azurite = start_azurite(in_memory=True)
        self.proxy = CountingProxy(self.azurite.table_port)
        # The timers' storage goes through the counting proxy; seeding and the license checks do not
        # (the proxy is a Python relay: it would add its own latency).
        counted = connection_string(self.azurite.blob_port, self.azurite.queue_port, self.proxy.port)
        self.settings = load_settings(local_values(AzureWebJobsStorage=counted))
        self.storage = Storage(self.settings)
        self.storage.ensure_created()
        direct = load_settings(local_values(AzureWebJobsStorage=self.azurite.connection_string))
        self.direct = Storage(direct)
        self.hot = Storage(direct, retry=hot_path_retry(direct.storage_hot_path_budget_seconds))

    def stop(self) -> None:
        self.azurite.stop()

    def calls(self) -> int:
        return sum(self.proxy.snapshot().values())

    # --- seeding ---------------------------------------------------------------------------------

    def seed(self) -> float:
        started = time.perf_counter()
        today = datetime.now(UTC).date().isoformat()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(self._seed_subscription, range(self.subscriptions)))
        # One row per user in a partition of its own: one by one, from a few processes at once.
        workers = max(2, os.cpu_count() or 2)
        step = -(-self.users // workers)
        with ProcessPoolExecutor(workers) as processes:
            list(processes.map(seed_lookups, [self.azurite.connection_string] * workers,
                               [range(start, min(start + step, self.users)) for start in range(0, self.users, step)],
                               [self.per_subscription] * workers, [today] * workers))
        index = SubscriptionIndex(self.direct)
        ids = [subscription_id(n) for n in range(self.subscriptions)]
        for start in range(0, len(ids), MAX_TRANSACTION_OPERATIONS):
            self.direct.transact(SUBSCRIPTION_INDEX, [Op("upsert", {"PartitionKey": SUBSCRIPTIONS_LIST, "RowKey": sid})
                                                      for sid in ids[start:start + MAX_TRANSACTION_OPERATIONS]])
        for marker in (LISTED, RESERVATIONS_LISTED):
            self.direct.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": STATE, "RowKey": marker})
        index.set_reconciled_until(datetime.now(UTC).date())  # as the last daily run left it
        return time.perf_counter() - started

    def _seed_subscription(self, n: int) -> None:
        sid = subscription_id(n)
        subscription = Subscription(
            id=sid, kind="organisation", status="active", quantity=self.per_subscription + 200,
            assigned_count=self.per_subscription, tenant_id=TENANT, owner_tid=TENANT, owner_oid=oid_of(10**11 + n),
            owner_email=f"owner{n}@contoso.example", owner_name=f"Org {n}", language="en", stripe_customer_id="",
            checkout_session_id=f"cs_{sid}", current_period_end=datetime.now(UTC) + timedelta(days=20),
            seat_sequence=self.per_subscription)
        entities = [subscription_entity(subscription)]
        for i in range(self.per_subscription):
            user = n * self.per_subscription + i
            seat = Seat(address_of(user), sequence=i + 1, assigned_at=SEEDED_AT, assigned_by="seed", bound_tid=TENANT,
                        bound_oid=oid_of(user), bound_at=SEEDED_AT, last_seen_on=SEEDED_AT.date().isoformat())
            entities.append({**seat_entity(sid, seat), "ChangedAt": SEEDED_AT})
        for start in range(0, len(entities), MAX_TRANSACTION_OPERATIONS):
            batch = entities[start:start + MAX_TRANSACTION_OPERATIONS]
            again(lambda batch=batch: self.direct.transact(SUBSCRIPTIONS, [Op("upsert", e) for e in batch]))


    # --- measures ---------------------------------------------------------------------------------

    def license_checks(self, count: int) -> dict[str, float]:
        """Steady-state checks of random users, next to the raw reads Azurite answers for the same rows."""
        checker = LicenseChecker(SubscriptionCache(), grace_days=14)
        rng = random.Random(7)
        sample = [rng.randrange(self.users) for _ in range(count)]
        for user in {s // self.per_subscription * self.per_subscription for s in sample}:
            checker.check(self.hot, self.principal(user))  # warm the subscription cache
        checks, queries, reads = [], [], []
        table = TableServiceClient.from_connection_string(self.azurite.connection_string).get_table_client(
            USER_LICENSES)
        for user in sample:  # in turns: each sees the same machine
            started = time.perf_counter()
            decision = checker.check(self.hot, self.principal(user))
            checks.append((time.perf_counter() - started) * 1000)
            assert decision.valid, decision
            partition = keys.licenses_of_oid(oid_of(user))
            started = time.perf_counter()
            list(table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))
            queries.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            table.get_entity(partition, subscription_id(user // self.per_subscription))
            reads.append((time.perf_counter() - started) * 1000)
        # Storage calls per check, counted through the proxy.
        counted = LicenseChecker(SubscriptionCache(), grace_days=14)
        for user in sample[:50]:
            counted.check(self.storage, self.principal(user))
        _, (calls, _) = self.counted(lambda: [counted.check(self.storage, self.principal(user))
                                               for user in sample[:50]])
        return {"p50": percentile(checks, 0.5), "p99": percentile(checks, 0.99), "query_p50": percentile(queries, 0.5),
                "read_p50": percentile(reads, 0.5), "calls": calls / 50}

    @staticmethod
    def principal(user: int) -> Principal:
        return Principal(tid=TENANT, oid=oid_of(user), scopes=frozenset({"access_as_user"}), version="2.0",
                         preferred_username=address_of(user))

    def one_day(self) -> None:
        """What happens in a day: a few assignments, a revoke, a bulk assignment that stalls."""
        uow = UnitOfWork(self.storage)
        ctx = Context(uow, self.settings, ADMIN)
        for n in range(CHANGED_SUBSCRIPTIONS):
            seat_assignment.assign(ctx, subscription_id(n), [f"new{n}@contoso.example"])
        seat_revocation.revoke(ctx, subscription_id(CHANGED_SUBSCRIPTIONS), address_of(
            CHANGED_SUBSCRIPTIONS * self.per_subscription))
        # A bulk assignment whose request died after reserving (as services/seat_assignment.py leaves it).
        sid = subscription_id(CHANGED_SUBSCRIPTIONS + 1)
        current = uow.load(sid)
        reservation = Reservation("stalled", tuple(f"bulk{i}@contoso.example" for i in range(3)),
                                  current.seat_sequence + 1, datetime.now(UTC) - timedelta(hours=1), ADMIN)
        uow.subscriptions.commit(PartitionWrites(replace(current, assigned_count=current.assigned_count + 3,
                                                         seat_sequence=current.seat_sequence + 3),
                                                 create=[reservation]))

    def counted(self, work: Any) -> tuple[Any, tuple[int, float]]:
        """What `work` returns, and (storage calls, milliseconds) it took."""
        before = self.calls()
        started = time.perf_counter()
        result = work()
        return result, (self.calls() - before, (time.perf_counter() - started) * 1000)


def again(write: Any, attempts: int = 5) -> None:
    """Seeding writes are upserts: a connection Azurite drops under the load is simply tried again."""
    for attempt in range(attempts):
        try:
            write()
            return
        except StorageUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def seed_lookups(connection: str, users: range, per_subscription: int, today: str) -> None:
    """The lookup rows of `users` (in a worker process)."""
    storage = Storage(load_settings(local_values(AzureWebJobsStorage=connection)))

    def one(user: int) -> None:
        again(lambda: storage.upsert(USER_LICENSES, {
            "PartitionKey": keys.licenses_of_oid(oid_of(user)), "RowKey": subscription_id(user // per_subscription),
            "Email": address_of(user), "TenantId": TENANT, "OverQuantity": False, "LastSeenOn": today}))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, users, chunksize=64))


def measure(world: World, checks: int) -> dict[str, Any]:
    seeded = world.seed()
    result: dict[str, Any] = {"seeded_s": seeded}
    result["check"] = world.license_checks(checks)
    world.one_day()
    uow = UnitOfWork(world.storage)
    completed, result["reservation"] = world.counted(
        lambda: seat_reconciliation.complete_stale_reservations(uow, world.settings,
                                                                now=datetime.now(UTC) + timedelta(minutes=11)))
    result["reservations_completed"] = completed
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    run, result["lookups"] = world.counted(
        lambda: seat_reconciliation.reconcile_changed(uow, world.settings, now=tomorrow))
    result["lookup_subscriptions"] = len(run.subscriptions)
    ids, result["list_index"] = world.counted(lambda: list(SubscriptionIndex(world.storage).subscription_ids()))
    scanned, result["list_scan"] = world.counted(lambda: list(uow.subscriptions._scanned_ids()))
    assert len(ids) == len(scanned) == world.subscriptions
    sid = subscription_id(CHANGED_SUBSCRIPTIONS + 2)
    _, result["old_repair"] = world.counted(lambda: LookupRepository(world.storage).licenses_in(sid))
    since = datetime.now(UTC) - timedelta(days=1)
    _, result["new_repair"] = world.counted(lambda: seat_reconciliation.repair_lookups_of(uow, sid, since))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--subscriptions", type=int, default=1_000)
    parser.add_argument("--checks", type=int, default=400)
    args = parser.parse_args()

    sizes = [(1_000, 10), (args.users, args.subscriptions)]
    results = []
    for users, subscriptions in sizes:
        world = World(users, subscriptions)
        try:
            results.append(measure(world, args.checks))
        finally:
            world.stop()

    print()
    print("Work that must not grow with the customer base (Azurite in memory, storage calls = HTTP requests)\n")
    header = " | ".join(f"{users:,} users / {subs:,} subs".rjust(28) for users, subs in sizes)
    print(f"{'':48} | {header}")
    print("-" * (51 + 31 * len(sizes)))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:48} | " + " | ".join(v.rjust(28) for v in values))

    def work(key: str) -> list[str]:
        return [f"{r[key][0]} calls, {r[key][1]:.0f} ms" for r in results]

    row("seeding (s)", [f"{r['seeded_s']:.1f}" for r in results])
    row(f"license check p50 / p99 (ms), {args.checks} checks",
        [f"{r['check']['p50']:.2f} / {r['check']['p99']:.2f}" for r in results])
    row("  storage calls per check", [f"{r['check']['calls']:.2f}" for r in results])
    row("  raw Azurite query of one partition, p50 (ms)", [f"{r['check']['query_p50']:.2f}" for r in results])
    row("  raw Azurite point read, p50 (ms)", [f"{r['check']['read_p50']:.2f}" for r in results])
    row("  check p50 / raw partition query p50",
        [f"{r['check']['p50'] / r['check']['query_p50']:.2f}" for r in results])
    row("daily lookup reconciliation: subscriptions", [str(r["lookup_subscriptions"]) for r in results])
    row("  storage calls, time", work("lookups"))
    row("reservation cleanup: completed", [str(r["reservations_completed"]) for r in results])
    row("  storage calls, time", work("reservation"))
    row("list every subscription (Stripe comparison)", work("list_index"))
    row("  ... the old scan of the Subscriptions table", work("list_scan"))
    row("one subscription's lookup repair", work("new_repair"))
    row("  ... the old scan of the UserLicenses table", work("old_repair"))
    small, large = results
    print()
    print(f"large / small: license check p50 {large['check']['p50'] / small['check']['p50']:.2f}x, a raw Azurite "
          f"partition query {large['check']['query_p50'] / small['check']['query_p50']:.2f}x (Azurite scans the "
          f"whole table for a query; Azure reads one partition), storage calls per check "
          f"{large['check']['calls']:.2f} / {small['check']['calls']:.2f}")
    print(f"daily lookup reconciliation: {large['lookups'][0]} / {small['lookups'][0]} storage calls; reservation "
          f"cleanup: {large['reservation'][0]} / {small['reservation'][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
