"""The license list's row actions on the dashboard (PRODUCT.md capability 3; issue 15, defect 3):
revoke and reassign, each confirmed before anything changes, and the undo of a revoke.

On the license page each row's button opens a small dialog (a native <dialog>, opened by the script
served below) holding the action's form. Without JavaScript the same button is a link to a
confirmation page (GET, no side effects) with the same form. A revoke posted without the
confirmation's `confirmed=yes` (an old page, a crafted form) changes nothing and shows that page:
there is no one-click revoke. After a revoke the page offers "Undo" for a few minutes
(services/seat_revocation.py). The JSON API has each action too (handlers/licenses_api.py).

Thin: the gate (`handlers/gate.py`) checks the session, the subscription, the route's permission
and the form's CSRF token; the view parses the form, calls the seat services and renders or redirects.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import azure.functions as func

from handlers import gate, inputs
from handlers.blueprint import new_blueprint
from handlers.responses import SECURITY_HEADERS
from handlers.seat_changes import InvalidRequestId, context, request_id
from handlers.web import WebRequest
from services import access, bootstrap, seat_revocation
from services.address_list import AddressList, AddressListError, parse_addresses
from services.i18n import translator
from services.seat_change import AlreadyAssigned, NotAssigned, SeatTaken, SubscriptionEnded, UndoExpired
from services.subscription import Subscription

bp = new_blueprint()

REVOKE, REASSIGN = "revoke", "reassign"


def _licenses_url(subscription_id: str) -> str:
    return f"/api/subscriptions/{subscription_id}/licenses"


def _confirmation(web: WebRequest, subscription: Subscription, action: str, raw_email: str | None,
                  status: int = 200, **extra: Any) -> func.HttpResponse:
    """The confirmation page of `action` for the seat of `raw_email`: 400 naming the field when it is
    no address, 404 when it holds no license here."""
    t = translator(web.language)
    try:
        email = inputs.named_address(raw_email)
    except inputs.InvalidInput:
        return web.error_page(400, t("licenses.error.bad_link_title"), t("licenses.error.email_field"))
    if not seat_revocation.holds_license(bootstrap.unit_of_work(), subscription.id, email):
        return web.error_page(404, t("error.not_found.title"), t("licenses.error.not_assigned", email=email))
    return web.render("license_action.html", status=status, subscription=subscription, action=action, email=email,
                      request_id=uuid.uuid4().hex, undo_minutes=seat_revocation.UNDO_MINUTES,
                      here=f"{_licenses_url(subscription.id)}/{action}?email={quote(email, safe='@')}".lstrip("/"),
                      **{"to": "", "form_error": "", **extra})


@bp.route(route="subscriptions/{subscription_id}/licenses/revoke", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_ASSIGN, not_found="licenses.not_found")
def revoke_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The revoke's confirmation without JavaScript (the dialog's form as a page)."""
    return _confirmation(web, subscription, REVOKE, web.req.params.get("email"))


@bp.route(route="subscriptions/{subscription_id}/licenses/revoke", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_ASSIGN, form=True, not_found="licenses.not_found")
def revoke_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    raw = form.get("email", "")
    try:
        email = inputs.named_address(raw)
        if form.get("confirmed") != "yes":
            # No one-click revoke: without the confirmation nothing changes; the person is asked first.
            return _confirmation(web, subscription, REVOKE, email)
        seat_revocation.revoke(context(caller), subscription.id, email)
        web.flash("success", t("licenses.flash.revoked", email=email, minutes=seat_revocation.UNDO_MINUTES))
    except (NotAssigned, inputs.InvalidInput):
        web.flash("error", t("licenses.error.not_assigned", email=raw.strip().lower()[:300]))
    return web.redirect(_licenses_url(subscription.id))


