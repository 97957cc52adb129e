"""Building HTTP responses the same way everywhere: JSON bodies, error shape, security headers."""

from __future__ import annotations

import json
from typing import Any, Mapping

import azure.functions as func

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


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> func.HttpResponse:
    """A JSON error: `error` for programs, `message` saying what is wrong for people."""
    return json_response({"error": code, "message": message, **extra}, status=status, headers=headers)
