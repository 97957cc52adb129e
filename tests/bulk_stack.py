"""A stack of its own for the big bulk-assignment tests: its own Azurite and outbox, and a host that a test
may kill and start again by process id, while the session's stack (tests/conftest.py) goes on untouched.

Its own storage matters twice: no other host (the session's) takes the job's queue messages, so killing
this host really stops the job; and ten thousand welcome mails land in an outbox no other test reads.
The identity provider and the Stripe emulator are the session's (sign-in and tokens only).
"""

from __future__ import annotations

import signal
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.table_storage import Storage
from local_host import LaunchedHost
from local_host import launch as launch_host
from local_host.azurite import Azurite, start_azurite
from services import subscription_store
from services.settings import Settings, load_settings
from services.subscription import Subscription
from services.web_session import Person
from tests.conftest import REPO_ROOT, app_values


@dataclass
class BulkStack:
    azurite: Azurite
    identity_provider: Any
    env: dict[str, str]
    port: int
    outbox_dir: Path
    host: LaunchedHost | None = None
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = load_settings(self.env)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def storage(self) -> Storage:
        storage = Storage(self.settings)
        storage.ensure_created()
        return storage

    def start(self, **overrides: str) -> LaunchedHost:
        self.host = launch_host(REPO_ROOT, env={**self.env, **overrides}, port=self.port)
        return self.host

    def kill(self) -> None:
        """The host process dies at once (SIGKILL by its process id): no graceful end of its work."""
        assert self.host is not None
        self.host.process.send_signal(signal.SIGKILL)
        self.host.process.wait(15)
        self.host = None

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None

    def outbox_recipients(self) -> list[str]:
        import json

        return [json.loads(p.read_text())["to"] for p in self.outbox_dir.glob("*.json")]

    def subscription(self, owner: Person, quantity: int) -> Subscription:
        """An organisation subscription owned by `owner` (an identity-provider user, so its token works)."""
        sub = Subscription(id=f"sub_bulk{datetime.now(UTC):%H%M%S%f}", kind="organisation", status="active",
                           quantity=quantity, assigned_count=0, tenant_id=owner.tid, owner_tid=owner.tid,
                           owner_oid=owner.oid, owner_email=owner.email, owner_name=owner.name, language="en",
                           stripe_customer_id="cus_bulk", checkout_session_id="cs_bulk",
                           current_period_end=datetime.now(UTC) + timedelta(days=30))
        assert subscription_store.create(self.storage(), sub)
        return sub


def bulk_stack(identity_provider: Any, stripe_emulator: Any, outbox_dir: Path, **overrides: str) -> BulkStack:
    azurite = start_azurite(in_memory=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = app_values(azurite, identity_provider, stripe_emulator, outbox_dir, f"http://localhost:{port}",
                     **overrides)
    return BulkStack(azurite, identity_provider, env, port, outbox_dir)
