"""The local Functions host: one object that loads the app and runs its HTTP server, queue pollers
and timers. `python -m local_host` and `local_host.launch()` (subprocess) both use it; tests may
also use it in-process (one app per Python process, because apps share module names).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from .app_loader import FunctionSpec, load_functions
from .host_config import HostConfig, load_host_config
from .http_server import FunctionsHttpServer, build_route_table
from .invocation import Invoker
from .local_settings import apply_local_settings
from .queue_runner import QueueRunner
from .timer_runner import TimerRunner

logger = logging.getLogger("local_host")


def _disabled(name: str) -> bool:
    """The app setting `AzureWebJobs.<function name>.Disabled` = true makes the host ignore a function's
    trigger, as in Azure (learn.microsoft.com/azure/azure-functions/disable-function)."""
    value = os.environ.get(f"AzureWebJobs.{name}.Disabled", "")
    if value.strip().lower() in ("true", "1"):
        logger.info("Function %s is disabled (AzureWebJobs.%s.Disabled)", name, name)
        return True
    return False


class LocalHost:
    def __init__(self, app_dir: Path | str = ".", port: int = 7071, bind: str = "127.0.0.1") -> None:
        self.app_dir = Path(app_dir).resolve()
        self.requested_port = port
        self.bind = bind
        self.config: HostConfig | None = None
        self.functions: list[FunctionSpec] = []
        self._server: FunctionsHttpServer | None = None
        self._server_thread: threading.Thread | None = None
        self._runners: list[QueueRunner | TimerRunner] = []
        self._invoker: Invoker | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "host not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> LocalHost:
        applied = apply_local_settings(self.app_dir)
        if applied:
            logger.info("Applied %d settings from local.settings.json", len(applied))
        self.config = load_host_config(self.app_dir)
        self.functions = [spec for spec in load_functions(self.app_dir) if not _disabled(spec.name)]
        self._invoker = Invoker(str(self.app_dir), self.config.function_timeout)
        # Build every runner before starting anything, so a bad binding fails the start cleanly.
        runners: list[QueueRunner | TimerRunner] = []
        for spec in self.functions:
            if spec.trigger_type == "queueTrigger":
                runners.append(QueueRunner(spec, self.config.queues, self._invoker))
            elif spec.trigger_type == "timerTrigger":
                runners.append(TimerRunner(spec, self._invoker))
        routes = build_route_table(self.config.route_prefix, self.functions)
        self._server = FunctionsHttpServer((self.bind, self.requested_port), routes, self._invoker)
        self._server_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                               name="http-server", daemon=True)
        self._server_thread.start()
        self._log_functions(runners, self.config.route_prefix)
        for runner in runners:
            runner.start()
        self._runners = runners
        logger.info("Local Functions host listening on %s (routePrefix '%s')", self.url, self.config.route_prefix)
        return self

    def _log_functions(self, runners: list[QueueRunner | TimerRunner], route_prefix: str) -> None:
        """The function list `func start` prints, with URLs, queues and schedules."""
        lines = ["", "Functions:", ""]
        prefix = f"/{route_prefix}" if route_prefix else ""
        described = {runner.spec.name: runner.description for runner in runners}
        for spec in self.functions:
            if spec.trigger_type == "httpTrigger":
                methods = ",".join(spec.trigger.get("methods") or ["ALL"])
                route = spec.trigger.get("route") or spec.name
                lines.append(f"\t{spec.name}: [{methods}] {self.url}{prefix}/{route}")
            else:
                lines.append(f"\t{spec.name}: {described[spec.name]}")
            lines.append("")
        logger.info("\n".join(lines))

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting work, let in-flight invocations finish for up to `grace_seconds`."""
        deadline = time.monotonic() + grace_seconds
        if self._server is not None:
            self._server.closing = True
            self._server.shutdown()
            self._server.server_close()
        for runner in self._runners:
            runner.stop(max(0.0, deadline - time.monotonic()))
        if self._server is not None and not self._server.in_flight.wait_idle(max(0.0, deadline - time.monotonic())):
            logger.warning("Stopping with HTTP requests still running")
        if self._invoker is not None:
            self._invoker.close()
        logger.info("Local Functions host stopped")

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