@bp.route(route="subscriptions/{subscription_id}/licenses/reassign", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_ASSIGN, not_found="licenses.not_found")
def reassign_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The reassignment's form without JavaScript (the dialog's form as a page)."""
    return _confirmation(web, subscription, REASSIGN, web.req.params.get("email"))


@bp.route(route="subscriptions/{subscription_id}/licenses/reassign", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_ASSIGN, form=True, not_found="licenses.not_found")
def reassign_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    raw, to = form.get("email", ""), form.get("to", "")
    try:
        reassignment_id = request_id(form.get("request_id"), "request_id")
    except InvalidRequestId:
        web.flash("error", t("licenses.error.invalid_request_id"))
        return web.redirect(_licenses_url(subscription.id))
    try:
        target = parse_addresses([to])
    except AddressListError:
        target = AddressList()
    if target.invalid or len(target.valid) != 1:
        # Shown where it can be corrected: the form again, the field named, nothing changed.
        return _confirmation(web, subscription, REASSIGN, raw, 400, to=to[:300],
                             form_error=t("licenses.error.invalid_target", email=to[:300]))
    try:
        email = inputs.named_address(raw)
        seat_revocation.reassign(context(caller), subscription.id, email, target.valid[0], reassignment_id)
        web.flash("success", t("licenses.flash.reassigned", email=email, to=target.valid[0]))
    except (NotAssigned, inputs.InvalidInput):
        web.flash("error", t("licenses.error.not_assigned", email=raw.strip().lower()[:300]))
    except AlreadyAssigned:
        return _confirmation(web, subscription, REASSIGN, raw, 409, to=to[:300],
                             form_error=t("licenses.error.already_assigned", email=target.valid[0]))
    return web.redirect(_licenses_url(subscription.id))


@bp.route(route="subscriptions/{subscription_id}/licenses/restore", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_ASSIGN, form=True, not_found="licenses.not_found")
def restore_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Undo a revoke of the last minutes: the same address assigned again through the usual rules."""
    t = translator(web.language)
    form = web.form()
    try:
        email = inputs.named_address(form.get("email"))
        restore_id = request_id(form.get("request_id"), "request_id")
    except inputs.InvalidInput as exc:
        return web.error_page(400, t("licenses.error.bad_link_title"),
                              t("licenses.error.invalid_request_id") if isinstance(exc, InvalidRequestId)
                              else t("licenses.error.email_field"))
    minutes = seat_revocation.UNDO_MINUTES
    try:
        seat_revocation.undo_revoke(context(caller), subscription.id, email, restore_id)
        web.flash("success", t("licenses.flash.restored", email=email))
    except SeatTaken:
        web.flash("error", t("licenses.error.seat_taken", email=email))
    except UndoExpired:
        web.flash("error", t("licenses.error.undo_expired", email=email, minutes=minutes))
    except AlreadyAssigned:
        web.flash("info", t("licenses.error.already_assigned", email=email))
    except SubscriptionEnded:
        web.flash("error", t("licenses.error.subscription_ended"))
    return web.redirect(_licenses_url(subscription.id))


# --- the dialogs' script -----------------------------------------------------------------------------

# The page's Content-Security-Policy allows scripts from our own origin only (no inline script). Without
# JavaScript (or without <dialog>) the row actions stay links to their confirmation pages. With it,
# each becomes a button that fills in the row's address and opens the action's dialog: the focus moves
# into it (the `autofocus` element), Escape or Cancel closes it, and the focus returns to the button.
DIALOG_SCRIPT = """\
"use strict";
(function () {
  var opener = null;
  document.querySelectorAll("a[data-dialog]").forEach(function (link) {
    var dialog = document.getElementById(link.getAttribute("data-dialog"));
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    var button = document.createElement("button");
    button.type = "button";
    button.className = link.className;
    button.textContent = link.textContent;
    button.setAttribute("aria-label", link.getAttribute("aria-label") || link.textContent);
    button.setAttribute("aria-haspopup", "dialog");
    button.addEventListener("click", function () {
      var email = link.getAttribute("data-email") || "";
      dialog.querySelectorAll("[data-email-slot]").forEach(function (slot) { slot.textContent = email; });
      dialog.querySelectorAll("input[name=email]").forEach(function (field) { field.value = email; });
      var requestId = dialog.querySelector("input[name=request_id]");
      if (requestId) { requestId.value = link.getAttribute("data-request-id") || ""; }
      var to = dialog.querySelector("input[name=to]");
      if (to) { to.value = ""; }
      opener = button;
      dialog.showModal();
    });
    link.replaceWith(button);
  });
  document.querySelectorAll("dialog.license-action").forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      if (opener) { opener.focus(); opener = null; }
    });
  });
})();
"""


@bp.route(route="assets/license-dialogs.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def license_dialogs_script(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(DIALOG_SCRIPT, status_code=200, mimetype="text/javascript", charset="utf-8",
                             headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"})
