"""What every request that changes seats carries, from the JSON API and the dashboard's forms alike:
who acts (for the audit log) and the request id that makes a retry safe.

The request id becomes part of a Table Storage RowKey (the reservation of a bulk assignment), so it
is checked here, once, on every branch that accepts one: JSON body, CSV/text body with the
Idempotency-Key header, and the page forms.
"""

from __future__ import annotations

import re

import azure.functions as func

from handlers.inputs import InvalidInput
from services import bootstrap
from services.audit import Actor
from services.seat_change import Context
from services.web_session import Person

MAX_REQUEST_ID = 100
# Letters and digits are ASCII only: a RowKey must not hold '/', '\\', '#', '?' or control characters,
# and a short, plain alphabet is easy to log and to compare.
REQUEST_ID_PATTERN = rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID}}}"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class InvalidRequestId(InvalidInput):
    """Answer 400 `invalid_request_id`, naming the field that held it (the gate does); nothing is written."""

    def __init__(self, field: str):
        super().__init__(field, f"1 to {MAX_REQUEST_ID} letters, digits, '-', '_' or '.'", "invalid_request_id")


def request_id(value: object, field: str) -> str | None:
    """`value` (from `field`) as a request id; None when none was sent, InvalidRequestId when it is
    not 1 to 100 ASCII letters, digits, '-', '_' or '.'."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or _REQUEST_ID.fullmatch(value) is None:
        raise InvalidRequestId(field)
    return value


def api_request_id(req: func.HttpRequest, body_value: object = None) -> str | None:
    """The request id of an API call: `request_id` in a JSON body, else the Idempotency-Key header,
    else the `request_id` query parameter; checked, whichever it is."""
    if body_value not in (None, ""):
        return request_id(body_value, "request_id")
    header = req.headers.get("Idempotency-Key")
    if header:
        return request_id(header, "Idempotency-Key")
    return request_id(req.params.get("request_id"), "request_id")


def actor(person: Person) -> Actor:
    return Actor(tid=person.tid, oid=person.oid, email=person.email, name=person.name)


def context(person: Person) -> Context:
    return Context(uow=bootstrap.unit_of_work(), settings=bootstrap.settings(), actor=actor(person))
