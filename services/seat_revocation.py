"""Revoking and reassigning licenses (PRODUCT.md capability 3).

Revoking frees the seat and deletes the holder's lookup rows in the same request, so the user is
unlicensed at once. The seat row is deleted under the ETag it was read with, so a license check
binding it at the same moment cannot leave a lookup row behind (services/seat.py). Reassigning is
revoke + assign in one transaction: nobody can take the seat in between.

A revoke can be undone for UNDO_WINDOW (a mistaken click): the undo assigns the same address again
through the assignment's own rules (a free seat, a subscription that has not ended), audited as
`license.restored`. The seat is new: pending until the user's next license check binds it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.subscription_repository import PartitionWrites
from services.audit import AuditEntry
from services.over_quantity import apply_quantity
from services.seat import Seat, normalise_address
from services.seat_assignment import assign, welcome_follow_up
from services.seat_change import AlreadyAssigned, Context, NoSeatsFree, NotAssigned, SeatTaken, UndoExpired
from services.subscription import Subscription
from services.unit_of_work import AfterCommit, Plan, SeatLookupsGone, UnitOfWork

REVOKED = "license.revoked"
UNDO_MINUTES = 10
UNDO_WINDOW = timedelta(minutes=UNDO_MINUTES)
# The license page offers the undo for at most this many recent revokes (newest first).
UNDO_SHOWN = 10


@dataclass(frozen=True)
class Revocation:
    """A revoke that can still be undone."""

    email: str
    at: datetime
    by: str

    @property
    def undo_until(self) -> datetime:
        return self.at + UNDO_WINDOW


def _lookups_gone(subscription_id: str, seat: Seat) -> SeatLookupsGone:
    return SeatLookupsGone(subscription_id, seat.email, seat.bound_oid)


def _summary(seat: Seat) -> dict[str, Any]:
    return {"email": seat.email, "bound": seat.bound, "assigned_at": seat.assigned_at}


def revoke(ctx: Context, subscription_id: str, address: str) -> Subscription:
    """Free the seat of `address` and delete its lookup rows: the user is unlicensed at once."""
    address = normalise_address(address)

    def decide(subscription: Subscription) -> Plan[tuple[Subscription, Seat]]:
        seat = ctx.uow.subscriptions.seat(subscription_id, address)
        if seat is None:
            raise NotAssigned(address)
        updated = replace(subscription, assigned_count=max(subscription.assigned_count - 1, 0),
                          updated_at=datetime.now(UTC))
        audit = AuditEntry(ctx.actor, REVOKED, target=address, before=_summary(seat))
        return Plan((subscription, seat), PartitionWrites(updated, create=[audit], delete=[seat]),
                    AfterCommit(delete_licenses=[_lookups_gone(subscription_id, seat)]))

    before, seat = ctx.uow.change(subscription_id, decide)
    if before.assigned_count > before.quantity or seat.over_quantity:
        apply_quantity(ctx.uow, ctx.settings, subscription_id)
    return ctx.uow.load(subscription_id)


def reassign(ctx: Context, subscription_id: str, from_address: str, to_address: str,
             request_id: str | None = None) -> Subscription:
    """Move a seat from one address to another in one transaction."""
    from_address, to_address = normalise_address(from_address), normalise_address(to_address)
    request_id = request_id or uuid.uuid4().hex

    def decide(subscription: Subscription) -> Plan[Subscription]:
        old = ctx.uow.subscriptions.seat(subscription_id, from_address)
        new = ctx.uow.subscriptions.seat(subscription_id, to_address)
        if new is not None and new.request_id == request_id and old is None:
            # A retry of a reassignment that committed: redo its follow-up.
            return Plan(subscription, after=welcome_follow_up(ctx, subscription, [new]))
        if old is None:
            raise NotAssigned(from_address)
        if new is not None:
            raise AlreadyAssigned(to_address)
        sequence = max(subscription.seat_sequence, subscription.assigned_count) + 1
        updated = replace(subscription, seat_sequence=sequence, updated_at=datetime.now(UTC))
        seat = replace(Seat.new(to_address, sequence=sequence, assigned_by=ctx.actor.email or ctx.actor.name,
                                request_id=request_id), over_quantity=old.over_quantity)
        audit = AuditEntry(ctx.actor, "license.reassigned", target=to_address,
                           before={"email": from_address}, after={"email": to_address})
        after = welcome_follow_up(ctx, updated, [seat])
        after.delete_licenses.append(_lookups_gone(subscription_id, old))
        return Plan(subscription, PartitionWrites(updated, create=[seat, audit], delete=[old]), after)

    before = ctx.uow.change(subscription_id, decide)
    if before.assigned_count > before.quantity:
        apply_quantity(ctx.uow, ctx.settings, subscription_id)
    return ctx.uow.load(subscription_id)


def recent_revocations(uow: UnitOfWork, subscription_id: str, now: datetime | None = None) -> list[Revocation]:
    """The revokes of the last UNDO_WINDOW whose address holds no license again, newest first, one per
    address, at most UNDO_SHOWN."""
    since = (now or datetime.now(UTC)) - UNDO_WINDOW
    latest: dict[str, Revocation] = {}
    for entry in uow.subscriptions.audit_since(subscription_id, since, REVOKED):
        if entry.target not in latest and len(latest) < UNDO_SHOWN:
            latest[entry.target] = Revocation(entry.target, entry.at, entry.actor.email or entry.actor.name)
    return [r for r in latest.values() if uow.subscriptions.seat(subscription_id, r.email) is None]


def undo_revoke(ctx: Context, subscription_id: str, address: str, request_id: str | None = None) -> Subscription:
    """Assign `address` again after its revoke of the last UNDO_WINDOW, through the assignment's rules.

    UndoExpired when there is no such revoke; SeatTaken when no license is free any more;
    AlreadyAssigned when the address holds a license again (someone assigned it meanwhile); the
    assignment's own refusals (an ended subscription) as they are. A retry with the same request id
    answers as the first attempt did.
    """
    address = normalise_address(address)
    since = datetime.now(UTC) - UNDO_WINDOW
    revoked = next((e for e in ctx.uow.subscriptions.audit_since(subscription_id, since, REVOKED)
                    if e.target == address), None)
    if revoked is None:
        raise UndoExpired(address, UNDO_MINUTES)
    try:
        outcome = assign(ctx, subscription_id, [address], request_id, undoing=revoked.at)
    except NoSeatsFree:
        raise SeatTaken(address) from None
    if outcome.already_assigned:
        raise AlreadyAssigned(address)
    return outcome.subscription or ctx.uow.load(subscription_id)


def holds_license(uow: UnitOfWork, subscription_id: str, address: str) -> bool:
    """Whether `address` holds a license in the subscription (a confirmation page asks first)."""
    return uow.subscriptions.seat(subscription_id, normalise_address(address)) is not None
