"""Start Azurite, the identity provider, the Stripe emulator and the app under the local host.

Ports and secrets come from `local.settings.json` (created from the sample on first run), so the
stand-ins answer exactly where the app's settings point. Data lives in `.data/` and survives a
restart; Ctrl-C stops every process this started, by process id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from local_host.launcher import terminate

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "local.settings.json"
SAMPLE_FILE = ROOT / "local.settings.sample.json"
DATA = ROOT / ".data"


def _values() -> dict[str, str]:
    if not SETTINGS_FILE.exists():
        shutil.copyfile(SAMPLE_FILE, SETTINGS_FILE)
        print(f"created {SETTINGS_FILE.name} from the sample (local development values)")
    return json.loads(SETTINGS_FILE.read_text(encoding="utf-8"))["Values"]


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def _storage_ports(connection_string: str) -> tuple[int, int, int]:
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return (_port(parts["BlobEndpoint"], 10000), _port(parts["QueueEndpoint"], 10001),
            _port(parts["TableEndpoint"], 10002))


def main() -> int:
    os.chdir(ROOT)
    values = _values()
    # Validate before starting anything: one clear error instead of a traceback mid-request.
    from services.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2

    from local_host.azurite import start_azurite
    from standins.identity_provider import launch as launch_identity_provider
    from standins.stripe_emulator import launch as launch_stripe
    from standins.stripe_emulator.bootstrap import client_for, ensure_catalog

    stopping: list = []
    try:
        blob, queue, table = _storage_ports(values["AzureWebJobsStorage"])
        (DATA / "azurite").mkdir(parents=True, exist_ok=True)
        azurite = start_azurite(location=DATA / "azurite", blob_port=blob, queue_port=queue, table_port=table)
        stopping.append(azurite)

        identity = launch_identity_provider(port=_port(settings.entra_authority, 7443), cert_dir=ROOT / ".certs")
        stopping.append(identity)

        webhook_url = f"{settings.public_base_url}/api/stripe/webhook"
        stripe = launch_stripe(
            port=_port(settings.stripe_api_base or "", 12111),
            webhook_url=webhook_url,
            webhook_secret=settings.stripe_webhook_secrets[0],
            state_file=DATA / "stripe.json",
        )
        stopping.append(stripe)
        ensure_catalog(client_for(settings.stripe_secret_key, stripe.url))

        host = subprocess.Popen(
            [sys.executable, "-m", "local_host", "--app-dir", str(ROOT),
             "--port", str(_port(settings.public_base_url, 7071))],
            cwd=ROOT,
            # The machine's own REQUESTS_CA_BUNDLE would win over local.settings.json and override
            # MSAL's verify=: the app must trust the identity provider's certificate (plus the public CAs).
            env={**os.environ, "REQUESTS_CA_BUNDLE": str(identity.ca_bundle)},
        )
        stopping.append(host)
        _wait_for_health(settings.public_base_url, host)
        print(
            "\n"
            f"  Dashboard:          {settings.public_base_url}/api/dashboard\n"
            f"  Health:             {settings.public_base_url}/api/health\n"
            f"  Mail outbox:        {settings.public_base_url}/api/dev/outbox  (or: python -m standins.outbox)\n"
            f"  Identity provider:  {identity.url}  (pick a user when signing in)\n"
            f"  Stripe emulator:    {stripe.url}  (webhooks to {webhook_url})\n"
            f"  Storage (Azurite):  blob {blob}, queue {queue}, table {table}; data in .data/\n"
            "\n  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        done = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: done.set())
        while not done.wait(1):
            if host.poll() is not None:
                print(f"the local host exited with code {host.returncode}", file=sys.stderr)
                return 1
        return 0
    finally:
        for process in reversed(stopping):
            _stop(process)


def _wait_for_health(base_url: str, host: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise SystemExit(f"the local host exited with code {host.returncode}; see the messages above")
        try:
            with urllib.request.urlopen(f"{base_url}/api/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"{base_url}/api/health did not answer 200 within {timeout:.0f} s")


def _stop(process) -> None:
    try:
        if isinstance(process, subprocess.Popen):
            terminate(process)
        else:
            process.stop()
    except Exception as exc:  # noqa: BLE001 - keep stopping the others
        print(f"while stopping {process!r}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
