"""The OpenAPI description of the quantity, invoice, billing-portal and cancellation routes
(handlers/billing_api.py) and of the finance settings (handlers/billing_settings_api.py), kept apart
from the handlers so they stay short. Imported by those modules: the description exists whenever the
routes do.
"""

from __future__ import annotations

from typing import Any

from handlers.inputs import ADDRESS_SCHEMA
from handlers.seat_changes import REQUEST_ID_PATTERN
from services import api_spec
from services.billing_settings import MAX_TEXT, UNPRINTABLE

_SUB_PARAM = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SECURITY: list[dict[str, list[str]]] = [{"entraBearer": []}]
_MONEY = "Amounts are integers in the currency's smallest unit (cents), with `currency`."


def _common(permission: str) -> dict[str, Any]:
    return {
        "401": api_spec.error_response("missing or invalid bearer token"),
        "403": api_spec.error_response(f"the caller may see the subscription but lacks `{permission}` (`forbidden`)"),
        "404": api_spec.error_response("unknown subscription, or not one the caller may see"),
        "503": api_spec.error_response("`stripe_unavailable` (with Retry-After): the payment provider cannot be "
                                       "reached (network, rate limit); nothing was charged twice, retry"),
    }


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


_PREVIEW_EXAMPLE: dict[str, Any] = {
    "subscription_id": "sub_1Q2w3E4r5T6y", "currency": "eur", "interval": "month",
    "quantity": {"current": 8, "new": 12},
    "proration_date": 1767225600,
    "due_now": {"amount": 480, "total": 480, "credit": 0, "lines": [
        {"description": "Unused time on 8 × SecureMailMerge after 01 Jan 2026", "amount": -2400, "quantity": 8,
         "proration": True, "period": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-16T00:00:00+00:00"}},
        {"description": "Remaining time on 12 × SecureMailMerge after 01 Jan 2026", "amount": 2880, "quantity": 12,
         "proration": True, "period": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-16T00:00:00+00:00"}}]},
    "next_invoice": {"amount": 5760, "date": "2026-01-16T00:00:00+00:00", "quantity": 12, "unit_amount": 480,
                     "interval": "month"},
    "unit_amount": {"current": 600, "new": 480},
    "tier_changed": True,
}
_INVOICE_EXAMPLE: dict[str, Any] = {
    "id": "in_1Q2w3E4r5T6y", "number": "A1B2C3D4-0002", "currency": "eur", "total": 480, "amount_due": 480,
    "amount_paid": 480, "status": "paid", "hosted_invoice_url": "https://invoice.stripe.com/i/acct_123/test_YWNj",
    "invoice_pdf": "https://pay.stripe.com/invoice/acct_123/test_YWNj/pdf",
}
_SUBSCRIPTION_EXAMPLE: dict[str, Any] = {
    "id": "sub_1Q2w3E4r5T6y", "kind": "organisation", "status": "active", "state": "ACTIVE", "quantity": 12,
    "assigned": 8, "role": "delegate", "permissions": ["quantity.manage", "subscription.read"],
    "owner": {"name": "Finance Contoso", "email": "finance@contoso.example"},
    "current_period_end": "2026-01-16T00:00:00+00:00", "cancel_at_period_end": False, "grace_until": None,
    "links": {"quantity": "/api/v1/subscriptions/sub_1Q2w3E4r5T6y/quantity"},
}

api_spec.schema("QuantityPreview", {
    "type": "object",
    "description": f"What a new number of licenses costs. {_MONEY} `due_now` is charged at once when the change is "
                   "confirmed (prorated for the rest of the period: credit for the old number, charge for the new, "
                   "each at the volume tier its quantity falls in); a decrease leaves `credit` for the next "
                   "invoices. `next_invoice` is the next regular invoice at the new number. Confirm with the same "
                   "`proration_date`, so the charge is exactly this preview.",
    "properties": {
        "subscription_id": {"type": "string"},
        "currency": {"type": "string"},
        "interval": {"type": "string"},
        "quantity": {"type": "object", "properties": {"current": {"type": "integer"}, "new": {"type": "integer"}}},
        "proration_date": {"type": "integer", "description": "Unix seconds; valid for an hour"},
        "due_now": {"type": "object", "properties": {
            "amount": {"type": "integer", "description": "charged now, after any credit balance"},
            "total": {"type": "integer", "description": "sum of the proration lines (negative: a credit)"},
            "credit": {"type": "integer"},
            "lines": {"type": "array", "items": {"type": "object", "properties": {
                "description": {"type": "string"}, "amount": {"type": "integer"},
                "quantity": {"type": ["integer", "null"]}, "proration": {"type": "boolean"},
                "period": {"type": "object", "properties": {
                    "start": {"type": ["string", "null"], "format": "date-time"},
                    "end": {"type": ["string", "null"], "format": "date-time"}}}}}}}},
        "next_invoice": {"type": "object", "properties": {
            "amount": {"type": "integer"}, "date": {"type": "string", "format": "date-time"},
            "quantity": {"type": "integer"}, "unit_amount": {"type": "integer"},
            "interval": {"type": "string", "description": "the interval it bills: another one than `interval` when "
                                                           "a switch is planned for the renewal"}}},
        "unit_amount": {"type": "object", "description": "per license and interval, by volume tier",
                        "properties": {"current": {"type": "integer"}, "new": {"type": "integer"}}},
        "tier_changed": {"type": "boolean", "description": "the new number falls in another volume tier"},
    },
    "example": _PREVIEW_EXAMPLE,
})
api_spec.schema("Invoice", {
    "type": "object",
    "description": f"A Stripe invoice of the subscription. {_MONEY}",
    "properties": {
        "id": {"type": "string"}, "number": {"type": ["string", "null"]},
        "created": {"type": "string", "format": "date-time"}, "currency": {"type": "string"},
        "total": {"type": "integer"}, "amount_due": {"type": "integer"}, "amount_paid": {"type": "integer"},
        "amount_remaining": {"type": "integer"},
        "status": {"type": "string", "description": "draft, open, paid, uncollectible or void"},
        "hosted_invoice_url": {"type": ["string", "null"], "format": "uri", "description": "Stripe's invoice page"},
        "invoice_pdf": {"type": ["string", "null"], "format": "uri"},
        "period": {"type": "object", "properties": {"start": {"type": ["string", "null"], "format": "date-time"},
                                                    "end": {"type": ["string", "null"], "format": "date-time"}}},
    },
    "example": {**_INVOICE_EXAMPLE, "created": "2026-01-01T00:00:12+00:00", "amount_remaining": 0,
                "period": {"start": "2025-12-16T00:00:00+00:00", "end": "2026-01-16T00:00:00+00:00"}},
})

_QUANTITY = "Owner or `quantity.manage`."
api_spec.describe("/v1/subscriptions/{subscription_id}/quantity/preview", "post", {
    "summary": "Preview a new number of licenses: amount due now and the next invoice",
    "description": f"{_QUANTITY} Asks Stripe (`Invoice.create_preview`); nothing changes and nothing is audited.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "required": ["quantity"], "properties": {
            "quantity": {"type": "integer", "minimum": 1, "maximum": 10_000}}},
        {"quantity": 12})},
    "responses": {
        "200": {"description": "the preview", "content": _json({"$ref": "#/components/schemas/QuantityPreview"},
                                                               _PREVIEW_EXAMPLE)},
        "400": api_spec.error_response("invalid_json / invalid_body; invalid_quantity (with `maximum`: 1 to "
                                       "MAX_QUANTITY)"),
        "409": api_spec.error_response("below_assigned (with `assigned` and `revoke`: the number of licenses to "
                                       "revoke first), quantity_unchanged, individual_subscription, "
                                       "subscription_not_active, stripe_refused"),
        **_common("quantity.manage"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/quantity", "put", {
    "summary": "Change the number of licenses",
    "description": f"{_QUANTITY} Send `proration_date` from the preview so the charge is what it showed (it must be "
                   "at most an hour old). The prorated amount is invoiced and charged at once; if the card declines, "
                   "nothing changes (402). The `Idempotency-Key` header is required: retrying with the same key (a "
                   "timeout, a double click) changes Stripe once; use a new key for a new change. Setting the number "
                   "the subscription already has answers `changed: false`.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, {"name": "Idempotency-Key", "in": "header", "required": True,
                                "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
                                "example": "raise-to-12-2026-01-01"}],
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "required": ["quantity"], "properties": {
            "quantity": {"type": "integer", "minimum": 1, "maximum": 10_000},
            "proration_date": {"type": "integer", "description": "from the preview (Unix seconds)"}}},
        {"quantity": 12, "proration_date": 1767225600})},
    "responses": {
        "200": {"description": "changed (or already so); the subscription as stored now", "content": _json(
            {"type": "object", "properties": {
                "changed": {"type": "boolean"},
                "quantity": {"type": "object", "properties": {"before": {"type": "integer"},
                                                              "after": {"type": "integer"}}},
                "invoice": {"oneOf": [{"$ref": "#/components/schemas/Invoice"}, {"type": "null"}],
                            "description": "the invoice the change billed at once"},
                "subscription": {"$ref": "#/components/schemas/SubscriptionDetail"}}},
            {"changed": True, "quantity": {"before": 8, "after": 12}, "invoice": _INVOICE_EXAMPLE,
             "subscription": _SUBSCRIPTION_EXAMPLE})},
        "400": api_spec.error_response("idempotency_key_required, invalid_request_id (`field`: Idempotency-Key), "
                                       "invalid_quantity, invalid_proration_date, invalid_json / invalid_body"),
        "402": api_spec.error_response("card_declined (with `decline_code`): nothing changed or charged; update the "
                                       "payment method, then send the change with a new Idempotency-Key"),
        "409": api_spec.error_response("below_assigned (with `assigned`, `revoke`), preview_expired (preview again), "
                                       "idempotency_conflict (the key was used for another change), "
                                       "individual_subscription, subscription_not_active, stripe_refused"),
        **_common("quantity.manage"),
    },
})

