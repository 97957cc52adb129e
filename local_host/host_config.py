"""The parts of host.json the local host follows, with the Functions host's defaults.

Only settings that change behaviour an app can observe are read; everything else in host.json
(logging, extension bundles, ...) is Azure's concern and ignored here.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_timespan(value: str | int | float | None, default: timedelta) -> timedelta:
    """host.json uses .NET TimeSpan strings ("00:00:10", "1.02:00:00", "00:00:00.5")."""
    if value is None:
        return default
    if isinstance(value, (int, float)):  # some samples give plain seconds; be lenient
        return timedelta(seconds=value)
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise ValueError(f"host.json: {value!r} is not a TimeSpan like '00:00:10'")
    return timedelta(
        days=int(match["days"] or 0), hours=int(match["h"]), minutes=int(match["m"]),
        seconds=float(match["s"]),
    )


@dataclass(frozen=True)
class QueueOptions:
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)
    batch_size: int = 16
    new_batch_threshold: int = 8
    message_encoding: str = "base64"  # or "none"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()
    function_timeout: timedelta | None = None


def load_host_config(app_dir: Path) -> HostConfig:
    path = app_dir / "host.json"
    if not path.exists():
        return HostConfig()
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    queues = extensions.get("queues") or {}

    batch_size = int(queues.get("batchSize", 16))
    if not 1 <= batch_size <= 32:
        raise ValueError("host.json: extensions.queues.batchSize must be between 1 and 32")
    encoding = str(queues.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise ValueError("host.json: extensions.queues.messageEncoding must be 'base64' or 'none'")

    timeout = data.get("functionTimeout")
    return HostConfig(
        # The host strips slashes around the prefix; "" means routes sit at the root.
        route_prefix=str(http.get("routePrefix", "api")).strip("/"),
        queues=QueueOptions(
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=parse_timespan(queues.get("visibilityTimeout"), timedelta(0)),
            max_polling_interval=parse_timespan(queues.get("maxPollingInterval"), timedelta(minutes=1)),
            batch_size=batch_size,
            # The host's default threshold is batchSize / 2 (per instance, one CPU here).
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            message_encoding=encoding,
        ),
        # "-1" means unlimited on dedicated plans.
        function_timeout=None if timeout in (None, "-1", -1) else parse_timespan(timeout, timedelta(0)),
    )
