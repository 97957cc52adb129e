"""The OpenAPI description of the delegated-administration JSON routes (handlers/delegates_api.py),
kept apart from the handlers so they stay short. Imported by that module: the description exists
whenever the routes do.
"""

from __future__ import annotations

from typing import Any

from handlers.inputs import ADDRESS_SCHEMA, NAMED_ADDRESS_SCHEMA, invalid_input_response
from services import api_spec
from services.delegate import DELEGABLE, PERMISSIONS

_SUB_PARAM = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL_PARAM = {"name": "email", "in": "path", "required": True, "description": "the delegate's or invited address "
                "(percent-encoded; an encoded slash %2F is read as /)", "schema": NAMED_ADDRESS_SCHEMA}
_SECURITY: list[dict[str, list[str]]] = [{"entraBearer": []}]
_OWNER_ONLY = "Only the subscription's owner (permission `owner`)."
_COMMON = {
    "401": api_spec.error_response("missing or invalid bearer token"),
    "403": api_spec.error_response("the caller may see the subscription but is not its owner (`forbidden`)"),
    "404": api_spec.error_response("unknown subscription, or not one the caller may see"),
    "503": api_spec.unavailable_response(),
}
_BAD_BODY = api_spec.error_response(
    "invalid_json, invalid_body, invalid_email (the body's or the path's) or invalid_permissions (with `unknown`); "
    "`field` names the member at fault; nothing was written")

_PERMISSION_LIST = {"type": "array", "items": {"type": "string", "enum": list(PERMISSIONS)}}
_SUB_EXAMPLE: dict[str, Any] = {
    "id": "sub_1Q2w3E4r5T6y", "kind": "organisation", "status": "active", "state": "ACTIVE", "quantity": 25,
    "assigned": 18, "role": "delegate", "permissions": ["licenses.assign", "subscription.view"],
}
_INVITATION_EXAMPLE: dict[str, Any] = {
    "email": "it.admin@contoso.example", "kind": "delegate", "state": "pending",
    "permissions": ["licenses.assign", "subscription.view"], "invited_at": "2025-05-02T09:14:03+00:00",
    "expires_at": "2025-05-09T09:14:03+00:00", "invited_by": "finance@contoso.example",
    "link": "https://licensing.example.com/api/invitations/3q2-7wEXAMPLEc8Yb0Jx9rT1uVw4mZk6pLh5sDf2gHa",
}

api_spec.schema("SubscriptionSummary", {
    "type": "object",
    "description": "A subscription as the caller may see it, with what they hold on it.",
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": ["organisation", "individual"]},
        "status": {"type": "string", "description": "Stripe's subscription status"},
        "state": {"type": "string", "description": "what the status means for licenses (ACTIVE, PAST_DUE_GRACE, "
                  "PENDING_PAYMENT, SUSPENDED, EXPIRED)"},
        "quantity": {"type": "integer"},
        "assigned": {"type": "integer"},
        "role": {"type": "string", "enum": ["owner", "delegate"]},
        "permissions": {**_PERMISSION_LIST, "description": "the owner holds all, `owner` included"},
    },
    "example": _SUB_EXAMPLE,
})
api_spec.schema("SubscriptionDetail", {
    "allOf": [{"$ref": "#/components/schemas/SubscriptionSummary"}, {"type": "object", "properties": {
        "owner": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}},
        "current_period_end": {"type": ["string", "null"], "format": "date-time"},
        "cancel_at_period_end": {"type": "boolean"},
        "billing_interval": {"type": ["string", "null"], "enum": ["month", "year", None],
                             "description": "billed monthly or annually (null until Stripe's state was read)"},
        "scheduled_interval": {"type": ["object", "null"], "description": "a switch of the billing interval planned "
                               "for the next renewal (PUT/DELETE .../billing-interval)", "properties": {
                                   "interval": {"type": "string", "enum": ["month", "year"]},
                                   "at": {"type": ["string", "null"], "format": "date-time"}}},
        "grace_until": {"type": ["string", "null"], "format": "date-time"},
        "links": {"type": "object", "description": "the API routes the caller may use on it",
                  "additionalProperties": {"type": "string"}},
    }}],
})
api_spec.schema("DelegateEntry", {
    "type": "object",
    "description": "A delegated administrator (state `active`) or a pending invitation (`pending`, `expired`); "
                   "kind `owner` is a pending ownership offer.",
    "properties": {
        "email": {"type": "string"},
        "name": {"type": "string", "description": "active delegates: their name from Microsoft 365"},
        "kind": {"type": "string", "enum": ["delegate", "owner"]},
        "state": {"type": "string", "enum": ["active", "pending", "expired"]},
        "permissions": {"type": "array", "items": {"type": "string", "enum": list(DELEGABLE)}},
        "added_at": {"type": "string", "format": "date-time"},
        "added_by": {"type": "string"},
        "invited_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "invited_by": {"type": "string"},
        "former_owner": {"type": "string", "enum": ["delegate", "leave"]},
        "billing_email_follows": {"type": "boolean"},
    },
})
api_spec.schema("Invitation", {
    "allOf": [{"$ref": "#/components/schemas/DelegateEntry"}, {"type": "object", "properties": {
        "link": {"type": "string", "format": "uri", "description": "the one-time link, also e-mailed; shown only in "
                 "this answer: hand it over yourself when the mail lands in a junk folder"}}}],
    "example": _INVITATION_EXAMPLE,
})


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


