"""License management: assign, revoke and reassign seats; bulk reservations; over quantity; listing.

Never oversell, never half-apply (PRODUCT.md section 4):

- A change that fits one entity-group transaction (the subscription entity under its ETag, the seat
  rows, one audit row) is written in one; after a conflict it is recomputed from fresh state.
- Larger assignments reserve first: the assigned count is raised under the ETag together with a
  reservation row listing the addresses; the seats are then written idempotently in batches and the
  reservation is closed. A retry with the same request id, or the reconciliation timer, completes an
  interrupted one.
- Lookup rows (UserLicenses) and welcome mails follow the partition commit and are idempotent: a
  retried request redoes them for the seats it wrote itself (same RequestId), never mails twice.

The seat row contract is in services/seat.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from services import subscription_store
from services.audit import Actor, audit_entity
from services.mail import MailMessage, enqueue
from services.seat import (
    ACTIVE,
    OVER_QUANTITY,
    PENDING,
    SEAT_PREFIX,
    SEAT_RANGE_END,
    STATUSES,
    license_lookup_row,
    normalise_address,
    seat_entity,
    seat_status,
    subscription_seat_status,
)
from services.settings import Settings
from services.storage import SUBSCRIPTIONS, USER_LICENSES, ConcurrencyConflict, Storage, update_if_match
from services.subscription import LicenseState, Subscription

log = logging.getLogger(__name__)

# One transaction holds 100 operations: the subscription entity and one audit row leave 98 seats.
SEATS_PER_TRANSACTION = 98
RESERVATION_PREFIX = "reservation|"
# A reservation older than this is taken over by reconciliation (its request has died).
STALE_RESERVATION = timedelta(minutes=10)
MAX_ATTEMPTS = 30
# Table Storage string properties hold 64 KiB (32k UTF-16 characters).
_CHUNK_CHARS = 30_000
# Above this many addresses, one partition scan beats a point read per address.
_POINT_READS_UP_TO = 40


# --- outcomes and errors ----------------------------------------------------------------------


class SeatError(Exception):
    code = "seat_error"
    status = 400


class SubscriptionNotFound(SeatError):
    code, status = "subscription_not_found", 404


class NoSeatsFree(SeatError):
    code, status = "no_seats_free", 409

    def __init__(self, needed: int, free: int):
        super().__init__(
            f"{needed} new license{'s' if needed != 1 else ''} needed but only {free} free; nothing was assigned. "
            "Raise the quantity or revoke licenses first."
        )
        self.needed, self.free = needed, free


class NotAssigned(SeatError):
    code, status = "not_assigned", 404

    def __init__(self, email: str):
        super().__init__(f"{email} holds no license in this subscription")
        self.email = email


class AlreadyAssigned(SeatError):
    code, status = "already_assigned", 409

    def __init__(self, email: str):
        super().__init__(f"{email} already holds a license in this subscription")
        self.email = email


class SubscriptionEnded(SeatError):
    code, status = "subscription_ended", 409

    def __init__(self) -> None:
        super().__init__("the subscription has ended: licenses can no longer be assigned")


ASSIGNED = "assigned"
ALREADY_ASSIGNED = "already_assigned"


@dataclass
class Assignment:
    """What happened to each address of one assign request."""

    request_id: str
    results: dict[str, str] = field(default_factory=dict)  # address -> assigned | already_assigned
    duplicates: list[str] = field(default_factory=list)  # listed more than once (counted once)
    subscription: Subscription | None = None

    @property
    def assigned(self) -> list[str]:
        return [a for a, r in self.results.items() if r == ASSIGNED]

    @property
    def already_assigned(self) -> list[str]:
        return [a for a, r in self.results.items() if r == ALREADY_ASSIGNED]


@dataclass(frozen=True)
class Context:
    """What a seat change needs besides the rows: storage, settings, who acts."""

    storage: Storage
    settings: Settings
    actor: Actor


# --- assign ----------------------------------------------------------------------------------


def assign(
    ctx: Context,
    subscription_id: str,
    addresses: list[str],
    request_id: str | None = None,
    duplicates: Iterable[str] = (),
) -> Assignment:
    """Assign licenses to `addresses` (normalised, unique); all or nothing.

    Raises NoSeatsFree (nothing assigned) when more new seats are needed than are free.
    """
    request_id = request_id or uuid.uuid4().hex
    outcome = Assignment(request_id=request_id)
    storage = ctx.storage
    for _ in range(MAX_ATTEMPTS):
        subscription = subscription_store.load(storage, subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(f"no subscription {subscription_id}")
        reservation = storage.get(SUBSCRIPTIONS, subscription_id, RESERVATION_PREFIX + request_id)
        if reservation is not None:
            # This request was interrupted mid-way: finish it (same addresses, same sequences).
            complete_reservation(ctx, subscription_id, reservation)
            subscription = subscription_store.load(storage, subscription_id)
        existing = _existing_seats(storage, subscription_id, addresses)
        new = [a for a in addresses if a not in existing]
        mine = [a for a in addresses if a in existing and existing[a].get("RequestId") == request_id]
        outcome.results = {a: (ALREADY_ASSIGNED if a in existing and a not in mine else ASSIGNED) for a in addresses}
        outcome.duplicates = list(duplicates)
        if mine:
            # A retry of a request that committed: redo what follows the commit (idempotent).
            _after_commit(ctx, subscription, [existing[a] for a in mine])
        if not new:
            outcome.subscription = subscription
            return outcome
        if subscription.license_state(ctx.settings.grace_days) is LicenseState.EXPIRED:
            raise SubscriptionEnded()
        free = max(subscription.quantity - subscription.assigned_count, 0)
        if len(new) > free:
            raise NoSeatsFree(len(new), free)
        first = max(subscription.seat_sequence, subscription.assigned_count) + 1
        updated = replace(
            subscription,
            assigned_count=subscription.assigned_count + len(new),
            seat_sequence=first + len(new) - 1,
            updated_at=datetime.now(timezone.utc),
        )
        if len(new) <= SEATS_PER_TRANSACTION:
            seats = [_new_seat(subscription_id, a, first + i, ctx.actor, request_id) for i, a in enumerate(new)]
            audit = _assign_audit(subscription_id, ctx.actor, new, request_id)
            try:
                storage.transact(
                    SUBSCRIPTIONS,
                    [update_if_match(updated.to_entity(), subscription.etag)]
                    + [("create", s) for s in seats]
                    + [("create", audit)],
                )
            except ConcurrencyConflict:
                log.info("assign on %s lost a race; retrying on fresh state", subscription_id)
                continue
            _after_commit(ctx, updated, seats)
        else:
            reservation = _reservation_entity(subscription_id, request_id, new, first, ctx.actor)
            try:
                storage.transact(
                    SUBSCRIPTIONS,
                    [update_if_match(updated.to_entity(), subscription.etag), ("create", reservation)],
                )
            except ConcurrencyConflict:
                continue
            complete_reservation(ctx, subscription_id, reservation)
        outcome.subscription = subscription_store.load(storage, subscription_id)
        return outcome
    raise ConcurrencyConflict(f"subscription {subscription_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def _new_seat(subscription_id: str, address: str, sequence: int, actor: Actor, request_id: str,
              reservation_id: str = "") -> dict[str, Any]:
    seat = seat_entity(subscription_id, address, sequence=sequence, assigned_by=actor.email or actor.name)
    seat["RequestId"] = request_id
    seat["ReservationId"] = reservation_id
    return seat


def _assign_audit(subscription_id: str, actor: Actor, addresses: list[str], request_id: str) -> dict[str, Any]:
    if len(addresses) == 1:
        return audit_entity(subscription_id, actor, "license.assigned", target=addresses[0])
    return audit_entity(
        subscription_id, actor, "licenses.assigned", target=f"{len(addresses)} addresses",
        after={"emails": addresses, "request_id": request_id},
    )


def _existing_seats(storage: Storage, subscription_id: str, addresses: list[str]) -> dict[str, dict[str, Any]]:
    if len(addresses) <= _POINT_READS_UP_TO:
        found = {}
        for address in addresses:
            seat = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + address)
            if seat is not None:
                found[address] = seat
        return found
    wanted = set(addresses)
    return {s["Email"]: s for s in iter_seats(storage, subscription_id) if s["Email"] in wanted}


def _after_commit(ctx: Context, subscription: Subscription, seats: list[dict[str, Any]]) -> None:
    """Lookup rows and welcome mails for seats just written; safe to repeat."""

    def one(seat: dict[str, Any]) -> None:
        ctx.storage.upsert(
            USER_LICENSES,
            license_lookup_row(subscription.id, subscription.tenant_id, seat["Email"], seat.get("BoundOid", ""),
                               bool(seat.get("OverQuantity"))),
        )
        enqueue(ctx.storage, welcome_message(ctx.settings, subscription, seat))

    if len(seats) <= 4:
        for seat in seats:
            one(seat)
        return
    # Independent rows in other partitions and queue messages: in parallel, errors still raised.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(one, seats):
            pass


def welcome_message(settings: Settings, subscription: Subscription, seat: dict[str, Any]) -> MailMessage:
    # The id makes the mail idempotent: the same seat (address + sequence) is welcomed once, a
    # revoked and later re-assigned address (new sequence) again.
    key = f"{subscription.id}|{seat['Email']}|{seat['Sequence']}"
    return MailMessage(
        id="welcome-" + hashlib.sha256(key.encode()).hexdigest()[:40],
        template="welcome",
        to=seat["Email"],
        language=subscription.language if subscription.language in ("en", "de") else "en",
        params={"organisation": subscription.owner_name or subscription.owner_email, "base_url": settings.public_base_url},
    )


# --- reservations (bulk changes over one transaction) ---------------------------------------


def _reservation_entity(subscription_id: str, request_id: str, addresses: list[str], first: int, actor: Actor) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": subscription_id,
        "RowKey": RESERVATION_PREFIX + request_id,
        "RequestId": request_id,
        "Count": len(addresses),
        "SequenceStart": first,
        "CreatedAt": datetime.now(timezone.utc),
        "ActorTid": actor.tid,
        "ActorOid": actor.oid,
        "ActorEmail": actor.email,
        "ActorName": actor.name,
    }
    chunk: list[str] = []
    size = 0
    index = 0
    for address in addresses:
        if size + len(address) + 1 > _CHUNK_CHARS:
            entity[f"Emails_{index:03d}"] = "\n".join(chunk)
            index, chunk, size = index + 1, [], 0
        chunk.append(address)
        size += len(address) + 1
    entity[f"Emails_{index:03d}"] = "\n".join(chunk)
    return entity


def _reservation_addresses(reservation: dict[str, Any]) -> list[str]:
    keys = sorted(k for k in reservation if k.startswith("Emails_"))
    return [a for k in keys for a in reservation[k].split("\n") if a]


def complete_reservation(ctx: Context, subscription_id: str, reservation: dict[str, Any]) -> int:
    """Write a reservation's seats in batches (idempotently), then close it; returns seats written.

    An address that meanwhile got a seat from someone else is not written twice: its reserved
    count is given back when the reservation closes.
    """
    storage = ctx.storage
    request_id = reservation["RequestId"]
    actor = Actor(reservation.get("ActorTid", ""), reservation.get("ActorOid", ""),
                  reservation.get("ActorEmail", ""), reservation.get("ActorName", ""))
    addresses = _reservation_addresses(reservation)
    first = int(reservation["SequenceStart"])
    sequence_of = {a: first + i for i, a in enumerate(addresses)}
    existing = {s["Email"]: s for s in iter_seats(storage, subscription_id)}
    ours = {a for a in addresses if a in existing and existing[a].get("ReservationId") == request_id}
    taken = {a for a in addresses if a in existing and a not in ours}
    todo = [a for a in addresses if a not in existing]
    subscription = subscription_store.load(storage, subscription_id)
    assert subscription is not None
    # Batches: the seats plus one audit row naming them.
    for start in range(0, len(todo), SEATS_PER_TRANSACTION + 1):
        batch = todo[start:start + SEATS_PER_TRANSACTION + 1]
        while batch:
            seats = [_new_seat(subscription_id, a, sequence_of[a], actor, request_id, request_id) for a in batch]
            audit = audit_entity(subscription_id, actor, "licenses.assigned", target=f"{len(batch)} addresses",
                                 after={"emails": batch, "request_id": request_id})
            try:
                storage.transact(SUBSCRIPTIONS, [("create", s) for s in seats] + [("create", audit)])
            except ConcurrencyConflict:
                # Someone assigned one of these meanwhile (or an earlier attempt wrote them):
                # sort them out and write the rest.
                again = []
                for address in batch:
                    seat = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + address)
                    if seat is None:
                        again.append(address)
                    elif seat.get("ReservationId") == request_id:
                        ours.add(address)
                    else:
                        taken.add(address)
                batch = again
                continue
            ours.update(batch)
            _after_commit(ctx, subscription, seats)
            break
    # Seats an earlier attempt wrote: their lookup rows and mails may be missing.
    _after_commit(ctx, subscription, [existing[a] for a in addresses if a in existing and a in ours])
    _close_reservation(ctx, subscription_id, reservation, len(taken))
    return len(ours)


def _close_reservation(ctx: Context, subscription_id: str, reservation: dict[str, Any], give_back: int) -> None:
    storage = ctx.storage
    for _ in range(MAX_ATTEMPTS):
        subscription = subscription_store.load(storage, subscription_id)
        current = storage.get(SUBSCRIPTIONS, subscription_id, reservation["RowKey"])
        if subscription is None or current is None:
            return  # closed by a concurrent completion
        updated = replace(subscription, assigned_count=subscription.assigned_count - give_back,
                          updated_at=datetime.now(timezone.utc))
        operations = [
            update_if_match(updated.to_entity(), subscription.etag),
            ("delete", current, {"etag": current.metadata["etag"], "match_condition": MatchConditions.IfNotModified}),
        ]
        try:
            storage.transact(SUBSCRIPTIONS, operations)
            return
        except ConcurrencyConflict:
            continue
    raise ConcurrencyConflict(f"could not close reservation {reservation['RowKey']} on {subscription_id}")


def open_reservations(storage: Storage, subscription_id: str) -> list[dict[str, Any]]:
    return list(storage.table(SUBSCRIPTIONS).query_entities(
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        parameters={"pk": subscription_id, "lo": RESERVATION_PREFIX, "hi": "reservation}"},
    ))


# --- revoke and reassign --------------------------------------------------------------------


def revoke(ctx: Context, subscription_id: str, address: str) -> Subscription:
    """Free the seat of `address` and delete its lookup row: the user is unlicensed at once."""
    address = normalise_address(address)
    storage = ctx.storage
    for _ in range(MAX_ATTEMPTS):
        subscription = _load(storage, subscription_id)
        seat = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + address)
        if seat is None:
            raise NotAssigned(address)
        updated = replace(subscription, assigned_count=max(subscription.assigned_count - 1, 0),
                          updated_at=datetime.now(timezone.utc))
        audit = audit_entity(subscription_id, ctx.actor, "license.revoked", target=address,
                             before=_seat_summary(seat))
        try:
            storage.transact(SUBSCRIPTIONS, [
                update_if_match(updated.to_entity(), subscription.etag),
                _delete_if_match(seat),
                ("create", audit),
            ])
        except ConcurrencyConflict:
            continue
        _delete_lookup_rows(storage, subscription_id, seat)
        if subscription.assigned_count > subscription.quantity or seat.get("OverQuantity"):
            apply_quantity(ctx.storage, ctx.settings, subscription_id)
        return subscription_store.load(storage, subscription_id) or updated
    raise ConcurrencyConflict(f"subscription {subscription_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def reassign(ctx: Context, subscription_id: str, from_address: str, to_address: str, request_id: str | None = None) -> Subscription:
    """Move a seat from one address to another in one transaction: nobody can take it in between."""
    from_address, to_address = normalise_address(from_address), normalise_address(to_address)
    request_id = request_id or uuid.uuid4().hex
    storage = ctx.storage
    for _ in range(MAX_ATTEMPTS):
        subscription = _load(storage, subscription_id)
        old = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + from_address)
        new = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + to_address)
        if new is not None and new.get("RequestId") == request_id and old is None:
            _after_commit(ctx, subscription, [new])  # a retry of a reassignment that committed
            return subscription
        if old is None:
            raise NotAssigned(from_address)
        if new is not None:
            raise AlreadyAssigned(to_address)
        sequence = max(subscription.seat_sequence, subscription.assigned_count) + 1
        updated = replace(subscription, seat_sequence=sequence, updated_at=datetime.now(timezone.utc))
        seat = _new_seat(subscription_id, to_address, sequence, ctx.actor, request_id)
        seat["OverQuantity"] = bool(old.get("OverQuantity"))
        audit = audit_entity(subscription_id, ctx.actor, "license.reassigned", target=to_address,
                             before={"email": from_address}, after={"email": to_address})
        try:
            storage.transact(SUBSCRIPTIONS, [
                update_if_match(updated.to_entity(), subscription.etag),
                _delete_if_match(old),
                ("create", seat),
                ("create", audit),
            ])
        except ConcurrencyConflict:
            continue
        _delete_lookup_rows(storage, subscription_id, old)
        _after_commit(ctx, updated, [seat])
        if subscription.assigned_count > subscription.quantity:
            apply_quantity(ctx.storage, ctx.settings, subscription_id)
        return subscription_store.load(storage, subscription_id) or updated
    raise ConcurrencyConflict(f"subscription {subscription_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def _load(storage: Storage, subscription_id: str) -> Subscription:
    subscription = subscription_store.load(storage, subscription_id)
    if subscription is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    return subscription


def _delete_if_match(entity: dict[str, Any]) -> tuple:
    return ("delete", entity, {"etag": entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified})


def _delete_lookup_rows(storage: Storage, subscription_id: str, seat: dict[str, Any]) -> None:
    # Both possible rows: the seat may have been bound between our read and the license check's write.
    if seat.get("BoundOid"):
        storage.delete(USER_LICENSES, f"oid|{seat['BoundOid']}", subscription_id)
    storage.delete(USER_LICENSES, f"email|{seat['Email']}", subscription_id)


def _seat_summary(seat: dict[str, Any]) -> dict[str, Any]:
    return {"email": seat["Email"], "bound": bool(seat.get("BoundOid")), "assigned_at": seat.get("AssignedAt")}


# --- over quantity ------------------------------------------------------------------------------


def apply_quantity(storage: Storage, settings: Settings, subscription_id: str) -> int:
    """Flag the most recently assigned seats beyond the quantity `over_quantity`, unflag the rest.

    Nothing is deleted. Called after Stripe changed the quantity and after a revoke of a
    subscription that is over quantity; safe to run any time. Mails the owner when seats newly go
    over quantity. Returns how many seats are over quantity.
    """
    subscription = _load(storage, subscription_id)
    seats = list(iter_seats(storage, subscription_id, select=["PartitionKey", "RowKey", "Email", "Sequence", "OverQuantity", "BoundOid"]))
    seats.sort(key=lambda s: (int(s.get("Sequence") or 0), s["Email"]), reverse=True)
    over = max(len(seats) - subscription.quantity, 0)
    over_keys = {s["RowKey"] for s in seats[:over]}
    changes = [s for s in seats if bool(s.get("OverQuantity")) != (s["RowKey"] in over_keys)]
    newly_over = sum(1 for s in changes if s["RowKey"] in over_keys)
    for start in range(0, len(changes), 100):
        batch = changes[start:start + 100]
        storage.transact(SUBSCRIPTIONS, [
            ("update", {"PartitionKey": s["PartitionKey"], "RowKey": s["RowKey"], "OverQuantity": s["RowKey"] in over_keys},
             {"mode": UpdateMode.MERGE})
            for s in batch
        ])
        for s in batch:
            storage.upsert(USER_LICENSES, license_lookup_row(
                subscription.id, subscription.tenant_id, s["Email"], s.get("BoundOid", ""), s["RowKey"] in over_keys))
    if newly_over:
        from services.billing_events import subscription_url

        key = f"{subscription.id}|{subscription.quantity}|{len(seats)}|{subscription.etag}"
        enqueue(storage, MailMessage(
            id="over-quantity-" + hashlib.sha256(key.encode()).hexdigest()[:40],
            template="over_quantity",
            to=subscription.owner_email,
            language=subscription.language if subscription.language in ("en", "de") else "en",
            params={"over": over, "quantity": subscription.quantity, "assigned": len(seats),
                    "subscription_url": subscription_url(settings, subscription.id)},
        ))
        log.warning("subscription %s: %d seats over quantity %d", subscription.id, over, subscription.quantity)
    return over


# --- listing and export -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeatView:
    email: str
    status: str
    bound: bool
    assigned_at: datetime | None
    assigned_by: str
    last_seen_on: str

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "status": self.status,
            "bound": self.bound,
            "assigned_at": self.assigned_at.isoformat() if self.assigned_at else None,
            "assigned_by": self.assigned_by,
            "last_seen_on": self.last_seen_on or None,
        }


@dataclass(frozen=True)
class SeatPage:
    seats: list[SeatView]
    continuation: str | None


def iter_seats(storage: Storage, subscription_id: str, select: list[str] | None = None,
               extra_filter: str = "", prefix: str = "") -> Iterator[dict[str, Any]]:
    query, parameters = _seat_query(subscription_id, prefix, extra_filter)
    yield from storage.table(SUBSCRIPTIONS).query_entities(query, parameters=parameters, select=select, results_per_page=1000)


def _seat_query(subscription_id: str, prefix: str, extra_filter: str) -> tuple[str, dict[str, Any]]:
    low = SEAT_PREFIX + normalise_address(prefix)
    # Every row key that starts with `low`: up to `low` with its last character raised by one.
    high = low[:-1] + chr(ord(low[-1]) + 1) if prefix else SEAT_RANGE_END
    query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
    if extra_filter:
        query += f" and ({extra_filter})"
    return query, {"pk": subscription_id, "lo": low, "hi": high}


# Status filters the table can evaluate itself (stored flags); expired/suspended come from the subscription.
_STATUS_FILTERS = {
    PENDING: "BoundOid eq '' and OverQuantity eq false",
    ACTIVE: "BoundOid ne '' and OverQuantity eq false",
    OVER_QUANTITY: "OverQuantity eq true",
}


def list_seats(
    storage: Storage,
    subscription: Subscription,
    grace_days: int,
    *,
    status: str | None = None,
    search: str = "",
    continuation: str | None = None,
    limit: int = 50,
) -> SeatPage:
    """One page of seats, in address order; `continuation` from the previous page."""
    if status and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    whole = subscription_seat_status(subscription, grace_days)
    extra = ""
    if status:
        if whole is not None:
            if status != whole:
                return SeatPage([], None)
        else:
            extra = _STATUS_FILTERS.get(status, "PartitionKey eq ''")
    query, parameters = _seat_query(subscription.id, search.strip(), extra)
    pages = storage.table(SUBSCRIPTIONS).query_entities(
        query, parameters=parameters, results_per_page=max(1, min(limit, 1000))
    ).by_page(continuation_token=decode_token(continuation))
    rows: list[dict[str, Any]] = []
    token = None
    # A filtered query may answer with an empty page and a token: follow it until rows come.
    for page in pages:
        rows.extend(page)
        token = pages.continuation_token
        if rows or not token:
            break
    return SeatPage([_view(r, subscription, grace_days) for r in rows], encode_token(token))


def _view(seat: dict[str, Any], subscription: Subscription, grace_days: int) -> SeatView:
    at = seat.get("AssignedAt")
    return SeatView(
        email=seat["Email"],
        status=seat_status(seat, subscription, grace_days),
        bound=bool(seat.get("BoundOid")),
        assigned_at=datetime.fromtimestamp(at.timestamp(), tz=timezone.utc) if isinstance(at, datetime) else None,
        assigned_by=seat.get("AssignedBy", ""),
        last_seen_on=seat.get("LastSeenOn", ""),
    )


def encode_token(token: Any) -> str | None:
    if not token:
        return None
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> Any:
    if not token:
        return None
    import base64
    import binascii
    import json

    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid continuation token") from exc
    if not isinstance(value, dict):
        raise ValueError("invalid continuation token")
    return value


CSV_COLUMNS = ("email", "status", "bound", "assigned_at", "assigned_by", "last_seen_on")


def export_csv(storage: Storage, subscription: Subscription, grace_days: int, status: str | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for seat in iter_seats(storage, subscription.id):
        view = _view(seat, subscription, grace_days)
        if status and view.status != status:
            continue
        row = view.as_json()
        writer.writerow([_csv_safe(row[c]) if row[c] is not None else "" for c in CSV_COLUMNS])
    return out.getvalue()


def _csv_safe(value: Any) -> str:
    # Spreadsheets run cells starting with = + - @ as formulas (CSV injection).
    text = "true" if value is True else "false" if value is False else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --- reconciliation -------------------------------------------------------------------------------


def reconcile(storage: Storage, settings: Settings, subscription_id: str, *, stale_after: timedelta = STALE_RESERVATION,
              repair_lookups: bool = False) -> dict[str, int]:
    """Complete reservations whose request died; optionally rewrite lookup rows from the seats."""
    now = datetime.now(timezone.utc)
    done = {"reservations": 0, "lookups": 0}
    for reservation in open_reservations(storage, subscription_id):
        created = reservation.get("CreatedAt")
        if isinstance(created, datetime) and now - created < stale_after:
            continue
        ctx = Context(storage, settings, Actor.system("reconciliation"))
        complete_reservation(ctx, subscription_id, reservation)
        done["reservations"] += 1
        log.warning("reconciliation completed reservation %s on %s", reservation["RowKey"], subscription_id)
    if repair_lookups:
        subscription = subscription_store.load(storage, subscription_id)
        if subscription is None:
            return done
        seats = {s["Email"]: s for s in iter_seats(storage, subscription_id)}
        for seat in seats.values():
            storage.upsert(USER_LICENSES, license_lookup_row(subscription_id, subscription.tenant_id, seat["Email"],
                                                             seat.get("BoundOid", ""), bool(seat.get("OverQuantity"))))
            done["lookups"] += 1
        # Lookup rows of seats that no longer exist (a revoke that died after its commit).
        for row in storage.table(USER_LICENSES).query_entities("RowKey eq @rk", parameters={"rk": subscription_id}):
            seat = seats.get(row.get("Email", ""))
            partition = row["PartitionKey"]
            if seat is None or (partition.startswith("oid|") and partition != f"oid|{seat.get('BoundOid', '')}"):
                storage.delete(USER_LICENSES, partition, subscription_id)
    return done
