"""Licenses (seats) on the dashboard (PRODUCT.md capability 3): the list, the assign form, the CSV
export. Revoke, reassign and undo (the row actions, their dialogs and confirmation pages) are in
handlers/license_actions_pages.py.

Thin: the gate (`handlers/gate.py`) checks the session, the subscription, the route's permission
and the form's CSRF token; the view parses the form, calls the seat services and renders or redirects.
"""

from __future__ import annotations

import uuid
from typing import Any

import azure.functions as func

from handlers import assignment_jobs, gate, inputs
from handlers.blueprint import new_blueprint
from handlers.paging import PAGE_SIZE
from handlers.responses import csv_response
from handlers.seat_changes import InvalidRequestId, context, request_id
from handlers.web import WebRequest, refusal_text
from services import access, assignment_job, bootstrap, seat_assignment, seat_listing, seat_revocation
from services.address_list import (
    MAX_ADDRESS_LENGTH,
    MAX_ADDRESSES,
    AddressListError,
    combine,
    parse_addresses,
    parse_csv,
)
from services.assignment_limits import DomainsNeedConfirmation, check_domains
from services.i18n import translator
from services.seat import STATUSES
from services.seat_change import NoSeatsFree
from services.subscription import Subscription
from services.unit_of_work import Refused

bp = new_blueprint()


def _licenses_url(subscription_id: str) -> str:
    return f"/api/subscriptions/{subscription_id}/licenses"


def _render_licenses(
    web: WebRequest, caller: access.Caller, subscription: Subscription, status_code: int = 200, **extra: Any
) -> func.HttpResponse:
    status = web.req.params.get("status") or ""
    continuation = web.req.params.get("continuation") or None
    if status not in STATUSES:
        status = ""
    try:
        search = inputs.search(web.req.params.get("q"))
    except inputs.InvalidInput:
        search, status_code = "", 400
        extra["search_error"] = translator(web.language)("licenses.error.search", max=MAX_ADDRESS_LENGTH)
    try:
        continuation = inputs.continuation(continuation)
    except inputs.InvalidInput:
        continuation = None
    try:
        page = seat_listing.list_seats(bootstrap.storage(), subscription, web.settings.grace_days,
                                       status=status or None, search=search, continuation=continuation,
                                       limit=PAGE_SIZE)
    except ValueError:
        page = seat_listing.list_seats(bootstrap.storage(), subscription, web.settings.grace_days,
                                       status=status or None, search=search, limit=PAGE_SIZE)
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
        can_assign=caller.can(access.LICENSES_ASSIGN),
        # Revokes of the last minutes, with their undo (services/seat_revocation.py).
        revocations=seat_revocation.recent_revocations(bootstrap.unit_of_work(), subscription.id)
        if caller.can(access.LICENSES_ASSIGN) else [],
        undo_minutes=seat_revocation.UNDO_MINUTES,
        # Bulk assignments still running, with their progress bars (services/assignment_job.py).
        jobs=[assignment_jobs.job_view(p, subscription.id, web.language)
              for p in assignment_job.running(bootstrap.unit_of_work(), subscription.id)],
        can_view=caller.can(access.SUBSCRIPTION_VIEW),
        can_quantity=caller.can(access.QUANTITY_MANAGE) and subscription.kind == "organisation",
        request_id=uuid.uuid4().hex,
        max_addresses=MAX_ADDRESSES,
        **extra,
    )


@bp.route(route="subscriptions/{subscription_id}/licenses", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_READ, not_found="licenses.not_found")
def licenses_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    return _render_licenses(web, caller, subscription)


