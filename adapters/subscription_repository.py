"""The subscription's partition: the subscription entity, its seats, reservations and audit rows.

Typed rows in, typed rows out; the entity layout (column names, key formats) is known only here and
in `adapters/keys.py`. Every change of the partition is one `commit(PartitionWrites)`: an
entity-group transaction guarded by the subscription entity's ETag (services/unit_of_work.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from adapters import keys, subscription_index
from adapters.subscription_index import SubscriptionIndex
from adapters.table_storage import MAX_TRANSACTION_OPERATIONS, SUBSCRIPTIONS, ConcurrencyConflict, Op, Row, TableStore
from services.assignment_job_record import AssignJob, JobChunk
from services.audit import Actor, AuditEntry
from services.delegate import Delegate, FormerOwner, Invitation, InvitationKind
from services.merge_record import RUNNING, Merge, MergePerson
from services.seat import Reservation, Seat
from services.subscription import Subscription

# Table Storage string properties hold 64 KiB (32K UTF-16 characters): reservations split their
# address list over several properties of at most this many characters.
_CHUNK_CHARS = 30_000
# A reservation's addresses spread over rows of at most this many characters (14 properties: about
# 840 KB as Azure counts, 2 bytes a character, within its 1 MiB per entity) ...
_ROW_CHARS = 14 * _CHUNK_CHARS
# ... and all its rows fit one transaction with the subscription entity (Azure: 4 MiB per batch).
MAX_RESERVATION_CHARS = 1_600_000
_AUDIT_TEXT_CHARS = 30_000
# The most seats a substring search reads per request: a subscription holds at most MAX_QUANTITY
# (10,000) seats, so one request covers any subscription.
SEAT_SCAN_LIMIT = 10_000

PartitionRow = Seat | Reservation | AuditEntry | Delegate | Invitation | Merge | AssignJob | JobChunk
# Rows a change replaces or deletes (read before, so with their ETag).
KeptRow = Seat | Reservation | Delegate | Invitation


@dataclass
class PartitionWrites:
    """What one transaction writes: the subscription (under the ETag it was read with; created when
    it has none) and rows to create, replace (under their ETag) or delete (under their ETag).
    `put` creates a row that has no ETag and replaces one that has (under it)."""

    subscription: Subscription
    create: list[PartitionRow] = field(default_factory=list)
    update: list[Seat] = field(default_factory=list)
    put: list[Delegate | Invitation | Merge | AssignJob | JobChunk] = field(default_factory=list)
    delete: list[KeptRow] = field(default_factory=list)

    def __len__(self) -> int:
        return 1 + len(self.create) + len(self.update) + len(self.put) + len(self.delete)


class SubscriptionRepository:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    # --- the subscription ------------------------------------------------------------------------

    def load(self, subscription_id: str) -> Subscription | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.SUBSCRIPTION_ROW)
        return subscription_from_row(row) if row is not None else None

    def all_ids(self) -> Iterator[str]:
        """Every subscription id, from the index (adapters/subscription_index.py): never a scan of this
        table, whose rows are mostly seats. The first call after the index was introduced lists the
        subscriptions that existed before it, once."""
        index = SubscriptionIndex(self.store)
        if not index.is_complete():
            index.backfill(self._scanned_ids())
        return index.subscription_ids()

    def _scanned_ids(self) -> Iterator[str]:
        rows = self.store.query(SUBSCRIPTIONS, where="RowKey eq @rk", parameters={"rk": keys.SUBSCRIPTION_ROW},
                                select=["PartitionKey"])
        for row in rows:
            yield row["PartitionKey"]

    def commit(self, writes: PartitionWrites) -> dict[str, str]:
        """One entity-group transaction; ConcurrencyConflict (nothing written) if anything it read changed.

        Returns the new ETag of every seat it wrote, by address: the seats' lookup rows carry it, so the
        license check can bind a seat without reading it first (services/license_check.py).

        Keeps the timers' index (adapters/subscription_index.py): before the transaction, the subscription
        is listed (when created), listed as changed today, and its new reservations and merges are listed;
        a deleted seat leaves a `seatgone|` row in the same transaction, until the reconciliation has made
        sure its lookup rows are gone; after it, closed reservations and finished merges are taken off."""
        subscription = writes.subscription
        pk = subscription.id
        now = subscription_index.utc_now()
        first = (Op("update", subscription_entity(subscription), subscription.etag) if subscription.etag
                 else Op("create", subscription_entity(subscription)))
        operations = [first]
        operations += [Op("create", entity) for row in writes.create for entity in _entities(pk, row)]
        operations += [Op("update", seat_entity(pk, seat), _required_etag(seat)) for seat in writes.update]
        operations += [Op("update", _entity(pk, row), row.etag) if row.etag else Op("create", _entity(pk, row))
                       for row in writes.put]
        for row in writes.delete:
            # The first row carries the ETag; a reservation's part rows go with it.
            head, *parts = _key_entities(pk, row)
            operations += [Op("delete", head, _required_etag(row))] + [Op("delete", part) for part in parts]
            if isinstance(row, Seat):
                operations.append(Op("upsert", seat_gone_entity(pk, row, now)))
        index = SubscriptionIndex(self.store)
        if not subscription.etag:
            index.list_subscription(pk)
        index.changed(pk, now)
        for created in writes.create:
            if isinstance(created, Reservation):
                index.reservation_opened(pk, created.request_id, now)
        merges = [row for row in [*writes.create, *writes.put] if isinstance(row, Merge)]
        for merge in merges:
            if merge.status == RUNNING and not merge.etag:  # a new merge
                index.merge_opened(pk, merge.id, now)
        etags = self.store.transact(SUBSCRIPTIONS, operations)
        for deleted in writes.delete:
            if isinstance(deleted, Reservation):
                index.reservation_closed(pk, deleted.request_id)
        for merge in merges:
            if merge.status != RUNNING:
                index.merge_closed(pk, merge.id)
        return _seat_etags(operations, etags)

    # --- seats -----------------------------------------------------------------------------------

    def seat(self, subscription_id: str, address: str) -> Seat | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.seat_row(address))
        return seat_from_row(row) if row is not None else None

    def seats(self, subscription_id: str, prefix: str = "") -> Iterator[Seat]:
        """Seats in address order; only addresses starting with `prefix` if given."""
        low = keys.seat_row(prefix)
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=low,
                                row_below=keys.after_prefix(low))
        for row in rows:
            yield seat_from_row(row)

    def seat_page(self, subscription_id: str, *, prefix: str = "", bound: bool | None = None,
                  over_quantity: bool | None = None, limit: int = 50,
                  continuation: dict[str, Any] | None = None) -> tuple[list[Seat], dict[str, Any] | None]:
        """One page of seats in address order, filtered by the stored flags; token for the next."""
        clauses = _flag_clauses(bound, over_quantity)
        low = keys.seat_row(prefix)
        rows, token = self.store.query_page(SUBSCRIPTIONS, partition_key=subscription_id, row_from=low,
                                            row_below=keys.after_prefix(low), where=" and ".join(clauses),
                                            limit=limit, continuation=continuation)
        return [seat_from_row(r) for r in rows], token

    def seat_search(self, subscription_id: str, contains: str, *, bound: bool | None = None,
                    over_quantity: bool | None = None, limit: int = 50, continuation: dict[str, Any] | None = None,
                    scan_limit: int = SEAT_SCAN_LIMIT) -> tuple[list[Seat], dict[str, Any] | None]:
        """One page of the seats whose address contains `contains` (lower case), in address order; the
        token for the next page (None at the end).

        Table Storage filters keys only by range, never by substring, so this reads the partition's seat
        range from the token on and filters here. A call reads at most `scan_limit` seats (a subscription
        holds at most MAX_QUANTITY, so one call covers it); past that the token says where to go on."""
        clauses = _flag_clauses(bound, over_quantity)
        low, high = keys.SEAT_PREFIX, keys.after_prefix(keys.SEAT_PREFIX)
        start = max(str((continuation or {}).get("RowKey") or low), low)  # a token never leaves the seats
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=start, row_below=high,
                                where=" and ".join(clauses))
        found: list[Seat] = []
        for scanned, row in enumerate(rows):
            if scanned == scan_limit:
                return found, {"PartitionKey": subscription_id, "RowKey": row["RowKey"]}
            seat = seat_from_row(row)
            if contains in seat.email:
                if len(found) == limit:  # the next page starts at the next match: never an empty page
                    return found, {"PartitionKey": subscription_id, "RowKey": row["RowKey"]}
                found.append(seat)
        return found, None

    def bind_seat_at(self, subscription_id: str, address: str, etag: str, tid: str, oid: str, at: datetime) -> None:
        """Bind the seat of `address` to a person if it still has `etag` (ConcurrencyConflict if it changed
        or went): one write, no read, when the caller knows the ETag from the seat's lookup row."""
        self.store.merge(SUBSCRIPTIONS, {
            "PartitionKey": subscription_id,
            "RowKey": keys.seat_row(address),
            "BoundTid": tid,
            "BoundOid": oid,
            "BoundAt": at,
            "LastSeenOn": at.date().isoformat(),
            "ChangedAt": at,
        }, etag=etag)

    def bind_seat(self, subscription_id: str, seat: Seat, tid: str, oid: str, at: datetime) -> Seat:
        """Bind a seat to a person under the seat's ETag (ConcurrencyConflict if it changed or went)."""
        patch = {
            "PartitionKey": subscription_id,
            "RowKey": keys.seat_row(seat.email),
            "BoundTid": tid,
            "BoundOid": oid,
            "BoundAt": at,
            "LastSeenOn": at.date().isoformat(),
            "ChangedAt": at,
        }
        self.store.merge(SUBSCRIPTIONS, patch, etag=_required_etag(seat))
        return Seat(**{**asdict(seat), "bound_tid": tid, "bound_oid": oid, "bound_at": at,
                       "last_seen_on": patch["LastSeenOn"], "etag": None})

    def touch_seat(self, subscription_id: str, address: str, day: str) -> bool:
        """Record the last-seen day; False if the seat is gone."""
        return self.store.merge(SUBSCRIPTIONS, {"PartitionKey": subscription_id, "RowKey": keys.seat_row(address),
                                                "LastSeenOn": day})

    # --- reservations ----------------------------------------------------------------------------

    def reservation(self, subscription_id: str, request_id: str) -> Reservation | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.reservation_row(request_id))
        return self._with_parts(subscription_id, row) if row is not None else None

    def reservations(self, subscription_id: str) -> list[Reservation]:
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.RESERVATION_PREFIX,
                                row_below=keys.after_prefix(keys.RESERVATION_PREFIX))
        return [self._with_parts(subscription_id, r) for r in rows]

    def all_reservation_keys(self) -> Iterator[tuple[str, str, datetime]]:
        """(subscription id, request id, created at) of every open reservation: a scan of the table, made
        once to fill the index of open reservations (adapters/subscription_index.py)."""
        rows = self.store.query(SUBSCRIPTIONS, row_from=keys.RESERVATION_PREFIX,
                                row_below=keys.after_prefix(keys.RESERVATION_PREFIX),
                                select=["PartitionKey", "RequestId", "CreatedAt"])
        for row in rows:
            at = row.get("CreatedAt")
            yield row["PartitionKey"], row["RequestId"], at if isinstance(at, datetime) else datetime.now(UTC)

    def _with_parts(self, subscription_id: str, header: Row) -> Reservation:
        parts: list[Row] = []
        if int(header.get("Parts") or 0):
            low = keys.reservation_part_prefix(header["RequestId"])
            parts = list(self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=low,
                                          row_below=keys.after_prefix(low)))
        return reservation_from_rows(header, parts)

    def create_rows(self, subscription_id: str, rows: list[PartitionRow]) -> dict[str, str]:
        """Create rows without touching the subscription (a reservation's seats: the count was raised
        when it was made). ConcurrencyConflict, nothing written, if any of them exists. Returns the new
        seats' ETags by address, as `commit` does (and lists the subscription as changed today, too)."""
        operations = [Op("create", entity) for row in rows for entity in _entities(subscription_id, row)]
        SubscriptionIndex(self.store).changed(subscription_id)
        return _seat_etags(operations, self.store.transact(SUBSCRIPTIONS, operations))

    # --- what the lookup reconciliation reads (services/seat_reconciliation.py) ------------------------

    def seats_changed_since(self, subscription_id: str, since: datetime) -> Iterator[Seat]:
        """Seats written (assigned, flagged, bound) at or after `since`: one query of the seat range,
        filtered by the service."""
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.SEAT_PREFIX,
                                row_below=keys.after_prefix(keys.SEAT_PREFIX), where="ChangedAt ge @since",
                                parameters={"since": since})
        for row in rows:
            yield seat_from_row(row)

    def seats_gone(self, subscription_id: str) -> list[SeatGone]:
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.SEAT_GONE_PREFIX,
                                row_below=keys.after_prefix(keys.SEAT_GONE_PREFIX))
        return [SeatGone(email=row.get("Email") or keys.decode(row["RowKey"].removeprefix(keys.SEAT_GONE_PREFIX)),
                         bound_oid=row.get("BoundOid") or "", etag=row.etag) for row in rows]

    def forget_seats_gone(self, subscription_id: str, gone: list[SeatGone]) -> None:
        """Remove `seatgone|` rows whose lookup rows were seen to (under their ETags: one deleted again
        meanwhile stays for the next run)."""
        for start in range(0, len(gone), MAX_TRANSACTION_OPERATIONS):
            batch = gone[start:start + MAX_TRANSACTION_OPERATIONS]
            try:
                self.store.transact(SUBSCRIPTIONS, [Op("delete", {"PartitionKey": subscription_id,
                                                                  "RowKey": keys.seat_gone_row(g.email)}, g.etag)
                                                    for g in batch])
            except ConcurrencyConflict:
                for g in batch:
                    try:
                        self.store.delete(SUBSCRIPTIONS, subscription_id, keys.seat_gone_row(g.email), etag=g.etag)
                    except ConcurrencyConflict:
                        pass

    # --- delegates and invitations -----------------------------------------------------------------

    def delegate(self, subscription_id: str, tid: str, oid: str) -> Delegate | None:
        """The person's delegate row: one point read (the gate does it on every request)."""
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.delegate_row(tid, oid))
        return delegate_from_row(row) if row is not None else None

    def delegates(self, subscription_id: str) -> list[Delegate]:
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.DELEGATE_PREFIX,
                                row_below=keys.after_prefix(keys.DELEGATE_PREFIX))
        return [delegate_from_row(r) for r in rows]

    def invitation(self, subscription_id: str, kind: str, email: str) -> Invitation | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.invitation_row(kind, email))
        return invitation_from_row(row) if row is not None else None

    def invitations(self, subscription_id: str) -> list[Invitation]:
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.INVITATION_PREFIX,
                                row_below=keys.after_prefix(keys.INVITATION_PREFIX))
        return [invitation_from_row(r) for r in rows]

    # --- merges of individual subscriptions (services/merge.py) ------------------------------------

    def merge(self, subscription_id: str, merge_id: str) -> Merge | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.merge_row(merge_id))
        return merge_from_row(row) if row is not None else None

    def open_merges(self) -> Iterator[tuple[str, Merge]]:
        """(organisation subscription id, merge) for every merge not completed: the merges the index lists
        as running (adapters/subscription_index.py), each read by its key. The first call after the index
        was introduced lists the running merges once, from a scan of this table."""
        index = SubscriptionIndex(self.store)
        if not index.merges_complete():
            index.backfill_merges((pk, merge.id) for pk, merge in self._scanned_open_merges())
        now = subscription_index.utc_now()
        for subscription_id, merge_id, listed_at in index.open_merges():
            merge = self.merge(subscription_id, merge_id)
            if merge is not None and merge.status == RUNNING:
                yield subscription_id, merge
            elif now - listed_at >= subscription_index.UNLIST_AFTER:
                index.merge_closed(subscription_id, merge_id)  # completed, or never committed

    def _scanned_open_merges(self) -> Iterator[tuple[str, Merge]]:
        rows = self.store.query(SUBSCRIPTIONS, row_from=keys.MERGE_PREFIX,
                                row_below=keys.after_prefix(keys.MERGE_PREFIX), where="Status eq @running",
                                parameters={"running": "running"})
        for row in rows:
            yield row["PartitionKey"], merge_from_row(row)

    # --- bulk assignment jobs (services/assignment_job.py) -------------------------------------------

    def job(self, subscription_id: str, job_id: str) -> AssignJob | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.job_row(job_id))
        return job_from_row(row) if row is not None else None

    def running_jobs(self, subscription_id: str) -> list[AssignJob]:
        """The subscription's jobs not finished yet: one query within its partition."""
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.JOB_PREFIX,
                                row_below=keys.after_prefix(keys.JOB_PREFIX), where="Status eq @running",
                                parameters={"running": "running"})
        return [job_from_row(r) for r in rows]

    def job_chunk(self, subscription_id: str, job_id: str, number: int) -> JobChunk | None:
        row = self.store.get(SUBSCRIPTIONS, subscription_id, keys.job_chunk_row(job_id, number))
        return job_chunk_from_row(row) if row is not None else None

    def job_chunks(self, subscription_id: str, job_id: str) -> list[JobChunk]:
        """Every chunk row of a job (one per chunk that got its seats written or failed)."""
        low = keys.job_chunk_prefix(job_id)
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=low,
                                row_below=keys.after_prefix(low))
        return [job_chunk_from_row(r) for r in rows]

    def save_job_chunk(self, subscription_id: str, chunk: JobChunk) -> None:
        """Create the chunk row, or replace it under its ETag (ConcurrencyConflict if it changed)."""
        entity = job_chunk_entity(subscription_id, chunk)
        if chunk.etag:
            self.store.replace_if_match(SUBSCRIPTIONS, entity, chunk.etag)
        elif not self.store.insert(SUBSCRIPTIONS, entity):
            raise ConcurrencyConflict(f"chunk {chunk.number} of job {chunk.job_id} exists")

    def touch_job(self, subscription_id: str, job_id: str, at: datetime) -> None:
        """Record that a job was resumed (its `UpdatedAt`), without touching anything else."""
        self.store.merge(SUBSCRIPTIONS, {"PartitionKey": subscription_id, "RowKey": keys.job_row(job_id),
                                         "UpdatedAt": at})

    def seats_of(self, subscription_id: str, addresses: list[str], reservation_id: str | None) -> list[Seat]:
        """The seats of `addresses` (only those the bulk change `reservation_id` wrote, if given): one range
        query from the first of their keys to the last (a job's chunk is a run of addresses in key order,
        so the range holds little else)."""
        if not addresses:
            return []
        row_keys = sorted(keys.seat_row(a) for a in addresses)
        wanted = set(addresses)
        where, parameters = "RowKey le @last", {"last": row_keys[-1]}
        if reservation_id is not None:
            where, parameters = f"{where} and ReservationId eq @reservation", {**parameters,
                                                                               "reservation": reservation_id}
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=row_keys[0],
                                row_below=keys.after_prefix(keys.SEAT_PREFIX), where=where, parameters=parameters)
        return [seat for seat in (seat_from_row(r) for r in rows) if seat.email in wanted]

    # --- audit -----------------------------------------------------------------------------------

    def audit_page(self, subscription_id: str, limit: int,
                   continuation: dict[str, Any] | None) -> tuple[list[AuditEntry], dict[str, Any] | None]:
        rows, token = self.store.query_page(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.AUDIT_PREFIX,
                                            row_below=keys.after_prefix(keys.AUDIT_PREFIX), limit=limit,
                                            continuation=continuation)
        return [audit_from_row(r) for r in rows], token

    def audit_since(self, subscription_id: str, since: datetime, action: str) -> list[AuditEntry]:
        """The entries of `action` written at `since` or later, newest first (a short key range)."""
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.AUDIT_PREFIX,
                                row_below=keys.audit_rows_before(since), where="Action eq @action",
                                parameters={"action": action})
        return [audit_from_row(r) for r in rows]

    def audit_entries(self, subscription_id: str) -> Iterator[AuditEntry]:
        rows = self.store.query(SUBSCRIPTIONS, partition_key=subscription_id, row_from=keys.AUDIT_PREFIX,
                                row_below=keys.after_prefix(keys.AUDIT_PREFIX))
        for row in rows:
            yield audit_from_row(row)


