"""Benchmark: assigning 1,000 addresses and listing 10,000 seats, next to raw Azurite operations.

    .venv/bin/python -m benchmarks.licenses

Starts its own in-memory Azurite; prints seconds. Not a test: the numbers are for comparison within
one run (the same machine, the same Azurite), so the raw operations are timed in the same run.

Assigning 1,000 addresses is a job (services/assignment_job.py): the request reserves and answers, the
`assignment-jobs` queue writes the seats, lookup rows and welcome mails. Here the queue is worked off in
this process as the Functions host would (batches of 16, host.json), so "job complete" is the time until
every seat, lookup row and welcome mail (queued for sending) exists. The 10,000-address CSV is timed from
the CSV's bytes to the answer (parsing, checking, reserving, queueing its 102 chunks), without HTTP.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from azure.data.tables import TableClient
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from adapters.subscription_repository import PartitionWrites, SubscriptionRepository
from adapters.table_storage import ASSIGNMENT_JOBS_QUEUE, SUBSCRIPTIONS, USER_LICENSES, Storage
from local_host.azurite import start_azurite
from services import assignment_job, seat_assignment, seat_listing, subscription_store
from services.address_list import parse_csv
from services.audit import Actor
from services.seat import Seat
from services.seat_change import Context
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.factories import local_values


@contextmanager
def timed(label: str, results: list):
    start = time.perf_counter()
    yield
    results.append((label, time.perf_counter() - start))


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) used so far by the processes of one process group (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_used(azurite_group: int, into: dict[str, float]):
    """This process's and Azurite's CPU seconds while the block runs."""
    ours, theirs = time.process_time(), group_cpu_seconds(azurite_group)
    yield
    into["client"] = time.process_time() - ours
    into["azurite"] = group_cpu_seconds(azurite_group) - theirs


def _subscription(quantity: int) -> Subscription:
    sid = "sub_bench" + uuid.uuid4().hex[:12]
    return Subscription(
        id=sid, kind="organisation", status="active", quantity=quantity, assigned_count=0, tenant_id="t", owner_tid="t",
        owner_oid="o", owner_email="owner@bench.example", owner_name="Bench", language="en", stripe_customer_id="",
        checkout_session_id="cs_" + sid, current_period_end=datetime.now(UTC),
    )


def work_off_jobs(ctx: Context, connection_string: str, subscription_id: str, job_id: str) -> None:
    """Take the job's chunk messages off the queue as the host would (16 at a time) until it is done."""
    queue = QueueClient.from_connection_string(connection_string, ASSIGNMENT_JOBS_QUEUE,
                                               message_decode_policy=BinaryBase64DecodePolicy())

    def run(message) -> None:
        assignment_job.run_chunk(ctx, assignment_job.parse(message.content))
        queue.delete_message(message)

    with ThreadPoolExecutor(16) as pool:
        while True:
            progress = assignment_job.progress(ctx.uow, subscription_id, job_id)
            if progress is not None and not progress.job.running:
                return
            batch = list(queue.receive_messages(max_messages=16, visibility_timeout=600))
            list(pool.map(run, batch))


JOB = "assign 1,000 addresses (seats + lookup rows + welcome mails queued: job complete)"
DESIGN_FLOOR = "raw: the design's writes for 1,000 seats (10 tx + 1,000 lookup rows + 20 mail batches)"


