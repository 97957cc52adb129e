"""License validation for the Outlook add-in: `GET /api/license`, its CORS preflight, and the lease keys.

The hot path of the whole server (PRODUCT.md section 4): token validation with process-cached Entra keys,
a per-instance rate limit, one lookup-partition query plus cached subscriptions, and a signed lease.
Kept free of heavy imports (Stripe, MSAL, templates, the mail client): it decides cold-start time.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func

from adapters.table_storage import StorageUnavailable
from handlers import bearer
from handlers.blueprint import new_blueprint
from handlers.responses import error, json_response, when_configured
from services import api_spec, bootstrap
from services.i18n import choose_language, translator
from services.identity import InvalidToken
from services.lease import LeaseKeyError, keys_for
from services.license_check import RANK, Code, Decision, LicenseChecker
from services.rate_limit import RateLimiter, retry_after_header
from services.settings import Settings, SettingsError
from services.subscription_cache import SubscriptionCache

log = logging.getLogger(__name__)
bp = new_blueprint()

# What the add-in should wait before asking again when storage is down; it uses its lease meanwhile.
STORAGE_RETRY_AFTER_SECONDS = 30
PREFLIGHT_MAX_AGE_SECONDS = 600
KEYS_MAX_AGE_SECONDS = 300

_lock = threading.Lock()
_checkers: dict[int, LicenseChecker] = {}
_limiters: dict[int, RateLimiter] = {}


def _checker(settings: Settings) -> LicenseChecker:
    with _lock:
        checker = _checkers.get(settings.grace_days)
        if checker is None:
            checker = _checkers[settings.grace_days] = LicenseChecker(SubscriptionCache(), settings.grace_days)
        return checker


def _limiter(settings: Settings) -> RateLimiter:
    limit = settings.license_rate_limit_per_minute
    with _lock:
        limiter = _limiters.get(limit)
        if limiter is None:
            limiter = _limiters[limit] = RateLimiter(limit)
        return limiter


# --- CORS (the add-in runs in a browser frame on its own origin) -----------------------------------


def _allowed_origin(req: func.HttpRequest, settings: Settings) -> str | None:
    origin: str | None = req.headers.get("Origin")  # azure.functions leaves HttpRequest.headers unannotated
    if not origin:
        return None
    wanted = origin.strip().rstrip("/").lower()
    for allowed in settings.addin_origins:
        if allowed.strip().rstrip("/").lower() == wanted:
            return origin.strip()
    return None


def _cors_headers(req: func.HttpRequest, settings: Settings | None) -> dict[str, str]:
    origin = _allowed_origin(req, settings) if settings is not None else None
    headers = {"Vary": "Origin, Accept-Language"}
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = "Retry-After, WWW-Authenticate"
    return headers


def _preflight(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
    headers = _cors_headers(req, settings)
    if "Access-Control-Allow-Origin" in headers:
        headers.update({
            "Access-Control-Allow-Methods": "GET, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Accept-Language",
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
        })
    else:
        log.info("license preflight from an origin not in ADDIN_ORIGINS refused")
    return func.HttpResponse(status_code=204, headers=headers)


def _with(response: func.HttpResponse, headers: dict[str, str]) -> func.HttpResponse:
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _unavailable(message: str, cors: dict[str, str]) -> func.HttpResponse:
    return error(503, "unavailable", message,
                 headers={**cors, "Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)})


# --- GET /api/license -------------------------------------------------------------------------------


@bp.route(route="license", methods=["GET", "OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def license_check(req: func.HttpRequest) -> func.HttpResponse:
    try:
        settings = bootstrap.settings()
    except SettingsError:
        log.exception("license check: configuration invalid")
        return _unavailable("The license service is not available; try again later.", {"Vary": "Origin"})
    if req.method.upper() == "OPTIONS":
        return _preflight(req, settings)
    cors = _cors_headers(req, settings)

    try:
        principal = bearer.authenticate(req, settings)
    except InvalidToken as exc:
        if exc.reason == "signing_keys_unavailable":
            # Entra's keys could not be fetched: our problem, not a bad token.
            return _unavailable("The license service cannot verify sign-ins right now; try again later.", cors)
        return _with(bearer.unauthorized(exc), cors)

    wait = _limiter(settings).acquire(f"{principal.tid}|{principal.oid}")
    if wait > 0:
        return error(429, "rate_limited", "Too many license checks; try again later.",
                     headers={**cors, "Retry-After": retry_after_header(wait)})

    try:
        decision = _checker(settings).check(bootstrap.hot_path_storage(), principal)
    except StorageUnavailable as exc:
        status = exc.status_code
        level = (logging.ERROR if status is not None and 400 <= status < 500 and status not in (408, 429)
                 else logging.WARNING)
        log.log(level, "license check: storage unavailable (%s, status %s); answered 503",
                type(exc.__cause__ or exc).__name__, status)
        return _unavailable("The license service is temporarily unavailable; try again later.", cors)

    language = choose_language(req.headers.get("Accept-Language"), default=settings.default_language)
    try:
        body = _answer(decision, principal.tid, principal.oid, settings, language)
    except LeaseKeyError:
        log.exception("license check: lease signing keys unusable")
        return _unavailable("The license service is not available; try again later.", cors)
    return json_response(body, headers={**cors, "Content-Language": language})


def _answer(decision: Decision, tid: str, oid: str, settings: Settings, language: str) -> dict[str, Any]:
    t = translator(language)
    now = datetime.now(UTC)
    subscription = decision.subscription
    lease = lease_expires_at = None
    if decision.valid and subscription is not None:
        lease, lease_expires_at = keys_for(settings).lease(
            tid=tid, oid=oid, subscription_id=subscription.id, code=decision.code.value, valid=True,
            ttl=timedelta(hours=settings.lease_ttl_hours), not_after=decision.lease_not_after, now=now,
        )
    return {
        "valid": decision.valid,
        "code": decision.code.value,
        "detail": t(f"license.code.{decision.code.value}"),
        "subscription": {"id": subscription.id, "status": subscription.status} if subscription else None,
        "expires_at": _iso(decision.expires_at),
        "seat": {"status": decision.seat_status, "email": decision.email} if subscription else None,
        "lease": lease,
        "lease_expires_at": _iso(lease_expires_at),
        "checked_at": _iso(now),
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


# --- GET /api/license/keys -------------------------------------------------------------------------


@bp.route(route="license/keys", methods=["GET", "OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def license_keys(req: func.HttpRequest) -> func.HttpResponse:
    try:
        settings = bootstrap.settings()
        if req.method.upper() == "OPTIONS":
            return _preflight(req, settings)
        jwks = keys_for(settings).jwks()
    except (SettingsError, LeaseKeyError):
        log.exception("license keys: configuration invalid")
        return _unavailable("The license service is not available; try again later.", {"Vary": "Origin"})
    return json_response(jwks, headers={**_cors_headers(req, settings),
                                        "Cache-Control": f"public, max-age={KEYS_MAX_AGE_SECONDS}"})


# --- OpenAPI -------------------------------------------------------------------------------------------

_CODE_MEANINGS = {
    Code.VALID: "licensed (valid: true)",
    Code.PAST_DUE_GRACE: "payment overdue, still within the grace period (valid: true)",
    Code.OVER_QUANTITY: "the seat is beyond the subscription's current quantity (valid: false)",
    Code.PENDING_PAYMENT: "the subscription waits for its first payment (valid: false)",
    Code.SUSPENDED: "unpaid past the grace period, or paused (valid: false)",
    Code.EXPIRED: "the subscription ended (valid: false)",
    Code.NO_LICENSE: "no license assigned to this signed-in user, also for tokens from another tenant "
                     "that claim an assigned address (valid: false)",
}

api_spec.schema("LicenseCheck", {
    "type": "object",
    "required": ["valid", "code", "detail", "subscription", "expires_at", "seat", "lease", "lease_expires_at",
                 "checked_at"],
    "properties": {
        "valid": {"type": "boolean", "description": "whether the add-in may be used now; true in grace periods"},
        "code": {
            "type": "string",
            "enum": [code.value for code in RANK],
            "description": "why; best first when the user holds several licenses: "
                           + "; ".join(f"`{c.value}`: {_CODE_MEANINGS[c]}" for c in RANK),
        },
        "detail": {"type": "string", "description": "a sentence for people, English or German by Accept-Language"},
        "subscription": {
            "type": ["object", "null"],
            "properties": {"id": {"type": "string"}, "status": {"type": "string", "description": "Stripe's status"}},
        },
        "expires_at": {"type": ["string", "null"], "format": "date-time",
                       "description": "end of the paid period, or of the grace period while payment is overdue"},
        "seat": {
            "type": ["object", "null"],
            "properties": {
                "status": {"type": "string", "enum": ["active", "over_quantity", "suspended", "expired"]},
                "email": {"type": "string", "description": "the assigned address the seat was bound by"},
            },
        },
        "lease": {"type": ["string", "null"],
                  "description": "when valid: a JWT (ES256/EdDSA, kid from /license/keys) with iss, aud "
                                 "`securemailmerge-addin`, tid, oid, sid (subscription id), "
                                 "code, valid, iat, exp, jti"},
        "lease_expires_at": {"type": ["string", "null"], "format": "date-time"},
        "checked_at": {"type": "string", "format": "date-time"},
    },
})

api_spec.describe("/license", "get", {
    "summary": "Validate the signed-in user's license (Outlook add-in)",
    "description": "Send the user's Entra ID access token for this API (scope access_as_user). The license "
                   "belongs to the signed-in user, not to the mailbox (shared mailboxes). Side effects: the "
                   "user's seat is bound to them on first use; last-seen date once a day.",
    "security": [{"entraBearer": []}],
    "parameters": [{"name": "Accept-Language", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "`de` for German `detail`, English otherwise"}],
    "responses": {
        "200": {"description": "the license answer (also when not licensed: see `valid` and `code`)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LicenseCheck"}}}},
        "401": api_spec.error_response("missing or invalid token; `WWW-Authenticate` says why"),
        "429": api_spec.error_response("too many checks by this user; wait `Retry-After` seconds"),
        "503": api_spec.error_response("storage or sign-in keys unreachable; use the cached lease and retry "
                                       "after `Retry-After` seconds"),
    },
})

api_spec.describe("/license/keys", "get", {
    "summary": "Public keys that verify license leases (JWKS)",
    "description": "Every key whose leases may still be valid, current first; `kid` is the RFC 7638 thumbprint.",
    "responses": {
        "200": {"description": "a JWK Set", "content": {"application/json": {"schema": {"type": "object"}}}},
        "503": api_spec.error_response("lease keys not configured"),
    },
})
