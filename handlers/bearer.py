"""Bearer-token authentication for API handlers (RFC 6750).

    try:
        caller = bearer.authenticate(req, settings)
    except InvalidToken as exc:
        return bearer.unauthorized(exc)
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import azure.functions as func

from handlers.responses import error
from services.identity import InvalidToken, Principal, validator_for
from services.settings import Settings

if TYPE_CHECKING:
    from services.web_session import Person

log = logging.getLogger(__name__)

REALM = "securemailmerge"
# No credentials at all: RFC 6750 section 3.1 says the challenge then carries no error code.
MISSING_TOKEN = "missing_token"
_BEARER = re.compile(r"^Bearer[ \t]+(\S+)[ \t]*$", re.IGNORECASE)
# error_description may only hold these characters (RFC 6750 section 3); our descriptions are fixed
# phrases, this keeps a future one from breaking the header.
_NOT_HEADER_SAFE = re.compile(r'[^\x20-\x21\x23-\x5B\x5D-\x7E]')


def authenticate(req: func.HttpRequest, settings: Settings) -> Principal:
    """The caller of `req`, or InvalidToken (reason "missing_token" when no bearer token was sent)."""
    header = req.headers.get("Authorization")
    if not header or not header.strip():
        raise InvalidToken(MISSING_TOKEN, "sign-in required: send Authorization: Bearer <access token>")
    match = _BEARER.match(header.strip())
    if match is None:
        if header.strip().lower().startswith("bearer"):
            raise InvalidToken("malformed_token", "token is malformed")
        # Another scheme (Basic, ...) is no bearer credential at all.
        raise InvalidToken(MISSING_TOKEN, "sign-in required: send Authorization: Bearer <access token>")
    try:
        return validator_for(settings).validate(match.group(1))
    except InvalidToken as exc:
        # The reason is enough to diagnose; the token itself never goes to the log.
        log.info("bearer token rejected: %s", exc.reason)
        raise


def person(principal: Principal) -> Person:
    """The person a validated token names, (tid, oid) with every sign-in name it carried: what the
    gate hands API views as the caller, and what routes outside the gate act as."""
    from services.web_session import Person  # sessions: not on the license check's import path

    email = principal.email or principal.preferred_username or principal.upn or ""
    return Person(tid=principal.tid, oid=principal.oid, name=principal.name or email, email=email,
                  sign_in_names=tuple(sorted(principal.sign_in_addresses())))


def unauthorized(exc: InvalidToken) -> func.HttpResponse:
    """401 with the RFC 6750 challenge and the JSON error shape."""
    if exc.reason == MISSING_TOKEN:
        challenge = f'Bearer realm="{REALM}"'
    else:
        description = _NOT_HEADER_SAFE.sub("", exc.description)
        challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
    return error(401, "invalid_token", exc.description, headers={"WWW-Authenticate": challenge},
                 reason=exc.reason)
