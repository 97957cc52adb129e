"""Repairing seats after failures (PRODUCT.md section 4): reservations whose request died are
completed, and lookup rows are rewritten from the seats (and orphans removed).

The timers find their work through the index (adapters/subscription_index.py), never by visiting every
subscription: the reservation timer reads the open reservations; the daily lookup reconciliation reads
the subscriptions whose partition changed since its last run, and in each the seats written since then
and the seats deleted since then (`seatgone|` rows). What a run costs follows what changed, not how many
subscriptions and users there are. Its first run (no index yet) goes through every subscription once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from adapters.subscription_index import UNLIST_AFTER, SubscriptionIndex, start_of
from services.audit import Actor
from services.over_quantity import apply_quantity
from services.seat import LicenseLookup
from services.seat_assignment import complete_reservation
from services.seat_change import Context
from services.settings import Settings
from services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# A reservation older than this is taken over by reconciliation (its request has died).
STALE_RESERVATION = timedelta(minutes=10)
# Changes are listed by the day of the writer's clock: seats written this long before a listed day still
# count as written that day (clocks of instances differ a little).
CLOCK_MARGIN = timedelta(hours=1)


def reconcile(uow: UnitOfWork, settings: Settings, subscription_id: str, *,
              stale_after: timedelta = STALE_RESERVATION, repair_lookups: bool = False,
              since: datetime | None = None) -> dict[str, int]:
    """Complete reservations whose request died; optionally rewrite lookup rows from the seats: those
    written at or after `since`, or all of them (and remove rows no seat names: a full scan of the lookup
    table, for the first run only) when `since` is None."""
    now = datetime.now(UTC)
    done = {"reservations": 0, "lookups": 0}
    for reservation in uow.subscriptions.reservations(subscription_id):
        if now - reservation.created_at < stale_after:
            continue
        complete_reservation(Context(uow, settings, Actor.system("reconciliation")), subscription_id, reservation)
        done["reservations"] += 1
        log.warning("reconciliation completed reservation %s on %s", reservation.request_id, subscription_id)
    if repair_lookups:
        done["lookups"] = repair_lookups_of(uow, subscription_id, since)
    return done


def repair_lookups_of(uow: UnitOfWork, subscription_id: str, since: datetime | None = None) -> int:
    """Rewrite the lookup rows of the seats written since `since` (all seats when None) and remove those of
    seats deleted since the last run; returns the rows written."""
    subscription = uow.subscriptions.load(subscription_id)
    if subscription is None:
        return 0
    seats = (uow.subscriptions.seats(subscription_id) if since is None
             else uow.subscriptions.seats_changed_since(subscription_id, since))
    written: dict[str, str] = {}
    for seat in seats:
        uow.lookups.put_license(seat.lookup(subscription))
        if seat.bound:
            # The address row a license check may have left when it bound the seat (services/license_check.py).
            uow.lookups.delete_license(LicenseLookup(subscription_id, seat.email, subscription.tenant_id))
        written[seat.email] = seat.bound_oid
    gone = uow.subscriptions.seats_gone(subscription_id)
    for seat_gone in gone:
        if seat_gone.email in written or uow.subscriptions.seat(subscription_id, seat_gone.email) is not None:
            continue  # assigned again since: its rows are the new seat's
        uow.lookups.delete_licenses_of_seat(subscription_id, seat_gone.email, seat_gone.bound_oid)
    uow.subscriptions.forget_seats_gone(subscription_id, gone)
    if since is None:
        # Rows that neither a seat nor a `seatgone|` row names: left by a revoke from before those rows
        # existed, or by a binding the seat no longer has. A scan of the whole lookup table: first run only.
        for lookup in uow.lookups.licenses_in(subscription_id):
            if lookup.revoked:
                continue
            if lookup.email not in written or (lookup.bound and lookup.bound_oid != written[lookup.email]):
                uow.lookups.delete_license(lookup)
    return len(written)


def complete_stale_reservations(uow: UnitOfWork, settings: Settings, *, stale_after: timedelta = STALE_RESERVATION,
                                now: datetime | None = None) -> int:
    """Complete the reservations whose request died, found through the index of open reservations."""
    now = now or datetime.now(UTC)
    index = SubscriptionIndex(uow.store)
    if not index.reservations_complete():
        index.backfill_reservations(uow.subscriptions.all_reservation_keys())
    completed = 0
    for entry in index.open_reservations():
        if now - entry.listed_at < stale_after:
            continue
        reservation = uow.subscriptions.reservation(entry.subscription_id, entry.request_id)
        if reservation is None:
            if now - entry.listed_at >= UNLIST_AFTER:  # closed, or never committed (not on its way)
                index.reservation_closed(entry.subscription_id, entry.request_id)
            continue
        if now - reservation.created_at < stale_after:
            continue
        complete_reservation(Context(uow, settings, Actor.system("reconciliation")), entry.subscription_id,
                             reservation)
        completed += 1
        log.warning("reconciliation completed reservation %s on %s", reservation.request_id, entry.subscription_id)
    return completed


@dataclass
class LookupRun:
    """What one daily lookup reconciliation did."""

    subscriptions: list[str] = field(default_factory=list)
    lookups: int = 0
    first_run: bool = False


def reconcile_changed(uow: UnitOfWork, settings: Settings, now: datetime | None = None) -> LookupRun:
    """The daily lookup reconciliation: for every subscription listed as changed on a day before today,
    rewrite the lookup rows of its seats written since then, remove those of its deleted seats, and
    recheck over quantity; then forget those days. The first run goes through every subscription."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    index = SubscriptionIndex(uow.store)
    run = LookupRun()
    changes = index.changed_before(today.isoformat())
    if index.reconciled_until() is None:
        run.first_run = True
        targets: dict[str, datetime | None] = {sid: None for sid in uow.subscriptions.all_ids()}
    else:
        targets = {}
        for day, subscription_id in changes:  # oldest first: the first day listed counts
            if subscription_id not in targets:
                targets[subscription_id] = start_of(datetime.fromisoformat(day).date()) - CLOCK_MARGIN
    for subscription_id, since in targets.items():
        run.lookups += reconcile(uow, settings, subscription_id, repair_lookups=True, since=since)["lookups"]
        apply_quantity(uow, settings, subscription_id)
        run.subscriptions.append(subscription_id)
    index.forget_changes(changes)
    index.set_reconciled_until(today)
    return run
