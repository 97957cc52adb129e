"""Start the emulator as a subprocess (for pytest fixtures and dev scripts)."""

import os
import re
import subprocess
import sys
import time
import urllib.request

from local_host.launcher import terminate

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EmulatorProcess:
    def __init__(self, process, url):
        self.process = process
        self.url = url
        self.pid = process.pid

    def stop(self, timeout=10):
        terminate(self.process, timeout)
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def launch(port=0, webhook_url=None, webhook_secret=None, state_file=None, extra_args=(),
           timeout=15):
    """Start ``python -m standins.stripe_emulator serve`` and wait until it answers.

    With port=0 the OS picks a free port and the child reports it on its first stdout line,
    so there is no window in which another process can take the port.
    """
    command = [sys.executable, "-m", "standins.stripe_emulator", "serve", "--port", str(port)]
    if webhook_url:
        command += ["--webhook-url", webhook_url]
    if webhook_secret:
        command += ["--webhook-secret", webhook_secret]
    if state_file:
        command += ["--state-file", str(state_file)]
    command += list(extra_args)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH")) if p), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, cwd=_REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None  # stdout=PIPE
    line = process.stdout.readline()
    found = re.search(r"(http://\S+)", line or "")
    if not found:
        process.kill()
        raise RuntimeError(f"Stripe emulator did not start: {line!r}")
    handle = EmulatorProcess(process, found.group(1))
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(handle.url + "/_emulator/health", timeout=2):
                return handle
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                handle.stop()
                raise RuntimeError("Stripe emulator did not answer in time") from None
            time.sleep(0.05)
