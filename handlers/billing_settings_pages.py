"""The billing page's "Billing details" section (PRODUCT.md 2.13; owner or `billing.manage`).

It shows the Stripe customer's company name, address and VAT IDs (read-only: they are changed in
Stripe's billing portal, the button above it on the page) and a form for the finance settings: the
PO number and cost centre printed on every future invoice, and the accounting address that receives
every invoice. The billing page (handlers/billing_pages.py) renders the section with `section()`;
the form posts here and comes back to the billing page with a message (post/redirect/get, like the
page's other forms). Nothing is changed when a value is refused or Stripe cannot be reached.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from handlers import gate
from handlers.billing_api import billing
from handlers.blueprint import new_blueprint
from handlers.seat_changes import actor
from handlers.web import WebRequest
from handlers.web import refusal_text as web_refusal_text
from services import access, billing_settings
from services.billing_account import NoCustomer
from services.billing_settings import FIELDS, BillingSettings, InvalidBillingSetting
from services.i18n import translator
from services.subscription import Subscription
from services.unit_of_work import Refused

log = logging.getLogger(__name__)
bp = new_blueprint()

ANCHOR = "billing-settings"


def section(web: WebRequest, subscription: Subscription) -> dict[str, Any]:
    """What billing.html needs for the section: the customer's details (or why there are none) and the
    stored finance settings."""
    t = translator(web.language)
    details, details_error = None, None
    try:
        details = billing_settings.billing_details(billing(), subscription)
    except NoCustomer:
        details_error = t("billing.details.none")
    except Refused as exc:
        log.warning("billing details of %s: %s", subscription.id, exc)
        details_error = t("billing.details.unavailable")
    except StripeUnavailable as exc:
        log.warning("Stripe unavailable: %s", exc)
        details_error = t("billing.details.unavailable")
    return {"billing_details": details, "billing_details_error": details_error,
            "finance": BillingSettings.of(subscription), "finance_max": billing_settings.MAX_TEXT}


def refusal_text(web: WebRequest, exc: InvalidBillingSetting) -> str:
    t = translator(web.language)
    return t(f"billing.settings.error.{exc.code}", field=t(f"billing.settings.{exc.field}"),
             max=exc.maximum or billing_settings.MAX_TEXT)


@bp.route(route="subscriptions/{subscription_id}/billing/settings", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.BILLING_MANAGE, form=True)
def billing_settings_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Save the PO number, cost centre and accounting address (the form sends all three)."""
    t = translator(web.language)
    form = web.form()
    back = f"/api/subscriptions/{subscription.id}/billing#{ANCHOR}"
    try:
        wanted = billing_settings.parse_settings({name: form.get(name, "") for name in FIELDS},
                                                 BillingSettings.of(subscription))
        done = billing_settings.change(billing(), actor(caller), subscription, wanted)
    except InvalidBillingSetting as exc:
        web.flash("error", refusal_text(web, exc))
        return web.redirect(back)
    except Refused as exc:
        web.flash("error", web_refusal_text(web.language, exc, f"billing.error.{exc.code}"))
        return web.redirect(back)
    except StripeUnavailable as exc:
        log.warning("Stripe unavailable: %s", exc)
        web.flash("error", t("billing.error.stripe_unavailable"))
        return web.redirect(back)
    web.flash("success", t("billing.settings.saved") if done.changed else t("billing.settings.unchanged"))
    return web.redirect(back)
