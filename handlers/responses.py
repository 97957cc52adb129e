"""Building HTTP responses the same way everywhere: JSON bodies, error shape, security headers."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

log = logging.getLogger(__name__)

# Sent on every response the app builds: the host adds none of its own (PRODUCT.md section 6).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
          **extra: Any) -> func.HttpResponse:
    """A JSON error: `error` for programs, `message` saying what is wrong for people."""
    return json_response({"error": code, "message": message, **extra}, status=status, headers=headers)


def csv_response(text: str, filename: str, headers: Mapping[str, str] | None = None,
                 bom: bool = True) -> func.HttpResponse:
    """A CSV download; with `bom` (the byte order mark) Excel reads it as UTF-8."""
    return func.HttpResponse(
        ("\ufeff" if bom else "") + text,
        status_code=200,
        mimetype="text/csv",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {}), "Content-Disposition": f'attachment; filename="{filename}"'},
    )


# What a client should wait before retrying while storage is unreachable.
STORAGE_RETRY_AFTER_SECONDS = 10


def when_configured(handler: Callable[..., func.HttpResponse]) -> Callable[..., func.HttpResponse]:
    """Answer 503 instead of a 500 traceback while the app's settings are invalid or storage is out.

    Settings are read on first use, not at import time, so a bad deployment surfaces in the first
    request: it gets a clear 503, the log one line naming every bad setting (never their values), and
    `/api/health` shows the same list to the operator.

    The handler runs as an HTTP request (`bootstrap.serving_request`): each storage call fits the
    request's time budget, and storage that cannot be reached is a 503 `unavailable` with Retry-After,
    wherever in the request it happens (pages and the JSON API alike).
    """

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> func.HttpResponse:
        from adapters.table_storage import StorageUnavailable
        from services import bootstrap
        from services.settings import SettingsError

        try:
            with bootstrap.serving_request():
                return handler(*args, **kwargs)
        except SettingsError as exc:
            log.error("cannot serve %s: %s", handler.__name__, exc)
            return error(503, "misconfigured", "The service is not configured correctly; the operator has been told.",
                         headers={"Retry-After": "60"})
        except StorageUnavailable as exc:
            log.warning("cannot serve %s: storage unavailable: %s", handler.__name__, exc)
            return unavailable()

    return guarded


def unavailable() -> func.HttpResponse:
    """503 `unavailable`: storage cannot be reached right now."""
    return error(503, "unavailable", "The service cannot reach its storage right now. Try again in a moment; "
                 "a retry with the same request_id never applies a change twice.",
                 headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)})
