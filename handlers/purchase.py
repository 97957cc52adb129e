"""The purchase page, the redirect to Stripe Checkout, and the purchase-completion redirect."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import NotSignedIn, WebRequest, csrf_refused, refusal_text
from services import bootstrap
from services.csrf import CsrfRejected
from services.i18n import format_money, translator
from services.subscription import Subscription

if TYPE_CHECKING:
    from services.purchase import InvalidPurchase

log = logging.getLogger(__name__)
bp = new_blueprint()


def _price_context(web: WebRequest, quantity: int, kind: str, interval: str) -> dict[str, Any]:
    from services.purchase import quote

    price = bootstrap.stripe().seat_price(interval)

    def money(amount: int) -> str:
        return format_money(amount, price.currency, web.language)

    tiers = []
    lower = 1
    for tier in price.tiers:
        tiers.append({"from": lower, "to": tier.up_to, "unit": money(tier.unit_amount)})
        lower = (tier.up_to or 0) + 1
    q = quote(price, 1 if kind == "individual" else quantity)
    return {
        "tiers": tiers,
        "quote": q,
        "unit": money(q.unit_amount),
        "total": money(q.total),
        "interval": price.interval,
    }


def _existing(web: WebRequest) -> list[Subscription]:
    """The organisation subscriptions the signed-in person could add licenses to instead of buying again."""
    from services.quantity_change import expandable

    person = web.person
    return expandable(bootstrap.storage(), person) if person is not None else []


def _form_page(web: WebRequest, quantity: int, kind: str, error: str | None = None,
               status: int = 200, separate: bool = False, interval: str = "month", payment: str = "stripe",
               form: dict[str, str] | None = None, error_field: str = "") -> func.HttpResponse:
    from adapters.stripe_gateway import StripeNotFound, StripeUnavailable
    from services.business_details import BILLING_COUNTRIES, FORM_FIELDS
    from services.purchase import invoice_allowed

    t = translator(web.language)
    try:
        prices = _price_context(web, quantity, kind, interval)
    except (StripeUnavailable, StripeNotFound) as exc:
        log.error("cannot show prices: %s", exc)
        return web.error_page(503, t("purchase.unavailable.title"), t("purchase.unavailable.body"))
    existing = _existing(web)
    return web.render(
        "purchase.html",
        status=status,
        quantity=quantity,
        kind=kind,
        error=error,
        max_quantity=web.settings.max_quantity,
        attempt=secrets.token_urlsafe(16),
        cancelled=web.req.params.get("cancelled") == "1",
        # Someone who may add licenses to a running organisation subscription is offered that first;
        # buying a separate subscription stays possible after choosing it explicitly.
        existing=existing,
        separate=separate or not existing,
        add=1 if kind == "individual" else quantity,
        payment=payment,
        # Pay by invoice: offered for organisations from INVOICE_MIN_QUANTITY licenses; the business
        # details typed so far come back on every re-render (price update, a refused field).
        invoice_min_quantity=web.settings.invoice_min_quantity,
        invoice_allowed=invoice_allowed(kind, quantity, web.settings),
        invoice_days=web.settings.invoice_days_until_due,
        countries=sorted(BILLING_COUNTRIES, key=lambda code: t(f"country.{code}")),
        details={name: (form or {}).get(name, "") for name in FORM_FIELDS},
        error_field=error_field,
        **prices,
    )


def _refused(web: WebRequest, exc: InvalidPurchase) -> str:
    """The refusal in the page's language (handlers/web.refusal_text)."""
    return refusal_text(web.language, exc, *([exc.key] if exc.key else []), **exc.params)


