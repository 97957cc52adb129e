"""Operational signals: the depth of each poison queue, logged for the "poison queue not empty" alert."""

from __future__ import annotations

import logging

import azure.functions as func

from adapters.table_storage import QUEUES
from handlers.blueprint import new_blueprint
from services import bootstrap

log = logging.getLogger(__name__)
bp = new_blueprint()


@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
def poison_queue_depth(timer: func.TimerRequest) -> None:
    storage = bootstrap.storage()
    for name in QUEUES:
        poison = f"{name}-poison"
        depth = storage.queue_depth(poison)
        # infra/alerts.bicep parses exactly this line: keep its shape.
        log.info("poison_queue_depth queue=%s depth=%d", poison, depth)
