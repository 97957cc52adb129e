"""Quantity, invoices, the billing portal and cancellation on the dashboard (PRODUCT.md capability 5).

- `subscriptions/{id}/quantity` (owner or `quantity.manage`): choose the new number of licenses, see
  what it costs (a GET: previews change nothing), confirm. The confirmation form carries the preview's
  `proration_date` and a request id made when the preview was rendered, so a double click or a
  re-sent form changes Stripe once and charges what the preview showed.
- `subscriptions/{id}/billing` (owner or `billing.manage`): invoices, page by page, and the button to
  Stripe's billing portal (payment method, billing address, tax ids); the billing details and finance
  settings section comes from handlers/billing_settings_pages.py.
- `subscriptions/{id}/cancellation` (owner): cancel at the end of the period, with the date licenses
  stop; undo.

Thin: the gate checks the session, the subscription, the permission and the form's CSRF token; the
views call the services and render or redirect. Stripe's refusals and outages are explained on the
page (never a 500); nothing has changed when they are.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from handlers import billing_interval_pages, billing_settings_pages, gate
from handlers.billing_api import billing
from handlers.blueprint import new_blueprint
from handlers.seat_changes import InvalidRequestId, actor, request_id
from handlers.web import WebRequest
from handlers.web import refusal_text as web_refusal_text
from services import access, billing_account, cancellation, e_invoice_documents, quantity_change
from services.billing_changes import CardDeclined
from services.i18n import format_money, translator
from services.quantity_change import (
    BelowAssigned,
    InvalidQuantity,
    PreviewExpired,
    QuantityPreview,
    QuantityUnchanged,
)
from services.subscription import Subscription
from services.unit_of_work import Refused

log = logging.getLogger(__name__)
bp = new_blueprint()

INVOICES_PAGE = 10


def _subscription_url(subscription: Subscription) -> str:
    return f"/api/subscriptions/{subscription.id}"


def refusal_text(web: WebRequest, exc: Refused, caller: access.Caller | None = None) -> str:
    """A refusal in the page's language: what happened and what to do (handlers/web.refusal_text)."""
    values: dict[str, Any] = {}
    key = f"billing.error.{exc.code}"
    if isinstance(exc, BelowAssigned):
        values = {"assigned": exc.assigned, "count": exc.revoke}
    elif isinstance(exc, InvalidQuantity):
        values = {"max": exc.maximum}
    elif isinstance(exc, QuantityUnchanged):
        values = {"count": exc.quantity}
    elif isinstance(exc, CardDeclined):
        key += ".billing" if caller is not None and caller.can(access.BILLING_MANAGE) else ".ask_owner"
    return web_refusal_text(web.language, exc, key, **values)


def _unavailable(web: WebRequest, exc: StripeUnavailable) -> str:
    log.warning("Stripe unavailable: %s", exc)
    return str(translator(web.language)("billing.error.stripe_unavailable"))


# --- quantity ---------------------------------------------------------------------------------------------


def _preview_context(web: WebRequest, preview: QuantityPreview) -> dict[str, Any]:
    """The preview with amounts formatted in the page's language."""
    t = translator(web.language)

    def money(amount: int) -> str:
        return format_money(amount, preview.currency, web.language)

    lines = []
    for line in preview.lines:
        label = "quantity.line.credit" if line.amount < 0 else "quantity.line.charge"
        # A line Stripe gives no quantity for still reads as a plural: "… with ? licenses".
        text = t(label, count=line.quantity) if line.quantity is not None else t(f"{label}.other", count="?")
        lines.append({"text": text,
                      "period": (t("quantity.line.period", start=line.period_start.strftime("%Y-%m-%d"),
                                   end=line.period_end.strftime("%Y-%m-%d"))
                                 if line.period_start and line.period_end else ""),
                      "amount": money(line.amount), "cents": line.amount})
    return {
        "preview": preview,
        "lines": lines,
        "due_now": money(preview.due_now),
        "credit": money(preview.credit),
        "next_invoice": money(preview.next_invoice_total),
        "next_invoice_on": preview.next_invoice_on.strftime("%Y-%m-%d"),
        "unit_current": money(preview.unit_amount_current),
        "unit_new": money(preview.unit_amount_new),
        # The next invoice's price per license: another interval's when a switch is planned for then.
        "next_unit": money(preview.next_invoice_unit_amount),
        "interval": t(f"billing.interval.{preview.interval}"),
        # A new request id per rendered preview: confirming it twice (double click, reload) changes Stripe once.
        "request_id": uuid.uuid4().hex,
    }


