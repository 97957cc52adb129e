"""Console logging in the Functions host's shape, so local output reads like `func start`."""
from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

logger = logging.getLogger("local_host")


class HostFormatter(logging.Formatter):
    """`[2024-05-01T10:00:00.123Z] message`, UTC, like Core Tools."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        message = super().format(record)
        return "\n".join(f"[{stamp}Z] {line}" for line in message.splitlines() or [""])


def configure_console_logging(level: int = logging.INFO) -> None:
    """Host lines and the app's own `logging` calls go to stdout, one format."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(HostFormatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The storage SDK logs every HTTP request at INFO; the host's own log does not show those.
    logging.getLogger("azure").setLevel(logging.WARNING)


def _host_line(message: str) -> None:
    """One INFO line of the host's own, built here rather than through the process's log-record factory:
    the app may install one (services/observability.py redacts every record), and these lines, written
    twice per invocation, carry nothing to redact. On Azure the host writes them outside the worker."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(logging.LogRecord(logger.name, logging.INFO, __file__, 0, message, None, None))


def executing(function_name: str, reason: str, invocation_id: str) -> None:
    _host_line(f"Executing 'Functions.{function_name}' (Reason='{reason}', Id={invocation_id})")


def executed(function_name: str, invocation_id: str, succeeded: bool, duration_ms: float) -> None:
    _host_line(f"Executed 'Functions.{function_name}' ({'Succeeded' if succeeded else 'Failed'}, "
               f"Id={invocation_id}, Duration={round(duration_ms)}ms)")


def failed(function_name: str, invocation_id: str) -> None:
    """Call from an `except` block: logs the traceback like the host's 'Exception while executing'."""
    logger.error("Exception while executing function: Functions.%s (Id=%s)", function_name, invocation_id,
                 exc_info=True)
