"""Webhook acknowledgement latency under 50 concurrent deliveries, next to the queue processing rate.

Starts its own Azurite (in memory), Stripe emulator and the app under the local host; signs events
the way Stripe does and posts them concurrently; then waits until the queue-triggered function
has applied every one of them.

    .venv/bin/python benchmarks/webhooks.py [--events 500] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
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
    host = launch_host(ROOT, env=env, port=port)
    url = f"{host.url}/api/stripe/webhook"
    try:
        requests.get(f"{host.url}/api/health", timeout=10)  # creates tables and queues

        def deliver(i: int) -> float:
            # A subscription the server does not know: applying it re-reads Stripe and finds nothing,
            # the realistic cost of an event without a local change.
            body = json.dumps({
                "id": f"evt_bench_{i:06d}", "object": "event", "type": "customer.subscription.updated",
                "created": int(time.time()), "data": {"object": {"id": f"sub_bench_{i}", "object": "subscription"}},
            }).encode()
            stamp = int(time.time())
            signature = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            headers = {"Stripe-Signature": f"t={stamp},v1={signature}"}
            response = requests.post(url, data=body, headers=headers, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            latencies = list(pool.map(deliver, range(args.events)))
        acked = time.perf_counter() - started

        from azure.data.tables import TableClient

        events = TableClient.from_connection_string(azurite.connection_string, "StripeEvents")
        while sum(1 for _ in events.query_entities("RowKey ge 'evt_bench_'", select=["RowKey"])) < args.events:
            time.sleep(0.2)
        applied = time.perf_counter() - started

        # The baseline: a raw queue put through the SDK at the same concurrency, same Azurite, same run.
        from azure.storage.queue import QueueClient

        raw_queue = QueueClient.from_connection_string(azurite.connection_string, "benchmark-raw-puts")
        raw_queue.create_queue()

        def put(i: int) -> float:
            started = time.perf_counter()
            raw_queue.send_message(json.dumps({"i": i}))
            return (time.perf_counter() - started) * 1000

        with ThreadPoolExecutor(args.concurrency) as pool:
            raw = list(pool.map(put, range(args.events)))

        print(f"webhook acknowledgement, {args.events} events, {args.concurrency} concurrent deliveries:")
        print(f"  p50 {statistics.median(latencies):7.1f} ms   p99 {percentile(latencies, 99):7.1f} ms   "
              f"max {max(latencies):7.1f} ms")
        print(f"raw queue put, same concurrency: p50 {statistics.median(raw):7.1f} ms   "
              f"p99 {percentile(raw, 99):7.1f} ms")
        print(f"  acknowledgement p99 / raw put p99 = {percentile(latencies, 99) / percentile(raw, 99):.2f}x "
              "(goal <= 2x)")
        print(f"  {args.events / acked:7.1f} acknowledged/s")
        print(f"queue processing: all {args.events} applied after {applied:.1f} s  ->  "
              f"{args.events / applied:7.1f} events/s")
    finally:
        host.stop()
        stripe.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
