"""Start and stop Azurite (the Azure Storage emulator from npm) for local development and tests.

Azurite is pinned in the repository's package.json and installed with `npm ci`; this module runs the
installed `node_modules/.bin/azurite`, never a global one, so every machine uses the same version.

Ports: by default Azurite is started with port 0 for all three services and the real ports are read
from its startup lines, so parallel test sessions never race for a port. `pause()`/`resume()` freeze
and thaw the process (SIGSTOP/SIGCONT): connections are accepted by the kernel but never answered,
which is what "storage unreachable / timing out" looks like to a client. `stop()` + `restart()`
closes the ports (connection refused) and reopens the same ports; with `in_memory=True` the data is
gone after a restart, with `location=` it survives.

CLI: `python -m local_host.azurite --location .data/azurite` prints the connection string and runs
until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The well-known development account of the storage emulator (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")
_HOST = "127.0.0.1"


class AzuriteNotInstalled(RuntimeError):
    pass


def azurite_executable() -> Path:
    exe = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not exe.exists():
        raise AzuriteNotInstalled(
            f"Azurite is not installed ({exe} is missing). Run `npm ci` in {REPO_ROOT} "
            "(Node.js 20+ required; the version is pinned in package.json)."
        )
    return exe


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = _HOST) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT_NAME};"
    )


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Azurite:
    """A running Azurite process. Create it with `start_azurite`."""

    location: Path | None
    in_memory: bool
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen | None = field(default=None, repr=False)
    output: list[str] = field(default_factory=list, repr=False)
    paused: bool = False

    @property
    def pid(self) -> int:
        assert self.process is not None, "Azurite is not running"
        return self.process.pid

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _launch(self, timeout: float) -> None:
        args = [
            str(azurite_executable()),
            "--blobHost", _HOST, "--queueHost", _HOST, "--tableHost", _HOST,
            "--blobPort", str(self.blob_port),
            "--queuePort", str(self.queue_port),
            "--tablePort", str(self.table_port),
            "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
        ]
        if self.in_memory:
            args.append("--inMemoryPersistence")
        else:
            assert self.location is not None
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        # Own process group so stop() also reaches node's children, and Ctrl+C in a terminal
        # running the tests does not kill Azurite before the fixtures have cleaned up.
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True, cwd=str(self.location or REPO_ROOT),
        )
        ports: dict[str, int] = {}
        ready = threading.Event()

        def read_output() -> None:
            # Keeps draining after startup so a chatty Azurite can never block on a full pipe.
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip("\n"))
                if match := _LISTENING.search(line):
                    ports[match.group(1).lower()] = int(match.group(2))
                    if len(ports) == 3:
                        ready.set()
            ready.set()

        threading.Thread(target=read_output, name="azurite-output", daemon=True).start()
        if not ready.wait(timeout) or len(ports) < 3:
            self.stop()
            raise RuntimeError("Azurite did not start:\n" + "\n".join(self.output[-30:]))
        self.blob_port, self.queue_port, self.table_port = ports["blob"], ports["queue"], ports["table"]
        deadline = time.monotonic() + timeout
        while not all(_port_answers(p) for p in (self.blob_port, self.queue_port, self.table_port)):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Azurite ports do not answer:\n" + "\n".join(self.output[-30:]))
            time.sleep(0.05)

    def stop(self, timeout: float = 10) -> None:
        """Terminate the process group by id and wait; the ports are closed afterwards."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        pgid = process.pid  # start_new_session=True: the group id is the process id
        if self.paused:
            os.killpg(pgid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.paused = False
        try:
            os.killpg(pgid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            process.wait(timeout)
        except ProcessLookupError:
            process.wait(timeout)

    def restart(self, timeout: float = 30) -> None:
        """Start again on the same ports (after `stop()`, or stops first)."""
        self.stop()
        self._launch(timeout)

    def pause(self) -> None:
        """Freeze Azurite (SIGSTOP): clients connect but get no answer until `resume()`."""
        os.killpg(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)
        self.paused = False

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_azurite(
    *,
    location: Path | None = None,
    in_memory: bool = False,
    blob_port: int = 0,
    queue_port: int = 0,
    table_port: int = 0,
    timeout: float = 30,
) -> Azurite:
    """Start Azurite and return once all three services answer. Port 0 means "any free port"."""
    if in_memory == (location is not None):
        raise ValueError("pass exactly one of location= (persistent) or in_memory=True")
    azurite = Azurite(
        location=Path(location).resolve() if location is not None else None,
        in_memory=in_memory, blob_port=blob_port, queue_port=queue_port, table_port=table_port,
    )
    azurite._launch(timeout)
    return azurite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_host.azurite", description=__doc__.split("\n\n")[0])
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--location", type=Path, default=Path(".data/azurite"),
                       help="data folder (default .data/azurite)")
    store.add_argument("--in-memory", action="store_true", help="keep no data on disk")
    parser.add_argument("--blob-port", type=int, default=10000)
    parser.add_argument("--queue-port", type=int, default=10001)
    parser.add_argument("--table-port", type=int, default=10002)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        azurite = start_azurite(
            location=None if args.in_memory else args.location, in_memory=args.in_memory,
            blob_port=args.blob_port, queue_port=args.queue_port, table_port=args.table_port,
        )
    except (AzuriteNotInstalled, RuntimeError) as error:
        print(error, file=sys.stderr)
        return 1
    with azurite:
        print(azurite.connection_string, flush=True)
        while not stop.is_set() and azurite.running:
            stop.wait(0.5)
        if not azurite.running and not stop.is_set():
            print("Azurite exited unexpectedly:\n" + "\n".join(azurite.output[-30:]), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