def _seat_etags(operations: list[Op], etags: list[str | None]) -> dict[str, str]:
    """Address -> new ETag of each seat row among `operations` (a store that returns no ETags: none)."""
    out = {}
    for op, etag in zip(operations, etags, strict=False):
        row_key = op.entity["RowKey"]
        if etag and op.kind != "delete" and row_key.startswith(keys.SEAT_PREFIX):
            out[keys.seat_address(row_key)] = etag
    return out


def _flag_clauses(bound: bool | None, over_quantity: bool | None) -> list[str]:
    """OData clauses for a seat's stored flags (None: either)."""
    clauses = []
    if bound is not None:
        clauses.append("BoundOid ne ''" if bound else "BoundOid eq ''")
    if over_quantity is not None:
        clauses.append(f"OverQuantity eq {'true' if over_quantity else 'false'}")
    return clauses


def _required_etag(row: KeptRow) -> str:
    if not row.etag:
        raise ValueError("a row read from storage (with its ETag) is needed to change or delete it")
    return row.etag


# --- entity layout ----------------------------------------------------------------------------------


def _column(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def subscription_entity(subscription: Subscription) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": subscription.id, "RowKey": keys.SUBSCRIPTION_ROW}
    for name, value in asdict(subscription).items():
        if name in ("id", "etag") or value is None:
            continue
        entity[_column(name)] = value
    return entity


def subscription_from_row(row: Row) -> Subscription:
    values: dict[str, Any] = {"id": row["PartitionKey"], "etag": row.etag}
    for f in fields(Subscription):
        column = _column(f.name)
        if column in row and f.name not in ("id", "etag"):
            values[f.name] = row[column]
    return Subscription(**values)


def seat_entity(subscription_id: str, seat: Seat) -> dict[str, Any]:
    entity = {
        "PartitionKey": subscription_id,
        "RowKey": keys.seat_row(seat.email),
        "Email": seat.email,
        "Sequence": seat.sequence,
        "AssignedAt": seat.assigned_at or datetime.now(UTC),
        "AssignedBy": seat.assigned_by,
        "BoundTid": seat.bound_tid,
        "BoundOid": seat.bound_oid,
        "LastSeenOn": seat.last_seen_on,
        "OverQuantity": seat.over_quantity,
        "RequestId": seat.request_id,
        "ReservationId": seat.reservation_id,
        # When the row was last written: the lookup reconciliation repairs the rows of seats changed
        # since its last run (seats_changed_since).
        "ChangedAt": subscription_index.utc_now(),
    }
    if seat.bound_at is not None:
        entity["BoundAt"] = seat.bound_at
    return entity


@dataclass(frozen=True)
class SeatGone:
    """A seat deleted since the last lookup reconciliation: the rows its lookups may still have."""

    email: str
    bound_oid: str
    etag: str | None = None


def seat_gone_entity(subscription_id: str, seat: Seat, at: datetime) -> dict[str, Any]:
    return {"PartitionKey": subscription_id, "RowKey": keys.seat_gone_row(seat.email), "Email": seat.email,
            "BoundOid": seat.bound_oid, "GoneAt": at}


def seat_from_row(row: Row) -> Seat:
    at = row.get("AssignedAt")
    return Seat(
        email=row.get("Email") or keys.seat_address(row["RowKey"]),
        sequence=int(row.get("Sequence") or 0),
        assigned_at=at if isinstance(at, datetime) else None,
        assigned_by=row.get("AssignedBy", ""),
        bound_tid=row.get("BoundTid") or "",
        bound_oid=row.get("BoundOid") or "",
        bound_at=row.get("BoundAt"),
        last_seen_on=row.get("LastSeenOn") or "",
        over_quantity=bool(row.get("OverQuantity")),
        request_id=row.get("RequestId") or "",
        reservation_id=row.get("ReservationId") or "",
        etag=row.etag,
    )


def reservation_entities(subscription_id: str, reservation: Reservation) -> list[dict[str, Any]]:
    """The header row (`reservation|<id>`) and, for long lists, part rows: each within Azure's limits."""
    chunks: list[str] = []
    chunk: list[str] = []
    size = 0
    for address in reservation.addresses:
        if chunk and size + len(address) + 1 > _CHUNK_CHARS:
            chunks.append("\n".join(chunk))
            chunk, size = [], 0
        chunk.append(address)
        size += len(address) + 1
    chunks.append("\n".join(chunk))
    per_row = _ROW_CHARS // _CHUNK_CHARS
    groups = [chunks[i:i + per_row] for i in range(0, len(chunks), per_row)]
    header: dict[str, Any] = {
        "PartitionKey": subscription_id,
        "RowKey": keys.reservation_row(reservation.request_id),
        "RequestId": reservation.request_id,
        "Count": len(reservation.addresses),
        "SequenceStart": reservation.sequence_start,
        "CreatedAt": reservation.created_at,
        "ActorTid": reservation.actor.tid,
        "ActorOid": reservation.actor.oid,
        "ActorEmail": reservation.actor.email,
        "ActorName": reservation.actor.name,
        "Parts": len(groups) - 1,
    }
    rows = [header] + [{"PartitionKey": subscription_id, "RowKey": keys.reservation_part_row(reservation.request_id, n)}
                       for n in range(1, len(groups))]
    index = 0
    for row, group in zip(rows, groups, strict=True):
        for text in group:
            row[f"Emails_{index:03d}"] = text
            index += 1
    return rows


def reservation_from_rows(header: Row, parts: list[Row]) -> Reservation:
    chunks = sorted((k, v) for row in [header, *parts] for k, v in row.items() if k.startswith("Emails_"))
    row = header
    return Reservation(
        request_id=row["RequestId"],
        addresses=tuple(a for _, text in chunks for a in text.split("\n") if a),
        sequence_start=int(row["SequenceStart"]),
        created_at=row.get("CreatedAt") or datetime.now(UTC),
        actor=Actor(row.get("ActorTid", ""), row.get("ActorOid", ""), row.get("ActorEmail", ""),
                    row.get("ActorName", "")),
        etag=row.etag,
    )


def audit_entity(subscription_id: str, entry: AuditEntry) -> dict[str, Any]:
    return {
        "PartitionKey": subscription_id,
        "RowKey": keys.audit_row(entry.at),
        "At": entry.at,
        "ActorTid": entry.actor.tid,
        "ActorOid": entry.actor.oid,
        "ActorEmail": entry.actor.email,
        "ActorName": entry.actor.name,
        "Action": entry.action,
        "Target": entry.target,
        "Before": _audit_json(entry.before),
        "After": _audit_json(entry.after),
    }


def _audit_json(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, default=str)
    if len(text) > _AUDIT_TEXT_CHARS:
        # Within Azure's 64 KiB per property: a bulk change names its first addresses and the count.
        text = json.dumps({"truncated": True, "characters": len(text), "start": text[:_AUDIT_TEXT_CHARS - 200]})
    return text


def audit_from_row(row: Row) -> AuditEntry:
    at = row.get("At")
    return AuditEntry(
        actor=Actor(row.get("ActorTid", ""), row.get("ActorOid", ""), row.get("ActorEmail", ""),
                    row.get("ActorName", "")),
        action=row.get("Action", ""),
        target=row.get("Target", ""),
        before=json.loads(row["Before"]) if row.get("Before") else None,
        after=json.loads(row["After"]) if row.get("After") else None,
        at=at if isinstance(at, datetime) else datetime.now(UTC),
    )


def delegate_entity(subscription_id: str, delegate: Delegate) -> dict[str, Any]:
    return {
        "PartitionKey": subscription_id,
        "RowKey": keys.delegate_row(delegate.tid, delegate.oid),
        "Tid": delegate.tid,
        "Oid": delegate.oid,
        "Email": delegate.email,
        "Name": delegate.name,
        "Permissions": ",".join(sorted(delegate.permissions)),
        "AddedAt": delegate.added_at,
        "AddedBy": delegate.added_by,
    }


def delegate_from_row(row: Row) -> Delegate:
    return Delegate(
        tid=row.get("Tid", ""),
        oid=row.get("Oid", ""),
        email=row.get("Email", ""),
        name=row.get("Name", ""),
        permissions=frozenset(p for p in str(row.get("Permissions", "")).split(",") if p),
        added_at=row.get("AddedAt") or datetime.now(UTC),
        added_by=row.get("AddedBy", ""),
        etag=row.etag,
    )


def invitation_entity(subscription_id: str, invitation: Invitation) -> dict[str, Any]:
    return {
        "PartitionKey": subscription_id,
        "RowKey": keys.invitation_row(invitation.kind, invitation.email),
        "Email": invitation.email,
        "Kind": invitation.kind,
        "TokenHash": invitation.token_hash,
        "Permissions": ",".join(sorted(invitation.permissions)),
        "FormerOwner": invitation.former_owner,
        "BillingEmailFollows": invitation.billing_email_follows,
        "InvitedByTid": invitation.invited_by.tid,
        "InvitedByOid": invitation.invited_by.oid,
        "InvitedByEmail": invitation.invited_by.email,
        "InvitedByName": invitation.invited_by.name,
        "CreatedAt": invitation.created_at,
        "ExpiresAt": invitation.expires_at,
    }


def invitation_from_row(row: Row) -> Invitation:
    kind: InvitationKind = "owner" if row.get("Kind") == "owner" else "delegate"
    former: FormerOwner = "leave" if row.get("FormerOwner") == "leave" else "delegate"
    return Invitation(
        email=row.get("Email", ""),
        token_hash=row.get("TokenHash", ""),
        kind=kind,
        invited_by=Actor(row.get("InvitedByTid", ""), row.get("InvitedByOid", ""), row.get("InvitedByEmail", ""),
                         row.get("InvitedByName", "")),
        created_at=row.get("CreatedAt") or datetime.now(UTC),
        expires_at=row.get("ExpiresAt") or datetime.now(UTC),
        permissions=frozenset(p for p in str(row.get("Permissions", "")).split(",") if p),
        former_owner=former,
        billing_email_follows=bool(row.get("BillingEmailFollows")),
        etag=row.etag,
    )


def merge_entity(subscription_id: str, merge: Merge) -> dict[str, Any]:
    people = [{**asdict(p), "ends_at": p.ends_at.isoformat() if p.ends_at else None} for p in merge.people]
    entity: dict[str, Any] = {
        "PartitionKey": subscription_id,
        "RowKey": keys.merge_row(merge.id),
        "MergeId": merge.id,
        "Status": merge.status,
        "Quantity": merge.quantity,
        "People": json.dumps(people),
        "ActorTid": merge.actor.tid,
        "ActorOid": merge.actor.oid,
        "ActorEmail": merge.actor.email,
        "ActorName": merge.actor.name,
        "CreatedAt": merge.created_at,
        "UpdatedAt": merge.updated_at,
        "Error": merge.error,
    }
    if merge.proration_date is not None:
        entity["ProrationDate"] = merge.proration_date
    return entity


def merge_from_row(row: Row) -> Merge:
    people = []
    for p in json.loads(row.get("People") or "[]"):
        ends = p.get("ends_at")
        people.append(MergePerson(**{**p, "ends_at": datetime.fromisoformat(ends) if ends else None}))
    proration = row.get("ProrationDate")
    return Merge(
        id=row.get("MergeId") or keys.decode(row["RowKey"].removeprefix(keys.MERGE_PREFIX)),
        actor=Actor(row.get("ActorTid", ""), row.get("ActorOid", ""), row.get("ActorEmail", ""),
                    row.get("ActorName", "")),
        people=tuple(people),
        quantity=int(row.get("Quantity") or 0),
        proration_date=int(proration) if proration is not None else None,
        status=row.get("Status") or "running",
        created_at=row.get("CreatedAt") or datetime.now(UTC),
        updated_at=row.get("UpdatedAt") or datetime.now(UTC),
        error=row.get("Error") or "",
        etag=row.etag,
    )


def job_entity(subscription_id: str, job: AssignJob) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": subscription_id,
        "RowKey": keys.job_row(job.id),
        "JobId": job.id,
        "Kind": "assign",
        "Status": job.status,
        "Listed": job.listed,
        "New": job.new,
        "Duplicates": job.duplicates,
        "SequenceStart": job.sequence_start,
        "Background": job.background,
        "Digest": job.digest,
        "ActorTid": job.actor.tid,
        "ActorOid": job.actor.oid,
        "ActorEmail": job.actor.email,
        "ActorName": job.actor.name,
        "CreatedAt": job.created_at,
        "UpdatedAt": job.updated_at,
    }
    if job.completed_at is not None:
        entity["CompletedAt"] = job.completed_at
    return entity