_BILLING = "Owner or `billing.manage`."
api_spec.describe("/v1/subscriptions/{subscription_id}/invoices", "get", {
    "summary": "The subscription's invoices, newest first",
    "description": f"{_BILLING} With links to Stripe's hosted invoice page and PDF. Page on with `starting_after` = "
                   "`next_starting_after` of the previous page.",
    "security": _SECURITY,
    "parameters": [
        _SUB_PARAM,
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}},
        {"name": "starting_after", "in": "query", "schema": {"type": "string", "pattern": "^in_[A-Za-z0-9_]{1,100}$"},
         "example": "in_1Q2w3E4r5T6y"},
    ],
    "responses": {
        "200": {"description": "one page", "content": _json(
            {"type": "object", "properties": {
                "invoices": {"type": "array", "items": {"$ref": "#/components/schemas/Invoice"}},
                "has_more": {"type": "boolean"}, "next_starting_after": {"type": ["string", "null"]}}},
            {"invoices": [{**_INVOICE_EXAMPLE, "created": "2026-01-01T00:00:12+00:00", "amount_remaining": 0,
                           "period": {"start": "2025-12-16T00:00:00+00:00", "end": "2026-01-16T00:00:00+00:00"}}],
             "has_more": False, "next_starting_after": None})},
        "400": api_spec.error_response("invalid_limit, invalid_cursor"),
        "409": api_spec.error_response("stripe_refused: Stripe does not know `starting_after` (not an invoice of "
                                       "this subscription's previous page)"),
        **_common("billing.manage"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/invoices/{invoice_id}/e-invoice", "get", {
    "summary": "An invoice as German e-invoice: XRechnung (XML) or ZUGFeRD (PDF)",
    "description": f"{_BILLING} EN 16931 in the CII syntax, made from the Stripe invoice: `xrechnung` is the XML "
                   "(XRechnung 3.0), `zugferd` Stripe's invoice PDF with the same XML embedded as `factur-x.xml` "
                   "(Factur-X/ZUGFeRD profile EN 16931). A download (Content-Disposition: attachment, never cached). "
                   "The buyer reference (BT-10) is the invoice's purchase-order number, else the Stripe customer id.",
    "security": _SECURITY,
    "parameters": [
        _SUB_PARAM,
        {"name": "invoice_id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^in_[A-Za-z0-9_]{1,100}$"}, "example": "in_1Q2w3E4r5T6y"},
        {"name": "format", "in": "query", "required": True,
         "schema": {"type": "string", "enum": ["xrechnung", "zugferd"]}, "example": "xrechnung"},
    ],
    "responses": {
        **_common("billing.manage"),
        "200": {"description": "the document: `<number>-xrechnung.xml` or `<number>-zugferd.pdf`", "content": {
            "application/xml": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
        "400": {"description": "invalid_format (`field`: format), invalid_invoice_id (`field`: invoice_id)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FieldError"}}}},
        "404": api_spec.error_response("unknown subscription (`subscription_not_found`), or no such invoice of its "
                                       "customer (`invoice_not_found`)"),
        "409": api_spec.error_response("e_invoice_not_configured (with `missing`: the SELLER_* settings the operator "
                                       "must set), e_invoice_unavailable (with `reason`: draft, void, buyer_address, "
                                       "vat_id, tax, totals...: the invoice cannot be an EN 16931 invoice)"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/billing-portal", "post", {
    "summary": "Open Stripe's billing portal: payment method, billing address, tax ids, invoices",
    "description": f"{_BILLING} Returns the URL of a short-lived portal session for the subscription's customer; "
                   "it returns to the subscription page. The portal cannot change the number of licenses or cancel. "
                   "Audited (`billing_portal.opened`).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {
        "200": {"description": "the session's URL", "content": _json(
            {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}}},
            {"url": "https://billing.stripe.com/p/session/test_YWNjdF8xUTJ3"})},
        "409": api_spec.error_response("no_billing_account, stripe_refused"),
        **_common("billing.manage"),
    },
})
_CANCELLATION_ANSWER = {"type": "object", "properties": {
    "cancel_at_period_end": {"type": "boolean"},
    "ends_at": {"type": ["string", "null"], "format": "date-time", "description": "when licenses stop"},
    "changed": {"type": "boolean", "description": "false: it was so already"},
    "subscription": {"$ref": "#/components/schemas/SubscriptionDetail"}}}
