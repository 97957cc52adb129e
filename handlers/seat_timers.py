"""Timers that keep the seats consistent (PRODUCT.md section 4): complete bulk assignments whose
request died, and rewrite the license check's lookup rows from the seats."""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.blueprint import new_blueprint
from services import bootstrap, seat_reconciliation
from services.over_quantity import apply_quantity

log = logging.getLogger(__name__)
bp = new_blueprint()


@bp.timer_trigger(arg_name="timer", schedule="0 */10 * * * *", run_on_startup=False)
def reconcile_seat_reservations(timer: func.TimerRequest) -> None:
    """Complete bulk assignments whose request died (PRODUCT.md section 4)."""
    uow, settings = bootstrap.unit_of_work(), bootstrap.settings()
    for subscription_id in uow.subscriptions.all_ids():
        done = seat_reconciliation.reconcile(uow, settings, subscription_id)
        if done["reservations"]:
            log.warning("completed %d stale seat reservations on %s", done["reservations"], subscription_id)


@bp.timer_trigger(arg_name="timer", schedule="0 45 3 * * *", run_on_startup=False)
def reconcile_license_lookups(timer: func.TimerRequest) -> None:
    """Rewrite the license check's lookup rows from the seats; recheck over quantity (daily)."""
    uow, settings = bootstrap.unit_of_work(), bootstrap.settings()
    for subscription_id in uow.subscriptions.all_ids():
        seat_reconciliation.reconcile(uow, settings, subscription_id, repair_lookups=True)
        apply_quantity(uow, settings, subscription_id)
