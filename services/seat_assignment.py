"""Assigning licenses: never more than purchased, never half-applied (PRODUCT.md sections 3 and 4).

- An assignment that fits one transaction (the subscription entity under its ETag, the seats, one
  audit row) is one unit of work (services/unit_of_work.py).
- Larger ones reserve first: the assigned count is raised under the ETag together with a reservation
  listing the addresses; the seats are then written idempotently in batches and the reservation is
  closed. A retry with the same request id, or reconciliation, completes an interrupted one.
- Lookup rows and welcome mails follow the commit and are idempotent: a retried request redoes them
  for the seats it wrote itself (same request id); a mail id is sent once.
- Everything that could refuse the request (no seats free, an ended subscription, an address a mail
  cannot go to) is decided before the first write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from adapters.subscription_repository import MAX_RESERVATION_CHARS, PartitionWrites
from adapters.table_storage import ConcurrencyConflict
from services.audit import Actor, AuditEntry
from services.mail import compose
from services.seat import Reservation, Seat
from services.seat_change import SEATS_PER_TRANSACTION, Context, ListTooLarge, NoSeatsFree, SubscriptionEnded
from services.subscription import LicenseState, Subscription
from services.unit_of_work import AfterCommit, Plan

log = logging.getLogger(__name__)

ASSIGNED = "assigned"
ALREADY_ASSIGNED = "already_assigned"
# Above this many addresses, one partition scan beats a point read per address.
_POINT_READS_UP_TO = 40


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


def welcome_follow_up(ctx: Context, subscription: Subscription, seats: Iterable[Seat]) -> AfterCommit:
    """Lookup rows and welcome mails for seats just written (or written by an earlier attempt)."""
    seats = list(seats)
    return AfterCommit(put_licenses=[seat.lookup(subscription) for seat in seats],
                       mails=[compose.welcome(ctx.settings, subscription, seat) for seat in seats])


def assign(ctx: Context, subscription_id: str, addresses: list[str], request_id: str | None = None,
           duplicates: Iterable[str] = ()) -> Assignment:
    """Assign licenses to `addresses` (normalised, unique); all or nothing.

    Raises NoSeatsFree (nothing assigned) when more new seats are needed than are free.
    """
    request_id = request_id or uuid.uuid4().hex
    uow = ctx.uow
    interrupted = uow.subscriptions.reservation(subscription_id, request_id)
    if interrupted is not None:
        # This request was interrupted mid-way: finish it (same addresses, same sequences).
        complete_reservation(ctx, subscription_id, interrupted)

    outcome = Assignment(request_id=request_id, duplicates=list(duplicates))

    def decide(subscription: Subscription) -> Plan[Reservation | None]:
        existing = _existing_seats(ctx, subscription_id, addresses)
        new = [a for a in addresses if a not in existing]
        mine = [a for a in addresses if a in existing and existing[a].request_id == request_id]
        outcome.results = {a: ASSIGNED if a in new or a in mine else ALREADY_ASSIGNED for a in addresses}
        # A retry of a request that committed: redo what follows the commit (idempotent).
        after = welcome_follow_up(ctx, subscription, (existing[a] for a in mine))
        if not new:
            return Plan(None, after=after)
        if subscription.license_state(ctx.settings.grace_days) is LicenseState.EXPIRED:
            raise SubscriptionEnded()
        free = max(subscription.quantity - subscription.assigned_count, 0)
        if len(new) > free:
            raise NoSeatsFree(len(new), free)
        first = max(subscription.seat_sequence, subscription.assigned_count) + 1
        now = datetime.now(UTC)
        updated = replace(subscription, assigned_count=subscription.assigned_count + len(new),
                          seat_sequence=first + len(new) - 1, updated_at=now)
        seats = [Seat.new(a, sequence=first + i, assigned_by=_by(ctx.actor), request_id=request_id, at=now)
                 for i, a in enumerate(new)]
        # The mails are composed (and their addresses checked) before anything is written.
        welcome = welcome_follow_up(ctx, updated, seats)
        if len(new) <= SEATS_PER_TRANSACTION:
            after.put_licenses += welcome.put_licenses
            after.mails += welcome.mails
            writes = PartitionWrites(updated, create=[*seats, _assign_audit(ctx.actor, new, request_id)])
            return Plan(None, writes, after)
        characters = sum(len(a) + 1 for a in new)
        if characters > MAX_RESERVATION_CHARS:
            raise ListTooLarge(characters, MAX_RESERVATION_CHARS)
        reservation = Reservation(request_id, tuple(new), first, now, ctx.actor)
        return Plan(reservation, PartitionWrites(updated, create=[reservation]), after)

    reservation = uow.change(subscription_id, decide)
    if reservation is not None:
        complete_reservation(ctx, subscription_id, reservation)
    outcome.subscription = uow.subscriptions.load(subscription_id)
    return outcome


def _by(actor: Actor) -> str:
    return actor.email or actor.name


def _assign_audit(actor: Actor, addresses: list[str], request_id: str) -> AuditEntry:
    if len(addresses) == 1:
        return AuditEntry(actor, "license.assigned", target=addresses[0])
    return AuditEntry(actor, "licenses.assigned", target=f"{len(addresses)} addresses",
                      after={"emails": addresses, "request_id": request_id})


def _existing_seats(ctx: Context, subscription_id: str, addresses: list[str]) -> dict[str, Seat]:
    repository = ctx.uow.subscriptions
    if len(addresses) <= _POINT_READS_UP_TO:
        found = {}
        for address in addresses:
            seat = repository.seat(subscription_id, address)
            if seat is not None:
                found[address] = seat
        return found
    wanted = set(addresses)
    return {s.email: s for s in repository.seats(subscription_id) if s.email in wanted}


# --- reservations (bulk changes over one transaction) -------------------------------------------


def complete_reservation(ctx: Context, subscription_id: str, reservation: Reservation) -> int:
    """Write a reservation's seats in batches (idempotently), then close it; returns seats written.

    An address that meanwhile got a seat from someone else is not written twice: its reserved
    count is given back when the reservation closes.
    """
    uow = ctx.uow
    repository = uow.subscriptions
    request_id = reservation.request_id
    addresses = reservation.addresses
    existing = {s.email: s for s in repository.seats(subscription_id)}
    ours = {a for a in addresses if a in existing and existing[a].reservation_id == request_id}
    taken = {a for a in addresses if a in existing and a not in ours}
    todo = [a for a in addresses if a not in existing]
    subscription = uow.load(subscription_id)
    # Batches: the seats plus one audit row naming them.
    for start in range(0, len(todo), SEATS_PER_TRANSACTION + 1):
        batch = todo[start:start + SEATS_PER_TRANSACTION + 1]
        while batch:
            seats = [Seat.new(a, sequence=reservation.sequence_of(a), assigned_by=_by(reservation.actor),
                              request_id=request_id, reservation_id=request_id) for a in batch]
            audit = AuditEntry(reservation.actor, "licenses.assigned", target=f"{len(batch)} addresses",
                               after={"emails": batch, "request_id": request_id})
            try:
                repository.create_rows(subscription_id, [*seats, audit])
            except ConcurrencyConflict:
                # Someone assigned one of these meanwhile (or an earlier attempt wrote them):
                # sort them out and write the rest.
                again = []
                for address in batch:
                    seat = repository.seat(subscription_id, address)
                    if seat is None:
                        again.append(address)
                    elif seat.reservation_id == request_id:
                        ours.add(address)
                    else:
                        taken.add(address)
                batch = again
                continue
            ours.update(batch)
            uow.run_after_commit(welcome_follow_up(ctx, subscription, seats))
            break
    # Seats an earlier attempt wrote: their lookup rows and mails may be missing.
    uow.run_after_commit(welcome_follow_up(ctx, subscription, (existing[a] for a in addresses
                                                               if a in existing and a in ours)))
    close_reservation(ctx, subscription_id, request_id, give_back=len(taken))
    return len(ours)


def close_reservation(ctx: Context, subscription_id: str, request_id: str, give_back: int) -> None:
    """Delete the reservation and give back the seats it did not use, in one transaction."""

    def decide(subscription: Subscription) -> Plan[None]:
        current = ctx.uow.subscriptions.reservation(subscription_id, request_id)
        if current is None:
            return Plan(None)  # closed by a concurrent completion
        updated = replace(subscription, assigned_count=subscription.assigned_count - give_back,
                          updated_at=datetime.now(UTC))
        return Plan(None, PartitionWrites(updated, delete=[current]))

    ctx.uow.change(subscription_id, decide)