@bp.route(route="subscriptions/{subscription_id}/licenses", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_ASSIGN, form=True, not_found="licenses.not_found")
def assign_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    pasted = form.get("emails", "")
    try:
        assignment_id = request_id(form.get("request_id"), "request_id")
    except InvalidRequestId:
        return _render_licenses(web, caller, subscription, 400, form_error=t("licenses.error.invalid_request_id"),
                                pasted=pasted)
    upload = web.files().get("file")
    try:
        # Both a pasted list and a file: both are used, each address once.
        uploaded = parse_csv(upload[1]) if upload and (upload[0] or upload[1]) else None
        typed = parse_addresses(pasted) if pasted.strip() or uploaded is None else None
        addresses = combine(*(part for part in (typed, uploaded) if part is not None))
    except AddressListError as exc:
        return _render_licenses(web, caller, subscription, 400, form_error=t(f"licenses.error.{exc.code}"),
                                pasted=pasted)
    if addresses.invalid:
        shown = addresses.invalid[:200]
        return _render_licenses(web, caller, subscription, 400, form_error=t("licenses.error.invalid_addresses"),
                                invalid=shown, pasted=pasted,
                                invalid_reasons={a: t(f"address.problem.{addresses.problems[a]}") for a in shown})
    ctx = context(caller)
    try:
        check_domains(ctx.uow, subscription, addresses.valid, confirmed=form.get("confirm_domains") == "true")
    except DomainsNeedConfirmation as exc:
        return _render_licenses(web, caller, subscription, 409, pasted=pasted, unconfirmed_domains=exc.domains,
                                form_error=t("licenses.error.confirm_domains", count=len(exc.domains)))
    try:
        outcome = seat_assignment.assign(ctx, subscription.id, addresses.valid, assignment_id,
                                         addresses.duplicates)
    except NoSeatsFree as exc:
        # Where the need arises: add the missing licenses (or who can), instead of buying a second subscription.
        return _render_licenses(web, caller, subscription, 409, form_error=t("licenses.error.no_seats_free",
                                count=exc.needed, free=exc.free), pasted=pasted, missing=exc.needed - exc.free)
    except Refused as exc:
        return _render_licenses(web, caller, subscription, exc.status, pasted=pasted,
                                form_error=refusal_text(web.language, exc, f"licenses.error.{exc.code}"))
    if outcome.job is not None and outcome.background:
        # A big list runs as a job (services/assignment_job.py): its page shows how far it got.
        web.flash("success", t("jobs.flash.started", total=assignment_jobs.shown_count(outcome.job.new, web.language)))
        if outcome.duplicates:
            web.flash("info", t("licenses.flash.duplicates", emails=", ".join(outcome.duplicates[:50])))
        return web.redirect(assignment_jobs.job_page_url(subscription.id, outcome.job.id))
    if outcome.assigned and typed is not None and uploaded is not None and upload is not None:
        web.flash("success", t("licenses.flash.assigned_combined", count=len(outcome.assigned),
                               pasted=len(typed.valid), uploaded=len(uploaded.valid), file=upload[0][:100]))
    elif outcome.assigned:
        web.flash("success", t("licenses.flash.assigned", count=len(outcome.assigned)))
    if outcome.already_assigned:
        web.flash("info", t("licenses.flash.already", emails=", ".join(outcome.already_assigned[:50])))
    if outcome.duplicates:
        web.flash("info", t("licenses.flash.duplicates", emails=", ".join(outcome.duplicates[:50])))
    return web.redirect(_licenses_url(subscription.id))


@bp.route(route="subscriptions/{subscription_id}/licenses/export.csv", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_READ, not_found="licenses.not_found")
def licenses_export(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The license list as CSV for the page's language: German Excel splits columns at ";" and needs the
    byte order mark to read UTF-8; in English "," without one (the JSON API's export keeps its format)."""
    status = web.req.params.get("status") or None
    status = status if status in STATUSES else None
    german = web.language == "de"
    text = seat_listing.export_csv(bootstrap.storage(), subscription, web.settings.grace_days, status,
                                   delimiter=";" if german else ",")
    return csv_response(text, f"licenses-{subscription.id}.csv", bom=german)