def main() -> None:
    azurite = start_azurite(in_memory=True)
    try:
        settings = load_settings(local_values(AzureWebJobsStorage=azurite.connection_string))
        storage = Storage(settings)
        storage.ensure_created()
        ctx = Context(UnitOfWork(storage), settings, Actor("t", "o", "owner@bench.example", "Bench"))
        results: list[tuple[str, float]] = []

        # Raw: 1,000 single inserts, and 1,000 rows as 10 transactions of 100, in a scratch partition.
        raw_pk = "raw-" + uuid.uuid4().hex
        table = TableClient.from_connection_string(azurite.connection_string, SUBSCRIPTIONS)
        with timed("raw: 1,000 single entity inserts", results):
            for i in range(1000):
                table.create_entity({"PartitionKey": raw_pk, "RowKey": f"r{i:05d}", "Email": f"r{i}@bench.example"})
        with timed("raw: 1,000 entities in 10 transactions of 100", results):
            for b in range(10):
                table.submit_transaction([("create", {"PartitionKey": raw_pk, "RowKey": f"t{b * 100 + i:05d}"})
                                          for i in range(100)])

        # Raw: what the design itself needs for 1,000 new seats, through the SDK with nothing of ours: the
        # seats in 10 transactions, 1,000 lookup rows (each in its user's own partition, PRODUCT.md
        # section 4), the single writes 16 at a time as the job does, and 1,000 welcome mails of ~450
        # bytes in 20 queue messages of 50.
        lookups = TableClient.from_connection_string(azurite.connection_string, USER_LICENSES)
        mails = QueueClient.from_connection_string(azurite.connection_string, "benchmark-raw-mails")
        mails.create_queue()
        batch = '{"mails":[' + ",".join(f'{{"id":"welcome-{i:05d}","pad":"{"x" * 400}"}}' for i in range(50)) + "]}"
        floor_cpu: dict[str, float] = {}
        with timed(DESIGN_FLOOR, results), cpu_used(azurite.pid, floor_cpu):
            for b in range(10):
                table.submit_transaction([("create", {"PartitionKey": raw_pk, "RowKey": f"d{b * 100 + i:05d}"})
                                          for i in range(100)])
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: lookups.upsert_entity({"PartitionKey": f"email|raw{i:05d}@bench.example",
                                                               "RowKey": "sub_raw", "Status": "pending"}),
                              range(1000)))
                list(pool.map(lambda _: mails.send_message(batch), range(20)))

        # Assign 1,000 addresses through the real path (reservation, batches, lookup rows, welcome mails).
        sub = _subscription(10_000)
        subscription_store.create(storage, sub)
        addresses = [f"user{i:05d}@bench.example" for i in range(1000)]
        job_cpu: dict[str, float] = {}
        with timed(JOB, results), cpu_used(azurite.pid, job_cpu):
            with timed("assign 1,000 addresses: the request answers (reserved, chunks queued)", results):
                outcome = seat_assignment.assign(ctx, sub.id, addresses, request_id="bench-1000")
            assert outcome.job is not None
            work_off_jobs(ctx, azurite.connection_string, sub.id, outcome.job.id)
        done = assignment_job.progress(ctx.uow, sub.id, "bench-1000")
        assert done is not None and (done.assigned, done.mails_queued, done.failed) == (1000, 1000, 0)

        # Fill the subscription to 10,000 seats directly (listing is what is measured next).
        repository = SubscriptionRepository(storage)
        for b in range(90):
            repository.create_rows(sub.id, [
                Seat.new(f"bulk{b * 100 + i:05d}@bench.example", sequence=1001 + b * 100 + i, assigned_by="bench")
                for i in range(100)
            ])
        current = repository.load(sub.id)
        assert current is not None
        repository.commit(PartitionWrites(replace(current, assigned_count=10_000)))
        reloaded = repository.load(sub.id)
        assert reloaded is not None
        sub = reloaded

        with timed("raw: query 10,000 seat rows of one partition", results):
            raw_rows = sum(1 for _ in table.query_entities(
                "PartitionKey eq @pk and RowKey ge 'seat|' and RowKey lt 'seat}'", parameters={"pk": sub.id},
                results_per_page=1000))
        assert raw_rows == 10_000
        with timed("list 10,000 seats (pages of 1,000 with continuation tokens)", results):
            token, listed = None, 0
            while True:
                page = seat_listing.list_seats(storage, sub, 14, continuation=token, limit=1000)
                listed += len(page.seats)
                token = page.continuation
                if not token:
                    break
        assert listed == 10_000
        with timed("first page of 50 seats of 10,000", results):
            seat_listing.list_seats(storage, sub, 14, limit=50)
        with timed("pending seats, first page of 50 (server-side filter)", results):
            seat_listing.list_seats(storage, sub, 14, status="pending", limit=50)
        with timed("export 10,000 seats as CSV", results):
            csv_text = seat_listing.export_csv(storage, sub, 14)
        assert csv_text.count("\n") == 10_001

        # A 10,000-address CSV: from its bytes to the answer (a subscription of its own; its job is left queued).
        csv_sub = _subscription(10_000)
        subscription_store.create(storage, csv_sub)
        data = ("email\n" + "".join(f"csv{i:05d}@bench.example\n" for i in range(10_000))).encode()
        with timed("10,000-address CSV: until the request answers (parse, check, reserve, queue)", results):
            from_csv = parse_csv(data)
            answered = seat_assignment.assign(ctx, csv_sub.id, from_csv.valid, request_id="bench-csv")
        assert answered.background and answered.job is not None and answered.job.new == 10_000

        width = max(len(label) for label, _ in results)
        for label, seconds in results:
            print(f"{label:<{width}}  {seconds:8.3f} s")
        by_label = dict(results)
        raw = by_label["raw: 1,000 entities in 10 transactions of 100"]
        job = by_label[JOB]
        answer = by_label["assign 1,000 addresses: the request answers (reserved, chunks queued)"]
        floor = by_label[DESIGN_FLOOR]
        print(f"\nassign 1,000 addresses / 1,000 raw entities in 10 transactions of 100: "
              f"{job:.2f} s / {raw:.2f} s = {job / raw:.1f}x (goal <= 2x); the request alone: {answer / raw:.1f}x")
        print("(the job writes 1,000 seats in 11 transactions, 1,000 lookup rows one by one: each is its own "
              "partition, and 1,000 welcome mails in 20 queue messages: 1,031 storage writes against the raw 10)")
        print(f"assign 1,000 addresses / the same writes done raw: {job:.2f} s / {floor:.2f} s = {job / floor:.1f}x "
              "(what the job adds to the writes the design needs)")
        # What no implementation of this design can beat here with the SDK the raw baseline uses: the CPU its
        # writes take in the client (one Python process: one core under the GIL) and in Azurite (one Node.js
        # thread); even with the client spread over processes, the machine's cores bound the sum.
        cores = os.cpu_count() or 1
        client, server = floor_cpu["client"], floor_cpu["azurite"]
        one_process, any_processes = max(client, server), max(server, (client + server) / cores)
        print(f"the design's writes done raw used {client:.2f} s of CPU in the client and {server:.2f} s in Azurite: "
              f"in one process no less than {one_process:.2f} s = {one_process / raw:.1f}x the raw transactions; "
              f"in any number of processes on {cores} cores no less than {any_processes:.2f} s = "
              f"{any_processes / raw:.1f}x; Azurite's share alone, whatever the client: {server / raw:.1f}x")
        print(f"the job used {job_cpu['client']:.2f} s of CPU in this process and {job_cpu['azurite']:.2f} s "
              "in Azurite")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