_OWNER_SUBSCRIPTION = {**_SUBSCRIPTION_EXAMPLE, "role": "owner", "permissions": [
    "licenses.assign", "subscription.view", "quantity.manage", "billing.manage", "owner", "licenses.read",
    "subscription.read"], "links": {}}
api_spec.describe("/v1/subscriptions/{subscription_id}/cancellation", "post", {
    "summary": "Cancel at the end of the paid period",
    "description": "Only the owner. Licenses keep working until `ends_at`, then stop; the owner is mailed the date. "
                   "Undo with DELETE before then. Audited (`cancellation.scheduled`).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {
        "200": {"description": "cancelled at period end", "content": _json(_CANCELLATION_ANSWER, {
            "cancel_at_period_end": True, "ends_at": "2026-01-16T00:00:00+00:00", "changed": True,
            "subscription": {**_OWNER_SUBSCRIPTION, "cancel_at_period_end": True}})},
        "409": api_spec.error_response("subscription_not_active (it ended already), stripe_refused"),
        **_common("owner"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/cancellation", "delete", {
    "summary": "Undo the cancellation (before the period ends)",
    "description": "Only the owner. The subscription renews as before; the owner is mailed. Audited "
                   "(`cancellation.undone`).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {
        "200": {"description": "continues", "content": _json(_CANCELLATION_ANSWER, {
            "cancel_at_period_end": False, "ends_at": None, "changed": True, "subscription": _OWNER_SUBSCRIPTION})},
        "409": api_spec.error_response("not_scheduled (nothing to undo), subscription_not_active (it ended)"),
        **_common("owner"),
    },
})


