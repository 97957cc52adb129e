"""Benchmark of GET /api/license through HTTP on the local host against Azurite.

    .venv/bin/python benchmarks/license_check.py [--seconds 5] [--users 64]

Starts its own Azurite (in memory), identity provider and three local hosts:
- a timing host running the real app, wired straight to Azurite: checks per second and p50/p99 latency
  at 1, 16 and 64 concurrent clients (each client its own user and keep-alive connection), next to the
  same numbers for a raw Azurite point read (azure-data-tables `get_entity`) and for a function that
  touches no storage, served by the same local host (a one-function app written to a temporary
  folder), all measured in the same run;
- a counting host whose table endpoint goes through a small proxy that counts every HTTP request it
  forwards to Azurite: storage calls per check, counted per table, for steady-state checks and for
  first checks (which bind a seat).

It ends with the rows of issue 14's table: the check's p50 against the no-storage function plus the raw
read at one client, checks/s against raw reads/s at 16 clients, and the storage calls of a first check.

The per-user rate limit is raised for the run (LICENSE_RATE_LIMIT_PER_MINUTE): every client checks
as fast as it can. The numbers describe this machine and the local host (one Python process, threads),
not Azure; what carries over is the ratio of a check to the one storage read it needs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from adapters.keys import SUBSCRIPTION_ROW  # noqa: E402
from adapters.table_storage import SUBSCRIPTIONS, Storage  # noqa: E402
from local_host import launch as launch_host  # noqa: E402
from local_host.azurite import connection_string, start_azurite  # noqa: E402
from services import subscription_store  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.subscription import Subscription  # noqa: E402
from standins.identity_provider import client as idp  # noqa: E402
from standins.identity_provider import launch as launch_identity_provider  # noqa: E402
from standins.identity_provider.directory import CONTOSO_ID  # noqa: E402
from tests.conftest import app_values  # noqa: E402
from tests.license_fixtures import assign  # noqa: E402

CONCURRENCY = (1, 16, 64)

# The baseline function: what the local host costs a request that does nothing else.
BASELINE_APP = """
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="baseline", methods=["GET"])
def baseline(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"valid":true}', mimetype="application/json")
"""
BASELINE_HOST_JSON = '{"version": "2.0", "extensions": {"http": {"routePrefix": "api"}}}'
_REQUEST_LINE = re.compile(rb"^([A-Z]+) /[^/ ]+/([A-Za-z]+)")


class CountingProxy:
    """TCP relay in front of Azurite's table port that counts the HTTP requests passing through."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._relay, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(buffer) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                match = _REQUEST_LINE.match(head)
                key = f"{match.group(1).decode()} {match.group(2).decode()}" if match else "other"
                with self._lock:
                    self.counts[key] += 1
                upstream.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            upstream.close()

    @staticmethod
    def _relay(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            target.close()


class Client:
    """One load client: a keep-alive HTTP/1.1 connection per host, through http.client.

    Lighter than `requests` (which costs about a millisecond of CPU per request with 16 threads in one
    process): what the benchmark measures is the server, not its own client."""

    def __init__(self) -> None:
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        scheme, _, rest = url.partition("://")
        netloc, _, path = rest.partition("/")
        connection = self._connections.get(netloc)
        if connection is None:
            connection = self._connections[netloc] = http.client.HTTPConnection(netloc, timeout=30)
        try:
            connection.request("GET", "/" + path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            del self._connections[netloc]
            raise

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_load(concurrency: int, seconds: float, work) -> dict:
    """`work(client_index, client)` repeatedly from `concurrency` threads; latencies in ms."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        session = Client()
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            outcome = work(index, session)
            if outcome is not True:
                failures[str(outcome)] += 1
                continue
            latencies[index].append((time.perf_counter() - started) * 1000)
        session.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    elapsed = time.perf_counter() - started
    flat = [v for per_client in latencies for v in per_client]
    return {
        "per_second": len(flat) / elapsed,
        "p50": percentile(flat, 0.50) if flat else float("nan"),
        "p99": percentile(flat, 0.99) if flat else float("nan"),
        "count": len(flat),
        "failures": dict(failures),
    }


def run_interleaved(seconds: float, works: list) -> list[dict]:
    """One client calling each of `works` in turn, so that each sees the same conditions (the machine's
    other load changes from second to second); per-second numbers from each work's mean latency."""
    latencies: list[list[float]] = [[] for _ in works]
    failures: list[Counter[str]] = [Counter() for _ in works]
    deadline = time.perf_counter() + seconds
    session = Client()
    while time.perf_counter() < deadline:
        for index, work in enumerate(works):
            started = time.perf_counter()
            outcome = work(0, session)
            if outcome is not True:
                failures[index][str(outcome)] += 1
                continue
            latencies[index].append((time.perf_counter() - started) * 1000)
    session.close()
    return [{"per_second": 1000 * len(values) / sum(values) if values else float("nan"),
             "p50": percentile(values, 0.50) if values else float("nan"),
             "p99": percentile(values, 0.99) if values else float("nan"),
             "count": len(values), "failures": dict(failed)}
            for values, failed in zip(latencies, failures, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load step")
    parser.add_argument("--users", type=int, default=64, help="licensed users (one per client)")
    parser.add_argument("--count-checks", type=int, default=200, help="steady-state checks to count storage calls of")
    args = parser.parse_args()

    work_dir = Path(tempfile.mkdtemp(prefix="license-bench-"))
    azurite = start_azurite(in_memory=True)
    provider = launch_identity_provider(port=0, cert_dir=work_dir / "certs")
    hosts = []
    try:
        proxy = CountingProxy(azurite.table_port)
        stripe_unused = SimpleNamespace(url="http://127.0.0.1:9")  # the license check never calls Stripe

        def start(table_port: int):
            port = free_port()
            env = app_values(azurite, provider, stripe_unused, work_dir / "outbox", f"http://localhost:{port}",
                             LICENSE_RATE_LIMIT_PER_MINUTE=str(10**9))
            env["AzureWebJobsStorage"] = connection_string(azurite.blob_port, azurite.queue_port, table_port)
            host = launch_host(REPO_ROOT, env=env, port=port)
            hosts.append(host)
            return host.url, load_settings(env)

        timing_url, settings = start(azurite.table_port)
        counting_url, _ = start(proxy.port)
        baseline_dir = work_dir / "baseline_app"
        baseline_dir.mkdir()
        (baseline_dir / "function_app.py").write_text(BASELINE_APP, encoding="utf-8")
        (baseline_dir / "host.json").write_text(BASELINE_HOST_JSON, encoding="utf-8")
        baseline_host = launch_host(baseline_dir, port=free_port())
        hosts.append(baseline_host)
        baseline_url = f"{baseline_host.url}/api/baseline"

        # One active subscription with a seat per user; tokens issued once (the add-in reuses its token).
        storage = Storage(settings)
        storage.ensure_created()
        subscription_id = "sub_benchmark"
        subscription_store.create(storage, Subscription(
            id=subscription_id, kind="organisation", status="active", quantity=args.users + 50, assigned_count=0,
            tenant_id=CONTOSO_ID, owner_tid=CONTOSO_ID, owner_oid="10000000-0000-4000-8000-000000000001",
            owner_email="admin@contoso.example", owner_name="Contoso Admin", language="en",
            stripe_customer_id="", checkout_session_id="cs_benchmark",
            current_period_end=datetime.now(UTC) + timedelta(days=20)))
        verify = str(provider.ca_bundle)

        def licensed_user(n: int) -> str:
            address = f"bench-{n}@contoso.example"
            user = idp.add_user(provider.url, CONTOSO_ID, f"Bench {n}", address, verify=verify)
            assign(storage, subscription_id, address)
            return idp.issue_token(provider.url, user["oid"], audience=settings.api_audiences[0],
                                   scope="access_as_user", verify=verify)

        tokens = [licensed_user(n) for n in range(args.users)]
        first_use_tokens = [licensed_user(args.users + n) for n in range(20)]

        def check(url: str, token: str, session: Client):
            status, body = session.get(f"{url}/api/license", headers={"Authorization": f"Bearer {token}"})
            if status != 200:
                return status
            code = json.loads(body)["code"]
            return True if code == "VALID" else code

        # Warm up both hosts: first checks bind the seats, fill the caches, write today's last-seen.
        session = Client()
        for url in (timing_url, counting_url):
            for token in tokens:
                assert check(url, token, session) is True

        # --- storage calls per check, counted ------------------------------------------------------
        before = proxy.snapshot()
        for i in range(args.count_checks):
            assert check(counting_url, tokens[i % len(tokens)], session) is True
        steady = proxy.snapshot() - before
        before = proxy.snapshot()
        for token in first_use_tokens:
            assert check(counting_url, token, session) is True
        first_use = proxy.snapshot() - before

        # --- throughput and latency ---------------------------------------------------------------
        table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(SUBSCRIPTIONS)
        raw_clients = [
            TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(SUBSCRIPTIONS)
            for _ in range(max(CONCURRENCY))
        ]
        table.get_entity(subscription_id, SUBSCRIPTION_ROW)

        def raw_read(index: int, session) -> bool:
            raw_clients[index].get_entity(subscription_id, SUBSCRIPTION_ROW)
            return True

        def baseline(index: int, session: Client):
            status, _ = session.get(baseline_url)
            return True if status == 200 else status

        for _ in range(50):
            baseline(0, session)
        session.close()

        def timed_check(index: int, session: Client):
            return check(timing_url, tokens[index % len(tokens)], session)

        rows = []
        for concurrency in CONCURRENCY:
            if concurrency == 1:
                checks, reads, nothing = run_interleaved(3 * args.seconds, [timed_check, raw_read, baseline])
            else:
                checks = run_load(concurrency, args.seconds, timed_check)
                reads = run_load(concurrency, args.seconds, raw_read)
                nothing = run_load(concurrency, args.seconds, baseline)
            rows.append((concurrency, checks, reads, nothing))

        print()
        print("GET /api/license through the local host, against Azurite (in memory)")
        print(f"{args.seconds:.0f} s per step, {args.users} users, one keep-alive connection per client; "
              "at 1 client the three take turns\n")
        print(f"{'clients':>7} | {'checks/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} | "
              f"{'raw reads/s':>11} {'p50 ms':>8} {'p99 ms':>8} | {'no-storage/s':>12} {'p50 ms':>8}")
        print("-" * 108)
        for concurrency, checks, reads, nothing in rows:
            failed = sum(checks["failures"].values())
            print(f"{concurrency:>7} | "
                  f"{checks['per_second']:>9.0f} {checks['p50']:>8.2f} {checks['p99']:>8.2f} {failed:>6} | "
                  f"{reads['per_second']:>11.0f} {reads['p50']:>8.2f} {reads['p99']:>8.2f} | "
                  f"{nothing['per_second']:>12.0f} {nothing['p50']:>8.2f}")
            if checks["failures"]:
                print(f"        failures: {checks['failures']}")
        print()
        print(f"storage calls per steady-state check (counted over {args.count_checks} checks): "
              f"{sum(steady.values()) / args.count_checks:.2f}  {dict(steady)}")
        print(f"storage calls per first check, binding the seat (counted over {len(first_use_tokens)} checks): "
              f"{sum(first_use.values()) / len(first_use_tokens):.2f}  {dict(first_use)}")

        by_clients = {concurrency: (checks, reads, nothing) for concurrency, checks, reads, nothing in rows}
        checks, reads, nothing = by_clients[1]
        print()
        print("issue 14, measured in this run:")
        print(f"  license check p50 / (no-storage function + raw point read), 1 client: {checks['p50']:.2f} ms / "
              f"({nothing['p50']:.2f} + {reads['p50']:.2f}) ms = "
              f"{checks['p50'] / (nothing['p50'] + reads['p50']):.2f}x  (goal <= 1.3x)")
        checks, reads, _ = by_clients[16]
        print(f"  checks/s / raw point reads/s, 16 clients: {checks['per_second']:.0f} / {reads['per_second']:.0f} = "
              f"{checks['per_second'] / reads['per_second']:.2f}  (goal >= 0.8)")
        print(f"  storage calls for a first check that binds the seat: "
              f"{sum(first_use.values()) / len(first_use_tokens):.2f}  (goal <= 4)")
        return 0
    finally:
        for host in hosts:
            host.stop()
        provider.stop()
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
