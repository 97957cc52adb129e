"""The OpenAPI description of the merge routes (handlers/merges_api.py); imported by that module."""

from __future__ import annotations

from typing import Any

from services import api_spec

_SUB_PARAM = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"},
              "description": "the organisation subscription"}
_MERGE_PARAM = {"name": "merge_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
                "description": "the Idempotency-Key the merge was started with"}
_KEY_PARAM = {"name": "Idempotency-Key", "in": "header", "required": True,
              "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
              "description": "names the merge: a new one per merge, the same one to retry or resume it"}
_SECURITY: list[dict[str, list[str]]] = [{"entraBearer": []}]
_OWNER_ONLY = "Only the subscription's owner (permission `owner`); a delegated administrator gets 403."
_COMMON = {
    "401": api_spec.error_response("missing or invalid bearer token"),
    "403": api_spec.error_response("the caller may see the subscription but is not its owner (`forbidden`)"),
    "404": api_spec.error_response("unknown subscription, or not one the caller may see"),
}

_CANDIDATE_EXAMPLE: dict[str, Any] = {
    "subscription_id": "sub_1Q9zYxWvUtSr", "email": "alice@contoso.example", "name": "Alice Adams",
    "status": "active", "paid_until": "2026-01-14T09:30:00+00:00", "cancel_at_period_end": False, "bound": True,
    "already_licensed_here": False,
}
_MERGE_EXAMPLE: dict[str, Any] = {
    "id": "merge-2025-12-01", "subscription_id": "sub_1Q2w3E4r5T6y", "status": "completed", "quantity": 27,
    "created_at": "2025-12-01T10:00:00+00:00", "updated_at": "2025-12-01T10:00:04+00:00",
    "started_by": "finance@contoso.example", "error": None,
    "people": [{"subscription_id": "sub_1Q9zYxWvUtSr", "email": "alice@contoso.example", "name": "Alice Adams",
                "seat": True, "cancelled": True, "mailed": True, "done": True,
                "ends_at": "2026-01-14T09:30:00+00:00"}],
    "link": "/api/v1/subscriptions/sub_1Q2w3E4r5T6y/merges/merge-2025-12-01",
}

api_spec.schema("MergeCandidate", {
    "type": "object",
    "description": "An individual subscription (one license a person bought for themselves) of a person in the "
                   "organisation's Microsoft 365 tenant.",
    "properties": {
        "subscription_id": {"type": "string"},
        "email": {"type": "string", "description": "the person's license address"},
        "name": {"type": "string"},
        "status": {"type": "string", "description": "Stripe's status of the individual subscription"},
        "paid_until": {"type": ["string", "null"], "format": "date-time", "description": "end of its paid period"},
        "cancel_at_period_end": {"type": "boolean"},
        "bound": {"type": "boolean", "description": "the license was used (bound to the person's account)"},
        "already_licensed_here": {"type": "boolean",
                                  "description": "the person holds a license in the organisation subscription already"},
    },
    "example": _CANDIDATE_EXAMPLE,
})
api_spec.schema("Merge", {
    "type": "object",
    "description": "A merge and how far it got per person: `seat` (licensed by the organisation subscription, bound "
                   "like the old license), `cancelled` (the individual subscription ends at `ends_at`), `mailed`.",
    "properties": {
        "id": {"type": "string"}, "subscription_id": {"type": "string"},
        "status": {"type": "string", "enum": ["running", "completed"]},
        "quantity": {"type": "integer", "description": "the organisation's number of licenses when it started"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "started_by": {"type": "string"},
        "error": {"type": ["string", "null"], "description": "why it stopped, while it is running"},
        "people": {"type": "array", "items": {"type": "object"}},
        "link": {"type": "string"},
    },
    "example": _MERGE_EXAMPLE,
})

api_spec.describe("/v1/subscriptions/{subscription_id}/merge-candidates", "get", {
    "summary": "Individual subscriptions that can be merged into this organisation subscription",
    "description": "Individual subscriptions whose person is in this subscription's tenant (by the account their "
                   "license is bound to, else the tenant they bought it in), still running and not merged. Never "
                   "another tenant's. " + _OWNER_ONLY,
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {
        "200": {"description": "the candidates and the free licenses", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "candidates": {"type": "array", "items": {"$ref": "#/components/schemas/MergeCandidate"}},
                "quantity": {"type": "integer"}, "assigned": {"type": "integer"}, "free": {"type": "integer"}}},
            "example": {"subscription_id": "sub_1Q2w3E4r5T6y", "quantity": 25, "assigned": 24, "free": 1,
                        "candidates": [_CANDIDATE_EXAMPLE]}}}},
        **_COMMON,
    },
})

