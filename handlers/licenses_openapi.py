"""The OpenAPI description of the license and audit-log JSON routes (handlers/licenses_api.py,
handlers/audit_log.py), kept apart from the handlers so they stay short. Imported by those modules:
the description exists whenever the routes do.
"""

from __future__ import annotations

from typing import Any

from handlers.inputs import (
    ADDRESS_SCHEMA,
    CONTINUATION_SCHEMA,
    LIMIT_SCHEMA,
    NAMED_ADDRESS_SCHEMA,
    SEARCH_SCHEMA,
    STATUS_SCHEMA,
    invalid_input_response,
)
from handlers.seat_changes import REQUEST_ID_PATTERN
from services import api_spec
from services.address_list import MAX_ADDRESSES
from services.assignment_limits import DOMAINS_WITHOUT_CONFIRMATION
from services.seat import STATUSES

_SUB_PARAM = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL_PARAM = {"name": "email", "in": "path", "required": True, "schema": NAMED_ADDRESS_SCHEMA,
                "description": "the licensed address (percent-encoded; an encoded slash %2F is read as /)"}
_SECURITY: list[dict[str, list[str]]] = [{"entraBearer": []}]
_REQUEST_ID = f"^{REQUEST_ID_PATTERN}$"
_COMMON: dict[str, Any] = {
    "401": api_spec.error_response("missing or invalid bearer token"),
    "403": api_spec.error_response("the caller may see the subscription but lacks this route's permission"),
    "404": api_spec.error_response("unknown subscription, or not one the caller may see"),
    "503": api_spec.unavailable_response(),
}
_COUNTS = {"assigned_count": {"type": "integer"}, "quantity": {"type": "integer"}}
api_spec.schema("InvalidAddresses", {
    "type": "object",
    "required": ["error", "message", "invalid", "problems"],
    "description": "`invalid_addresses`: the entries that are no usable address and why; nothing was assigned.",
    "properties": {
        "error": {"type": "string", "enum": ["invalid_addresses"]},
        "message": {"type": "string"},
        "invalid": {"type": "array", "items": {"type": "string"}, "description": "as given (at most 1,000)"},
        "problems": {"type": "array", "items": {"type": "object", "required": ["address", "reason"], "properties": {
            "address": {"type": "string"},
            "reason": {"type": "string", "enum": ["malformed", "non_ascii", "too_long", "empty"]}}}},
    },
})
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
        "job_url": {"type": ["string", "null"], "description": "more addresses than one transaction: the job "
                    "that writes their lookup rows and welcome mails"},
    },
})
api_spec.schema("AssignmentJob", {
    "type": "object",
    "required": ["job_id", "status", "percent", "to_assign", "assigned", "mails_queued", "failed"],
    "description": "A bulk assignment and how far it got; its id is the request id.",
    "properties": {
        "job_id": {"type": "string"}, "request_id": {"type": "string"},
        "status": {"type": "string", "enum": ["running", "completed", "completed_with_failures"]},
        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "listed": {"type": "integer"}, "to_assign": {"type": "integer"}, "already_assigned": {"type": "integer"},
        "duplicates": {"type": "integer"}, "assigned": {"type": "integer"}, "mails_queued": {"type": "integer"},
        "failed": {"type": "integer", "description": "addresses not completed after 5 attempts"},
        "failed_addresses": {"type": "array", "items": {"type": "string"}, "description": "at most 1,000"},
        "created_at": {"type": "string", "format": "date-time"},
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        "url": {"type": "string"}, "page_url": {"type": "string"},
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses", "get", {
    "summary": "List licenses (seats), filtered and paginated",
    "security": _SECURITY,
    "parameters": [
        _SUB_PARAM,
        {"name": "status", "in": "query", "schema": STATUS_SCHEMA},
        {"name": "q", "in": "query", "description": "any part of the e-mail address", "schema": SEARCH_SCHEMA},
        {"name": "continuation", "in": "query", "schema": CONTINUATION_SCHEMA},
        {"name": "limit", "in": "query", "schema": LIMIT_SCHEMA},
    ],
    "responses": {
        "200": {"description": "one page of seats", "content": {"application/json": {"schema": {
            "type": "object", "properties": {
                "seats": {"type": "array", "items": {"$ref": "#/components/schemas/Seat"}},
                "continuation": {"type": ["string", "null"]},
                "assigned_count": {"type": "integer"}, "quantity": {"type": "integer"}}}}}},
        "400": invalid_input_response("status, q, limit or continuation"),
        **_COMMON,
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses", "post", {
    "summary": "Assign licenses to e-mail addresses (all or nothing)",
    "description": f"JSON `{{\"emails\": [...], \"request_id\": \"...\"}}` (a list, or one address; pasted "
    f"text with comma/semicolon/newline separated addresses works too) or a text/csv body (with or without header, "
    f"up to {MAX_ADDRESSES:,} rows; request id in the Idempotency-Key header). Retrying with the same request_id "
    f"never assigns or mails twice. Addresses of more than {DOMAINS_WITHOUT_CONFIRMATION} domains new to the "
    "subscription (other than the owner's) need `confirm_domains` (409 `confirm_domains` lists them).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM,
                   {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "pattern": _REQUEST_ID}},
                   {"name": "confirm_domains", "in": "query", "schema": {"type": "boolean"},
                    "description": "confirm the domains named by an earlier 409 `confirm_domains` (any body type)"}],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["emails"], "properties": {
            "emails": {"oneOf": [
                {"type": "array", "items": ADDRESS_SCHEMA, "minItems": 1, "maxItems": MAX_ADDRESSES},
                ADDRESS_SCHEMA]},
            "request_id": {"type": "string", "pattern": _REQUEST_ID},
            "confirm_domains": {"type": "boolean", "default": False}}}},
        "text/csv": {"schema": {"type": "string", "description": "a CSV file: a column of addresses, with or "
                                "without a header row (email, e-mail, mail, address, upn)"}}}},
    "responses": {
        "202": {"description": "more new addresses than BULK_ASSIGN_THRESHOLD: accepted as a job (reserved, "
                               "written in the background); follow it at Location",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AssignmentJob"}}}},
        "200": {"description": "what happened per address",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Assignment"}}}},
        "400": {"description": "invalid_addresses (`invalid`, `problems`: why each), empty, too_many_rows, not_csv, "
                               "invalid_json, invalid_body, invalid_request_id (`field` names it); nothing assigned",
                "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/InvalidAddresses"}, {"$ref": "#/components/schemas/Error"}]}}}},
        "409": api_spec.error_response(
            "no_seats_free: more new licenses than free seats (`needed`, `free`); confirm_domains: addresses of "
            "domains new to the subscription need confirmation (`domains`); request_id_reused: the request id "
            "was used for another list; nothing assigned"),
        "415": api_spec.error_response("unsupported_media_type: send application/json or text/csv"),
        **_COMMON,
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/jobs/{job_id}", "get", {
    "summary": "A bulk assignment job's progress (the Location of a 202)",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, {"name": "job_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": _REQUEST_ID},
                                "description": "the assign request's request_id / Idempotency-Key"}],
    "responses": {"200": {"description": "the job", "content": {"application/json": {"schema": {
                      "$ref": "#/components/schemas/AssignmentJob"}}}},
                  **_COMMON,
                  "400": invalid_input_response("job_id"),
                  "404": api_spec.error_response("unknown subscription, or no such job on it (job_not_found)")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses/{email}", "delete", {
    "summary": "Revoke a license; the user is unlicensed at once",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "responses": {"200": {"description": "revoked; POST .../restore undoes it until `undo_until`", "content": {
                      "application/json": {"schema": {"type": "object", "properties": {
                          "revoked": {"type": "string"}, **_COUNTS,
                          "undo_until": {"type": "string", "format": "date-time"}}}}}},
                  **_COMMON,
                  "400": invalid_input_response("email"),
                  "404": api_spec.error_response("unknown subscription, or the address holds no license")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses/{email}/restore", "post", {
    "summary": "Undo a revoke of the last 10 minutes: the same address gets a license again",
    "description": "An assignment of the revoked address through the usual rules (a free license, a subscription "
    "that has not ended), audited as `license.restored`; no second welcome e-mail. The seat is new: `pending` "
    "until the user's next license check binds it. Retrying with the same request_id answers as the first call.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM,
                   {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "pattern": _REQUEST_ID}}],
    "requestBody": {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"request_id": {"type": "string", "pattern": _REQUEST_ID}}}}}},
    "responses": {"200": {"description": "the license is assigned again", "content": {"application/json": {
                      "schema": {"type": "object", "properties": {
                          "restored": {"type": "string"}, "status": {"type": "string", "enum": list(STATUSES)},
                          **_COUNTS}}}}},
                  **_COMMON,
                  "400": invalid_input_response("email or request_id"),
                  "409": api_spec.error_response(
                      "undo_expired: no revoke of the address in the last 10 minutes (assign it instead); "
                      "seat_taken: no license is free any more; already_assigned: the address holds a license "
                      "again; subscription_ended; nothing changed")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses/{email}/reassign", "post", {
    "summary": "Move a license to another address in one step",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["to"], "properties": {
            "to": ADDRESS_SCHEMA, "request_id": {"type": "string", "pattern": _REQUEST_ID}}}}}},
    "responses": {"200": {"description": "reassigned", "content": {"application/json": {"schema": {
                      "type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                                                       "assigned_count": {"type": "integer"}}}}}},
                  **_COMMON,
                  "400": {"description": "invalid_addresses (the new address, with `problems`), invalid_email (the "
                                         "path's), invalid_json, invalid_body, invalid_request_id; nothing changed",
                          "content": {"application/json": {"schema": {"oneOf": [
                              {"$ref": "#/components/schemas/InvalidAddresses"},
                              {"$ref": "#/components/schemas/Error"}]}}}},
                  "404": api_spec.error_response("unknown subscription, or the address holds no license"),
                  "409": api_spec.error_response("the new address already holds a license")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/licenses.csv", "get", {
    "summary": "Export all licenses as CSV",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, {"name": "status", "in": "query", "schema": STATUS_SCHEMA}],
    "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **_COMMON,
                  "400": invalid_input_response("status")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/audit", "get", {
    "summary": "The audit log, newest first, paginated",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM,
                   {"name": "continuation", "in": "query", "schema": CONTINUATION_SCHEMA},
                   {"name": "limit", "in": "query", "schema": LIMIT_SCHEMA}],
    "responses": {"200": {"description": "entries: at, actor_*, action, target, before, after", "content": {
                      "application/json": {"schema": {"type": "object", "properties": {
                          "entries": {"type": "array", "items": {"type": "object"}},
                          "continuation": {"type": ["string", "null"]}}}}}},
                  **_COMMON, "400": invalid_input_response("limit or continuation")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/audit.csv", "get", {
    "summary": "Export the audit log as CSV",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **_COMMON},
})
