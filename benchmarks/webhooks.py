"""Webhook acknowledgement latency under 50 concurrent deliveries, next to the queue processing rate.

Starts its own Azurite (in memory), Stripe emulator and the app under the local host; signs events
the way Stripe does and posts them concurrently; then waits until the queue-triggered function
has applied every one of them.

Each delivering thread keeps one connection open (http.client), as the raw puts of the baseline do
through the SDK's connection pool: both sides pay for a request, neither for a new connection, and the
client's own cost stays small on a machine it shares with the host and Azurite.

    .venv/bin/python benchmarks/webhooks.py [--events 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_host import launch as launch_host  # noqa: E402
from local_host.azurite import start_azurite  # noqa: E402
from standins.stripe_emulator import launch as launch_stripe  # noqa: E402

SECRET = "whsec_benchmark"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def event(i: int) -> bytes:
    # A subscription the server does not know: applying it re-reads Stripe and finds nothing, the
    # realistic cost of an event without a local change.
    return json.dumps({
        "id": f"evt_bench_{i:06d}", "object": "event", "type": "customer.subscription.updated",
        "created": int(time.time()), "data": {"object": {"id": f"sub_bench_{i}", "object": "subscription"}},
    }).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    azurite = start_azurite(in_memory=True)
    stripe = launch_stripe(port=0)
    port = free_port()
    env = {
        **values,
        "PUBLIC_BASE_URL": f"http://localhost:{port}",
        "AzureWebJobsStorage": azurite.connection_string,
        "STRIPE_API_BASE": stripe.url,
        "STRIPE_WEBHOOK_SECRETS": SECRET,
        "MAIL_OUTBOX_DIR": str(ROOT / ".data" / "benchmark-outbox"),
    }
    # Acknowledging is measured with the queue function switched off, so both sides of the ratio run on
    # the same otherwise idle machine; the queue is then worked off by a host with it switched on.
    host = launch_host(ROOT, env={**env, "AzureWebJobs.apply_stripe_event.Disabled": "true"}, port=port)
    processing = None
    address = urlsplit(host.url)
    connections = threading.local()
    warm_up = range(args.events, args.events + args.concurrency)
    try:
        requests.get(f"{host.url}/api/health", timeout=10)  # creates tables and queues

        def deliver(i: int) -> float:
            body = event(i)
            stamp = int(time.time())
            signature = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            headers = {"Stripe-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"}
            if not hasattr(connections, "http"):
                connections.http = http.client.HTTPConnection(address.netloc, timeout=30)
            connections.http.request("POST", "/api/stripe/webhook", body=body, headers=headers)
            response = connections.http.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}")
            return elapsed

        with ThreadPoolExecutor(args.concurrency) as pool:
            # One unmeasured wave first (both sides get one): connections open, the handler's module loads.
            list(pool.map(deliver, warm_up))
            started = time.perf_counter()
            latencies = list(pool.map(deliver, range(args.events)))
        acked = time.perf_counter() - started
        host.stop()

        # The baseline: a raw queue put of the same message through the SDK at the same concurrency.
        from azure.storage.queue import QueueClient

        raw_queue = QueueClient.from_connection_string(azurite.connection_string, "benchmark-raw-puts")
        raw_queue.create_queue()

        def put(i: int) -> float:
            body = event(i).decode()
            started = time.perf_counter()
            raw_queue.send_message(body)
            return (time.perf_counter() - started) * 1000

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(put, warm_up))
            raw = list(pool.map(put, range(args.events)))

        # Working off the queue: a host with the queue function on, from start to the last event applied.
        from azure.data.tables import TableClient

        started = time.perf_counter()
        processing = launch_host(ROOT, env=env, port=port)
        events = TableClient.from_connection_string(azurite.connection_string, "StripeEvents")
        total = args.events + args.concurrency
        while sum(1 for _ in events.query_entities("RowKey ge 'evt_bench_'", select=["RowKey"])) < total:
            time.sleep(0.2)
        applied = time.perf_counter() - started

        print(f"webhook acknowledgement, {args.events} events, {args.concurrency} concurrent deliveries "
              "(after one unmeasured wave):")
        print(f"  p50 {statistics.median(latencies):7.1f} ms   p99 {percentile(latencies, 99):7.1f} ms   "
              f"max {max(latencies):7.1f} ms")
        print(f"raw queue put of the same message, same concurrency: p50 {statistics.median(raw):7.1f} ms   "
              f"p99 {percentile(raw, 99):7.1f} ms")
        print(f"  acknowledgement p99 / raw put p99 = {percentile(latencies, 99) / percentile(raw, 99):.2f}x "
              f"(goal <= 2x); p50 / p50 = {statistics.median(latencies) / statistics.median(raw):.2f}x")
        print(f"  {args.events / acked:7.1f} acknowledged/s")
        print(f"queue processing: {total} queued events applied {applied:.1f} s after a host started  ->  "
              f"{total / applied:7.1f} events/s (host start included)")
    finally:
        host.stop()
        if processing is not None:
            processing.stop()
        stripe.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
