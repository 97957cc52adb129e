"""Wires the adapters, once per process: the production ones, or those a test hands in.

Handlers ask here for storage, the unit of work and Stripe instead of building them. Integration
tests point the production adapters at the local stand-ins through settings (`reset()` after
changing the environment); unit tests wire the in-memory storage with `use_storage()`.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from services.settings import Settings, get_settings
from services.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from adapters.stripe_gateway import StripeGateway
    from adapters.table_storage import TableStore

_lock = threading.Lock()
_override: TableStore | None = None


@lru_cache(maxsize=1)
def _storage() -> TableStore:
    from adapters.table_storage import Storage

    with _lock:
        store = Storage(get_settings())
        # Functions has no startup hook: the first use in a process creates what is missing.
        store.ensure_created()
        return store


@lru_cache(maxsize=1)
def _hot_path_storage() -> TableStore:
    from adapters.table_storage import Storage, hot_path_retry

    settings = get_settings()
    _storage()  # tables exist before the first check
    return Storage(settings, retry=hot_path_retry(settings.storage_hot_path_budget_seconds))


def storage() -> TableStore:
    return _override if _override is not None else _storage()


def hot_path_storage() -> TableStore:
    """Storage for the license check: retries bounded by the hot-path time budget."""
    return _override if _override is not None else _hot_path_storage()


def unit_of_work() -> UnitOfWork:
    return UnitOfWork(storage())


@lru_cache(maxsize=1)
def stripe() -> StripeGateway:
    """The Stripe adapter (the SDK itself loads on first call, not here)."""
    from adapters.stripe_gateway import StripeGateway

    return StripeGateway(get_settings())


def use_storage(store: TableStore | None) -> None:
    """Wire `store` (e.g. adapters.memory_storage.InMemoryStorage) instead of Azure; None undoes it."""
    global _override
    _override = store


def reset() -> None:
    """Forget cached settings and adapters (tests that change the environment)."""
    get_settings.cache_clear()
    _storage.cache_clear()
    _hot_path_storage.cache_clear()
    stripe.cache_clear()
    use_storage(None)


def settings() -> Settings:
    return get_settings()
