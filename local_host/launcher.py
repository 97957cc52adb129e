"""Start the local host as a subprocess (for test fixtures and scripts) and stop it again.

A subprocess gives tests real HTTP, a fresh import of the app per host, and lets two hosts share
one Azurite. The child prints its URL once it listens; `launch()` returns then.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"Local Functions host listening on (http://\S+)")


def terminate(process: subprocess.Popen, timeout: float = 15) -> int | None:
    """Stop a child of ours by its process id: SIGTERM, then SIGKILL if it has not exited in time.

    Shared by every local process the tests and `make run` start (host, stand-ins)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


@dataclass
class LaunchedHost:
    process: subprocess.Popen
    url: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> str:
        """Everything the host printed so far (function list, Executing/Executed lines, app logs)."""
        return "\n".join(self.output)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM (graceful: in-flight invocations finish), SIGKILL if it does not exit in time."""
        return terminate(self.process, timeout)

    def __enter__(self) -> LaunchedHost:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def launch(app_dir: Path | str, env: dict[str, str] | None = None, port: int = 0,
           timeout: float = 30, python: str = sys.executable) -> LaunchedHost:
    """Run `python -m local_host --app-dir app_dir --port port` with os.environ + `env`."""
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    # local_host must be importable whatever the app dir is.
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [python, "-m", "local_host", "--app-dir", str(Path(app_dir).resolve()), "--port", str(port)],
        cwd=str(app_dir), env=child_env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    host = LaunchedHost(process)
    ready = threading.Event()

    def read_output() -> None:
        # Drains for the whole life of the process so it never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            host.output.append(line.rstrip("\n"))
            if not ready.is_set() and (match := _READY.search(line)):
                host.url = match.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=read_output, name=f"local-host-{process.pid}", daemon=True).start()
    if not ready.wait(timeout) or not host.url:
        host.stop(5)
        raise RuntimeError(f"local host did not start (exit code {process.poll()}):\n{host.logs()}")
    return host
