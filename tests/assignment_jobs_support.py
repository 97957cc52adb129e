"""The `assignment-jobs` queue of an in-memory storage, worked off as the Functions host would: every
message until the queue is empty (including the ones the work itself sends), a message that raises is
tried again, its fifth attempt flagged as the last, and after that it is dropped as poisoned."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import ASSIGNMENT_JOBS_QUEUE
from services import assignment_job
from services.seat_change import Context


@dataclass
class Drained:
    runs: int = 0
    failures: int = 0
    poisoned: list[bytes] = field(default_factory=list)


def drain(ctx: Context, store: InMemoryStorage, attempts: int = assignment_job.MAX_ATTEMPTS) -> Drained:
    done = Drained()
    queue = store.queues.setdefault(ASSIGNMENT_JOBS_QUEUE, [])
    pending: list[tuple[bytes, int]] = []
    while True:
        pending += [(body, 0) for body, _ in queue]
        queue.clear()
        if not pending:
            return done
        body, tried = pending.pop(0)
        done.runs += 1
        try:
            assignment_job.run_chunk(ctx, assignment_job.parse(body), last_attempt=tried + 1 >= attempts)
        except Exception:
            done.failures += 1
            if tried + 1 >= attempts:
                done.poisoned.append(body)
            else:
                pending.append((body, tried + 1))
