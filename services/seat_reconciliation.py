"""Repairing seats after failures (PRODUCT.md section 4): reservations whose request died are
completed, and lookup rows are rewritten from the seats (and orphans removed)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.audit import Actor
from services.seat_assignment import complete_reservation
from services.seat_change import Context
from services.settings import Settings
from services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# A reservation older than this is taken over by reconciliation (its request has died).
STALE_RESERVATION = timedelta(minutes=10)


def reconcile(uow: UnitOfWork, settings: Settings, subscription_id: str, *,
              stale_after: timedelta = STALE_RESERVATION, repair_lookups: bool = False) -> dict[str, int]:
    """Complete reservations whose request died; optionally rewrite lookup rows from the seats."""
    now = datetime.now(UTC)
    done = {"reservations": 0, "lookups": 0}
    for reservation in uow.subscriptions.reservations(subscription_id):
        if now - reservation.created_at < stale_after:
            continue
        complete_reservation(Context(uow, settings, Actor.system("reconciliation")), subscription_id, reservation)
        done["reservations"] += 1
        log.warning("reconciliation completed reservation %s on %s", reservation.request_id, subscription_id)
    if repair_lookups:
        subscription = uow.subscriptions.load(subscription_id)
        if subscription is None:
            return done
        seats = {s.email: s for s in uow.subscriptions.seats(subscription_id)}
        for seat in seats.values():
            uow.lookups.put_license(seat.lookup(subscription))
            done["lookups"] += 1
        # Lookup rows of seats that no longer exist (a revoke that died after its commit), or of a
        # binding the seat no longer has.
        for lookup in uow.lookups.licenses_in(subscription_id):
            holder = seats.get(lookup.email)
            if holder is None or (lookup.bound and lookup.bound_oid != holder.bound_oid):
                uow.lookups.delete_license(lookup)
    return done