def job_from_row(row: Row) -> AssignJob:
    return AssignJob(
        id=row.get("JobId") or keys.decode(row["RowKey"].removeprefix(keys.JOB_PREFIX)),
        actor=Actor(row.get("ActorTid", ""), row.get("ActorOid", ""), row.get("ActorEmail", ""),
                    row.get("ActorName", "")),
        listed=int(row.get("Listed") or 0),
        new=int(row.get("New") or 0),
        duplicates=int(row.get("Duplicates") or 0),
        sequence_start=int(row.get("SequenceStart") or 0),
        background=bool(row.get("Background")),
        digest=row.get("Digest") or "",
        created_at=row.get("CreatedAt") or datetime.now(UTC),
        updated_at=row.get("UpdatedAt") or row.get("CreatedAt") or datetime.now(UTC),
        status=row.get("Status") or "running",
        completed_at=row.get("CompletedAt"),
        etag=row.etag,
    )


def job_chunk_entity(subscription_id: str, chunk: JobChunk) -> dict[str, Any]:
    # At most 99 addresses of at most 254 characters: within one 32K-character property.
    return {
        "PartitionKey": subscription_id,
        "RowKey": keys.job_chunk_row(chunk.job_id, chunk.number),
        "JobId": chunk.job_id,
        "Chunk": chunk.number,
        "Stage": chunk.stage,
        "At": chunk.at,
        "Assigned": chunk.assigned,
        "Taken": chunk.taken,
        "Mailed": chunk.mailed,
        "Failed": "\n".join(chunk.failed),
    }


