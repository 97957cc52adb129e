"""Every input checked at the edge: a length and a character limit per query, path and body value,
refused with 400 naming the field before anything reaches the services or storage.

The JSON API's gate (`handlers/gate.py`) answers `InvalidInput` as `{"error", "message", "field"}`;
the pages show the message. Addresses that are assigned or invited go through the one address
grammar (services/address_list.py); addresses that only name an existing row (revoke, a delegate)
need just a plausible shape, so a row written under an older rule stays reachable.
"""

from __future__ import annotations

import json
import re
from typing import Any

from handlers.paging import MAX_LIMIT, PAGE_SIZE
from services import seat_listing
from services.address_list import MAX_ADDRESS_LENGTH
from services.seat import STATUSES, normalise_address

# A continuation token is base64 of the storage's next-key pair: short, plain ASCII.
MAX_CONTINUATION = 2048


class InvalidInput(ValueError):
    """Answer 400 with `code` (default `invalid_request`) and `field`; nothing was read or written."""

    def __init__(self, field: str, message: str, code: str = "invalid_request"):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code


class InvalidBody(ValueError):
    """The request body cannot be used (answer 400): `code`, the `field` at fault if any, and details
    the caller needs (answered in one place: `body_refused`, used by the gate)."""

    def __init__(self, code: str, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.field = field
        self.extra = extra

    def answer(self) -> dict[str, Any]:
        return {**({"field": self.field} if self.field else {}), **self.extra}


def json_object(body: bytes, hint: str) -> dict[str, Any]:
    """The JSON object a body holds; InvalidBody (`invalid_json` / `invalid_body` with `hint`) if not."""
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise InvalidBody("invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidBody("invalid_body", hint)
    return payload


def _printable(value: str) -> bool:
    return all(0x20 <= ord(c) != 0x7F and not 0x80 <= ord(c) <= 0x9F for c in value)


def search(value: str | None, field: str = "q") -> str:
    """A part of an address to search for (normalised): at most 254 characters, no control characters."""
    text = (value or "").strip()
    if len(text) > MAX_ADDRESS_LENGTH:
        raise InvalidInput(field, f"at most {MAX_ADDRESS_LENGTH} characters (the longest e-mail address)")
    if not _printable(text):
        raise InvalidInput(field, "control characters are not allowed")
    return normalise_address(text)


def continuation(value: str | None, field: str = "continuation") -> str | None:
    """A continuation token from the previous page, checked to decode to one."""
    if not value:
        return None
    if len(value) > MAX_CONTINUATION or not value.isascii():
        raise InvalidInput(field, "not a continuation token from the previous page")
    try:
        seat_listing.decode_token(value)
    except ValueError:
        raise InvalidInput(field, "not a continuation token from the previous page") from None
    return value


def limit(value: str | None, default: int = PAGE_SIZE, field: str = "limit") -> int:
    """A page size from 1 to MAX_LIMIT."""
    if value is None or value == "":
        return default
    if len(value) > 6 or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidInput(field, f"a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def status(value: str | None, field: str = "status") -> str | None:
    """A seat status filter, or None for all."""
    if not value:
        return None
    if value not in STATUSES:
        raise InvalidInput(field, f"one of {', '.join(STATUSES)}")
    return value


def named_address(value: str | None, field: str = "email") -> str:
    """An address that names an existing seat, delegate or invitation (normalised): at most 254
    printable ASCII characters with an @; whether it exists is for the rules to say (404)."""
    text = (value or "").strip()
    if not text or len(text) > MAX_ADDRESS_LENGTH or not text.isascii() or not _printable(text) or " " in text \
            or "@" not in text:
        raise InvalidInput(field, f"an e-mail address of at most {MAX_ADDRESS_LENGTH} ASCII characters",
                           code="invalid_email")
    return normalise_address(text)


def path_address(value: str | None, field: str = "email") -> str:
    """`named_address` from a route parameter. The Functions host (like ASP.NET Core) decodes every
    percent-escape of a path except an encoded slash, so `%2F` in the value is read as `/`
    (`a/b@contoso.example` is a real Microsoft 365 address); the dashboard's forms, which send the
    address in the body, need no such rule."""
    return named_address(_ENCODED_SLASH.sub("/", value or ""), field)


_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


# --- the same limits, as the OpenAPI description states them (handlers/*_openapi.py) ----------------------
# Described from the constants above, so the description cannot drift from what is checked.

# An address the rules assign or invite: the one grammar (services/address_list.py), which JSON Schema's
# `email` format approximates; the description says what it adds.
ADDRESS_SCHEMA: dict[str, object] = {
    "type": "string", "format": "email", "maxLength": MAX_ADDRESS_LENGTH,
    "description": "an e-mail address: RFC 5321 dot-atom local part (letters, digits and ! # $ % & ' * + / = ? ^ _ "
                   "` { | } ~ -) of at most 64 characters, a host name with a dot, at most 254 characters in all; "
                   "ASCII only (internationalised addresses are refused with reason `non_ascii`)",
}
# An address that names an existing seat or delegate (`named_address`); `%2F` in a path is read as `/`.
NAMED_ADDRESS_SCHEMA: dict[str, object] = {
    "type": "string", "minLength": 3, "maxLength": MAX_ADDRESS_LENGTH, "pattern": "^[!-~]+@[!-~]+$",
    "description": "the address as assigned or invited (printable ASCII, at most 254 characters)",
}
SEARCH_SCHEMA: dict[str, object] = {
    "type": "string", "maxLength": MAX_ADDRESS_LENGTH, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
    "description": "the start of an e-mail address (case-insensitive)",
}
CONTINUATION_SCHEMA: dict[str, object] = {
    "type": "string", "maxLength": MAX_CONTINUATION, "pattern": "^[A-Za-z0-9_-]*$",
    "description": "`continuation` of the previous page, as it was returned (anything else is refused with 400)",
}
LIMIT_SCHEMA: dict[str, object] = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": PAGE_SIZE}
STATUS_SCHEMA: dict[str, object] = {"type": "string", "enum": list(STATUSES)}


def invalid_input_response(fields: str) -> dict[str, object]:
    """The 400 an input checked here gets, for the description."""
    return {"description": f"{fields}: too long, wrong characters or out of range; `field` names it, nothing was "
                           "read or written",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FieldError"}}}}
