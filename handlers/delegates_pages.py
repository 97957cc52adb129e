"""Delegated administrators on the dashboard (PRODUCT.md capability 4): the owner's forms to invite,
change permissions, resend, revoke or remove, and to offer ownership. The list and the forms are part
of the subscription page (handlers/subscriptions.py renders it).

Thin: the gate (`handlers/gate.py`) checks the session, the subscription, that the caller is its
owner, and the form's CSRF token; the view parses the form, calls services/delegation.py and renders
or redirects. After an invitation or a resend the page is rendered in the answer itself, with the new
link shown once to the owner (for when the mail lands in a junk folder): the link is never stored.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from handlers import gate, inputs
from handlers.blueprint import new_blueprint
from handlers.responses import SECURITY_HEADERS
from handlers.seat_changes import actor
from handlers.subscriptions import render_subscription
from handlers.web import WebRequest, refusal_text
from services import access, bootstrap, delegation
from services.address_list import AddressList, AddressListError, parse_addresses
from services.delegate import (
    DELEGABLE,
    DELEGATE,
    OWNER_OFFER,
    InvalidPermissions,
    InvitationKind,
    parse_permissions,
)
from services.i18n import translator
from services.seat import normalise_address
from services.subscription import Subscription
from services.unit_of_work import Refused

bp = new_blueprint()

# A checkbox per permission: `perm_licenses.assign=on` (the form parser keeps one value per name).
PERMISSION_FIELD = "perm_"
# Invitations and permission changes the page offers preselected: IT staff assign and view.
DEFAULT_PERMISSIONS = ("licenses.assign", "subscription.view")


def _section(subscription_id: str) -> str:
    return f"/api/subscriptions/{subscription_id}#delegates"


def _here(subscription: Subscription) -> str:
    return f"api/subscriptions/{subscription.id}"


def _one_address(raw: str) -> str | None:
    try:
        parsed = parse_addresses([raw])
    except AddressListError:
        parsed = AddressList()
    return parsed.valid[0] if len(parsed.valid) == 1 and not parsed.invalid else None


def _chosen(form: dict[str, str]) -> list[str]:
    return [p for p in DELEGABLE if form.get(PERMISSION_FIELD + p)]


def _named(form: dict[str, str]) -> str:
    """The address a form names a delegate or invitation by; one that cannot name any (too long, not
    printable ASCII) becomes a short text the rules answer `not_a_delegate` for, never a storage key."""
    raw = form.get("email", "")
    try:
        return inputs.named_address(raw)
    except inputs.InvalidInput:
        return normalise_address(raw)[:60] + " (?)"


def _refusal_text(web: WebRequest, exc: Refused, email: str) -> str:
    """The rules' refusal in the page's language (handlers/web.refusal_text)."""
    return refusal_text(web.language, exc, f"delegates.error.{exc.code}", email=email)


def _shown_link(issued: delegation.Issued) -> dict[str, Any]:
    return {"email": issued.invitation.email, "kind": issued.invitation.kind, "link": issued.link,
            "expires": issued.invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")}


def _render(web: WebRequest, caller: access.Caller, subscription: Subscription, status: int = 200,
            **extra: Any) -> func.HttpResponse:
    return render_subscription(web, caller, subscription, status, here=_here(subscription), **extra)


# --- inviting ------------------------------------------------------------------------------------------


@bp.route(route="subscriptions/{subscription_id}/delegates", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def invite_delegate_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    raw = form.get("email", "").strip()
    chosen = _chosen(form)
    entered = {"invite_email": raw, "invite_permissions": chosen}
    email = _one_address(raw)
    if email is None:
        return _render(web, caller, subscription, 400, invite_error=t("delegates.error.invalid_email", email=raw),
                       **entered)
    try:
        permissions = parse_permissions(chosen)
    except InvalidPermissions:
        return _render(web, caller, subscription, 400, invite_error=t("delegates.error.no_permissions"), **entered)
    try:
        issued = delegation.invite(bootstrap.unit_of_work(), web.settings, actor(caller), subscription.id, email,
                                   permissions)
    except Refused as exc:
        return _render(web, caller, subscription, exc.status, invite_error=_refusal_text(web, exc, email), **entered)
    web.flash("success", t("delegates.flash.invited", email=email))
    return _render(web, caller, subscription, shown_link=_shown_link(issued))


@bp.route(route="subscriptions/{subscription_id}/delegates/resend", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def resend_invitation_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    email = _named(form)
    kind: InvitationKind = OWNER_OFFER if form.get("kind") == OWNER_OFFER else DELEGATE
    try:
        issued = delegation.resend(bootstrap.unit_of_work(), web.settings, actor(caller), subscription.id, email, kind)
    except Refused as exc:
        web.flash("error", _refusal_text(web, exc, email))
        return web.redirect(_section(subscription.id))
    web.flash("success", t("delegates.flash.resent", email=email))
    return _render(web, caller, subscription, shown_link=_shown_link(issued))


# --- managing --------------------------------------------------------------------------------------------


@bp.route(route="subscriptions/{subscription_id}/delegates/permissions", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def delegate_permissions_form(web: WebRequest, caller: access.Caller, subscription: Subscription
                              ) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    email = _named(form)
    try:
        permissions = parse_permissions(_chosen(form))
    except InvalidPermissions:
        web.flash("error", t("delegates.error.no_permissions_change", email=email))
        return web.redirect(_section(subscription.id))
    try:
        delegation.change_permissions(bootstrap.unit_of_work(), actor(caller), subscription.id, email, permissions)
    except Refused as exc:
        web.flash("error", _refusal_text(web, exc, email))
        return web.redirect(_section(subscription.id))
    web.flash("success", t("delegates.flash.permissions_changed", email=email))
    return web.redirect(_section(subscription.id))


@bp.route(route="subscriptions/{subscription_id}/delegates/remove", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def remove_delegate_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Remove a delegate, or revoke a pending invitation (the same button, worded for each)."""
    t = translator(web.language)
    email = _named(web.form())
    try:
        delegation.remove(bootstrap.unit_of_work(), actor(caller), subscription.id, email)
    except Refused as exc:
        web.flash("error", _refusal_text(web, exc, email))
        return web.redirect(_section(subscription.id))
    web.flash("success", t("delegates.flash.removed", email=email))
    return web.redirect(_section(subscription.id))