def job_chunk_from_row(row: Row) -> JobChunk:
    return JobChunk(
        job_id=row.get("JobId", ""),
        number=int(row.get("Chunk") or 0),
        stage=row.get("Stage") or "",
        at=row.get("At") or datetime.now(UTC),
        assigned=int(row.get("Assigned") or 0),
        taken=int(row.get("Taken") or 0),
        mailed=int(row.get("Mailed") or 0),
        failed=tuple(a for a in str(row.get("Failed") or "").split("\n") if a),
        etag=row.etag,
    )


def _entities(subscription_id: str, row: PartitionRow) -> list[dict[str, Any]]:
    if isinstance(row, Reservation):
        return reservation_entities(subscription_id, row)
    return [_entity(subscription_id, row)]


def _entity(subscription_id: str,
            row: Seat | AuditEntry | Delegate | Invitation | Merge | AssignJob | JobChunk) -> dict[str, Any]:
    if isinstance(row, AssignJob):
        return job_entity(subscription_id, row)
    if isinstance(row, JobChunk):
        return job_chunk_entity(subscription_id, row)
    if isinstance(row, Merge):
        return merge_entity(subscription_id, row)
    if isinstance(row, Seat):
        return seat_entity(subscription_id, row)
    if isinstance(row, Delegate):
        return delegate_entity(subscription_id, row)
    if isinstance(row, Invitation):
        return invitation_entity(subscription_id, row)
    return audit_entity(subscription_id, row)


def _key_entities(subscription_id: str, row: KeptRow) -> list[dict[str, Any]]:
    return [{key: entity[key] for key in ("PartitionKey", "RowKey")} for entity in _entities(subscription_id, row)]
