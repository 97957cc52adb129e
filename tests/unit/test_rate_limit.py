"""The per-instance license-check rate limit and the subscription cache's time limit."""

import pytest

from adapters.memory_storage import InMemoryStorage
from services.rate_limit import RateLimiter, retry_after_header
from services.subscription_cache import SubscriptionCache


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_allows_the_limit_per_minute_then_says_how_long_to_wait():
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert all(limiter.acquire("a") == 0 for _ in range(60))
    wait = limiter.acquire("a")
    assert 0 < wait <= 1.0
    assert retry_after_header(wait) == "1"
    # Other users are not affected.
    assert limiter.acquire("b") == 0
    clock.now += 1.0
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") > 0


def test_refills_to_capacity_not_beyond():
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    for _ in range(10):
        limiter.acquire("a")
    clock.now += 3600
    assert sum(limiter.acquire("a") == 0 for _ in range(20)) == 10


def test_cache_ttl_is_limited_to_60_seconds():
    with pytest.raises(ValueError):
        SubscriptionCache(ttl=61)


def test_cache_reloads_after_ttl(monkeypatch):
    from adapters.subscription_repository import SubscriptionRepository

    loads = []
    loaded = object()  # stands for the subscription the repository would return

    def load(repository, sid):
        loads.append(sid)
        return loaded

    monkeypatch.setattr(SubscriptionRepository, "load", load)
    storage = InMemoryStorage()
    clock = Clock()
    cache = SubscriptionCache(ttl=60, clock=clock)
    assert cache.get(storage, "s1") is loaded and cache.get(storage, "s1") is loaded
    assert loads == ["s1"]
    clock.now += 60
    cache.get(storage, "s1")
    assert loads == ["s1", "s1"]
