"""Run one function invocation: sync functions in the caller's thread, `async def` functions on one
shared event loop (as the Python worker does), with the host's Executing/Executed log lines.
"""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import invocation_log
from .app_loader import FunctionSpec


@dataclass(frozen=True)
class InvocationContext:
    """What the worker passes to a parameter named `context` (func.Context's properties)."""

    invocation_id: str
    function_name: str
    function_directory: str
    thread_local_storage: threading.local
    trace_context: Any = None
    retry_context: Any = None


class EventLoopThread:
    """One event loop for all async functions, so objects bound to a loop (aiohttp sessions,
    async SDK clients created at import time) keep working across invocations."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="async-functions", daemon=True)
        self._thread.start()

    def run(self, coroutine) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class Invoker:
    def __init__(self, app_dir: str, function_timeout: timedelta | None = None) -> None:
        self._app_dir = app_dir
        # A Python thread cannot be cancelled, so an overrun is reported, not enforced: on Azure
        # the host would abort the invocation (and restart the worker) at this point.
        self._timeout_ms = function_timeout.total_seconds() * 1000 if function_timeout else None
        self._loop: EventLoopThread | None = None
        self._loop_lock = threading.Lock()

    def _event_loop(self) -> EventLoopThread:
        with self._loop_lock:
            if self._loop is None:
                self._loop = EventLoopThread()
            return self._loop

    def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Any:
        """Call the function; re-raises its exception after logging it (callers map it to 500/retry)."""
        invocation_id = str(uuid.uuid4())
        kwargs = {spec.trigger_param: trigger_value}
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, self._app_dir, threading.local())
        invocation_log.executing(spec.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            if spec.is_async:
                result = self._event_loop().run(spec.user_function(**kwargs))
            else:
                result = spec.user_function(**kwargs)
        except Exception:
            invocation_log.executed(spec.name, invocation_id, False, (time.perf_counter() - started) * 1000)
            invocation_log.failed(spec.name, invocation_id)
            raise
        duration_ms = (time.perf_counter() - started) * 1000
        invocation_log.executed(spec.name, invocation_id, True, duration_ms)
        if self._timeout_ms is not None and duration_ms > self._timeout_ms:
            invocation_log.logger.error(
                "Functions.%s (Id=%s) ran %dms, longer than functionTimeout in host.json; Azure would "
                "have failed this invocation", spec.name, invocation_id, round(duration_ms))
        return result

    def close(self) -> None:
        if self._loop is not None:
            self._loop.stop()
