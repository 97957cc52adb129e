"""The OpenAPI description of the JSON endpoints, assembled from what each handler declares.

Handlers call `describe()` next to their routes, so the document grows with each capability and a
test can check that every JSON route is described.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

_PATHS: dict[str, dict[str, Any]] = {}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "machine-readable error code"},
            "message": {"type": "string", "description": "what is wrong, for people"},
        },
    },
    "FieldError": {
        "type": "object",
        "required": ["error", "message", "field"],
        "description": "An input refused at the edge: `field` names the query parameter, path parameter, header "
                       "or body member at fault; nothing was read or written.",
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "field": {"type": "string"},
        },
    },
}


def describe(path: str, method: str, operation: dict[str, Any]) -> None:
    """Declare one operation; `path` is relative to the route prefix, e.g. `/health`."""
    _PATHS.setdefault(path, {})[method.lower()] = operation


def schema(name: str, definition: dict[str, Any]) -> None:
    _SCHEMAS[name] = definition


def document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SecureMailMerge licensing API",
            "version": "1.0.0",
            "description": "Licenses for the SecureMailMerge Outlook add-in.",
        },
        "servers": [{"url": server_url}],
        "paths": deepcopy(_PATHS),
        "components": {
            "schemas": deepcopy(_SCHEMAS),
            "securitySchemes": {
                "entraBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An Entra ID access token for the add-in's API (scope access_as_user).",
                }
            },
        },
    }


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def unavailable_response() -> dict[str, Any]:
    """503 `unavailable` (storage out) or `busy` (the subscription kept changing), with Retry-After."""
    return {
        "description": "storage unreachable (`unavailable`) or the subscription kept changing (`busy`); retry after "
                       "`Retry-After` seconds with the same request id",
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
