"""A per-instance, best-effort limit on license checks per user.

Each Function App instance keeps its own counters (no shared state, no storage call): with N instances a
user can make up to N times the limit. That is fine: the limit is generous and only stops a runaway
client loop from burning the instance. A token bucket per key: `per_minute` checks, refilled evenly.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

# Buckets idle this long are full again and can be dropped.
_PRUNE_EVERY = 10_000


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self._lock = threading.Lock()
        self._calls = 0

    def acquire(self, key: str) -> float:
        """0 when allowed; otherwise the seconds until the next check would be allowed."""
        now = self._clock()
        with self._lock:
            self._calls += 1
            if self._calls % _PRUNE_EVERY == 0:
                self._prune(now)
            tokens, updated = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.rate
        for key in [k for k, (_, updated) in self._buckets.items() if now - updated >= full_after]:
            del self._buckets[key]


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