# --- finance settings and billing details (handlers/billing_settings_api.py) ---------------------------------

_INVOICE_TEXT = {"type": "string", "maxLength": MAX_TEXT, "pattern": f"^[^{UNPRINTABLE}]*$",
                 "description": f"at most {MAX_TEXT} characters (Stripe's limit), no control, zero-width or "
                                "private-use characters; surrounding spaces are dropped and inner runs of spaces "
                                "made one; \"\" clears it"}
_SETTINGS_PROPERTIES: dict[str, Any] = {
    "po_number": {**_INVOICE_TEXT, "example": "4500012345"},
    "cost_centre": {**_INVOICE_TEXT, "example": "KST 4711"},
    "accounting_email": {"anyOf": [{"type": "string", "maxLength": 0}, ADDRESS_SCHEMA],
                         "description": "receives every invoice; stored lower-cased; \"\" clears it"},
}
_SETTINGS_EXAMPLE: dict[str, Any] = {
    "po_number": "4500012345", "cost_centre": "KST 4711", "accounting_email": "invoices@contoso.example",
    "invoice_custom_fields": [{"name": "PO number", "value": "4500012345"},
                              {"name": "Cost centre", "value": "KST 4711"}],
}
_CUSTOM_FIELDS = {"type": "array", "description": "what Stripe prints on every invoice, named in the subscription's "
                  "language (PO number / Cost centre, Bestellnummer / Kostenstelle); empty values left out",
                  "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}}
api_spec.schema("BillingSettings", {
    "type": "object",
    "description": "The finance settings: the purchase-order number and cost centre printed on every future "
                   "invoice, and the accounting address that receives every invoice (\"\" when not set).",
    "properties": {"po_number": {"type": "string"}, "cost_centre": {"type": "string"},
                   "accounting_email": {"type": "string"}, "invoice_custom_fields": _CUSTOM_FIELDS},
    "example": _SETTINGS_EXAMPLE,
})
_DETAILS_EXAMPLE: dict[str, Any] = {
    "name": "Contoso GmbH", "email": "finance@contoso.example",
    "address": {"line1": "Hauptstraße 1", "line2": "", "postal_code": "10115", "city": "Berlin", "state": "",
                "country": "DE"},
    "tax_ids": [{"type": "eu_vat", "value": "DE136695976", "country": "DE", "verification": "verified"}],
}
api_spec.describe("/v1/subscriptions/{subscription_id}/billing-settings", "get", {
    "summary": "The finance settings and the billing details (company, address, VAT IDs)",
    "description": f"{_BILLING} `billing_details` is the Stripe customer as invoices show it (null while the "
                   "subscription has none); it is changed in Stripe's billing portal (POST .../billing-portal).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {
        "200": {"description": "the settings and billing details", "content": _json(
            {"allOf": [{"$ref": "#/components/schemas/BillingSettings"}, {"type": "object", "properties": {
                "billing_details": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                    "name": {"type": "string"}, "email": {"type": "string"},
                    "address": {"type": "object", "additionalProperties": {"type": "string"}},
                    "tax_ids": {"type": "array", "items": {"type": "object", "properties": {
                        "type": {"type": "string", "description": "Stripe's tax id type: eu_vat, gb_vat, ch_vat, ..."},
                        "value": {"type": "string"}, "country": {"type": "string"},
                        "verification": {"type": "string", "description": "Stripe's verification status or \"\""}}}},
                }}]}}}]},
            {**_SETTINGS_EXAMPLE, "billing_details": _DETAILS_EXAMPLE})},
        "409": api_spec.error_response("stripe_refused"),
        **_common("billing.manage"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/billing-settings", "put", {
    "summary": "Change the PO number, cost centre and accounting e-mail address",
    "description": f"{_BILLING} A key left out keeps its value; \"\" clears it; other keys are refused. A changed PO "
                   "number or cost centre is set on the Stripe customer first (printed on every future invoice); "
                   "if Stripe cannot be reached nothing is stored (503). Values equal to the stored ones change "
                   "nothing (`changed: []`). Audited (`billing.settings_changed`, before and after of what changed).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "requestBody": {"required": True, "content": _json(
        {"type": "object", "additionalProperties": False, "properties": _SETTINGS_PROPERTIES},
        {"po_number": "4500012345", "cost_centre": "KST 4711", "accounting_email": "invoices@contoso.example"})},
    "responses": {
        "200": {"description": "stored; `changed` names the fields this request changed", "content": _json(
            {"allOf": [{"$ref": "#/components/schemas/BillingSettings"}, {"type": "object", "properties": {
                "changed": {"type": "array", "items": {"type": "string",
                                                       "enum": ["po_number", "cost_centre", "accounting_email"]}}}}]},
            {**_SETTINGS_EXAMPLE, "changed": ["po_number"]})},
        "400": api_spec.error_response("invalid_json / invalid_body; with `field`: unknown_field, invalid_type (not a "
                                       "string), too_long (with `maximum`), invalid_characters, invalid_email (with "
                                       "`reason`: malformed, too_long, non_ascii)"),
        "409": api_spec.error_response("no_billing_account (no Stripe customer to print the fields), stripe_refused"),
        **_common("billing.manage"),
    },
})


