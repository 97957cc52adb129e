"""Delegated administration through the JSON API (PRODUCT.md capability 4): the caller's
subscriptions, delegates and invitations, ownership transfer, accepting an invitation.

Thin: the gate (`handlers/gate.py`) authenticates the bearer token and hands over the subscription
the caller may use; the two routes that name no subscription (`v1/subscriptions`,
`v1/invitations/accept`) authenticate the bearer token themselves, the same way. The views parse the
body, call services/delegation.py and answer; every refusal of the rules is answered in one place
(`refusal`). The OpenAPI description is in `handlers/delegates_openapi.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import azure.functions as func

from adapters.table_storage import ConcurrencyConflict
from handlers import bearer, delegates_openapi, gate, inputs  # noqa: F401 - delegates_openapi describes these routes
from handlers.blueprint import new_blueprint
from handlers.inputs import InvalidBody, json_object
from handlers.responses import error, json_response, when_configured
from handlers.seat_changes import actor
from services import access, bootstrap, delegation, subscription_store
from services.address_list import AddressList, AddressListError, parse_addresses
from services.delegate import (
    DELEGABLE,
    OWNER_OFFER,
    Acceptor,
    Delegate,
    InvalidPermissions,
    Invitation,
    ordered,
    parse_permissions,
)
from services.identity import InvalidToken
from services.subscription import Subscription
from services.unit_of_work import Refused
from services.web_session import Person

log = logging.getLogger(__name__)
bp = new_blueprint()

FORMER_OWNER_CHOICES = ("delegate", "leave")


# --- answers ----------------------------------------------------------------------------------------


def refusal(exc: Refused) -> func.HttpResponse:
    """A refusal of the delegation rules as JSON: its own status and code (404 not_a_delegate, 409
    already_delegate / is_owner, 410 invitation_invalid / invitation_expired, 403 wrong_account /
    wrong_tenant...); nothing was written."""
    return error(exc.status, exc.code, str(exc))


PersonView = Callable[[func.HttpRequest, Person], func.HttpResponse]


def _signed_in(view: PersonView) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """For the routes that name no subscription (so no gate): settings first (503 when invalid),
    then the bearer token (401 with the challenge), then the view with the person it names; the
    same error shape as behind the gate."""

    def handler(req: func.HttpRequest) -> func.HttpResponse:
        settings = bootstrap.settings()
        try:
            principal = bearer.authenticate(req, settings)
        except InvalidToken as exc:
            return bearer.unauthorized(exc)
        try:
            return view(req, bearer.person(principal))
        except Refused as exc:
            return refusal(exc)
        except InvalidBody as exc:
            return error(400, exc.code, str(exc), **exc.answer())
        except ConcurrencyConflict as exc:  # an outage is answered by when_configured: 503 unavailable
            log.warning("%s: %s", view.__name__, exc)
            return error(503, "busy", "the subscription is changing right now; try again",
                         headers={"Retry-After": "2"})

    # The host binds parameters by the function's signature: the handler keeps its own `(req)` (no
    # functools.wraps, whose __wrapped__ would show the view's) and takes the view's name.
    handler.__name__ = handler.__qualname__ = view.__name__
    handler.__doc__, handler.__module__ = view.__doc__, view.__module__
    return when_configured(handler)


# --- JSON shapes ----------------------------------------------------------------------------------


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def subscription_json(subscription: Subscription, caller: access.Caller, *, detail: bool = False) -> dict[str, Any]:
    """The subscription as `caller` may see it: what they hold on it included."""
    grace_days = bootstrap.settings().grace_days
    out: dict[str, Any] = {
        "id": subscription.id,
        "kind": subscription.kind,
        "status": subscription.status,
        "state": subscription.license_state(grace_days).value,
        "quantity": subscription.quantity,
        "assigned": subscription.assigned_count,
        "role": caller.role,
        "permissions": ordered(caller.permissions),
    }
    if detail:
        base = f"/api/v1/subscriptions/{subscription.id}"
        links = {"licenses": f"{base}/licenses" if caller.can(access.LICENSES_READ) else None,
                 "audit": f"{base}/audit" if caller.can(access.SUBSCRIPTION_VIEW) else None,
                 "delegates": f"{base}/delegates" if caller.can(access.OWNER) else None,
                 "quantity": f"{base}/quantity" if caller.can(access.QUANTITY_MANAGE)
                 and subscription.kind == "organisation" else None,
                 "invoices": f"{base}/invoices" if caller.can(access.BILLING_MANAGE) else None,
                 "billing_portal": f"{base}/billing-portal" if caller.can(access.BILLING_MANAGE) else None,
                 "billing_interval": f"{base}/billing-interval" if caller.can(access.BILLING_MANAGE) else None,
                 "cancellation": f"{base}/cancellation" if caller.can(access.OWNER) else None}
        out.update({
            "owner": {"name": subscription.owner_name, "email": subscription.owner_email},
            "current_period_end": _at(subscription.current_period_end),
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "billing_interval": subscription.billing_interval or None,
            "scheduled_interval": {"interval": subscription.scheduled_interval,
                                   "at": _at(subscription.scheduled_interval_at)}
            if subscription.scheduled_interval else None,
            "grace_until": _at(subscription.grace_ends_at(grace_days)),
            "links": {name: link for name, link in links.items() if link},
        })
    return out


def delegate_json(delegate: Delegate) -> dict[str, Any]:
    return {"email": delegate.email, "name": delegate.name, "kind": "delegate", "state": "active",
            "permissions": ordered(delegate.permissions), "added_at": _at(delegate.added_at),
            "added_by": delegate.added_by}


def invitation_json(invitation: Invitation, link: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "email": invitation.email, "kind": invitation.kind,
        "state": "expired" if invitation.expired() else "pending",
        "permissions": ordered(invitation.permissions), "invited_at": _at(invitation.created_at),
        "expires_at": _at(invitation.expires_at),
        "invited_by": invitation.invited_by.email or invitation.invited_by.name,
    }
    if invitation.kind == OWNER_OFFER:
        out.update(former_owner=invitation.former_owner, billing_email_follows=invitation.billing_email_follows)
    if link is not None:
        out["link"] = link
    return out


# --- bodies -----------------------------------------------------------------------------------------


def _body(req: func.HttpRequest) -> dict[str, Any]:
    return json_object(req.get_body(), "send a JSON object")


def one_address(value: object, field: str = "email") -> str:
    """Exactly one valid e-mail address (normalised), else InvalidBody naming `field`."""
    if not isinstance(value, str):
        raise InvalidBody("invalid_email", f'send "{field}": one e-mail address', field=field)
    try:
        parsed = parse_addresses([value])
    except AddressListError:
        parsed = AddressList()
    if parsed.invalid or len(parsed.valid) != 1:
        raise InvalidBody("invalid_email", f"{field}: {value.strip()!r} is not one valid e-mail address", field=field)
    return parsed.valid[0]


def _permissions(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidBody("invalid_permissions", f'send "permissions": a list of {", ".join(DELEGABLE)}',
                          field="permissions")
    try:
        return parse_permissions(value)
    except InvalidPermissions as exc:
        raise InvalidBody("invalid_permissions", str(exc), field="permissions", unknown=exc.unknown) from None


# --- the caller's subscriptions -------------------------------------------------------------------------


@bp.route(route="v1/subscriptions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@_signed_in
def api_my_subscriptions(req: func.HttpRequest, person: Person) -> func.HttpResponse:
    """What the caller owns or administers, with what they hold on each, and their own licenses."""
    storage = bootstrap.storage()
    grace_days = bootstrap.settings().grace_days
    administered = []
    for subscription, _ in subscription_store.for_user(storage, person.tid, person.oid):
        caller = access.caller_on(storage, subscription, person)  # the partition decides, not the lookup row
        if caller.permissions:
            administered.append(subscription_json(subscription, caller))
    licenses = [
        {"subscription_id": sub.id, "kind": sub.kind, "state": sub.license_state(grace_days).value,
         "valid": sub.license_state(grace_days).valid, "expires_at": _at(sub.license_expires_at(grace_days))}
        for sub in subscription_store.licensed(storage, person.tid, person.oid, person.email)
    ]
    return json_response({"subscriptions": administered, "licenses": licenses})


@bp.route(route="v1/subscriptions/{subscription_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.SUBSCRIPTION_READ)
def api_subscription(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    return json_response(subscription_json(subscription, caller, detail=True))


# --- delegates (the owner's) --------------------------------------------------------------------------


@bp.route(route="v1/subscriptions/{subscription_id}/delegates", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_list_delegates(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                       ) -> func.HttpResponse:
    roster = delegation.roster(bootstrap.unit_of_work(), subscription.id)
    return json_response({"delegates": [delegate_json(d) for d in roster.delegates]
                          + [invitation_json(i) for i in roster.invitations]})


@bp.route(route="v1/subscriptions/{subscription_id}/delegates", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_invite_delegate(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                        ) -> func.HttpResponse:
    payload = _body(req)
    email = one_address(payload.get("email"))
    permissions = _permissions(payload.get("permissions"))
    issued = delegation.invite(bootstrap.unit_of_work(), bootstrap.settings(), actor(caller), subscription.id,
                               email, permissions)
    return json_response(invitation_json(issued.invitation, issued.link), status=201)


@bp.route(route="v1/subscriptions/{subscription_id}/delegates/{email}", methods=["PATCH"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_change_delegate(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                        ) -> func.HttpResponse:
    permissions = _permissions(_body(req).get("permissions"))
    changed = delegation.change_permissions(bootstrap.unit_of_work(), actor(caller), subscription.id,
                                            inputs.path_address(req.route_params.get("email")), permissions)
    return json_response(delegate_json(changed) if isinstance(changed, Delegate) else invitation_json(changed))


@bp.route(route="v1/subscriptions/{subscription_id}/delegates/{email}", methods=["DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_remove_delegate(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                        ) -> func.HttpResponse:
    """Remove a delegate (refused from their next request on) or revoke their pending invitation."""
    email = inputs.path_address(req.route_params.get("email"))
    delegation.remove(bootstrap.unit_of_work(), actor(caller), subscription.id, email)
    return json_response({"removed": email})


@bp.route(route="v1/subscriptions/{subscription_id}/delegates/{email}/resend", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_resend_invitation(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                          ) -> func.HttpResponse:
    """A new link for a pending invitation; the old one stops working at once."""
    issued = delegation.resend(bootstrap.unit_of_work(), bootstrap.settings(), actor(caller), subscription.id,
                               inputs.path_address(req.route_params.get("email")))
    return json_response(invitation_json(issued.invitation, issued.link))


# --- ownership ---------------------------------------------------------------------------------------------


@bp.route(route="v1/subscriptions/{subscription_id}/owner-transfer", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_offer_ownership(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                        ) -> func.HttpResponse:
    """Offer ownership to a person; it changes when they accept. A newer offer replaces an older one."""
    payload = _body(req)
    email = one_address(payload.get("email"))
    former_owner = payload.get("former_owner")
    if former_owner not in FORMER_OWNER_CHOICES:
        raise InvalidBody("invalid_former_owner", 'former_owner: "delegate" (you stay, with every delegable '
                          'permission) or "leave"', field="former_owner")
    follows = payload.get("billing_email_follows", False)
    if not isinstance(follows, bool):
        raise InvalidBody("invalid_billing_email_follows", "billing_email_follows: true or false",
                          field="billing_email_follows")
    issued = delegation.offer_ownership(bootstrap.unit_of_work(), bootstrap.settings(), actor(caller),
                                        subscription.id, email, "leave" if former_owner == "leave" else "delegate",
                                        follows)
    return json_response(invitation_json(issued.invitation, issued.link), status=201)


@bp.route(route="v1/subscriptions/{subscription_id}/owner-transfer", methods=["DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=refusal)
def api_withdraw_ownership_offer(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                                 ) -> func.HttpResponse:
    uow = bootstrap.unit_of_work()
    offer = next((i for i in delegation.roster(uow, subscription.id).invitations if i.kind == OWNER_OFFER), None)
    if offer is None:
        return error(404, "no_ownership_offer", "there is no pending ownership offer")
    delegation.revoke_invitation(uow, actor(caller), subscription.id, offer.email, OWNER_OFFER)
    return json_response({"withdrawn": offer.email})


# --- accepting -----------------------------------------------------------------------------------------


def acceptor(person: Person) -> Acceptor:
    """Who accepts: the signed-in person and every sign-in name their token carried."""
    return Acceptor(person.tid, person.oid, person.name, person.email,
                    frozenset(person.sign_in_names) | ({person.email} if person.email else set()))


@bp.route(route="v1/invitations/accept", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@_signed_in
def api_accept_invitation(req: func.HttpRequest, person: Person) -> func.HttpResponse:
    """Accept an invitation (or an ownership offer) as the caller: the same rules as the page."""
    token = _body(req).get("token")
    if not isinstance(token, str):
        raise InvalidBody("invalid_body", 'send {"token": "<the token at the end of the invitation link>"}',
                          field="token")
    accepted = delegation.accept(bootstrap.unit_of_work(), token.strip(), acceptor(person), bootstrap.stripe())
    caller = access.caller_on(bootstrap.storage(), accepted.subscription, person)
    return json_response({"accepted": accepted.kind, "subscription": subscription_json(accepted.subscription, caller,
                                                                                         detail=True)})
