"""Timers that keep the seats consistent (PRODUCT.md section 4): complete bulk assignments whose
request died, and rewrite the license check's lookup rows from the seats. Both find their work through
the index (services/seat_reconciliation.py), so what they cost follows what changed."""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.blueprint import new_blueprint
from services import bootstrap, seat_reconciliation

log = logging.getLogger(__name__)
bp = new_blueprint()


@bp.timer_trigger(arg_name="timer", schedule="0 */10 * * * *", run_on_startup=False)
def reconcile_seat_reservations(timer: func.TimerRequest) -> None:
    """Complete bulk assignments whose request died (PRODUCT.md section 4)."""
    completed = seat_reconciliation.complete_stale_reservations(bootstrap.unit_of_work(), bootstrap.settings())
    if completed:
        log.warning("completed %d stale seat reservations", completed)


@bp.timer_trigger(arg_name="timer", schedule="0 45 3 * * *", run_on_startup=False)
def reconcile_license_lookups(timer: func.TimerRequest) -> None:
    """Rewrite the lookup rows of the seats changed since the last run; recheck over quantity (daily)."""
    run = seat_reconciliation.reconcile_changed(bootstrap.unit_of_work(), bootstrap.settings())
    log.info("lookup reconciliation: %d subscriptions changed, %d lookup rows rewritten%s", len(run.subscriptions),
             run.lookups, " (first run: every subscription)" if run.first_run else "")
