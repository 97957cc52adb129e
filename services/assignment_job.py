"""Bulk assignment as a job (PRODUCT.md capability 3 and section 4).

An assign request of more new addresses than one transaction holds becomes a job:

1. The request checks everything, then in one transaction under the subscription's ETag raises the
   assigned count, writes the reservation (the addresses, in key order, and their sequence numbers),
   the job row and the audit row: all or nothing, never more than purchased (services/seat_assignment.py).
   Just before, the job goes into the index of open jobs (adapters/job_index.py), so a job that
   committed is always found again.
2. The addresses are split into chunks of 99. A chunk's seats are written in one transaction together
   with its chunk row, which is how every later step knows they are written (and by whom). Up to
   BULK_ASSIGN_THRESHOLD new addresses the request writes the chunks itself and answers 200; above, it
   answers 202 at once and the queue (`assignment-jobs`, one message per chunk) writes them.
3. For each chunk a queue message then writes the lookup rows of its seats (separate partitions: in
   parallel, in one bounded pool per process) and queues the welcome mails, and marks the chunk done.
4. The chunk that finds every chunk finished closes the reservation, giving back the seats it did not
   use (addresses that got a license elsewhere meanwhile, chunks that failed), and marks the job done.

Every step is idempotent: the queue may deliver a message twice or after a crash, a retry of the
request (same request id) or the timer (`resume_stalled`) sends the unfinished chunks again, and each
seat, lookup row and welcome mail (by its id) still exists once. A chunk whose message fails on its last
attempt (host.json maxDequeueCount) is recorded as failed before the message goes to the poison queue,
so the job ends and says which addresses did not complete.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from pydantic import BaseModel, Field, ValidationError

from adapters.job_index import JobIndex
from adapters.subscription_repository import PartitionWrites
from adapters.table_storage import ASSIGNMENT_JOBS_QUEUE, ConcurrencyConflict
from services.assignment_job_record import (
    CHUNK_SEATS,
    COMPLETED,
    COMPLETED_WITH_FAILURES,
    DONE,
    FAILED,
    SEATS_WRITTEN,
    AssignJob,
    JobChunk,
    Progress,
)
from services.audit import Actor, AuditEntry
from services.mail import compose, queue_sends
from services.seat import Reservation, Seat
from services.seat_change import Context, RequestIdReused
from services.subscription import Subscription
from services.unit_of_work import Plan, UnitOfWork

log = logging.getLogger(__name__)

# host.json maxDequeueCount: after this attempt the host moves a failing message to the poison queue.
MAX_ATTEMPTS = 5
# The timer sends a running job's unfinished chunks again once nothing happened for this long (a
# message whose host died comes back by itself once its lock expires; this catches the rest).
STALLED_AFTER = timedelta(minutes=5)
# An index row whose job never committed (the request died in between) is removed after this.
ORPHANED_AFTER = timedelta(minutes=30)
# Lookup rows and queued mails of every chunk running in this process share one pool of this size.
FANOUT_WORKERS = 32


class ChunkMessage(BaseModel):
    """One chunk of a job on the `assignment-jobs` queue: its addresses (at most 99 of at most 254
    characters: well within a queue message's 64 KiB) and the sequence number of the first."""

    subscription_id: str = Field(min_length=1, max_length=100)
    job_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    chunk: int = Field(ge=0)
    sequence: int = Field(ge=1)
    addresses: list[str] = Field(min_length=1, max_length=CHUNK_SEATS)


class UnusableMessage(ValueError):
    """The message itself is malformed: retrying cannot help (it ends in the poison queue)."""


def parse(body: bytes) -> ChunkMessage:
    try:
        return ChunkMessage.model_validate_json(body)
    except (ValueError, ValidationError) as exc:
        raise UnusableMessage(f"malformed assignment job message: {exc}") from exc


def list_digest(addresses: Iterable[str]) -> str:
    """Identifies an address list whatever its order: a request id names one list."""
    return hashlib.sha256("\n".join(sorted(addresses)).encode("utf-8")).hexdigest()[:32]


def _by(actor: Actor) -> str:
    return actor.email or actor.name


# --- starting (within the assign request's transaction) ------------------------------------------------


def plan_job(request_id: str, new: list[str], first_sequence: int, at: datetime, actor: Actor, *, listed: list[str],
             duplicates: int, background: bool) -> tuple[AssignJob, Reservation]:
    """The job row and the reservation for `new` addresses (in key order, so a chunk's seats are one
    run of the partition)."""
    ordered = tuple(sorted(new))
    job = AssignJob(id=request_id, actor=actor, listed=len(listed), new=len(ordered), duplicates=duplicates,
                    sequence_start=first_sequence, background=background, digest=list_digest(listed),
                    created_at=at, updated_at=at)
    return job, Reservation(request_id, ordered, first_sequence, at, actor)


def chunk_messages(subscription_id: str, job: AssignJob, reservation: Reservation) -> list[ChunkMessage]:
    return [ChunkMessage(subscription_id=subscription_id, job_id=job.id, chunk=number,
                         sequence=reservation.sequence_start + number * CHUNK_SEATS,
                         addresses=list(reservation.addresses[number * CHUNK_SEATS:(number + 1) * CHUNK_SEATS]))
            for number in range(job.chunks)]


def launch(ctx: Context, subscription_id: str, job: AssignJob, reservation: Reservation) -> None:
    """Right after the job committed: in the background (202) queue every chunk; otherwise write every
    chunk's seats here and queue the chunks for their lookup rows and mails."""
    messages = chunk_messages(subscription_id, job, reservation)
    if job.background:
        _send(ctx, messages)
        return
    for message in messages:
        write_seats(ctx, job, message)
        _send(ctx, [message])


def index(uow: UnitOfWork) -> JobIndex:
    return JobIndex(uow.store)


# --- a retried request (same request id) -----------------------------------------------------------------


def retried(ctx: Context, subscription_id: str, job: AssignJob, addresses: list[str]) -> AssignJob:
    """The same request again: refuse another list under the same id; resume the job if it is running
    (a request that writes its seats itself writes the missing ones again first)."""
    if job.digest != list_digest(addresses):
        raise RequestIdReused(job.id)
    if job.running:
        resume(ctx, subscription_id, job, write_here=not job.background)
    return job


def resume(ctx: Context, subscription_id: str, job: AssignJob, *, write_here: bool = False) -> int:
    """Send the job's unfinished chunks again (or finish it if nothing is left); the number sent."""
    repository = ctx.uow.subscriptions
    reservation = repository.reservation(subscription_id, job.id)
    if reservation is None:
        finish_if_complete(ctx, subscription_id, job.id)
        return 0
    finished = {c.number for c in repository.job_chunks(subscription_id, job.id) if c.finished}
    pending = [m for m in chunk_messages(subscription_id, job, reservation) if m.chunk not in finished]
    if write_here:
        for message in pending:
            write_seats(ctx, job, message)
    repository.touch_job(subscription_id, job.id, datetime.now(UTC))
    _send(ctx, pending)
    if not pending:
        finish_if_complete(ctx, subscription_id, job.id)
    return len(pending)


# --- one chunk (the queue message) ----------------------------------------------------------------------


def run_chunk(ctx: Context, message: ChunkMessage, *, last_attempt: bool = False) -> None:
    """Write the chunk's seats unless written, then its lookup rows and welcome mails; finish the job
    when this was the last chunk. On the last attempt a failure is recorded on the chunk first."""
    repository = ctx.uow.subscriptions
    job = repository.job(message.subscription_id, message.job_id)
    if job is None or not job.running:
        log.info("assignment job %s: chunk %d needs nothing (job %s)", message.job_id, message.chunk,
                 "unknown" if job is None else job.status)
        return
    try:
        chunk = repository.job_chunk(message.subscription_id, job.id, message.chunk)
        if chunk is None:
            chunk = write_seats(ctx, job, message)
        if not chunk.finished:
            fan_out(ctx, job, message, chunk)
    except Exception:
        if last_attempt:
            _record_failure(ctx, job, message)
        raise
    finish_if_complete(ctx, message.subscription_id, job.id)


def write_seats(ctx: Context, job: AssignJob, message: ChunkMessage) -> JobChunk:
    """The chunk's seats and its chunk row in one transaction; the chunk row (with its ETag) as stored.

    Addresses that hold a seat meanwhile (assigned by someone else) are left out and counted as taken;
    their reserved seats are given back when the job finishes."""
    repository = ctx.uow.subscriptions
    subscription_id = message.subscription_id
    sequence = {a: message.sequence + i for i, a in enumerate(message.addresses)}
    todo = list(message.addresses)
    taken = ours = 0
    while True:
        stored = repository.job_chunk(subscription_id, job.id, message.chunk)
        if stored is not None:
            return stored  # another attempt wrote it
        seats = [Seat.new(a, sequence=sequence[a], assigned_by=_by(job.actor), request_id=job.id,
                          reservation_id=job.id, at=job.created_at) for a in todo]
        chunk = JobChunk(job.id, message.chunk, SEATS_WRITTEN, datetime.now(UTC), assigned=len(todo) + ours,
                         taken=taken)
        try:
            repository.create_rows(subscription_id, [*seats, chunk])
        except ConcurrencyConflict:
            # The chunk row (a concurrent attempt) or a seat (someone else's) exists: sort it out, try again.
            held = repository.seats_of(subscription_id, todo, None)
            ours += sum(1 for s in held if s.reservation_id == job.id)
            taken += sum(1 for s in held if s.reservation_id != job.id)
            written = {s.email for s in held}
            todo = [a for a in todo if a not in written]
            continue
        stored = repository.job_chunk(subscription_id, job.id, message.chunk)
        return stored or chunk


def fan_out(ctx: Context, job: AssignJob, message: ChunkMessage, chunk: JobChunk) -> JobChunk:
    """Lookup rows and welcome mails for the chunk's seats (those this job wrote and nobody revoked since),
    in the shared bounded pool; then the chunk is done."""
    uow = ctx.uow
    subscription = uow.load(message.subscription_id)
    seats = uow.subscriptions.seats_of(message.subscription_id, message.addresses, job.id)
    mails = [compose.welcome(ctx.settings, subscription, seat) for seat in seats]
    work: list[Callable[[], None]] = [partial(uow.lookups.put_license, seat.lookup(subscription)) for seat in seats]
    work += queue_sends(uow.store, mails)
    _in_pool(work)
    done = replace(chunk, stage=DONE, mailed=len(mails), at=datetime.now(UTC))
    try:
        uow.subscriptions.save_job_chunk(message.subscription_id, done)
    except ConcurrencyConflict:
        pass  # a concurrent attempt finished (or failed) it: its record stands
    return done


def _record_failure(ctx: Context, job: AssignJob, message: ChunkMessage) -> None:
    """The chunk's last attempt failed: record which addresses did not complete, so the job can end."""
    repository = ctx.uow.subscriptions
    try:
        chunk = repository.job_chunk(message.subscription_id, job.id, message.chunk)
        if chunk is not None and chunk.finished:
            return
        if chunk is None:
            failed = JobChunk(job.id, message.chunk, FAILED, datetime.now(UTC), failed=tuple(message.addresses))
        else:
            seats = repository.seats_of(message.subscription_id, message.addresses, job.id)
            failed = replace(chunk, stage=FAILED, at=datetime.now(UTC), failed=tuple(s.email for s in seats))
        repository.save_job_chunk(message.subscription_id, failed)
        log.error("assignment job %s: chunk %d failed for good (%d addresses)", job.id, message.chunk,
                  len(failed.failed))
        finish_if_complete(ctx, message.subscription_id, job.id)
    except Exception:
        # Storage itself is failing: the job stays open and the timer sends the chunk again later.
        log.exception("assignment job %s: could not record the failure of chunk %d", job.id, message.chunk)


# --- finishing -----------------------------------------------------------------------------------------


def finish_if_complete(ctx: Context, subscription_id: str, job_id: str) -> bool:
    """Finish the job once every chunk is finished: close the reservation, giving back the seats it did
    not use, and mark the job done, in one transaction. True if the job is (now) finished."""
    uow = ctx.uow
    repository = uow.subscriptions
    job = repository.job(subscription_id, job_id)
    if job is None:
        return False
    if not job.running:
        index(uow).remove(subscription_id, job_id)
        return True
    chunks = repository.job_chunks(subscription_id, job_id)
    if sum(1 for c in chunks if c.finished) < job.chunks:
        return False
    progress = Progress(job, tuple(chunks))

    def decide(subscription: Subscription) -> Plan[None]:
        current = repository.job(subscription_id, job_id)
        if current is None or not current.running:
            return Plan(None)  # finished by a concurrent chunk
        now = datetime.now(UTC)
        status = COMPLETED_WITH_FAILURES if progress.failed else COMPLETED
        done = replace(current, status=status, completed_at=now, updated_at=now)
        writes = PartitionWrites(subscription, put=[done])
        reservation = repository.reservation(subscription_id, job_id)
        if reservation is not None:
            unused = current.new - progress.assigned
            writes = PartitionWrites(replace(subscription, assigned_count=subscription.assigned_count - unused,
                                             updated_at=now), put=[done], delete=[reservation])
        if progress.failed:
            writes.create.append(AuditEntry(current.actor, "licenses.assignment_failed",
                                            target=f"{progress.failed} addresses",
                                            after={"emails": progress.failed_addresses, "request_id": job_id}))
        return Plan(None, writes)

    uow.change(subscription_id, decide)
    index(uow).remove(subscription_id, job_id)
    return True


# --- the timer ------------------------------------------------------------------------------------------


@dataclass
class Resumed:
    resumed: int = 0  # jobs whose chunks were sent again
    finished: int = 0
    forgotten: int = 0  # index rows of jobs that never committed or finished long ago


def resume_stalled(ctx: Context, now: datetime | None = None, stalled_after: timedelta = STALLED_AFTER) -> Resumed:
    """Find the unfinished jobs through their index (never a scan of every partition) and send the
    unfinished chunks of those where nothing happened for `stalled_after` again."""
    now = now or datetime.now(UTC)
    uow = ctx.uow
    done = Resumed()
    for entry in list(index(uow).entries()):
        job = uow.subscriptions.job(entry.subscription_id, entry.job_id)
        if job is None:
            if now - entry.listed_at > ORPHANED_AFTER:
                index(uow).remove(entry.subscription_id, entry.job_id)
                done.forgotten += 1
            continue
        if not job.running:
            index(uow).remove(entry.subscription_id, entry.job_id)
            done.forgotten += 1
            continue
        progress = Progress(job, tuple(uow.subscriptions.job_chunks(entry.subscription_id, job.id)))
        if progress.finished_chunks >= job.chunks:
            finish_if_complete(ctx, entry.subscription_id, job.id)
            done.finished += 1
        elif now - progress.last_activity >= stalled_after:
            log.warning("assignment job %s on %s stalled since %s: sending its unfinished chunks again", job.id,
                        entry.subscription_id, progress.last_activity.isoformat())
            resume(ctx, entry.subscription_id, job)
            done.resumed += 1
    return done


# --- reading ----------------------------------------------------------------------------------------------


def progress(uow: UnitOfWork, subscription_id: str, job_id: str) -> Progress | None:
    job = uow.subscriptions.job(subscription_id, job_id)
    if job is None:
        return None
    return Progress(job, tuple(uow.subscriptions.job_chunks(subscription_id, job_id)))


def running(uow: UnitOfWork, subscription_id: str) -> list[Progress]:
    """The subscription's jobs still running, newest first, with their progress."""
    jobs = sorted(uow.subscriptions.running_jobs(subscription_id), key=lambda j: j.created_at, reverse=True)
    return [Progress(job, tuple(uow.subscriptions.job_chunks(subscription_id, job.id))) for job in jobs]


# --- sending and the bounded pool --------------------------------------------------------------------------


def _send(ctx: Context, messages: list[ChunkMessage]) -> None:
    store = ctx.uow.store
    _in_pool([partial(store.send, ASSIGNMENT_JOBS_QUEUE, m.model_dump_json().encode("utf-8")) for m in messages])


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _in_pool(work: list[Callable[[], None]]) -> None:
    """Run independent storage calls (other partitions, queue messages) in this process's one bounded
    pool; wait for all of them, then raise the first error if any failed."""
    global _pool
    if len(work) <= 2:
        for item in work:
            item()
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=FANOUT_WORKERS, thread_name_prefix="assignment-job")
        pool = _pool
    futures = [pool.submit(item) for item in work]
    wait(futures)
    for future in futures:
        future.result()
