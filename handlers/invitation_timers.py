"""The timer that deletes expired invitations (PRODUCT.md capability 4): the invitation rows in the
subscriptions' partitions and their token lookup rows."""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.blueprint import new_blueprint
from services import bootstrap, delegation

log = logging.getLogger(__name__)
bp = new_blueprint()


@bp.timer_trigger(arg_name="timer", schedule="0 20 3 * * *", run_on_startup=False)
def purge_expired_invitations(timer: func.TimerRequest) -> None:
    """Daily: delete invitations whose link has expired (an expired link already refuses itself)."""
    removed = delegation.purge_expired(bootstrap.unit_of_work())
    log.info("removed %d expired invitations", removed)
