"""Where the timers find their work without scanning partitions (PRODUCT.md section 4).

Table SubscriptionIndex, one partition per list:

    `subscription`  row = subscription id                 every subscription: the daily comparison with
                                                          Stripe lists them here, never by reading the
                                                          Subscriptions table (its seats are most of it)
    `changed`       row = `<YYYY-MM-DD>|<subscription>`   partitions changed that day (UTC): the daily
                                                          lookup reconciliation visits only these
    `reservation`   row = `<subscription>|<request id>`   reservations not closed: the cleanup timer
    `merge`         row = `<subscription>|<merge id>`     merges still running: the resume timer
    `state`         row = `subscriptions-listed`          the `subscription` list is complete
                    row = `reservations-listed`           the `reservation` list is complete
                    row = `merges-listed`                 the `merge` list is complete
                    row = `lookups-reconciled`            `Day`: the first day not reconciled yet

`SubscriptionRepository.commit` writes the rows, so every partition change keeps them (not each service):
a row is written *before* the commit it announces, so a change that committed is always listed, and a
listed change that never committed only costs a timer one look. `changed` is written once per
subscription, day and process.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from adapters import keys
from adapters.table_storage import MAX_TRANSACTION_OPERATIONS, SUBSCRIPTION_INDEX, Op, TableStore

SUBSCRIPTIONS_LIST = "subscription"
CHANGED = "changed"
RESERVATIONS = "reservation"
STATE = "state"
LISTED = "subscriptions-listed"
LOOKUPS_RECONCILED = "lookups-reconciled"
RESERVATIONS_LISTED = "reservations-listed"
MERGES = "merge"
MERGES_LISTED = "merges-listed"
# A listed reservation or merge that is not there is taken off the list only when it was listed this
# long ago: its commit may still be on the way.
UNLIST_AFTER = timedelta(minutes=10)

# Per storage, the (day, subscription) pairs this process has listed as changed already.
_changed_memo: weakref.WeakKeyDictionary[Any, set[tuple[str, str]]] = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()
_MEMO_LIMIT = 100_000


@dataclass(frozen=True)
class OpenReservation:
    subscription_id: str
    request_id: str
    listed_at: datetime


def utc_now() -> datetime:
    """The time the storage adapters stamp rows and list changes with (tests move it)."""
    return datetime.now(UTC)


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


class SubscriptionIndex:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    # --- written by SubscriptionRepository.commit ------------------------------------------------

    def list_subscription(self, subscription_id: str) -> None:
        self.store.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": SUBSCRIPTIONS_LIST, "RowKey": subscription_id})

    def changed(self, subscription_id: str, at: datetime | None = None) -> None:
        """List the subscription as changed on the day of `at` (once per day and process)."""
        day = day_of(at or utc_now())
        seen = self._memo()
        if seen is not None and (day, subscription_id) in seen:
            return
        self.store.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": CHANGED, "RowKey": _changed_key(day, subscription_id)})
        if seen is not None:
            with _memo_lock:
                if len(seen) > _MEMO_LIMIT:
                    seen.clear()
                seen.add((day, subscription_id))

    def reservation_opened(self, subscription_id: str, request_id: str, at: datetime) -> None:
        self.store.upsert(SUBSCRIPTION_INDEX, {
            "PartitionKey": RESERVATIONS, "RowKey": _reservation_key(subscription_id, request_id),
            "SubscriptionId": subscription_id, "RequestId": request_id, "ListedAt": at})

    def reservation_closed(self, subscription_id: str, request_id: str) -> None:
        self.store.delete(SUBSCRIPTION_INDEX, RESERVATIONS, _reservation_key(subscription_id, request_id))

    # --- read by the timers ----------------------------------------------------------------------

    def subscription_ids(self) -> Iterator[str]:
        for row in self.store.query(SUBSCRIPTION_INDEX, partition_key=SUBSCRIPTIONS_LIST, select=["RowKey"]):
            yield row["RowKey"]

    def is_complete(self) -> bool:
        """Whether every subscription is listed (false until `mark_complete` after a one-time backfill:
        subscriptions created before the index existed are not in it)."""
        return self.store.get(SUBSCRIPTION_INDEX, STATE, LISTED) is not None

    def backfill(self, subscription_ids: Iterable[str]) -> int:
        """List these subscriptions (100 to a transaction) and mark the list complete; returns how many."""
        count = 0
        batch: list[Op] = []
        for subscription_id in subscription_ids:
            batch.append(Op("upsert", {"PartitionKey": SUBSCRIPTIONS_LIST, "RowKey": subscription_id}))
            count += 1
            if len(batch) == MAX_TRANSACTION_OPERATIONS:
                self.store.transact(SUBSCRIPTION_INDEX, batch)
                batch = []
        self.store.transact(SUBSCRIPTION_INDEX, batch)
        self.store.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": STATE, "RowKey": LISTED})
        return count

    def reservations_complete(self) -> bool:
        """Whether every open reservation is listed (see `is_complete`)."""
        return self.store.get(SUBSCRIPTION_INDEX, STATE, RESERVATIONS_LISTED) is not None

    def backfill_reservations(self, reservations: Iterable[tuple[str, str, datetime]]) -> None:
        """List these (subscription id, request id, created at) and mark the list complete."""
        for subscription_id, request_id, at in reservations:
            self.reservation_opened(subscription_id, request_id, at)
        self.store.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": STATE, "RowKey": RESERVATIONS_LISTED})

    def merge_opened(self, subscription_id: str, merge_id: str, at: datetime) -> None:
        self.store.upsert(SUBSCRIPTION_INDEX, {
            "PartitionKey": MERGES, "RowKey": _reservation_key(subscription_id, merge_id),
            "SubscriptionId": subscription_id, "MergeId": merge_id, "ListedAt": at})

    def merge_closed(self, subscription_id: str, merge_id: str) -> None:
        self.store.delete(SUBSCRIPTION_INDEX, MERGES, _reservation_key(subscription_id, merge_id))

    def open_merges(self) -> list[tuple[str, str, datetime]]:
        """(subscription id, merge id, listed at) of the merges listed as running."""
        out = []
        for row in self.store.query(SUBSCRIPTION_INDEX, partition_key=MERGES):
            at = row.get("ListedAt")
            out.append((row["SubscriptionId"], row["MergeId"], at if isinstance(at, datetime) else utc_now()))
        return out

    def merges_complete(self) -> bool:
        return self.store.get(SUBSCRIPTION_INDEX, STATE, MERGES_LISTED) is not None

    def backfill_merges(self, merges: Iterable[tuple[str, str]]) -> None:
        """List these (subscription id, merge id), running now, and mark the list complete."""
        at = utc_now()
        for subscription_id, merge_id in merges:
            self.merge_opened(subscription_id, merge_id, at)
        self.store.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": STATE, "RowKey": MERGES_LISTED})

    def open_reservations(self) -> list[OpenReservation]:
        out = []
        for row in self.store.query(SUBSCRIPTION_INDEX, partition_key=RESERVATIONS):
            at = row.get("ListedAt")
            out.append(OpenReservation(row["SubscriptionId"], row["RequestId"],
                                       at if isinstance(at, datetime) else utc_now()))
        return out

    def changed_before(self, day: str) -> list[tuple[str, str]]:
        """(day, subscription id) of every change listed on days before `day` (YYYY-MM-DD), oldest first."""
        rows = self.store.query(SUBSCRIPTION_INDEX, partition_key=CHANGED, row_below=day, select=["RowKey"])
        out = []
        for row in rows:
            listed_day, _, subscription_id = row["RowKey"].partition("|")
            out.append((listed_day, keys.decode(subscription_id)))
        return out

    def forget_changes(self, changes: Iterable[tuple[str, str]]) -> None:
        """Remove listed changes that were reconciled (100 to a transaction)."""
        keys_ = [_changed_key(day, subscription_id) for day, subscription_id in changes]
        for start in range(0, len(keys_), MAX_TRANSACTION_OPERATIONS):
            self.store.transact(SUBSCRIPTION_INDEX, [Op("delete", {"PartitionKey": CHANGED, "RowKey": key})
                                                     for key in keys_[start:start + MAX_TRANSACTION_OPERATIONS]])

    def reconciled_until(self) -> date | None:
        """The first day whose changes the lookup reconciliation has not done (None: it never ran)."""
        row = self.store.get(SUBSCRIPTION_INDEX, STATE, LOOKUPS_RECONCILED)
        return date.fromisoformat(row["Day"]) if row is not None and row.get("Day") else None

    def set_reconciled_until(self, day: date) -> None:
        self.store.upsert(SUBSCRIPTION_INDEX, {"PartitionKey": STATE, "RowKey": LOOKUPS_RECONCILED,
                                               "Day": day.isoformat()})

    def _memo(self) -> set[tuple[str, str]] | None:
        try:
            with _memo_lock:
                return _changed_memo.setdefault(self.store, set())
        except TypeError:  # a store that cannot be referenced weakly: no memo, one write per change
            return None


def _changed_key(day: str, subscription_id: str) -> str:
    return f"{day}|{keys.encode(subscription_id)}"


def _reservation_key(subscription_id: str, request_id: str) -> str:
    return f"{keys.encode(subscription_id)}|{keys.encode(request_id)}"


def start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def next_day(day: date) -> date:
    return day + timedelta(days=1)
