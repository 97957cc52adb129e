"""Licenses (seats) and the audit log: JSON API and dashboard pages (PRODUCT.md capabilities 3, 10).

Thin: parse the request, authorize, call services.seats / services.audit, answer. A person without
the permission gets the same 404 as for an unknown subscription id (ids are not confirmed to
strangers), in the API and on the pages alike.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable

import azure.functions as func

from handlers import bearer
from handlers.responses import SECURITY_HEADERS, error, json_response, when_configured
from handlers.web import WebRequest
from services import access, api_spec, audit, bootstrap, seats, subscription_store
from services.address_list import MAX_ADDRESSES, AddressList, AddressListError, parse_addresses, parse_csv
from services.audit import Actor
from services.i18n import translator
from services.identity import InvalidToken
from services.seat import STATUSES
from services.storage import ConcurrencyConflict, StorageUnavailable
from services.subscription import Subscription
from services.web_session import Person

log = logging.getLogger(__name__)
bp = func.Blueprint()

PAGE_SIZE = 50
MAX_LIMIT = 1000


# --- shared ------------------------------------------------------------------------------------


def _actor(person: Person) -> Actor:
    return Actor(tid=person.tid, oid=person.oid, email=person.email, name=person.name)


def _context(person: Person) -> seats.Context:
    return seats.Context(storage=bootstrap.storage(), settings=bootstrap.settings(), actor=_actor(person))


def _limit(raw: str | None, default: int = PAGE_SIZE) -> int:
    if raw in (None, ""):
        return default
    value = int(raw)  # ValueError -> 400 by the caller
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _csv_response(text: str, filename: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        "\ufeff" + text,  # BOM: Excel reads the file as UTF-8
        status_code=200,
        mimetype="text/csv",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {}), "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _addresses_from_body(req: func.HttpRequest) -> tuple[AddressList, str | None]:
    """(addresses, request id) from a JSON body or a CSV body; AddressListError when unusable."""
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    request_id = req.headers.get("Idempotency-Key") or req.params.get("request_id")
    body = req.get_body()
    if content_type in ("text/csv", "application/csv", "text/plain"):
        parsed = parse_csv(body) if content_type != "text/plain" else parse_addresses(body.decode("utf-8", "replace"))
        return parsed, request_id
    if content_type not in ("application/json", ""):
        raise AddressListError("unsupported_media_type", "send application/json ({\"emails\": [...]}) or text/csv")
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise AddressListError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("emails"), (list, str)):
        raise AddressListError("invalid_body", 'send {"emails": ["a@example.com", ...], "request_id": "..."}')
    request_id = payload.get("request_id") or request_id
    if request_id is not None and (not isinstance(request_id, str) or not 1 <= len(request_id) <= 100
                                   or not all(c.isalnum() or c in "-_." for c in request_id)):
        raise AddressListError("invalid_request_id", "request_id: 1 to 100 letters, digits, '-', '_' or '.'")
    return parse_addresses(payload["emails"]), request_id


def _assignment_json(outcome: seats.Assignment) -> dict[str, Any]:
    sub = outcome.subscription
    return {
        "request_id": outcome.request_id,
        "results": [{"email": a, "result": r} for a, r in outcome.results.items()],
        "assigned": outcome.assigned,
        "already_assigned": outcome.already_assigned,
        "duplicates": outcome.duplicates,
        "assigned_count": sub.assigned_count if sub else None,
        "quantity": sub.quantity if sub else None,
        "free": max(sub.quantity - sub.assigned_count, 0) if sub else None,
    }


def _seat_error_json(exc: seats.SeatError, subscription_id: str) -> func.HttpResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, seats.NoSeatsFree):
        extra = {"needed": exc.needed, "free": exc.free,
                 "subscription_url": f"{bootstrap.settings().public_base_url}/api/subscriptions/{subscription_id}"}
    elif isinstance(exc, (seats.NotAssigned, seats.AlreadyAssigned)):
        extra = {"email": exc.email}
    return error(exc.status, exc.code, str(exc), **extra)


# --- JSON API ---------------------------------------------------------------------------------


def _api(permission: str) -> Callable:
    """Authenticate the bearer token, load the subscription if the caller may use it, map errors."""

    def wrap(view: Callable[[func.HttpRequest, Person, Subscription], func.HttpResponse]) -> Callable:
        def handler(req: func.HttpRequest) -> func.HttpResponse:
            settings = bootstrap.settings()
            try:
                principal = bearer.authenticate(req, settings)
            except InvalidToken as exc:
                return bearer.unauthorized(exc)
            email = principal.email or principal.preferred_username or principal.upn or ""
            person = Person(tid=principal.tid, oid=principal.oid, name=principal.name or email, email=email)
            subscription_id = req.route_params.get("subscription_id", "")
            subscription = access.permitted_subscription(bootstrap.storage(), subscription_id, person, permission)
            if subscription is None:
                return error(404, "subscription_not_found", f"no subscription {subscription_id} that you may manage")
            try:
                return view(req, person, subscription)
            except seats.SeatError as exc:
                return _seat_error_json(exc, subscription.id)
            except AddressListError as exc:
                status = 415 if exc.code == "unsupported_media_type" else 400
                return error(status, exc.code, str(exc))
            except ValueError as exc:
                return error(400, "invalid_request", str(exc))
            except (ConcurrencyConflict, StorageUnavailable) as exc:
                log.warning("licenses API: %s", exc)
                return error(503, "busy", "the subscription is changing right now; retry with the same request_id",
                             headers={"Retry-After": "2"})

        handler.__name__ = view.__name__
        return handler

    return wrap


_SUB_PARAM = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL_PARAM = {"name": "email", "in": "path", "required": True, "schema": {"type": "string", "format": "email"}}
_SECURITY = [{"entraBearer": []}]
_COMMON = {
    "401": api_spec.error_response("missing or invalid bearer token"),
    "404": api_spec.error_response("unknown subscription, or not one the caller may manage"),
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
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": PAGE_SIZE}},
    ],
    "responses": {
        "200": {"description": "one page of seats", "content": {"application/json": {"schema": {"type": "object", "properties": {
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
    "parameters": [_SUB_PARAM, {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
    "requestBody": {"content": {
        "application/json": {"schema": {"type": "object", "required": ["emails"], "properties": {
            "emails": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
            "request_id": {"type": "string"}}}},
        "text/csv": {"schema": {"type": "string"}}}},
    "responses": {
        "200": {"description": "what happened per address", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Assignment"}}}},
        "400": api_spec.error_response("malformed addresses (listed in `invalid`), empty list, too many rows, not CSV"),
        "409": api_spec.error_response("no_seats_free: more new licenses than free seats (`needed`, `free`); nothing assigned"),
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
        "to": {"type": "string", "format": "email"}, "request_id": {"type": "string"}}}}}},
    "responses": {"200": {"description": "reassigned"}, **_COMMON,
                  "400": api_spec.error_response("malformed address"),
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


@bp.route(route="v1/subscriptions/{subscription_id}/licenses", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.SUBSCRIPTION_VIEW)
@when_configured
def api_list_licenses(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    page = seats.list_seats(
        bootstrap.storage(), subscription, bootstrap.settings().grace_days,
        status=req.params.get("status") or None, search=req.params.get("q", ""),
        continuation=req.params.get("continuation") or None, limit=_limit(req.params.get("limit")),
    )
    return json_response({
        "seats": [s.as_json() for s in page.seats],
        "continuation": page.continuation,
        "assigned_count": subscription.assigned_count,
        "quantity": subscription.quantity,
    })


@bp.route(route="v1/subscriptions/{subscription_id}/licenses", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.LICENSES_ASSIGN)
@when_configured
def api_assign_licenses(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    addresses, request_id = _addresses_from_body(req)
    if addresses.invalid:
        return error(400, "invalid_addresses", f"{len(addresses.invalid)} malformed address(es); nothing was assigned",
                     invalid=addresses.invalid[:1000])
    outcome = seats.assign(_context(person), subscription.id, addresses.valid, request_id, addresses.duplicates)
    return json_response(_assignment_json(outcome))


@bp.route(route="v1/subscriptions/{subscription_id}/licenses/{email}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.LICENSES_ASSIGN)
@when_configured
def api_revoke_license(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    email = req.route_params["email"]
    after = seats.revoke(_context(person), subscription.id, email)
    return json_response({"revoked": email.strip().lower(), "assigned_count": after.assigned_count, "quantity": after.quantity})


@bp.route(route="v1/subscriptions/{subscription_id}/licenses/{email}/reassign", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.LICENSES_ASSIGN)
@when_configured
def api_reassign_license(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    try:
        payload = json.loads(req.get_body() or b"null")
    except ValueError:
        return error(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("to"), str):
        return error(400, "invalid_body", 'send {"to": "new.user@example.com"}')
    target = parse_addresses([payload["to"]])
    if target.invalid or len(target.valid) != 1:
        return error(400, "invalid_addresses", "the new address is malformed", invalid=target.invalid)
    from_email = req.route_params["email"].strip().lower()
    after = seats.reassign(_context(person), subscription.id, from_email, target.valid[0],
                           payload.get("request_id") or req.headers.get("Idempotency-Key"))
    return json_response({"from": from_email, "to": target.valid[0], "assigned_count": after.assigned_count})


@bp.route(route="v1/subscriptions/{subscription_id}/licenses.csv", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.SUBSCRIPTION_VIEW)
@when_configured
def api_export_licenses(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    status = req.params.get("status") or None
    if status and status not in STATUSES:
        return error(400, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
    text = seats.export_csv(bootstrap.storage(), subscription, bootstrap.settings().grace_days, status)
    return _csv_response(text, f"licenses-{subscription.id}.csv")


@bp.route(route="v1/subscriptions/{subscription_id}/audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.SUBSCRIPTION_VIEW)
@when_configured
def api_audit(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    entries, token = audit.page(bootstrap.storage(), subscription.id,
                                seats.decode_token(req.params.get("continuation") or None), _limit(req.params.get("limit")))
    return json_response({"entries": entries, "continuation": seats.encode_token(token)})


@bp.route(route="v1/subscriptions/{subscription_id}/audit.csv", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@_api(access.SUBSCRIPTION_VIEW)
@when_configured
def api_export_audit(req: func.HttpRequest, person: Person, subscription: Subscription) -> func.HttpResponse:
    return _csv_response(audit.export_csv(bootstrap.storage(), subscription.id), f"audit-{subscription.id}.csv")


# --- pages -------------------------------------------------------------------------------------


def _licenses_url(subscription_id: str) -> str:
    return f"/api/subscriptions/{subscription_id}/licenses"


def _render_licenses(web: WebRequest, subscription: Subscription, status_code: int = 200, **extra: Any) -> func.HttpResponse:
    status = web.req.params.get("status") or ""
    search = web.req.params.get("q", "")
    continuation = web.req.params.get("continuation") or None
    if status not in STATUSES:
        status = ""
    try:
        page = seats.list_seats(bootstrap.storage(), subscription, web.settings.grace_days, status=status or None,
                                search=search, continuation=continuation, limit=PAGE_SIZE)
    except ValueError:
        page = seats.list_seats(bootstrap.storage(), subscription, web.settings.grace_days, status=status or None,
                                search=search, limit=PAGE_SIZE)
    return web.render(
        "licenses.html",
        status=status_code,
        subscription=subscription,
        seats=page.seats,
        continuation=page.continuation,
        paged=bool(continuation),
        filter_status=status,
        search=search,
        statuses=STATUSES,
        free=max(subscription.quantity - subscription.assigned_count, 0),
        can_assign=access.can(subscription, web.person, access.LICENSES_ASSIGN),
        request_id=uuid.uuid4().hex,
        max_addresses=MAX_ADDRESSES,
        **extra,
    )


@bp.route(route="subscriptions/{subscription_id}/licenses", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def licenses_page(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.SUBSCRIPTION_VIEW, "licenses.not_found")
    if isinstance(found, func.HttpResponse):
        return found
    return _render_licenses(web, found)


@bp.route(route="subscriptions/{subscription_id}/licenses", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def assign_form(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.LICENSES_ASSIGN, "licenses.not_found", form=True)
    if isinstance(found, func.HttpResponse):
        return found
    t = translator(web.language)
    form = web.form()
    pasted = form.get("emails", "")
    upload = web.files().get("file")
    try:
        if upload and (upload[0] or upload[1]):
            addresses = parse_csv(upload[1])
        else:
            addresses = parse_addresses(pasted)
    except AddressListError as exc:
        return _render_licenses(web, found, 400, form_error=t(f"licenses.error.{exc.code}"), pasted=pasted)
    if addresses.invalid:
        return _render_licenses(web, found, 400, form_error=t("licenses.error.invalid_addresses"),
                                invalid=addresses.invalid[:200], pasted=pasted)
    person = web.require_person()
    try:
        outcome = seats.assign(_context(person), found.id, addresses.valid, form.get("request_id") or None,
                               addresses.duplicates)
    except seats.NoSeatsFree as exc:
        return _render_licenses(web, found, 409, form_error=t("licenses.error.no_seats_free", 
            needed=exc.needed, free=exc.free), pasted=pasted)
    except seats.SeatError as exc:
        return _render_licenses(web, found, exc.status, form_error=str(exc), pasted=pasted)
    if outcome.assigned:
        web.flash("success", t("licenses.flash.assigned", count=len(outcome.assigned)))
    if outcome.already_assigned:
        web.flash("info", t("licenses.flash.already", emails=", ".join(outcome.already_assigned[:50])))
    if outcome.duplicates:
        web.flash("info", t("licenses.flash.duplicates", emails=", ".join(outcome.duplicates[:50])))
    return web.redirect(_licenses_url(found.id))


@bp.route(route="subscriptions/{subscription_id}/licenses/revoke", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def revoke_form(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.LICENSES_ASSIGN, "licenses.not_found", form=True)
    if isinstance(found, func.HttpResponse):
        return found
    t = translator(web.language)
    email = web.form().get("email", "").strip().lower()
    try:
        seats.revoke(_context(web.require_person()), found.id, email)
        web.flash("success", t("licenses.flash.revoked", email=email))
    except seats.NotAssigned:
        web.flash("error", t("licenses.error.not_assigned", email=email))
    return web.redirect(_licenses_url(found.id))


@bp.route(route="subscriptions/{subscription_id}/licenses/reassign", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def reassign_form(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.LICENSES_ASSIGN, "licenses.not_found", form=True)
    if isinstance(found, func.HttpResponse):
        return found
    t = translator(web.language)
    form = web.form()
    email = form.get("email", "").strip().lower()
    try:
        target = parse_addresses([form.get("to", "")])
    except AddressListError:
        target = AddressList()
    if target.invalid or len(target.valid) != 1:
        web.flash("error", t("licenses.error.invalid_target", email=form.get("to", "")))
        return web.redirect(_licenses_url(found.id))
    try:
        seats.reassign(_context(web.require_person()), found.id, email, target.valid[0], form.get("request_id") or None)
        web.flash("success", t("licenses.flash.reassigned", email=email, to=target.valid[0]))
    except seats.NotAssigned:
        web.flash("error", t("licenses.error.not_assigned", email=email))
    except seats.AlreadyAssigned:
        web.flash("error", t("licenses.error.already_assigned", email=target.valid[0]))
    return web.redirect(_licenses_url(found.id))


@bp.route(route="subscriptions/{subscription_id}/licenses/export.csv", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def licenses_export(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.SUBSCRIPTION_VIEW, "licenses.not_found")
    if isinstance(found, func.HttpResponse):
        return found
    status = req.params.get("status") or None
    text = seats.export_csv(bootstrap.storage(), found, web.settings.grace_days, status if status in STATUSES else None)
    return _csv_response(text, f"licenses-{found.id}.csv")


@bp.route(route="subscriptions/{subscription_id}/audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def audit_page(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.SUBSCRIPTION_VIEW, "licenses.not_found")
    if isinstance(found, func.HttpResponse):
        return found
    continuation = req.params.get("continuation") or None
    try:
        entries, token = audit.page(bootstrap.storage(), found.id, seats.decode_token(continuation), PAGE_SIZE)
    except ValueError:
        entries, token = audit.page(bootstrap.storage(), found.id, None, PAGE_SIZE)
    return web.render("audit.html", subscription=found, entries=entries,
                      continuation=seats.encode_token(token), paged=bool(continuation))


@bp.route(route="subscriptions/{subscription_id}/audit/export.csv", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def audit_export(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    found = web.permitted_subscription(access.SUBSCRIPTION_VIEW, "licenses.not_found")
    if isinstance(found, func.HttpResponse):
        return found
    return _csv_response(audit.export_csv(bootstrap.storage(), found.id), f"audit-{found.id}.csv")


# --- reconciliation ------------------------------------------------------------------------------


@bp.timer_trigger(arg_name="timer", schedule="0 */10 * * * *", run_on_startup=False)
def reconcile_seat_reservations(timer: func.TimerRequest) -> None:
    """Complete bulk assignments whose request died (PRODUCT.md section 4)."""
    storage, settings = bootstrap.storage(), bootstrap.settings()
    for subscription_id in subscription_store.all_ids(storage):
        done = seats.reconcile(storage, settings, subscription_id)
        if done["reservations"]:
            log.warning("completed %d stale seat reservations on %s", done["reservations"], subscription_id)


@bp.timer_trigger(arg_name="timer", schedule="0 45 3 * * *", run_on_startup=False)
def reconcile_license_lookups(timer: func.TimerRequest) -> None:
    """Rewrite the license check's lookup rows from the seats; recheck over quantity (daily)."""
    storage, settings = bootstrap.storage(), bootstrap.settings()
    for subscription_id in subscription_store.all_ids(storage):
        seats.reconcile(storage, settings, subscription_id, repair_lookups=True)
        seats.apply_quantity(storage, settings, subscription_id)
