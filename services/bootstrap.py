"""Wires the adapters, once per process: the production ones, or those a test hands in.

Handlers ask here for storage, the unit of work and Stripe instead of building them. Integration
tests point the production adapters at the local stand-ins through settings (`reset()` after
changing the environment); unit tests wire the in-memory storage with `use_storage()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING

from services.settings import Settings, get_settings

if TYPE_CHECKING:
    from adapters.entra import EntraApplication
    from adapters.stripe_gateway import StripeGateway
    from adapters.table_storage import RetryProfile, TableStore
    from services.unit_of_work import UnitOfWork

_lock = threading.Lock()
_created = threading.Event()
_override: TableStore | None = None
# Set while an HTTP request is served (`serving_request`): its storage calls fit the request's time
# budget; queue and timer triggers keep the patient standard retries.
_in_request: ContextVar[bool] = ContextVar("in_request", default=False)


def _built(retry: RetryProfile | None = None) -> TableStore:
    from adapters.table_storage import STANDARD_RETRY, Storage

    store = Storage(get_settings(), retry=retry or STANDARD_RETRY)
    # Functions has no startup hook: the first use in a process creates what is missing, with the
    # retries of whoever comes first (a request fails fast with 503; the next one tries again).
    if not _created.is_set():
        with _lock:
            if not _created.is_set():
                store.ensure_created()
                _created.set()
    return store


@lru_cache(maxsize=1)
def _storage() -> TableStore:
    return _built()


@lru_cache(maxsize=1)
def _request_storage() -> TableStore:
    from adapters.table_storage import REQUEST_RETRY

    return _built(REQUEST_RETRY)


@lru_cache(maxsize=1)
def _hot_path_storage() -> TableStore:
    from adapters.table_storage import hot_path_retry

    return _built(hot_path_retry(get_settings().storage_hot_path_budget_seconds))


@lru_cache(maxsize=1)
def _health_storage() -> TableStore:
    from adapters.table_storage import HEALTH_RETRY, Storage

    return Storage(get_settings(), retry=HEALTH_RETRY)  # pings only: creates nothing


def storage() -> TableStore:
    """Storage for the caller's context: within an HTTP request, retries bounded by the request's
    budget (adapters/table_storage.REQUEST_BUDGET_SECONDS); in triggers and scripts, the standard ones."""
    if _override is not None:
        return _override
    return _request_storage() if _in_request.get() else _storage()


def hot_path_storage() -> TableStore:
    """Storage for the license check: retries bounded by the hot-path time budget."""
    return _override if _override is not None else _hot_path_storage()


def health_storage() -> TableStore:
    """Storage for the health probe's ping: one short attempt."""
    return _override if _override is not None else _health_storage()


@contextmanager
def serving_request() -> Iterator[None]:
    """Storage calls inside this block belong to an HTTP request (handlers/responses.when_configured)."""
    token = _in_request.set(True)
    try:
        yield
    finally:
        _in_request.reset(token)


def unit_of_work() -> UnitOfWork:
    from services.unit_of_work import UnitOfWork  # with the mail it queues: not on the license check's path

    return UnitOfWork(storage())


@lru_cache(maxsize=1)
def entra() -> EntraApplication:
    """Entra ID as the application itself (client credentials: is the app present in a tenant?)."""
    from adapters.entra import EntraApplication

    return EntraApplication(get_settings())


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
    _request_storage.cache_clear()
    _hot_path_storage.cache_clear()
    _health_storage.cache_clear()
    _created.clear()
    stripe.cache_clear()
    entra.cache_clear()
    use_storage(None)


def settings() -> Settings:
    return get_settings()
