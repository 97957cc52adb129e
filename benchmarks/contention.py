"""Benchmark: a burst of single-address assignments on one subscription, over two app hosts.

    .venv/bin/python benchmarks/contention.py [--requests 200] [--quantity 100] [--clients 64]

Starts its own in-memory Azurite, the local identity provider and two local hosts of the app (no
Stripe: the subscription is written directly). Prints the burst's duration, the answers by status and
the number assigned; the numbers are for comparison on one machine, not a test (the test of the same
burst is tests/integration/test_licenses_concurrency.py).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from adapters.table_storage import Storage  # noqa: E402
from local_host import launch as launch_host  # noqa: E402
from local_host.azurite import start_azurite  # noqa: E402
from services import subscription_store  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.subscription import Subscription  # noqa: E402
from standins.identity_provider import client as idp  # noqa: E402
from standins.identity_provider import launch as launch_identity_provider  # noqa: E402
from standins.identity_provider.directory import CONTOSO_ID  # noqa: E402
from tests.conftest import app_values  # noqa: E402

OWNER = "admin@contoso.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--quantity", type=int, default=100)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()

    work_dir = Path(tempfile.mkdtemp(prefix="contention-bench-"))
    azurite = start_azurite(in_memory=True)
    provider = launch_identity_provider(port=0, cert_dir=work_dir / "certs")
    hosts = []
    try:
        no_stripe = SimpleNamespace(url="http://127.0.0.1:9")  # assigning never calls Stripe
        for _ in range(2):
            port = free_port()
            env = app_values(azurite, provider, no_stripe, work_dir / "outbox", f"http://localhost:{port}")
            hosts.append(launch_host(REPO_ROOT, env=env, port=port))
        settings = load_settings(env)
        verify = str(provider.ca_bundle)
        owner = next(u for u in idp.list_users(provider.url, verify=verify) if u["preferred_username"] == OWNER)
        storage = Storage(settings)
        storage.ensure_created()
        subscription_id = "sub_contention_" + uuid.uuid4().hex[:8]
        subscription_store.create(storage, Subscription(
            id=subscription_id, kind="organisation", status="active", quantity=args.quantity, assigned_count=0,
            tenant_id=CONTOSO_ID, owner_tid=CONTOSO_ID, owner_oid=owner["oid"], owner_email=OWNER,
            owner_name="Contoso Admin", language="en", stripe_customer_id="", checkout_session_id="cs_contention",
            current_period_end=datetime.now(UTC) + timedelta(days=20)))
        token = idp.issue_token(provider.url, OWNER, audience=settings.api_audiences[0], scope="access_as_user",
                                verify=verify)

        def one(i: int) -> int:
            response = requests.post(
                f"{hosts[i % 2].url}/api/v1/subscriptions/{subscription_id}/licenses",
                json={"emails": [f"burst{i}@contoso.example"]},
                headers={"Authorization": f"Bearer {token}"}, timeout=120)
            return response.status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            statuses = Counter(pool.map(one, range(args.requests)))
        seconds = time.perf_counter() - started
        assigned = subscription_store.load(storage, subscription_id)
        print(f"{args.requests} single assignments over 2 hosts, {args.clients} clients, quantity {args.quantity}")
        print(f"  duration: {seconds:.2f} s")
        print(f"  answers:  {dict(sorted(statuses.items()))}")
        print(f"  assigned: {assigned.assigned_count if assigned else None}")
        return 0
    finally:
        for host in hosts:
            host.stop()
        provider.stop()
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