# --- the billing interval: monthly or annual from the next renewal (handlers/billing_interval_api.py) -----

_INTERVAL_BODY = {"type": "object", "required": ["interval"], "properties": {
    "interval": {"type": "string", "enum": ["month", "year"],
                 "description": "`month` (monthly billing) or `year` (annual billing: ten months' price)"}}}
_INTERVAL_PREVIEW_EXAMPLE: dict[str, Any] = {
    "subscription_id": "sub_1Q2w3E4r5T6y", "interval": {"current": "month", "new": "year"},
    "starts_at": "2026-01-16T00:00:00+00:00", "quantity": 12, "currency": "eur",
    "unit_amount": {"current": 480, "new": 4800},
    "first_invoice": {"date": "2026-01-16T00:00:00+00:00", "subtotal": 57600, "tax": 10944, "total": 68544,
                      "amount_due": 68544},
    "current_total": 5760, "yearly_difference": 11520, "scheduled": False,
}
api_spec.schema("BillingIntervalPreview", {
    "type": "object",
    "description": f"What billing per the other interval costs from the next renewal (`starts_at`) on, at the current "
                   f"number of licenses. {_MONEY} `first_invoice` is Stripe's preview of the renewal invoice at "
                   "the new interval, tax included; `unit_amount` is per license and interval by volume tier; "
                   "`current_total` what one current interval costs now (before tax); `yearly_difference` what the "
                   "switch saves per year before tax (negative: costs more). Nothing is charged when the switch is "
                   "planned: the renewal invoice bills the new interval.",
    "properties": {
        "subscription_id": {"type": "string"},
        "interval": {"type": "object", "properties": {"current": {"type": "string", "enum": ["month", "year"]},
                                                      "new": {"type": "string", "enum": ["month", "year"]}}},
        "starts_at": {"type": "string", "format": "date-time", "description": "the next renewal"},
        "quantity": {"type": "integer"},
        "currency": {"type": "string"},
        "unit_amount": {"type": "object", "properties": {"current": {"type": "integer"}, "new": {"type": "integer"}}},
        "first_invoice": {"type": "object", "properties": {
            "date": {"type": "string", "format": "date-time"}, "subtotal": {"type": "integer"},
            "tax": {"type": "integer"}, "total": {"type": "integer"},
            "amount_due": {"type": "integer", "description": "after any credit balance"}}},
        "current_total": {"type": "integer"},
        "yearly_difference": {"type": "integer"},
        "scheduled": {"type": "boolean", "description": "this switch is planned already"},
    },
    "example": _INTERVAL_PREVIEW_EXAMPLE,
})
_INTERVAL_ANSWER = {"type": "object", "properties": {
    "changed": {"type": "boolean", "description": "false: Stripe had it so already (a repeated request)"},
    "interval": {"type": "string", "enum": ["month", "year"], "description": "billed per this interval now"},
    "scheduled_interval": {"type": ["string", "null"], "enum": ["month", "year", None],
                           "description": "and per this one from `starts_at` on; null: nothing planned"},
    "starts_at": {"type": ["string", "null"], "format": "date-time"},
    "subscription": {"$ref": "#/components/schemas/SubscriptionDetail"}}}
