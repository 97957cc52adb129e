"""Run the stand-in as a subprocess, the way test fixtures run the other local services.

A subprocess (rather than a thread) keeps the fixture reusable across local services and exercises the
real `serve` command; port 0 lets it pick a free port, which it reports on its first stdout line.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from local_host.launcher import terminate

_REPO_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "identity provider listening on "


@dataclass
class LaunchedProvider:
    url: str
    process: subprocess.Popen
    cert_dir: Path
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def cert_file(self) -> Path:
        return self.cert_dir / "cert.pem"

    @property
    def ca_bundle(self) -> Path:
        return self.cert_dir / "ca-bundle.pem"

    def stop(self, timeout: float = 5) -> None:
        terminate(self.process, timeout)

    def __enter__(self) -> LaunchedProvider:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def launch(port: int = 0, cert_dir: str | os.PathLike = ".certs", users_file: str | os.PathLike | None = None,
           timeout: float = 20, quiet: bool = True) -> LaunchedProvider:
    """Start `python -m standins.identity_provider serve` and wait until it listens."""
    cert_dir = Path(cert_dir).resolve()
    command = [sys.executable, "-m", "standins.identity_provider", "serve", "--port", str(port),
               "--cert-dir", str(cert_dir)]
    if users_file:
        command += ["--users-file", str(users_file)]
    if quiet:
        command.append("--quiet")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=_REPO_ROOT)
    # A reader thread (not readline() here) so a child that hangs silently cannot hang the caller; it keeps
    # draining stdout afterwards so the child never blocks on a full pipe.
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, name="identity-provider-stdout", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    url = None
    while url is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break  # exited before becoming ready
        if line.startswith(READY_PREFIX):
            url = line[len(READY_PREFIX):].strip()
    if url is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"identity provider did not start (exit code {process.returncode}); see its stderr")
    return LaunchedProvider(url=url, process=process, cert_dir=cert_dir, _reader=reader)
