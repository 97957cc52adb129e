"""The OpenAPI description of the license and audit-log JSON routes (handlers/licenses_api.py,
handlers/audit_log.py), kept apart from the handlers so they stay short. Imported by those modules:
the description exists whenever the routes do.
"""

from __future__ import annotations

from handlers.paging import MAX_LIMIT, PAGE_SIZE
from handlers.seat_changes import REQUEST_ID_PATTERN
from services import api_spec
from services.address_list import MAX_ADDRESSES
from services.seat import STATUSES

_SUB_PARAM = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL_PARAM = {"name": "email", "in": "path", "required": True, "schema": {"type": "string", "format": "email"}}
_SECURITY: list[dict[str, list[str]]] = [{"entraBearer": []}]
_REQUEST_ID = f"^{REQUEST_ID_PATTERN}$"
_COMMON = {
    "401": api_spec.error_response("missing or invalid bearer token"),
    "403": api_spec.error_response("the caller may see the subscription but lacks this route's permission"),
    "404": api_spec.error_response("unknown subscription, or not one the caller may see"),
}
api_spec.schema("Seat", {
    "type": "object",
    "properties": {
        "email": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "bound": {"type": "boolean", "description": "ever bound to a signed-in user (tid, oid)"},
        "assigned_at": {"type": "string", "format": "date-time"},
        "assigned_by": {"type": "string"},
        "last_seen_on": {"type": ["string", "null"], "format": "date"},
    },
})
api_spec.schema("Assignment", {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "email": {"type": "string"}, "result": {"type": "string", "enum": ["assigned", "already_assigned"]}}}},
        "assigned": {"type": "array", "items": {"type": "string"}},
        "already_assigned": {"type": "array", "items": {"type": "string"}},
        "duplicates": {"type": "array", "items": {"type": "string"}},
        "assigned_count": {"type": "integer"}, "quantity": {"type": "integer"}, "free": {"type": "integer"},
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses", "get", {
    "summary": "List licenses (seats), filtered and paginated",
    "security": _SECURITY,
    "parameters": [
        _SUB_PARAM,
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
        {"name": "q", "in": "query", "description": "e-mail address prefix", "schema": {"type": "string"}},
        {"name": "continuation", "in": "query", "description": "from the previous page", "schema": {"type": "string"}},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": PAGE_SIZE}},
    ],
    "responses": {
        "200": {"description": "one page of seats", "content": {"application/json": {"schema": {
            "type": "object", "properties": {
                "seats": {"type": "array", "items": {"$ref": "#/components/schemas/Seat"}},
                "continuation": {"type": ["string", "null"]},
                "assigned_count": {"type": "integer"}, "quantity": {"type": "integer"}}}}}},
        "400": api_spec.error_response("bad status, limit or continuation"),
        **_COMMON,
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses", "post", {
    "summary": "Assign licenses to e-mail addresses (all or nothing)",
    "description": f"JSON `{{\"emails\": [...], \"request_id\": \"...\"}}` (a list or comma/semicolon/newline "
    f"separated text) or a text/csv body (with or without header, up to {MAX_ADDRESSES:,} rows; request id "
    "in the Idempotency-Key header). Retrying with the same request_id never assigns or mails twice.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM,
                   {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "pattern": _REQUEST_ID}}],
    "requestBody": {"content": {
        "application/json": {"schema": {"type": "object", "required": ["emails"], "properties": {
            "emails": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
            "request_id": {"type": "string", "pattern": _REQUEST_ID}}}},
        "text/csv": {"schema": {"type": "string"}}}},
    "responses": {
        "200": {"description": "what happened per address",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Assignment"}}}},
        "400": api_spec.error_response("malformed addresses (listed in `invalid`), empty list, too many rows, not CSV, "
                                       "invalid_request_id (`field` names it); nothing assigned"),
        "409": api_spec.error_response(
            "no_seats_free: more new licenses than free seats (`needed`, `free`); nothing assigned"),
        "503": api_spec.error_response("busy; retry with the same request_id"),
        **_COMMON,
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses/{email}", "delete", {
    "summary": "Revoke a license; the user is unlicensed at once",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "responses": {"200": {"description": "revoked"}, **_COMMON,
                  "404": api_spec.error_response("unknown subscription, or the address holds no license")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses/{email}/reassign", "post", {
    "summary": "Move a license to another address in one step",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["to"], "properties": {
        "to": {"type": "string", "format": "email"}, "request_id": {"type": "string", "pattern": _REQUEST_ID}}}}}},
    "responses": {"200": {"description": "reassigned"}, **_COMMON,
                  "400": api_spec.error_response("malformed address, or invalid_request_id"),
                  "409": api_spec.error_response("the new address already holds a license")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses.csv", "get", {
    "summary": "Export all licenses as CSV",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}}],
    "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **_COMMON},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/audit", "get", {
    "summary": "The audit log, newest first, paginated",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM,
                   {"name": "continuation", "in": "query", "schema": {"type": "string"}},
                   {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}],
    "responses": {"200": {"description": "entries: at, actor_*, action, target, before, after"}, **_COMMON},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/audit.csv", "get", {
    "summary": "Export the audit log as CSV",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **_COMMON},
})
