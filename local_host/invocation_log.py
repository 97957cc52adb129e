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


def executing(function_name: str, reason: str, invocation_id: str) -> None:
    logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function_name, reason, invocation_id)


def executed(function_name: str, invocation_id: str, succeeded: bool, duration_ms: float) -> None:
    logger.info(
        "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
        function_name, "Succeeded" if succeeded else "Failed", invocation_id, round(duration_ms),
    )


def failed(function_name: str, invocation_id: str) -> None:
    """Call from an `except` block: logs the traceback like the host's 'Exception while executing'."""
    logger.error("Exception while executing function: Functions.%s (Id=%s)", function_name, invocation_id,
                 exc_info=True)