@bp.route(route="purchase", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def purchase_page(req: func.HttpRequest) -> func.HttpResponse:
    from services.purchase import InvalidPurchase, parse_interval, parse_kind, parse_quantity

    web = WebRequest.of(req)
    try:
        web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    web.ensure_session()
    try:
        kind = parse_kind(req.params.get("kind"))
        quantity = parse_quantity(req.params.get("quantity") or "10", kind, web.settings)
        interval = parse_interval(req.params.get("interval"))
    except InvalidPurchase as exc:
        return _form_page(web, 10, "organisation", error=_refused(web, exc), status=400, error_field=exc.field)
    return _form_page(web, quantity, kind, separate=req.params.get("separate") == "1", interval=interval)


@bp.route(route="purchase", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def purchase_submit(req: func.HttpRequest) -> func.HttpResponse:
    from adapters.stripe_gateway import StripeIdempotencyConflict, StripeNotFound, StripeRejected, StripeUnavailable
    from services.business_details import FORM_FIELDS, parse_business_details
    from services.checkout import start_checkout
    from services.fulfilment import fulfil_invoice_purchase
    from services.invoice_purchase import buy_by_invoice
    from services.purchase import (
        InvalidPurchase,
        parse_interval,
        parse_kind,
        parse_payment,
        parse_quantity,
    )

    web = WebRequest.of(req)
    try:
        buyer = web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    try:
        web.check_csrf()
    except CsrfRejected as exc:
        return csrf_refused(web, exc)
    form = web.form()
    details = {name: form.get(name, "") for name in FORM_FIELDS}
    try:
        kind = parse_kind(form.get("kind"))
        quantity = parse_quantity(form.get("quantity"), kind, web.settings)
        interval = parse_interval(form.get("interval"))
    except InvalidPurchase as exc:
        return _form_page(web, 10, "organisation", error=_refused(web, exc), status=400, error_field=exc.field,
                          form=details)

    def again(**shown: Any) -> func.HttpResponse:
        """The form again, as the person filled it in."""
        return _form_page(web, quantity, kind, separate=form.get("separate") == "1", interval=interval,
                          form=details, **{"payment": form.get("payment") or "stripe", **shown})

    if form.get("action") == "update":
        # "Update price": the quote for what is on screen now; nothing is bought.
        return again()
    t = translator(web.language)
    if form.get("separate") != "1" and _existing(web):
        # Not silently a second subscription: the page offers adding licenses to the existing one.
        return again(error=t("purchase.existing.choose"), status=409)
    try:
        payment = parse_payment(form.get("payment"), kind, quantity, web.settings)
        # An organisation's business details, whichever way it pays (services/business_details.py).
        business = parse_business_details(form) if kind == "organisation" else None
    except InvalidPurchase as exc:
        return again(error=_refused(web, exc), status=400, error_field=exc.field)
    attempt = (form.get("attempt") or secrets.token_urlsafe(16))[:64]
    try:
        if payment == "stripe" or business is None:
            return web.redirect(start_checkout(bootstrap.stripe(), web.settings, buyer, quantity, kind, web.language,
                                               attempt, interval=interval, business=business))
        bought = buy_by_invoice(bootstrap.stripe(), web.settings, buyer, quantity, interval, web.language,
                                business, attempt)
    except StripeRejected as exc:
        # Stripe refused what it was given (a VAT ID it does not accept, an address): say so, keep the form.
        # Stripe's own words are English and for the log; the page names the field it refused.
        log.warning("purchase refused by Stripe: %s (%s)", exc, exc.param)
        field = _STRIPE_FIELDS.get(exc.param or "", "")
        return again(error=refusal_text(web.language, exc, f"purchase.details.error.stripe.{field}",
                                        "purchase.details.error.stripe"), status=400, error_field=field)
    except (StripeUnavailable, StripeNotFound, StripeIdempotencyConflict) as exc:
        log.error("the purchase could not be started: %s", exc)
        return web.error_page(503, t("purchase.unavailable.title"), t("purchase.unavailable.body"))
    result = fulfil_invoice_purchase(bought, storage=bootstrap.storage(), buyer=(buyer.tid, buyer.oid))
    if result.subscription is None:  # cannot happen for the buyer's own purchase; say what went wrong
        log.error("invoice purchase %s not fulfilled: %s", bought.get("id"), result.outcome)
        return web.error_page(503, t("purchase.unavailable.title"), t("complete.retry"))
    return web.redirect(f"/api/subscriptions/{result.subscription.id}/setup?invoice=sent")


# Stripe's parameter names for the fields it may refuse.
_STRIPE_FIELDS = {"tax_id_data[0][value]": "vat_id", "address[postal_code]": "postal_code",
                  "address[country]": "country"}


@bp.route(route="purchase/complete", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def purchase_complete(req: func.HttpRequest) -> func.HttpResponse:
    from adapters.stripe_gateway import StripeUnavailable
    from services.fulfilment import Outcome, fulfil

    web = WebRequest.of(req)
    t = translator(web.language)
    try:
        buyer = web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    session_id = (req.params.get("session_id") or "").strip()
    if not session_id or len(session_id) > 255:
        return web.error_page(400, t("complete.unknown.title"), t("complete.unknown.body"))
    try:
        result = fulfil(session_id, storage=bootstrap.storage(), stripe=bootstrap.stripe(),
                        buyer=(buyer.tid, buyer.oid))
    except StripeUnavailable:
        return web.error_page(503, t("purchase.unavailable.title"), t("complete.retry"))
    if result.outcome is Outcome.FULFILLED and result.subscription is not None:
        return web.redirect(f"/api/subscriptions/{result.subscription.id}/setup")
    pages = {
        Outcome.PENDING_PAYMENT: (200, "complete.pending"),
        Outcome.NOT_COMPLETE: (400, "complete.not_paid"),
        Outcome.UNKNOWN: (404, "complete.unknown"),
        Outcome.FOREIGN: (403, "complete.foreign"),
        Outcome.NOT_OURS: (400, "complete.unknown"),
    }
    status, key = pages[result.outcome]
    return web.error_page(status, t(f"{key}.title"), t(f"{key}.body"))