_INTERVAL_SUBSCRIPTION = {**_SUBSCRIPTION_EXAMPLE, "role": "owner", "billing_interval": "month"}
_INTERVAL_REFUSALS = ("interval_unchanged (billed per that interval already; with `scheduled_interval` when a switch "
                      "away from it is planned: withdraw it with DELETE), subscription_cancelling (it ends at "
                      "`ends_at`: undo the cancellation first), subscription_not_active (it ended), stripe_refused")
api_spec.describe("/v1/subscriptions/{subscription_id}/billing-interval/preview", "post", {
    "summary": "Preview switching to monthly or annual billing at the next renewal",
    "description": f"{_BILLING} Asks Stripe (`Invoice.create_preview`); nothing changes and nothing is audited.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "requestBody": {"required": True, "content": _json(_INTERVAL_BODY, {"interval": "year"})},
    "responses": {
        "200": {"description": "the preview", "content": _json(
            {"$ref": "#/components/schemas/BillingIntervalPreview"}, _INTERVAL_PREVIEW_EXAMPLE)},
        "400": api_spec.error_response("invalid_interval (`field`: interval, with `allowed`), invalid_json / "
                                       "invalid_body"),
        "409": api_spec.error_response(_INTERVAL_REFUSALS),
        **_common("billing.manage"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/billing-interval", "put", {
    "summary": "Switch to monthly or annual billing at the next renewal",
    "description": f"{_BILLING} Nothing is charged or prorated now: the current period runs out as it is paid, and the "
                   "renewal invoice bills the new interval at the same number of licenses (a quantity changed "
                   "meanwhile is carried over). Stripe plans it in a subscription schedule. The `Idempotency-Key` "
                   "header is required: retrying with the same key plans it once; asking for the switch already "
                   "planned answers `changed: false`. Audited (`billing.interval_scheduled`). Undo with DELETE "
                   "before the renewal. While a switch is planned, cancelling is refused until it is withdrawn.",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM, {"name": "Idempotency-Key", "in": "header", "required": True,
                                "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
                                "example": "annual-from-2026-01-16"}],
    "requestBody": {"required": True, "content": _json(_INTERVAL_BODY, {"interval": "year"})},
    "responses": {
        "200": {"description": "planned (or already so); the subscription as stored now", "content": _json(
            _INTERVAL_ANSWER, {"changed": True, "interval": "month", "scheduled_interval": "year",
                               "starts_at": "2026-01-16T00:00:00+00:00",
                               "subscription": {**_INTERVAL_SUBSCRIPTION, "scheduled_interval": {
                                   "interval": "year", "at": "2026-01-16T00:00:00+00:00"}}})},
        "400": api_spec.error_response("idempotency_key_required, invalid_request_id (`field`: Idempotency-Key), "
                                       "invalid_interval, invalid_json / invalid_body"),
        "409": api_spec.error_response(f"{_INTERVAL_REFUSALS}, idempotency_conflict"),
        **_common("billing.manage"),
    },
})
api_spec.describe("/v1/subscriptions/{subscription_id}/billing-interval", "delete", {
    "summary": "Withdraw the planned switch (before the renewal)",
    "description": f"{_BILLING} The subscription goes on billed as it is now. Audited "
                   "(`billing.interval_unscheduled`).",
    "security": _SECURITY,
    "parameters": [_SUB_PARAM],
    "responses": {
        "200": {"description": "withdrawn", "content": _json(_INTERVAL_ANSWER, {
            "changed": True, "interval": "month", "scheduled_interval": None, "starts_at": None,
            "subscription": {**_INTERVAL_SUBSCRIPTION, "scheduled_interval": None}})},
        "409": api_spec.error_response("not_scheduled (nothing planned), subscription_not_active (it ended)"),
        **_common("billing.manage"),
    },
})