def _render_quantity(web: WebRequest, caller: access.Caller, subscription: Subscription, status: int = 200,
                     **extra: Any) -> func.HttpResponse:
    return web.render("quantity.html", status=status, subscription=subscription,
                      max_quantity=web.settings.max_quantity, can_billing=caller.can(access.BILLING_MANAGE),
                      here=f"api/subscriptions/{subscription.id}/quantity", **extra)


def _with_preview(web: WebRequest, caller: access.Caller, subscription: Subscription, quantity: int,
                  status: int = 200, **extra: Any) -> func.HttpResponse:
    """The quantity page with the preview of `quantity`, or with why there is none."""
    try:
        preview = quantity_change.preview(billing(), subscription, quantity)
    except Refused as exc:
        return _render_quantity(web, caller, subscription, exc.status, entered=quantity,
                                error=refusal_text(web, exc, caller))
    except StripeUnavailable as exc:
        return _render_quantity(web, caller, subscription, 503, entered=quantity, error=_unavailable(web, exc))
    return _render_quantity(web, caller, subscription, status, entered=quantity, **_preview_context(web, preview),
                            **extra)


@bp.route(route="subscriptions/{subscription_id}/quantity", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.QUANTITY_MANAGE)
def quantity_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The form; with `?quantity=N` (or `?add=N` more) the preview of that number, ready to confirm."""
    t = translator(web.language)
    raw, add = web.req.params.get("quantity"), web.req.params.get("add")
    if not raw and not add:
        return _render_quantity(web, caller, subscription)
    try:
        if add:
            extra = quantity_change.parse_quantity(add, web.settings)
            quantity = quantity_change.parse_quantity(subscription.quantity + extra, web.settings)
        else:
            quantity = quantity_change.parse_quantity(raw, web.settings)
    except InvalidQuantity as exc:
        return _render_quantity(web, caller, subscription, 400, entered=raw or "",
                                error=t("billing.error.invalid_quantity", max=exc.maximum))
    return _with_preview(web, caller, subscription, quantity)


@bp.route(route="subscriptions/{subscription_id}/quantity", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.QUANTITY_MANAGE, form=True)
def quantity_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Confirm the previewed change."""
    t = translator(web.language)
    form = web.form()
    try:
        quantity = quantity_change.parse_quantity(form.get("quantity", ""), web.settings)
        key = request_id(form.get("request_id"), "request_id")
    except InvalidQuantity as exc:
        return _render_quantity(web, caller, subscription, 400, entered=form.get("quantity", ""),
                                error=t("billing.error.invalid_quantity", max=exc.maximum))
    except InvalidRequestId:
        key = None
    if key is None:
        # Not from a preview of ours: show the preview (with its own request id) to confirm.
        return _with_preview(web, caller, subscription, quantity, 400, error=t("quantity.error.no_preview"))
    raw_date = form.get("proration_date", "").strip()
    proration_date = int(raw_date) if raw_date.isdigit() else None
    try:
        changed = quantity_change.change(billing(), actor(caller), subscription, quantity, key, proration_date)
    except PreviewExpired:
        return _with_preview(web, caller, subscription, quantity, 409, notice=t("quantity.preview_renewed"))
    except Refused as exc:
        return _render_quantity(web, caller, subscription, exc.status, entered=quantity,
                                error=refusal_text(web, exc, caller))
    except StripeUnavailable as exc:
        # The same request id again: if the first attempt did reach Stripe, the retry changes nothing more.
        return _render_quantity(web, caller, subscription, 503, entered=quantity, error=_unavailable(web, exc),
                                retry={"quantity": quantity, "proration_date": raw_date, "request_id": key})
    message = t("quantity.flash.changed", count=changed.quantity)
    if changed.invoice is not None:
        message += " " + t("quantity.flash.charged", amount=format_money(
            changed.invoice.amount_due, changed.invoice.currency, web.language), number=changed.invoice.number or "")
    web.flash("success", message)
    return web.redirect(_subscription_url(subscription))