api_spec.describe("/v1/subscriptions", "get", {
    "summary": "The caller's subscriptions (owned or administered) and own licenses",
    "security": _SECURITY,
    "responses": {
        "200": {"description": "subscriptions with the caller's role and permissions; licenses held", "content": _json(
            {"type": "object", "properties": {
                "subscriptions": {"type": "array", "items": {"$ref": "#/components/schemas/SubscriptionSummary"}},
                "licenses": {"type": "array", "items": {"type": "object", "properties": {
                    "subscription_id": {"type": "string"}, "kind": {"type": "string"}, "state": {"type": "string"},
                    "valid": {"type": "boolean"},
                    "expires_at": {"type": ["string", "null"], "format": "date-time"}}}}}},
            {"subscriptions": [_SUB_EXAMPLE],
             "licenses": [{"subscription_id": "sub_1Q2w3E4r5T6y", "kind": "organisation", "state": "ACTIVE",
                           "valid": True, "expires_at": "2025-06-01T00:00:00+00:00"}]})},
        "401": _COMMON["401"],
        "503": _COMMON["503"],
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}", "get", {
    "summary": "One subscription as the caller may see it",
    "description": "For the owner and every delegate (any permission).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {"200": {"description": "the subscription", "content": _json(
        {"$ref": "#/components/schemas/SubscriptionDetail"},
        {**_SUB_EXAMPLE, "owner": {"name": "Finance Contoso", "email": "finance@contoso.example"},
         "current_period_end": "2025-06-01T00:00:00+00:00", "cancel_at_period_end": False, "grace_until": None,
         "links": {"licenses": "/api/v1/subscriptions/sub_1Q2w3E4r5T6y/licenses",
                   "audit": "/api/v1/subscriptions/sub_1Q2w3E4r5T6y/audit"}})},
                  "401": _COMMON["401"], "404": _COMMON["404"], "503": _COMMON["503"]},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/delegates", "get", {
    "summary": "Delegated administrators and pending invitations",
    "description": _OWNER_ONLY,
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {"200": {"description": "active delegates first, then invitations", "content": _json(
        {"type": "object", "properties": {"delegates": {"type": "array",
                                                         "items": {"$ref": "#/components/schemas/DelegateEntry"}}}},
        {"delegates": [{"email": "bob@contoso.example", "name": "Bob Berg", "kind": "delegate", "state": "active",
                        "permissions": ["licenses.assign"], "added_at": "2025-05-02T10:01:44+00:00",
                        "added_by": "finance@contoso.example"},
                       {k: v for k, v in _INVITATION_EXAMPLE.items() if k != "link"}]})},
                  **_COMMON},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/delegates", "post", {
    "summary": "Invite a delegated administrator",
    "description": f"{_OWNER_ONLY} Mails a one-time link (valid INVITATION_DAYS days) and returns it once, for when "
                   "the mail lands in a junk folder. Inviting a pending address again replaces its invitation (the "
                   "old link stops working). `billing.manage` is usually not needed for IT staff.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "required": ["email", "permissions"], "properties": {
            "email": ADDRESS_SCHEMA,
            "permissions": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(DELEGABLE)}}}},
        {"email": "it.admin@contoso.example", "permissions": ["licenses.assign", "subscription.view"]})},
    "responses": {
        "201": {"description": "invited; `link` is shown only here",
                "content": _json({"$ref": "#/components/schemas/Invitation"}, _INVITATION_EXAMPLE)},
        "400": _BAD_BODY,
        "409": api_spec.error_response("already_delegate (change their permissions instead) or is_owner"),
        **_COMMON,
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/delegates/{email}", "patch", {
    "summary": "Change a delegate's (or a pending invitation's) permissions",
    "description": f"{_OWNER_ONLY} Takes effect on the delegate's next request.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "required": ["permissions"], "properties": {
            "permissions": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(DELEGABLE)}}}},
        {"permissions": ["subscription.view"]})},
    "responses": {"200": {"description": "the changed entry",
                          "content": _json({"$ref": "#/components/schemas/DelegateEntry"})},
                  "400": _BAD_BODY, **_COMMON,
                  "404": api_spec.error_response("unknown subscription, or not_a_delegate")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/delegates/{email}", "delete", {
    "summary": "Remove a delegate, or revoke a pending invitation",
    "description": f"{_OWNER_ONLY} A removed delegate is refused from their next request on (404).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "responses": {"200": {"description": "removed", "content": _json(
        {"type": "object", "properties": {"removed": {"type": "string"}}}, {"removed": "bob@contoso.example"})},
                  **_COMMON, "400": invalid_input_response("email"),
                  "404": api_spec.error_response("unknown subscription, or not_a_delegate")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/delegates/{email}/resend", "post", {
    "summary": "Send a pending invitation again, with a new link",
    "description": f"{_OWNER_ONLY} The old link stops working at once; the new one is mailed and returned once.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, _EMAIL_PARAM],
    "responses": {"200": {"description": "the renewed invitation with its new `link`",
                          "content": _json({"$ref": "#/components/schemas/Invitation"}, _INVITATION_EXAMPLE)},
                  **_COMMON, "400": invalid_input_response("email"),
                  "404": api_spec.error_response("unknown subscription, or no pending invitation (not_a_delegate)")},
})
api_spec.describe("/v1/subscriptions/{subscription_id}/owner-transfer", "post", {
    "summary": "Offer ownership of the subscription to another person",
    "description": f"{_OWNER_ONLY} The person (a delegate or anyone in the subscription's Microsoft 365 tenant) "
                   "accepts like an invitation; only then does ownership change. `former_owner`: `delegate` (you stay "
                   "with every delegable permission) or `leave`. `billing_email_follows`: Stripe's customer e-mail "
                   "(where invoices go) becomes the new owner's (default false: finance keeps the billing address). "
                   "A newer offer replaces an older one.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "required": ["email", "former_owner"], "properties": {
            "email": ADDRESS_SCHEMA,
            "former_owner": {"type": "string", "enum": ["delegate", "leave"]},
            "billing_email_follows": {"type": "boolean", "default": False}}},
        {"email": "new.owner@contoso.example", "former_owner": "delegate", "billing_email_follows": False})},
    "responses": {
        "201": {"description": "offered; `link` is shown only here", "content": _json(
            {"$ref": "#/components/schemas/Invitation"},
            {**_INVITATION_EXAMPLE, "email": "new.owner@contoso.example", "kind": "owner", "permissions": [],
             "former_owner": "delegate", "billing_email_follows": False})},
        "400": api_spec.error_response("invalid_email, invalid_former_owner or invalid_billing_email_follows "
                                       "(`field` names it)"),
        "409": api_spec.error_response("is_owner: that address is already the owner's"),
        **_COMMON,
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/owner-transfer", "delete", {
    "summary": "Withdraw the pending ownership offer",
    "description": f"{_OWNER_ONLY} Its link stops working at once.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {"200": {"description": "withdrawn", "content": _json(
        {"type": "object", "properties": {"withdrawn": {"type": "string"}}},
        {"withdrawn": "new.owner@contoso.example"})},
                  **_COMMON, "404": api_spec.error_response("unknown subscription, or no_ownership_offer")},
})
api_spec.describe("/v1/invitations/accept", "post", {
    "summary": "Accept an invitation or an ownership offer as the signed-in caller",
    "description": "The token is the last part of the invitation link. The caller's account must be the invited "
                   "address (preferred_username, upn, email or unique_name, case-insensitive) in the subscription's "
                   "Microsoft 365 tenant; each link works once.",
    "security": _SECURITY,
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
        {"token": "3q2-7wEXAMPLEc8Yb0Jx9rT1uVw4mZk6pLh5sDf2gHa"})},
    "responses": {
        "200": {"description": "accepted: the subscription as the caller now sees it", "content": _json(
            {"type": "object", "properties": {"accepted": {"type": "string", "enum": ["delegate", "owner"]},
                                              "subscription": {"$ref": "#/components/schemas/SubscriptionDetail"}}},
            {"accepted": "delegate", "subscription": {**_SUB_EXAMPLE, "links": {
                "licenses": "/api/v1/subscriptions/sub_1Q2w3E4r5T6y/licenses"}}})},
        "400": api_spec.error_response("invalid_json or invalid_body (`field`: token)"),
        "401": _COMMON["401"],
        "403": api_spec.error_response("wrong_account (signed in with another account than the invited one) or "
                                       "wrong_tenant (an account of another organisation)"),
        "409": api_spec.error_response("is_owner: the caller already owns the subscription"),
        "410": api_spec.error_response("invitation_invalid (used, replaced by a resend, revoked or malformed) or "
                                       "invitation_expired: ask the owner to send it again"),
        "503": api_spec.unavailable_response(),
    },
})
