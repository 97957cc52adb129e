"""Bulk assignment as a job (services/assignment_job.py) against the in-memory storage, which enforces
Azure's limits (100 operations a transaction, 64 KiB a queue message, keys): the answer before the
work, the progress, a crash at every kind of step resumed to exactly one seat, lookup row and welcome
mail per address, duplicate deliveries, the last attempt's failure record, and the timer's index."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters import keys
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import (
    ASSIGNMENT_JOBS_QUEUE,
    OPEN_JOBS,
    SUBSCRIPTIONS,
    USER_LICENSES,
)
from services import assignment_job, seat_assignment, subscription_store
from services.assignment_job_record import CHUNK_SEATS, COMPLETED, COMPLETED_WITH_FAILURES, RUNNING
from services.audit import Actor
from services.seat_change import Context, NoSeatsFree, RequestIdReused
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.assignment_jobs_support import drain
from tests.factories import local_values
from tests.mail_support import queued_mails

ADMIN = Actor("tid-1", "oid-admin", "admin@contoso.example", "Admin")
SUB = "sub_1"


def context(store: InMemoryStorage, threshold: int = 100) -> Context:
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true",
                                          BULK_ASSIGN_THRESHOLD=str(threshold)))
    return Context(UnitOfWork(store), settings, ADMIN)


def subscribe(store: InMemoryStorage, quantity: int = 1000) -> None:
    assert subscription_store.create(store, Subscription(
        id=SUB, kind="organisation", status="active", quantity=quantity, assigned_count=0, tenant_id="tid-1",
        owner_tid="tid-1", owner_oid="oid-owner", owner_email="owner@contoso.example", owner_name="Contoso",
        language="de", stripe_customer_id="cus_1", checkout_session_id="cs_1",
        current_period_end=datetime.now(UTC) + timedelta(days=30)))


def addresses(n: int, prefix: str = "u") -> list[str]:
    # Not in key order, so the job's own ordering is exercised.
    return [f"{prefix}{(i * 7919) % n:04d}@contoso.example" for i in range(n)]


def state(store: InMemoryStorage) -> dict[str, object]:
    """Everything that must exist exactly once, as counts and sets."""
    uow = UnitOfWork(store)
    seats = [s.email for s in uow.subscriptions.seats(SUB)]
    lookups = [r for r in store.query(USER_LICENSES) if r["RowKey"] == SUB]
    mails = queued_mails(store)
    subscription = subscription_store.load(store, SUB)
    assert subscription is not None
    audit = [e for e in uow.subscriptions.audit_entries(SUB) if e.action == "licenses.assigned"]
    return {
        "seats": len(seats), "distinct_seats": len(set(seats)), "assigned_count": subscription.assigned_count,
        "lookups": len(lookups), "lookup_addresses": {r["Email"] for r in lookups},
        "mail_ids": len({m["id"] for m in mails}), "mailed": {m["to"] for m in mails},
        "mail_ids_per_address": max([sum(1 for i in {(m["id"], m["to"]) for m in mails} if i[1] == a)
                                     for a in {m["to"] for m in mails}] or [0]),
        "reservations": len(uow.subscriptions.reservations(SUB)), "open_jobs": len(list(store.query(OPEN_JOBS))),
        "audit": len(audit),
    }


def exactly_once(store: InMemoryStorage, listed: list[str]) -> dict[str, object]:
    n = len(listed)
    return {"seats": n, "distinct_seats": n, "assigned_count": n, "lookups": n, "lookup_addresses": set(listed),
            "mail_ids": n, "mailed": set(listed), "mail_ids_per_address": 1, "reservations": 0, "open_jobs": 0,
            "audit": 1}


# --- the request and the job -------------------------------------------------------------------------------


def test_a_big_list_answers_before_any_seat_is_written_and_the_queue_completes_it():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store, threshold=100)
    listed = addresses(250)
    outcome = seat_assignment.assign(ctx, SUB, listed, request_id="big-1", duplicates=["u0001@contoso.example"])
    # Answered: the seats are reserved (counted), none written yet; one message per chunk of 99.
    assert outcome.background and outcome.job is not None and outcome.job.id == "big-1"
    assert outcome.subscription is not None and outcome.subscription.assigned_count == 250
    assert state(store)["seats"] == 0
    assert len(store.queues[ASSIGNMENT_JOBS_QUEUE]) == 3 == outcome.job.chunks
    running = assignment_job.progress(ctx.uow, SUB, "big-1")
    assert running is not None and running.as_json()["status"] == RUNNING and running.percent == 0
    assert [p.job.id for p in assignment_job.running(ctx.uow, SUB)] == ["big-1"]

    drain(ctx, store)
    assert state(store) == exactly_once(store, listed)
    done = assignment_job.progress(ctx.uow, SUB, "big-1")
    assert done is not None
    assert {k: v for k, v in done.as_json().items() if k not in ("created_at", "completed_at")} == {
        "job_id": "big-1", "request_id": "big-1", "status": COMPLETED, "percent": 100, "listed": 250,
        "to_assign": 250, "already_assigned": 0, "duplicates": 1, "assigned": 250, "mails_queued": 250, "failed": 0,
        "failed_addresses": []}
    assert assignment_job.running(ctx.uow, SUB) == []
    # The seats carry their sequence numbers once each, after the ones before.
    sequences = sorted(s.sequence for s in ctx.uow.subscriptions.seats(SUB))
    assert sequences == list(range(1, 251))


def test_up_to_the_threshold_the_request_writes_the_seats_and_the_queue_the_rest():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store, threshold=500)
    listed = addresses(150)
    outcome = seat_assignment.assign(ctx, SUB, listed, request_id="mid-1")
    assert not outcome.background and sorted(outcome.assigned) == sorted(listed)
    assert state(store)["seats"] == 150 and state(store)["lookups"] == 0  # lookup rows and mails: queued
    drain(ctx, store)
    assert state(store) == exactly_once(store, listed)


def test_addresses_already_licensed_are_not_counted_and_a_seat_taken_meanwhile_is_given_back():
    store = InMemoryStorage()
    subscribe(store, quantity=300)
    ctx = context(store, threshold=100)
    seat_assignment.assign(ctx, SUB, ["u0000@contoso.example"])
    listed = addresses(200)
    outcome = seat_assignment.assign(ctx, SUB, listed, request_id="big-2")
    assert outcome.job is not None and outcome.job.new == 199 and outcome.job.already_assigned == 1
    # Before the job writes it, someone assigns one of its addresses themselves.
    seat_assignment.assign(ctx, SUB, ["u0150@contoso.example"])
    assert subscription_store.load(store, SUB).assigned_count == 201  # reserved + the one assigned twice
    drain(ctx, store)
    now = state(store)
    assert now["seats"] == 200 == now["assigned_count"] and now["reservations"] == 0
    progress = assignment_job.progress(ctx.uow, SUB, "big-2")
    assert progress is not None and progress.assigned == 198 and progress.as_json()["already_assigned"] == 2


def test_no_seats_free_refuses_the_whole_list_and_writes_nothing():
    store = InMemoryStorage()
    subscribe(store, quantity=200)
    ctx = context(store)
    with pytest.raises(NoSeatsFree):
        seat_assignment.assign(ctx, SUB, addresses(201), request_id="too-many")
    assert state(store)["seats"] == 0 and state(store)["assigned_count"] == 0
    assert ctx.uow.subscriptions.job(SUB, "too-many") is None
    assert state(store)["open_jobs"] == 0 and ASSIGNMENT_JOBS_QUEUE not in store.queues


def test_the_same_request_id_with_another_list_is_refused():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store)
    seat_assignment.assign(ctx, SUB, addresses(150), request_id="once")
    before = state(store)
    with pytest.raises(RequestIdReused):
        seat_assignment.assign(ctx, SUB, addresses(150, prefix="v"), request_id="once")
    assert state(store) == before


def test_the_retried_request_answers_the_same_job_and_changes_nothing():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store)
    listed = addresses(150)
    first = seat_assignment.assign(ctx, SUB, listed, request_id="again")
    drain(ctx, store)
    again = seat_assignment.assign(ctx, SUB, list(reversed(listed)), request_id="again")
    assert again.job is not None and first.job is not None and again.job.id == first.job.id
    assert ASSIGNMENT_JOBS_QUEUE not in store.queues or store.queues[ASSIGNMENT_JOBS_QUEUE] == []
    assert state(store) == exactly_once(store, listed)


def test_a_chunk_message_stays_within_a_queue_message_for_the_longest_addresses():
    store = InMemoryStorage()  # refuses a message over 64 KiB (base64), as Azure does
    subscribe(store, quantity=200)
    ctx = context(store)
    longest = [f"{i:04d}{'x' * 60}@{'d' * 63}.{'e' * 63}.{'f' * 53}.example" for i in range(CHUNK_SEATS + 1)]
    assert all(len(a) == 254 for a in longest)
    seat_assignment.assign(ctx, SUB, longest, request_id="long")
    drain(ctx, store)
    assert state(store)["seats"] == CHUNK_SEATS + 1


# --- crashes at every kind of step -----------------------------------------------------------------------


class Crash(RuntimeError):
    pass


class CrashingStorage(InMemoryStorage):
    """Every write (transactions, single writes: they all go through `transact`) and every queue message
    counts as a step; the step numbered `crash_at` fails once, as if the process died right there."""

    def __init__(self, crash_at: int = 0):
        super().__init__()
        self.crash_at, self.steps, self.armed = crash_at, 0, False

    def _step(self) -> None:
        if self.armed:
            with self._lock:
                self.steps += 1
                crash = self.steps == self.crash_at
            if crash:
                raise Crash(f"crash at step {self.crash_at}")

    def transact(self, table, operations):
        self._step()
        return super().transact(table, operations)

    def send(self, queue, body, visibility_timeout=None):
        self._step()
        return super().send(queue, body, visibility_timeout)


LISTED = addresses(150)  # two chunks


def _run(crash_at: int, threshold: int, client_retries: bool) -> tuple[CrashingStorage, bool]:
    """Assign LISTED with a crash at step `crash_at`; the client retries or not; then the queue and the
    timer do what they do. (the storage, whether the job committed)."""
    store = CrashingStorage(crash_at)
    subscribe(store)
    ctx = context(store, threshold)
    store.armed = True
    try:
        seat_assignment.assign(ctx, SUB, LISTED, request_id="crashy")
    except Crash:
        if client_retries:
            seat_assignment.assign(ctx, SUB, LISTED, request_id="crashy")
    drain(ctx, store)
    # Nothing moved for a while: the timer sends what is left again (found through the index).
    assignment_job.resume_stalled(ctx, now=datetime.now(UTC) + timedelta(hours=1), stalled_after=timedelta(0))
    drain(ctx, store)
    assignment_job.resume_stalled(ctx, now=datetime.now(UTC) + timedelta(hours=1), stalled_after=timedelta(0))
    return store, ctx.uow.subscriptions.job(SUB, "crashy") is not None


def _steps(threshold: int) -> int:
    store, _ = _run(0, threshold, False)
    return store.steps


@pytest.mark.parametrize("threshold", [100, 500], ids=["background", "in-request"])
def test_a_crash_at_any_step_is_resumed_to_exactly_once(threshold):
    total = _steps(threshold)
    # Every step of the request, the first and last steps of each chunk, a few inside the fan-out, and
    # every step of the finish.
    points = sorted(set(range(1, 14)) | {total // 4, total // 3, total // 2, 2 * total // 3}
                    | set(range(total - 10, total + 1)))
    for crash_at in points:
        for client_retries in (True, False):
            store, committed = _run(crash_at, threshold, client_retries)
            now = state(store)
            if committed:
                assert now == exactly_once(store, LISTED), (crash_at, client_retries)
                job = UnitOfWork(store).subscriptions.job(SUB, "crashy")
                assert job is not None and job.status == COMPLETED, (crash_at, client_retries)
            else:  # the request died before its transaction: nothing at all was written
                assert not client_retries, crash_at
                assert (now["seats"], now["assigned_count"], now["lookups"], now["mail_ids"], now["open_jobs"]) == (
                    0, 0, 0, 0, 0), crash_at


def test_every_message_delivered_twice_still_gives_everything_once():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store, threshold=100)
    seat_assignment.assign(ctx, SUB, LISTED, request_id="twice")
    queue = store.queues[ASSIGNMENT_JOBS_QUEUE]
    queue.extend(list(queue))
    drain(ctx, store)
    assert state(store) == exactly_once(store, LISTED)
    progress = assignment_job.progress(ctx.uow, SUB, "twice")
    assert progress is not None and (progress.assigned, progress.mails_queued) == (150, 150)


# --- failures and the timer ------------------------------------------------------------------------------


class RefusingStorage(InMemoryStorage):
    """Storage that always fails the lookup rows of one address, or the transactions writing its seat."""

    def __init__(self, address: str, what: str):
        super().__init__()
        self.address, self.what = address, what

    def transact(self, table, operations):
        operations = list(operations)
        if self.what == "lookup" and table == USER_LICENSES and any(
                op.entity.get("Email") == self.address for op in operations):
            raise ConnectionError("lookup rows of this address fail")
        if self.what == "seat" and table == SUBSCRIPTIONS and any(
                op.entity.get("RowKey") == keys.seat_row(self.address) for op in operations):
            raise ConnectionError("seat of this address fails")
        return super().transact(table, operations)


def test_a_chunk_that_fails_its_last_attempt_is_recorded_and_the_job_ends_giving_back_unwritten_seats():
    store = RefusingStorage("u0120@contoso.example", "seat")  # in the second chunk (key order)
    subscribe(store)
    ctx = context(store, threshold=100)
    seat_assignment.assign(ctx, SUB, LISTED, request_id="fails")
    drained = drain(ctx, store)
    assert len(drained.poisoned) == 1 and drained.failures == assignment_job.MAX_ATTEMPTS
    progress = assignment_job.progress(ctx.uow, SUB, "fails")
    assert progress is not None and progress.job.status == COMPLETED_WITH_FAILURES
    second = sorted(LISTED)[CHUNK_SEATS:]
    assert sorted(progress.failed_addresses) == second and progress.assigned == CHUNK_SEATS
    # The failed chunk's seats were never written: their reservation is given back.
    now = state(store)
    assert now["seats"] == CHUNK_SEATS == now["assigned_count"] and now["reservations"] == 0
    assert now["open_jobs"] == 0
    failed_audit = [e for e in ctx.uow.subscriptions.audit_entries(SUB) if e.action == "licenses.assignment_failed"]
    assert len(failed_audit) == 1 and sorted(failed_audit[0].after["emails"]) == second


def test_a_chunk_whose_lookup_rows_keep_failing_keeps_its_seats_and_names_them_as_failed():
    store = RefusingStorage("u0005@contoso.example", "lookup")  # in the first chunk
    subscribe(store)
    ctx = context(store, threshold=100)
    seat_assignment.assign(ctx, SUB, LISTED, request_id="lookups")
    drain(ctx, store)
    progress = assignment_job.progress(ctx.uow, SUB, "lookups")
    assert progress is not None and progress.job.status == COMPLETED_WITH_FAILURES
    assert sorted(progress.failed_addresses) == sorted(LISTED)[:CHUNK_SEATS] and progress.assigned == 150
    assert state(store)["seats"] == 150 == state(store)["assigned_count"]


def test_the_timer_leaves_a_running_job_alone_and_forgets_index_rows_of_jobs_that_never_committed():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store, threshold=100)
    seat_assignment.assign(ctx, SUB, LISTED, request_id="live")
    store.queues[ASSIGNMENT_JOBS_QUEUE].clear()  # lost messages (a host that died)
    assignment_job.index(ctx.uow).add(SUB, "never-committed", datetime.now(UTC) - timedelta(hours=2))
    # Recently active: nothing is sent again yet; the orphaned index row goes.
    done = assignment_job.resume_stalled(ctx)
    assert (done.resumed, done.forgotten) == (0, 1)
    assert store.queues[ASSIGNMENT_JOBS_QUEUE] == []
    # Stalled: its chunks are sent again and the job completes.
    later = datetime.now(UTC) + assignment_job.STALLED_AFTER + timedelta(seconds=1)
    assert assignment_job.resume_stalled(ctx, now=later).resumed == 1
    assert len(store.queues[ASSIGNMENT_JOBS_QUEUE]) == 2
    drain(ctx, store)
    assert state(store) == exactly_once(store, LISTED)


def test_a_malformed_message_is_refused_for_the_poison_queue():
    with pytest.raises(assignment_job.UnusableMessage):
        assignment_job.parse(b'{"subscription_id": "sub_1", "job_id": "a/b", "chunk": 0}')


def test_a_reservation_of_a_job_is_left_to_the_job_by_reconciliation():
    from services import seat_reconciliation

    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store, threshold=100)
    seat_assignment.assign(ctx, SUB, LISTED, request_id="recon")
    store.queues[ASSIGNMENT_JOBS_QUEUE].clear()
    seat_reconciliation.reconcile(ctx.uow, ctx.settings, SUB, stale_after=timedelta(0))
    assert state(store)["seats"] == 0  # reconciliation did not write the job's seats itself ...
    drain(ctx, store)  # ... it sent the job's chunks again
    assert state(store) == exactly_once(store, LISTED)


def test_the_job_rows_round_trip():
    store = InMemoryStorage()
    subscribe(store)
    ctx = context(store, threshold=100)
    outcome = seat_assignment.assign(ctx, SUB, LISTED, request_id="rows")
    stored = ctx.uow.subscriptions.job(SUB, "rows")
    assert outcome.job is not None and stored is not None
    assert replace(stored, etag=None) == outcome.job
