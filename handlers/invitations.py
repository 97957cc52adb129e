"""The invitation link (PRODUCT.md capability 4, section 3): a confirmation page and the accept button.

`GET invitations/{token}` shows who invited whom to which subscription with which permissions (or
the ownership offer) and changes nothing: mail scanners open links. `POST` accepts, as the person
signed in to the dashboard (sign-in first, then back to the same invitation), after the CSRF check.
An unusable or mismatched link gets a page saying what happened and what to do, in the customer
guide's words. Not under `subscriptions/...`, so not behind the gate: the token names the
subscription, and the rules in services/delegation.py decide.

Both answers send `Referrer-Policy: no-referrer` (the token is in the address) and are not cached.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import azure.functions as func

from adapters.table_storage import ConcurrencyConflict, StorageUnavailable
from handlers.blueprint import new_blueprint
from handlers.delegates_api import acceptor
from handlers.responses import STORAGE_RETRY_AFTER_SECONDS, when_configured
from handlers.web import WebRequest, csrf_refused
from services import bootstrap, delegation
from services.csrf import CsrfRejected
from services.delegate import OWNER_OFFER, ordered, plausible_token
from services.i18n import translator
from services.seat import same_tenant
from services.unit_of_work import Refused

log = logging.getLogger(__name__)
bp = new_blueprint()

# The refusals the page explains; anything else reads like an unusable link.
PROBLEMS = ("invitation_invalid", "invitation_expired", "wrong_account", "wrong_tenant", "is_owner")
# While the invitation itself is still good, signing in with the right account fixes these.
FIXED_BY_SIGNING_IN = ("wrong_account", "wrong_tenant")


def _private(response: func.HttpResponse) -> func.HttpResponse:
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(web: WebRequest, token: str | None, view: delegation.InvitationView | None, status: int = 200,
          problem: str | None = None) -> func.HttpResponse:
    """The invitation page: the offer (when `view` names one) and/or what went wrong."""
    context: dict[str, Any] = {"problem": (problem if problem in PROBLEMS else "invitation_invalid") if problem
                               else None}
    if view is not None and token is not None:
        invitation, subscription = view.invitation, view.subscription
        person = web.person
        back = f"/api/invitations/{token}"
        context.update(
            token=token,
            invitation=invitation,
            subscription=subscription,
            inviter=invitation.invited_by.name or invitation.invited_by.email or subscription.owner_name,
            organisation=subscription.owner_name or subscription.owner_email,
            permissions=ordered(invitation.permissions),
            expires=invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
            is_offer=invitation.kind == OWNER_OFFER,
            signin_url=f"/api/signin?next={quote(back, safe='')}&login_hint={quote(invitation.email, safe='')}",
            matches=person is not None and acceptor(person).is_address(invitation.email)
            and same_tenant(person.tid, subscription.tenant_id),
            may_accept=problem is None or problem in FIXED_BY_SIGNING_IN,
        )
    return _private(web.render("invitation.html", status=status, **context))


@bp.route(route="invitations/{token}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def invitation_page(req: func.HttpRequest) -> func.HttpResponse:
    """The confirmation page; reads only (a GET never accepts, whoever opens it)."""
    web = WebRequest.of(req)
    token = req.route_params.get("token", "")
    if not plausible_token(token):  # before any lookup: a tampered or truncated link
        return _page(web, None, None, 410, "invitation_invalid")
    try:
        view = delegation.describe(bootstrap.unit_of_work(), token)
    except Refused as exc:
        return _page(web, None, None, exc.status, exc.code)
    return _page(web, token, view)


@bp.route(route="invitations/{token}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def accept_invitation(req: func.HttpRequest) -> func.HttpResponse:
    """Accept as the signed-in person; then on to the subscription."""
    web = WebRequest.of(req)
    person = web.person
    if person is None:
        return _private(web.sign_in_redirect())  # back to this invitation's page afterwards
    try:
        web.check_csrf()
    except CsrfRejected as exc:
        return _private(csrf_refused(web, exc))
    token = req.route_params.get("token", "")
    if not plausible_token(token):
        return _page(web, None, None, 410, "invitation_invalid")
    t = translator(web.language)
    uow = bootstrap.unit_of_work()
    try:
        accepted = delegation.accept(uow, token, acceptor(person), bootstrap.stripe())
    except Refused as exc:
        log.info("invitation refused for tid=%s oid=%s: %s", person.tid, person.oid, exc.code)
        try:
            view: delegation.InvitationView | None = delegation.describe(uow, token)
        except Refused:
            view = None
        return _page(web, token, view, exc.status, exc.code)
    except (ConcurrencyConflict, StorageUnavailable) as exc:
        log.warning("accepting an invitation: %s", exc)
        busy = _private(web.error_page(503, t("invitation.busy.title"), t("invitation.busy.body")))
        busy.headers["Retry-After"] = "2" if isinstance(exc, ConcurrencyConflict) else str(STORAGE_RETRY_AFTER_SECONDS)
        return busy
    subscription = accepted.subscription
    organisation = subscription.owner_name or subscription.owner_email
    if accepted.kind == OWNER_OFFER:
        web.flash("success", t("invitation.flash.owner"))
    else:
        web.flash("success", t("invitation.flash.delegate", organisation=organisation))
    return _private(web.redirect(f"/api/subscriptions/{subscription.id}"))
