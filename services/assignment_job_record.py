"""What a bulk assignment job stores, and how far it got (PRODUCT.md capability 3, section 4).

The rules are in services/assignment_job.py; the rows in adapters/subscription_repository.py (`job|<id>`
and `jobchunk|<id>|<n>` in the subscription's partition) and adapters/job_index.py (table OpenJobs).

A job is one assign request of more addresses than one transaction holds. Its addresses are held by
the request's reservation (services/seat.py `Reservation`), split into chunks of `CHUNK_SEATS`; each
chunk is written as one transaction (its seats and its chunk row) and then gets its lookup rows and
welcome mails. A chunk row says how far the chunk got; the job's progress is the sum of its chunk
rows, so nothing ever counts the same address twice, however often a step runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.audit import Actor

RUNNING = "running"
COMPLETED = "completed"
COMPLETED_WITH_FAILURES = "completed_with_failures"

# A chunk's stages: its seats are written (with the chunk row, in one transaction), then its lookup
# rows and welcome mails are done; `failed` when the last attempt allowed (host.json maxDequeueCount)
# did not get it done.
SEATS_WRITTEN = "seats"
DONE = "done"
FAILED = "failed"

# One transaction holds 100 operations: 99 seats and the chunk row.
CHUNK_SEATS = 99


@dataclass(frozen=True)
class AssignJob:
    """One bulk assignment; its id is the request id (a retry with it finds the job)."""

    id: str
    actor: Actor
    listed: int  # valid, unique addresses in the request
    new: int  # seats reserved for it (the others held a license already)
    duplicates: int  # addresses listed more than once (counted once)
    sequence_start: int
    background: bool  # answered 202 at once; the seats are written by the queue
    digest: str  # of the address list: the same request id with another list is refused
    created_at: datetime
    updated_at: datetime  # created, last resumed, or finished
    status: str = RUNNING
    completed_at: datetime | None = None
    etag: str | None = None

    @property
    def chunks(self) -> int:
        return -(-self.new // CHUNK_SEATS)

    def chunk_size(self, number: int) -> int:
        return max(0, min(CHUNK_SEATS, self.new - number * CHUNK_SEATS))

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def already_assigned(self) -> int:
        return self.listed - self.new


@dataclass(frozen=True)
class JobChunk:
    """How far one chunk got. `assigned` seats were written by the job; `taken` addresses had got a
    license from elsewhere meanwhile (their reserved seats are given back); `failed` addresses were
    not completed (see `FAILED`)."""

    job_id: str
    number: int
    stage: str
    at: datetime
    assigned: int = 0
    taken: int = 0
    mailed: int = 0
    failed: tuple[str, ...] = ()
    etag: str | None = None

    @property
    def finished(self) -> bool:
        return self.stage in (DONE, FAILED)


@dataclass(frozen=True)
class Progress:
    """A job and its chunk rows, as the API and the progress bar show them."""

    job: AssignJob
    chunks: tuple[JobChunk, ...]

    @property
    def assigned(self) -> int:
        return sum(c.assigned for c in self.chunks)

    @property
    def mails_queued(self) -> int:
        return sum(c.mailed for c in self.chunks)

    @property
    def failed_addresses(self) -> list[str]:
        return [a for c in self.chunks for a in c.failed]

    @property
    def failed(self) -> int:
        return sum(len(c.failed) for c in self.chunks)

    @property
    def taken(self) -> int:
        return sum(c.taken for c in self.chunks)

    @property
    def finished_chunks(self) -> int:
        return sum(1 for c in self.chunks if c.finished)

    @property
    def last_activity(self) -> datetime:
        return max([self.job.updated_at, *(c.at for c in self.chunks)])

    @property
    def percent(self) -> int:
        """Addresses whose chunk is finished, of those the job assigns; 100 only once the job is."""
        if not self.job.running:
            return 100
        if self.job.new == 0:
            return 99
        finished = sum(self.job.chunk_size(c.number) for c in self.chunks if c.finished)
        return min(99, finished * 100 // self.job.new)

    def as_json(self, failed_shown: int = 1000) -> dict[str, Any]:
        job = self.job
        return {
            "job_id": job.id,
            "request_id": job.id,
            "status": job.status,
            "percent": self.percent,
            "listed": job.listed,
            "to_assign": job.new,
            "already_assigned": job.already_assigned + self.taken,
            "duplicates": job.duplicates,
            "assigned": self.assigned,
            "mails_queued": self.mails_queued,
            "failed": self.failed,
            "failed_addresses": self.failed_addresses[:failed_shown],
            "created_at": job.created_at.isoformat(),
            "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        }