# --- ownership --------------------------------------------------------------------------------------------


@bp.route(route="subscriptions/{subscription_id}/owner-transfer", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def owner_transfer_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    raw = form.get("email", "").strip()
    former_owner = "leave" if form.get("former_owner") == "leave" else "delegate"
    follows = bool(form.get("billing_email_follows"))
    entered = {"transfer_email": raw, "transfer_former_owner": former_owner, "transfer_billing_follows": follows}
    email = _one_address(raw)
    if email is None:
        return _render(web, caller, subscription, 400, transfer_error=t("delegates.error.invalid_email", email=raw),
                       **entered)
    try:
        issued = delegation.offer_ownership(bootstrap.unit_of_work(), web.settings, actor(caller), subscription.id,
                                            email, "leave" if former_owner == "leave" else "delegate", follows)
    except Refused as exc:
        return _render(web, caller, subscription, exc.status, transfer_error=_refusal_text(web, exc, email),
                       **entered)
    web.flash("success", t("delegates.flash.offered", email=email))
    return _render(web, caller, subscription, shown_link=_shown_link(issued))


@bp.route(route="subscriptions/{subscription_id}/owner-transfer/withdraw", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def withdraw_owner_offer_form(web: WebRequest, caller: access.Caller, subscription: Subscription
                              ) -> func.HttpResponse:
    t = translator(web.language)
    uow = bootstrap.unit_of_work()
    offer = next((i for i in delegation.roster(uow, subscription.id).invitations if i.kind == OWNER_OFFER), None)
    if offer is not None:
        try:
            delegation.revoke_invitation(uow, actor(caller), subscription.id, offer.email, OWNER_OFFER)
        except Refused:
            offer = None  # withdrawn or accepted meanwhile
    if offer is None:
        web.flash("info", t("delegates.flash.no_offer"))
    else:
        web.flash("success", t("delegates.flash.withdrawn", email=offer.email))
    return web.redirect(_section(subscription.id))


# --- the copy button ---------------------------------------------------------------------------------------

# The page's Content-Security-Policy allows scripts from our own origin only (no inline script): the
# copy button's few lines are served here. Without JavaScript the button stays hidden and the link
# can still be selected and copied from its read-only field.
COPY_SCRIPT = """\
"use strict";
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById(button.getAttribute("data-copy") + "-status");
  if (!field) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var copied = function () { if (status) { status.textContent = button.getAttribute("data-copied") || ""; } };
    var fallback = function () { field.select(); document.execCommand("copy"); copied(); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(copied, fallback);
    } else {
      fallback();
    }
  });
});
"""


@bp.route(route="assets/copy-link.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def copy_link_script(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(COPY_SCRIPT, status_code=200, mimetype="text/javascript", charset="utf-8",
                             headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"})
