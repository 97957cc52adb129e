"""Licenses (seats) through the JSON API (PRODUCT.md capability 3): list, assign, revoke, reassign,
export.

Thin: the gate (`handlers/gate.py`) authenticates the bearer token and hands over the subscription
the caller may use; the view parses the request, calls the seat services and answers. The OpenAPI
description is in `handlers/licenses_openapi.py`.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from handlers import assignment_jobs, gate, inputs, licenses_openapi  # noqa: F401 - licenses_openapi describes these routes
from handlers.blueprint import new_blueprint
from handlers.responses import csv_response, error, json_response
from handlers.seat_changes import api_request_id, context
from services import access, bootstrap, seat_assignment, seat_listing, seat_revocation
from services.address_list import AddressList, AddressListError, parse_addresses, parse_csv
from services.assignment_job_record import Progress
from services.assignment_limits import DomainsNeedConfirmation, check_domains
from services.seat import status_of
from services.seat_change import AlreadyAssigned, NoSeatsFree, NotAssigned, SeatTaken, UndoExpired
from services.subscription import Subscription
from services.unit_of_work import Refused

bp = new_blueprint()


def _seat_errors(view: gate.ApiView) -> gate.ApiView:
    """Answer the seat rules' refusals and unusable bodies in the API's error shape."""

    @functools.wraps(view)
    def answered(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
        try:
            return view(req, caller, subscription)
        except Refused as exc:
            return _seat_error_json(exc, subscription.id)
        except AddressListError as exc:
            status = 415 if exc.code == "unsupported_media_type" else 400
            return error(status, exc.code, str(exc))

    return answered


def _seat_error_json(exc: Refused, subscription_id: str) -> func.HttpResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, NoSeatsFree):
        extra = {"needed": exc.needed, "free": exc.free,
                 "subscription_url": f"{bootstrap.settings().public_base_url}/api/subscriptions/{subscription_id}"}
    elif isinstance(exc, (NotAssigned, AlreadyAssigned, SeatTaken, UndoExpired)):
        extra = {"email": exc.email}
    elif isinstance(exc, DomainsNeedConfirmation):
        extra = {"domains": exc.domains}
    return error(exc.status, exc.code, str(exc), **extra)


def _addresses_from_body(req: func.HttpRequest) -> tuple[AddressList, str | None, bool]:
    """(addresses, request id, whether the domains are confirmed) from a JSON body or a CSV/text body;
    AddressListError when the body is unusable, InvalidRequestId when the request id is (checked first,
    on every branch). Domains are confirmed by `"confirm_domains": true` or `?confirm_domains=true`."""
    confirmed = _flag(req.params.get("confirm_domains"), "confirm_domains")
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    body = req.get_body()
    if content_type in ("text/csv", "application/csv", "text/plain"):
        request_id = api_request_id(req)
        parsed = parse_csv(body) if content_type != "text/plain" else parse_addresses(body.decode("utf-8", "replace"))
        return parsed, request_id, confirmed
    if content_type not in ("application/json", ""):
        raise AddressListError("unsupported_media_type", "send application/json ({\"emails\": [...]}) or text/csv")
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise AddressListError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("emails"), (list, str)):
        raise AddressListError("invalid_body", 'send {"emails": ["a@example.com", ...], "request_id": "..."}')
    request_id = api_request_id(req, payload.get("request_id"))
    confirmed = confirmed or _flag(payload.get("confirm_domains"), "confirm_domains")
    return parse_addresses(payload["emails"]), request_id, confirmed


def _flag(value: object, field: str) -> bool:
    """A yes/no input: JSON true/false, or "true"/"false" in the query string; absent is false."""
    if value is None or value is False or value in ("", "false", "0"):
        return False
    if value is True or value in ("true", "1"):
        return True
    raise inputs.InvalidInput(field, "true or false")


def _invalid_addresses(addresses: AddressList) -> func.HttpResponse:
    """400 `invalid_addresses`: which entries, why each (`problems`), and that nothing was written."""
    shown = addresses.invalid[:1000]
    return error(400, "invalid_addresses", addresses.explanation(), invalid=shown,
                 problems=[{"address": a, "reason": addresses.problems[a]} for a in shown])


def _assignment_json(outcome: seat_assignment.Assignment) -> dict[str, Any]:
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
        # More addresses than one transaction: the seats are written, their lookup rows and mails follow.
        "job_url": assignment_jobs.job_url(sub.id, outcome.job.id) if sub and outcome.job else None,
    }


@bp.route(route="v1/subscriptions/{subscription_id}/licenses", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_READ)
@_seat_errors
def api_list_licenses(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    page = seat_listing.list_seats(
        bootstrap.storage(), subscription, bootstrap.settings().grace_days,
        status=inputs.status(req.params.get("status")), search=inputs.search(req.params.get("q")),
        continuation=inputs.continuation(req.params.get("continuation")), limit=inputs.limit(req.params.get("limit")),
    )
    return json_response({
        "seats": [s.as_json() for s in page.seats],
        "continuation": page.continuation,
        "assigned_count": subscription.assigned_count,
        "quantity": subscription.quantity,
    })


@bp.route(route="v1/subscriptions/{subscription_id}/licenses", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_ASSIGN)
@_seat_errors
def api_assign_licenses(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    addresses, request_id, confirmed = _addresses_from_body(req)
    if addresses.invalid:
        return _invalid_addresses(addresses)
    ctx = context(caller)
    check_domains(ctx.uow, subscription, addresses.valid, confirmed=confirmed)
    outcome = seat_assignment.assign(ctx, subscription.id, addresses.valid, request_id, addresses.duplicates)
    if outcome.job is not None and outcome.background:
        # A big list: accepted, the job assigns it (services/assignment_job.py); its progress is at Location.
        job = assignment_jobs.job_json(Progress(outcome.job, ()), subscription.id)
        return json_response(job, status=202, headers={"Location": assignment_jobs.job_url(subscription.id,
                                                                                           outcome.job.id)})
    return json_response(_assignment_json(outcome))


@bp.route(route="v1/subscriptions/{subscription_id}/licenses/{email}", methods=["DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_ASSIGN)
@_seat_errors
def api_revoke_license(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    email = inputs.path_address(req.route_params.get("email"))
    after = seat_revocation.revoke(context(caller), subscription.id, email)
    undo_until = datetime.now(UTC) + seat_revocation.UNDO_WINDOW
    return json_response({"revoked": email, "assigned_count": after.assigned_count, "quantity": after.quantity,
                          "undo_until": undo_until.isoformat(timespec="seconds")})


@bp.route(route="v1/subscriptions/{subscription_id}/licenses/{email}/restore", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_ASSIGN)
@_seat_errors
def api_restore_license(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Undo a revoke of the last minutes: the same address assigned again through the assignment's rules."""
    email = inputs.path_address(req.route_params.get("email"))
    payload = inputs.json_object(req.get_body() or b"{}", 'send {} or {"request_id": "..."}')
    request_id = api_request_id(req, payload.get("request_id"))
    after = seat_revocation.undo_revoke(context(caller), subscription.id, email, request_id)
    # A new seat: pending (or as the subscription's state says) until the user's next license check.
    status = status_of(after, bound=False, over_quantity=False, grace_days=bootstrap.settings().grace_days)
    return json_response({"restored": email, "status": status, "assigned_count": after.assigned_count,
                          "quantity": after.quantity})


@bp.route(route="v1/subscriptions/{subscription_id}/licenses/{email}/reassign", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_ASSIGN)
@_seat_errors
def api_reassign_license(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    from_email = inputs.path_address(req.route_params.get("email"))
    try:
        payload = json.loads(req.get_body() or b"null")
    except ValueError:
        return error(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("to"), str):
        return error(400, "invalid_body", 'send {"to": "new.user@example.com"}')
    request_id = api_request_id(req, payload.get("request_id"))
    target = parse_addresses([payload["to"]])
    if target.invalid:
        return _invalid_addresses(target)
    if len(target.valid) != 1:
        return error(400, "invalid_addresses", "name exactly one new address", invalid=[], problems=[])
    after = seat_revocation.reassign(context(caller), subscription.id, from_email, target.valid[0], request_id)
    return json_response({"from": from_email, "to": target.valid[0], "assigned_count": after.assigned_count})


@bp.route(route="v1/subscriptions/{subscription_id}/licenses.csv", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_READ)
@_seat_errors
def api_export_licenses(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    status = inputs.status(req.params.get("status"))
    text = seat_listing.export_csv(bootstrap.storage(), subscription, bootstrap.settings().grace_days, status)
    return csv_response(text, f"licenses-{subscription.id}.csv")
