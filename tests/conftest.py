"""Shared fixtures: the local stack the tests run against, started once per test session.

Azurite (in memory), the identity provider, the Stripe emulator and the app under the local host
each run as their own process on free ports and are stopped by process id at the end. Tests that
call services directly build them from `stack.settings`, the same settings the host got.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.table_storage import STRIPE_EVENTS_QUEUE, Storage
from local_host import launch as launch_host
from local_host.azurite import Azurite, start_azurite
from services.settings import Settings, load_settings, setting_fields
from tests.factories import LOCAL_CLIENT_ID, local_values

REPO_ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_test_local_secret"
STRIPE_KEY = "sk_test_local_key"


@pytest.fixture(scope="session")
def azurite():
    instance = start_azurite(in_memory=True)
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def identity_provider(tmp_path_factory):
    from standins.identity_provider import launch

    provider = launch(port=0, cert_dir=tmp_path_factory.mktemp("idp-certs"))
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def stripe_emulator():
    from standins.stripe_emulator import launch
    from standins.stripe_emulator.bootstrap import client_for, ensure_catalog

    emulator = launch(port=0, webhook_secret=WEBHOOK_SECRET)
    ensure_catalog(client_for(STRIPE_KEY, emulator.url))
    yield emulator
    emulator.stop()


@dataclass
class Stack:
    """The running app and what it is connected to."""

    url: str
    env: dict[str, str]
    settings: Settings
    azurite: Azurite
    identity_provider: Any
    stripe_emulator: Any
    outbox_dir: Path
    host: Any = field(repr=False, default=None)

    def storage(self) -> Storage:
        storage = Storage(self.settings)
        storage.ensure_created()
        return storage

    def outbox(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.outbox_dir.glob("*.json"))]

    def emulator_control(self, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.stripe_emulator.url}/_emulator/{path}",
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


    def emulator_get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.stripe_emulator.url}/_emulator/{path}", timeout=10) as response:
            return json.loads(response.read())

    def settle(self, timeout: float = 30) -> None:
        """Wait until the emulator has delivered its webhooks and the app has applied them."""
        self.emulator_control("webhooks/wait", {"timeout": timeout})
        storage = self.storage()
        wait_for(lambda: storage.queue_depth(STRIPE_EVENTS_QUEUE) == 0, timeout=timeout,
                 message="stripe-events drained")


def app_values(azurite: Azurite, identity_provider, stripe_emulator, outbox_dir: Path, base_url: str,
               **overrides: Any) -> dict[str, str]:
    """Every setting the app reads, pointed at the test stack; unset ones are '' so that a
    developer's local.settings.json cannot leak into the tests."""
    values = {alias: "" for alias in _aliases()}
    values.update(
        local_values(
            PUBLIC_BASE_URL=base_url,
            AzureWebJobsStorage=azurite.connection_string,
            ENTRA_AUTHORITY=f"{identity_provider.url}/organizations",
            STRIPE_API_BASE=stripe_emulator.url,
            STRIPE_SECRET_KEY=STRIPE_KEY,
            STRIPE_WEBHOOK_SECRETS=WEBHOOK_SECRET,
            MAIL_OUTBOX_DIR=str(outbox_dir),
            SETUP_REMINDER_MINUTES="0",
        )
    )
    values["REQUESTS_CA_BUNDLE"] = str(identity_provider.ca_bundle)
    values.update({k: str(v) for k, v in overrides.items()})
    return values


def _aliases() -> list[str]:
    return [f.alias for f in setting_fields()]


@pytest.fixture(scope="session")
def stack(azurite, identity_provider, stripe_emulator, tmp_path_factory):
    """The real function_app under the local host, wired to the stand-ins; webhooks flow to it."""
    import socket

    # The host's port must be known before it starts (PUBLIC_BASE_URL, redirect URIs).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base_url = f"http://localhost:{port}"
    outbox_dir = tmp_path_factory.mktemp("outbox")
    env = app_values(azurite, identity_provider, stripe_emulator, outbox_dir, base_url)
    host = launch_host(REPO_ROOT, env=env, port=port)
    running = Stack(
        url=base_url,
        env=env,
        settings=load_settings(env),
        azurite=azurite,
        identity_provider=identity_provider,
        stripe_emulator=stripe_emulator,
        outbox_dir=outbox_dir,
        host=host,
    )
    running.emulator_control("config", {"webhook_url": f"{base_url}/api/stripe/webhook",
                                        "webhook_secret": WEBHOOK_SECRET})
    yield running
    host.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 20, interval: float = 0.1,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


__all__ = ["LOCAL_CLIENT_ID", "wait_for"]
