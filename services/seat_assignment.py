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
from services import assignment_job
from services.assignment_job_record import AssignJob
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
    # A bulk assignment (more new addresses than one transaction holds) runs as a job; `background`:
    # answered before its seats were written (services/assignment_job.py).
    job: AssignJob | None = None

    @property
    def background(self) -> bool:
        return self.job is not None and self.job.background

    @property
    def assigned(self) -> list[str]:
        return [a for a, r in self.results.items() if r == ASSIGNED]

    @property
    def already_assigned(self) -> list[str]:
        return [a for a, r in self.results.items() if r == ALREADY_ASSIGNED]


def welcome_follow_up(ctx: Context, subscription: Subscription, seats: Iterable[Seat], mail: bool = True
                      ) -> AfterCommit:
    """Lookup rows and welcome mails (unless `mail` is false) for seats just written (or written by an
    earlier attempt)."""
    seats = list(seats)
    return AfterCommit(put_licenses=[seat.lookup(subscription) for seat in seats],
                       mails=[compose.welcome(ctx.settings, subscription, seat) for seat in seats] if mail else [])


def assign(ctx: Context, subscription_id: str, addresses: list[str], request_id: str | None = None,
           duplicates: Iterable[str] = (), *, undoing: datetime | None = None) -> Assignment:
    """Assign licenses to `addresses` (normalised, unique); all or nothing.

    Raises NoSeatsFree (nothing assigned) when more new seats are needed than are free.
    `undoing`: the time of the revoke this assignment takes back (services/seat_revocation.undo_revoke):
    the same rules, audited as `license.restored`, and no welcome mail (the person was told of neither).
    """
    mail = undoing is None
    request_id = request_id or uuid.uuid4().hex
    uow = ctx.uow
    # Only a list longer than one transaction can become a job (services/assignment_job.py).
    bulk = len(addresses) > SEATS_PER_TRANSACTION and undoing is None
    job = uow.subscriptions.job(subscription_id, request_id) if bulk else None
    if job is not None:
        return _job_retried(ctx, subscription_id, job, addresses, duplicates)
    interrupted = uow.subscriptions.reservation(subscription_id, request_id)
    if interrupted is not None:
        # This request was interrupted mid-way: finish it (same addresses, same sequences).
        complete_reservation(ctx, subscription_id, interrupted)

    outcome = Assignment(request_id=request_id, duplicates=list(duplicates))

    def decide(subscription: Subscription) -> Plan[tuple[AssignJob, Reservation] | None]:
        existing = _existing_seats(ctx, subscription_id, addresses)
        new = [a for a in addresses if a not in existing]
        mine = [a for a in addresses if a in existing and existing[a].request_id == request_id]
        outcome.results = {a: ASSIGNED if a in new or a in mine else ALREADY_ASSIGNED for a in addresses}
        # A retry of a request that committed: redo what follows the commit (idempotent).
        after = welcome_follow_up(ctx, subscription, (existing[a] for a in mine), mail=mail)
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
        if len(new) <= SEATS_PER_TRANSACTION:
            seats = [Seat.new(a, sequence=first + i, assigned_by=_by(ctx.actor), request_id=request_id, at=now)
                     for i, a in enumerate(new)]
            # The mails are composed (and their addresses checked) before anything is written.
            welcome = welcome_follow_up(ctx, updated, seats, mail=mail)
            after.put_licenses += welcome.put_licenses
            after.mails += welcome.mails
            audit = (_assign_audit(ctx.actor, new, request_id) if undoing is None else AuditEntry(
                ctx.actor, "license.restored", target=new[0], after={"revoked_at": undoing.isoformat()}))
            writes = PartitionWrites(updated, create=[*seats, audit])
            return Plan(None, writes, after)
        characters = sum(len(a) + 1 for a in new)
        if characters > MAX_RESERVATION_CHARS:
            raise ListTooLarge(characters, MAX_RESERVATION_CHARS)
        # A job: the reservation holds the addresses; its seats, lookup rows and mails follow in chunks.
        # (Each address passed the one grammar the mails check too; a welcome mail is composed here to
        # check what the subscription gives every mail before anything is written.)
        compose.welcome(ctx.settings, updated, Seat.new(new[0], sequence=first, assigned_by=_by(ctx.actor)))
        job, reservation = assignment_job.plan_job(
            request_id, new, first, now, ctx.actor, listed=addresses, duplicates=len(outcome.duplicates),
            background=len(new) > ctx.settings.bulk_assign_threshold)
        audit = _assign_audit(ctx.actor, new, request_id)
        return Plan((job, reservation), PartitionWrites(updated, create=[reservation, job, audit]), after)

    # A job goes into the index of open jobs before it commits, so the timer always finds it again.
    if bulk:
        assignment_job.index(uow).add(subscription_id, request_id, datetime.now(UTC))
    started = None
    try:
        started = uow.change(subscription_id, decide)
    finally:
        if bulk and started is None:
            _forget_index_row(ctx, subscription_id, request_id)
    if started is not None:
        outcome.job = started[0]
        assignment_job.launch(ctx, subscription_id, *started)
    outcome.subscription = uow.subscriptions.load(subscription_id)
    return outcome


def _forget_index_row(ctx: Context, subscription_id: str, request_id: str) -> None:
    try:
        assignment_job.index(ctx.uow).remove(subscription_id, request_id)
    except Exception:  # the timer removes it later
        log.warning("could not remove the open-job index row of %s on %s", request_id, subscription_id)


def _job_retried(ctx: Context, subscription_id: str, job: AssignJob, addresses: list[str],
                 duplicates: Iterable[str]) -> Assignment:
    """The same request again, after it became a job: resume the job; the answer as the first time."""
    assignment_job.retried(ctx, subscription_id, job, addresses)
    outcome = Assignment(request_id=job.id, duplicates=list(duplicates), job=job)
    if not job.background:
        existing = _existing_seats(ctx, subscription_id, addresses)
        outcome.results = {a: ASSIGNED if a in existing and existing[a].request_id == job.id else ALREADY_ASSIGNED
                           for a in addresses}
    outcome.subscription = ctx.uow.subscriptions.load(subscription_id)
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
    job = repository.job(subscription_id, request_id)
    if job is not None:
        # A bulk assignment job's reservation: the job writes its seats (services/assignment_job.py).
        assignment_job.resume(ctx, subscription_id, job)
        return 0
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
                seat_etags = repository.create_rows(subscription_id, [*seats, audit])
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
            uow.run_after_commit(welcome_follow_up(ctx, subscription,
                                                   [replace(s, etag=seat_etags.get(s.email)) for s in seats]))
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
