"""Subscription entities cached per instance for at most 60 s (PRODUCT.md section 4).

The license check reads the user's lookup partition every time (so a revoked user is unlicensed at
once) but the subscriptions it names from here: a status change reaches every check within `ttl`.
A missing subscription is cached as such for the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import TableStore
from services.subscription import Subscription

MAX_TTL_SECONDS = 60.0
# Enough for every subscription a busy instance sees; past it the oldest entries go first.
MAX_ENTRIES = 20_000


class SubscriptionCache:
    def __init__(self, ttl: float = MAX_TTL_SECONDS, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        if not 0 <= ttl <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl must be between 0 and {MAX_TTL_SECONDS} s")
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Subscription | None]] = {}
        self._lock = threading.Lock()

    def get(self, storage: TableStore, subscription_id: str) -> Subscription | None:
        now = self._clock()
        entry = self._entries.get(subscription_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        # Storage errors propagate: the caller answers 503, it does not cache a failure.
        subscription = SubscriptionRepository(storage).load(subscription_id)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._evict(now)
            self._entries[subscription_id] = (now + self.ttl, subscription)
        return subscription

    def forget(self, subscription_id: str | None = None) -> None:
        with self._lock:
            if subscription_id is None:
                self._entries.clear()
            else:
                self._entries.pop(subscription_id, None)

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        if len(self._entries) >= self._max_entries:
            # Insertion order: the oldest loads first.
            for key in list(self._entries)[: len(self._entries) // 2]:
                del self._entries[key]