api_spec.describe("/v1/subscriptions/{subscription_id}/merges", "post", {
    "summary": "Merge individual subscriptions into this organisation subscription",
    "description": "Each selected person gets a license in this subscription (bound to the same account, so the "
                   "add-in sees no gap), then their individual subscription is set to cancel at the end of its paid "
                   "period at Stripe (it keeps working until then) and they are mailed. When the free licenses do not "
                   "suffice the answer is 409 `quantity_confirmation_required` with the `preview` of the price; send "
                   "the request again with its `quantity` and `proration_date` to raise the number first. A merge that "
                   "stops half-way (Stripe or storage unreachable) answers 503 `merge_incomplete` with its progress; "
                   "the same request with the same Idempotency-Key completes it (a timer also does). " + _OWNER_ONLY,
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _KEY_PARAM],
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": ["subscriptions"], "properties": {
            "subscriptions": {"type": "array", "minItems": 1, "maxItems": 50,
                              "items": {"type": "string", "minLength": 1, "maxLength": 100},
                              "description": "ids from merge-candidates"},
            "quantity": {"type": "integer", "minimum": 1,
                         "description": "the confirmed new number of licenses (from the preview)"},
            "proration_date": {"type": "integer", "minimum": 1,
                               "description": "the preview's proration_date (Unix seconds)"}}},
        "examples": {
            "merge": {"value": {"subscriptions": ["sub_1Q9zYxWvUtSr", "sub_1QAbCdEfGhIj"]}},
            "confirmed": {"summary": "with the confirmed quantity", "value": {
                "subscriptions": ["sub_1Q9zYxWvUtSr", "sub_1QAbCdEfGhIj"], "quantity": 27,
                "proration_date": 1764583200}}}}}},
    "responses": {
        "201": {"description": "merged", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Merge"}, "example": _MERGE_EXAMPLE}}},
        "200": {"description": "the merge with this Idempotency-Key (resumed if it was half-done; nothing changes once "
                               "it is complete)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Merge"}}}},
        "400": api_spec.error_response("idempotency_key_required, invalid_request_id, invalid_subscriptions, "
                                       "invalid_request; nothing was written"),
        "402": api_spec.error_response("card_declined while raising the number of licenses; nothing changed"),
        "409": api_spec.error_response(
            "quantity_confirmation_required (with `quantity`, `needed`, `free` and the `preview`), not_a_candidate "
            "(with `subscriptions`), idempotency_conflict (the key was used for other subscriptions), preview_expired, "
            "subscription_not_active, not_organisation; nothing was written"),
        "503": api_spec.error_response("stripe_unavailable (nothing was written), or merge_incomplete with `merge` "
                                       "(its progress): retry with the same Idempotency-Key"),
        **_COMMON,
    },
})

api_spec.describe("/v1/subscriptions/{subscription_id}/merges/{merge_id}", "get", {
    "summary": "The progress of a merge",
    "description": "Person by person: licensed here, individual subscription cancelled at period end, mailed. "
                   + _OWNER_ONLY,
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _MERGE_PARAM],
    "responses": {
        "200": {"description": "the merge", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Merge"}, "example": _MERGE_EXAMPLE}}},
        "400": api_spec.error_response("invalid_request_id: merge_id is not an Idempotency-Key of this API"),
        **_COMMON,
        "404": api_spec.error_response("merge_not_found, or an unknown subscription"),
    },
})
