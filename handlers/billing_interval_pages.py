"""The billing page's "Billing interval" section (PRODUCT.md 2.13 annual billing, 2.5; owner or
`billing.manage`).

It shows how the subscription is billed and, while one is planned, the switch to the other interval
at the next renewal with an Undo form. Otherwise a button asks for the preview (a GET of the billing
page with `?interval=year|month`: nothing changes) and the section then shows what the new interval
costs from that date, with the Confirm form. The confirmation carries a request id made when the
preview was rendered, so a double click or a re-sent form plans the switch once. The forms post
here and come back to the billing page with a message (post/redirect/get, like the page's other
forms); nothing changes when the rules refuse or Stripe cannot be reached.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from handlers import gate
from handlers.billing_api import billing
from handlers.blueprint import new_blueprint
from handlers.seat_changes import InvalidRequestId, actor, request_id
from handlers.web import WebRequest
from handlers.web import refusal_text as web_refusal_text
from services import access, interval_change
from services.billing_changes import CHANGEABLE
from services.i18n import format_money, translator
from services.interval_change import IntervalPreview, InvalidInterval
from services.subscription import Subscription
from services.unit_of_work import Refused

log = logging.getLogger(__name__)
bp = new_blueprint()

ANCHOR = "billing-interval"


def _date(subscription: Subscription) -> str:
    at = subscription.scheduled_interval_at or subscription.current_period_end
    return at.strftime("%Y-%m-%d") if at else ""


def refusal_text(web: WebRequest, exc: Refused) -> str:
    """A refusal in the page's language (handlers/web.refusal_text)."""
    return web_refusal_text(web.language, exc, f"billing.interval.error.{exc.code}", f"billing.error.{exc.code}")


def section(web: WebRequest, subscription: Subscription) -> dict[str, Any]:
    """What billing.html needs for the section: the stored copy of Stripe's state and, when the page
    was asked for one (`?interval=`), Stripe's preview of the switch or why there is none."""
    now = subscription.billing_interval or "month"
    other = "month" if now == "year" else "year"
    context: dict[str, Any] = {
        "interval_now": now, "interval_other": other, "interval_on": _date(subscription),
        "interval_scheduled": subscription.scheduled_interval,
        "interval_switchable": (subscription.status in CHANGEABLE and not subscription.cancel_at_period_end
                                and not subscription.scheduled_interval),
        "interval_preview": None, "interval_error": None,
    }
    wanted = web.req.params.get("interval")
    if wanted is None or not context["interval_switchable"]:
        return context
    try:
        interval = interval_change.parse_interval(wanted)
        context["interval_preview"] = _preview_context(web, interval_change.preview(billing(), subscription,
                                                                                    interval))
    except Refused as exc:
        context["interval_error"] = refusal_text(web, exc)
    except StripeUnavailable as exc:
        log.warning("Stripe unavailable: %s", exc)
        context["interval_error"] = translator(web.language)("billing.error.stripe_unavailable")
    return context


def _preview_context(web: WebRequest, preview: IntervalPreview) -> dict[str, Any]:
    def money(amount: int) -> str:
        return format_money(amount, preview.currency, web.language)

    return {
        "preview": preview, "on": preview.starts_at.strftime("%Y-%m-%d"), "unit": money(preview.unit_amount),
        "subtotal": money(preview.subtotal), "tax": money(preview.tax), "total": money(preview.total),
        "current_unit": money(preview.current_unit_amount), "current_total": money(preview.current_total),
        "saving": money(preview.yearly_difference) if preview.yearly_difference > 0 else None,
        # A new request id per rendered preview: confirming it twice plans the switch once.
        "request_id": uuid.uuid4().hex,
    }


def _back(subscription: Subscription, interval: str | None = None) -> str:
    query = f"?interval={interval}" if interval else ""
    return f"/api/subscriptions/{subscription.id}/billing{query}#{ANCHOR}"


@bp.route(route="subscriptions/{subscription_id}/billing/interval", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.BILLING_MANAGE, form=True)
def billing_interval_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Confirm the previewed switch: it takes effect at the next renewal."""
    t = translator(web.language)
    form = web.form()
    try:
        interval = interval_change.parse_interval(form.get("interval", ""))
        key = request_id(form.get("request_id"), "request_id")
    except InvalidInterval as exc:
        web.flash("error", refusal_text(web, exc))
        return web.redirect(_back(subscription))
    except InvalidRequestId:
        key = None
    if key is None:  # not from a preview of ours: show the preview to confirm
        web.flash("error", t("billing.interval.error.no_preview"))
        return web.redirect(_back(subscription, interval))
    try:
        done = interval_change.schedule(billing(), actor(caller), subscription, interval, key)
    except Refused as exc:
        web.flash("error", refusal_text(web, exc))
        return web.redirect(_back(subscription))
    except StripeUnavailable as exc:
        log.warning("Stripe unavailable: %s", exc)
        web.flash("error", t("billing.error.stripe_unavailable"))
        return web.redirect(_back(subscription, interval))
    on = done.starts_at.strftime("%Y-%m-%d") if done.starts_at else ""
    web.flash("success", t(f"billing.interval.flash.scheduled.{interval}", date=on))
    return web.redirect(_back(subscription))


@bp.route(route="subscriptions/{subscription_id}/billing/interval/undo", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.BILLING_MANAGE, form=True)
def undo_billing_interval_form(web: WebRequest, caller: access.Caller, subscription: Subscription
                               ) -> func.HttpResponse:
    """Withdraw the planned switch before the renewal."""
    t = translator(web.language)
    try:
        done = interval_change.unschedule(billing(), actor(caller), subscription)
    except Refused as exc:
        web.flash("error", refusal_text(web, exc))
        return web.redirect(_back(subscription))
    except StripeUnavailable as exc:
        log.warning("Stripe unavailable: %s", exc)
        web.flash("error", t("billing.error.stripe_unavailable"))
        return web.redirect(_back(subscription))
    web.flash("success", t(f"billing.interval.flash.unscheduled.{done.interval}"))
    return web.redirect(_back(subscription))