# --- invoices and the billing portal -------------------------------------------------------------------------


@bp.route(route="subscriptions/{subscription_id}/billing", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.BILLING_MANAGE)
def billing_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Invoices (newest first, page by page) and the way to change payment method and billing details."""
    cursor = web.req.params.get("starting_after") or None
    error = None
    invoices: list[dict[str, Any]] = []
    next_cursor = None
    try:
        page = billing_account.invoices(billing(), subscription, INVOICES_PAGE, cursor)
    except Refused as exc:
        error, status = refusal_text(web, exc, caller), exc.status
    except StripeUnavailable as exc:
        error, status = _unavailable(web, exc), 503
    else:
        status = 200
        next_cursor = page.next_cursor
        invoices = [{"invoice": invoice, "date": invoice.created.strftime("%Y-%m-%d"),
                     "amount": format_money(invoice.total, invoice.currency, web.language)}
                    for invoice in page.invoices]
    return web.render("billing.html", status=status, subscription=subscription, invoices=invoices,
                      next_cursor=next_cursor, paged=bool(cursor), error=error,
                      e_invoices=e_invoice_documents.available_profiles(web.settings),
                      **billing_settings_pages.section(web, subscription),
                      **billing_interval_pages.section(web, subscription))


@bp.route(route="subscriptions/{subscription_id}/billing/portal", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.BILLING_MANAGE, form=True)
def billing_portal_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """To Stripe's billing portal (it returns to the subscription page)."""
    try:
        url = billing_account.billing_portal(billing(), actor(caller), subscription, web.language)
    except Refused as exc:
        web.flash("error", refusal_text(web, exc, caller))
        return web.redirect(f"{_subscription_url(subscription)}/billing")
    except StripeUnavailable as exc:
        web.flash("error", _unavailable(web, exc))
        return web.redirect(f"{_subscription_url(subscription)}/billing")
    return web.redirect(url)


# --- cancellation (the owner's) -----------------------------------------------------------------------------


@bp.route(route="subscriptions/{subscription_id}/cancellation", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER)
def cancellation_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """What cancelling means, with the date licenses stop; or the undo when it is cancelled."""
    ends = subscription.current_period_end
    return web.render("cancellation.html", subscription=subscription,
                      ends_on=ends.strftime("%Y-%m-%d") if ends else None)


def _cancellation(web: WebRequest, caller: access.Caller, subscription: Subscription, cancel: bool
                  ) -> func.HttpResponse:
    t = translator(web.language)
    try:
        done = (cancellation.schedule if cancel else cancellation.undo)(billing(), actor(caller), subscription)
    except Refused as exc:
        web.flash("error", refusal_text(web, exc, caller))
        return web.redirect(f"{_subscription_url(subscription)}/cancellation")
    except StripeUnavailable as exc:
        web.flash("error", _unavailable(web, exc))
        return web.redirect(f"{_subscription_url(subscription)}/cancellation")
    if done.scheduled and done.ends_at is not None:
        web.flash("success", t("cancellation.flash.scheduled", date=done.ends_at.strftime("%Y-%m-%d"),
                               email=subscription.owner_email))
    else:
        web.flash("success", t("cancellation.flash.undone"))
    return web.redirect(_subscription_url(subscription))


@bp.route(route="subscriptions/{subscription_id}/cancellation", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def cancellation_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    return _cancellation(web, caller, subscription, cancel=True)


@bp.route(route="subscriptions/{subscription_id}/cancellation/undo", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def undo_cancellation_form(web: WebRequest, caller: access.Caller, subscription: Subscription
                           ) -> func.HttpResponse:
    return _cancellation(web, caller, subscription, cancel=False)
