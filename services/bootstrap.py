"""Wires the production adapters, once per process.

Handlers ask here for storage and the mail sender instead of building them, so tests can hand the
same handlers other settings (another Azurite, the local ACS endpoint) with `reset()`.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from services.settings import Settings, get_settings
from services.storage import Storage, hot_path_retry

_lock = threading.Lock()


@lru_cache(maxsize=1)
def storage() -> Storage:
    with _lock:
        store = Storage(get_settings())
        # Functions has no startup hook: the first use in a process creates what is missing.
        store.ensure_created()
        return store


@lru_cache(maxsize=1)
def hot_path_storage() -> Storage:
    """Storage for the license check: retries bounded by the hot-path time budget."""
    settings = get_settings()
    storage()  # tables exist before the first check
    return Storage(settings, retry=hot_path_retry(settings.storage_hot_path_budget_seconds))


@lru_cache(maxsize=1)
def stripe():
    """The Stripe adapter (the SDK itself loads on first call, not here)."""
    from services.stripe_gateway import StripeGateway

    return StripeGateway(get_settings())


def reset() -> None:
    """Forget cached settings and adapters (tests that change the environment)."""
    get_settings.cache_clear()
    storage.cache_clear()
    hot_path_storage.cache_clear()
    stripe.cache_clear()


def settings() -> Settings:
    return get_settings()
