"""The purchase page, the redirect to Stripe Checkout, and the purchase-completion redirect."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import NotSignedIn, WebRequest, csrf_refused
from services import bootstrap
from services.csrf import CsrfRejected
from services.i18n import format_money, translator
from services.subscription import Subscription

log = logging.getLogger(__name__)
bp = new_blueprint()


def _price_context(web: WebRequest, quantity: int, kind: str) -> dict[str, Any]:
    from services.purchase import quote

    price = bootstrap.stripe().seat_price()

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
               status: int = 200, separate: bool = False) -> func.HttpResponse:
    from adapters.stripe_gateway import StripeNotFound, StripeUnavailable

    t = translator(web.language)
    try:
        prices = _price_context(web, quantity, kind)
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
        **prices,
    )


@bp.route(route="purchase", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def purchase_page(req: func.HttpRequest) -> func.HttpResponse:
    from services.purchase import InvalidPurchase, parse_kind, parse_quantity

    web = WebRequest.of(req)
    try:
        web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    web.ensure_session()
    try:
        kind = parse_kind(req.params.get("kind"))
        quantity = parse_quantity(req.params.get("quantity") or "10", kind, web.settings)
    except InvalidPurchase as exc:
        return _form_page(web, 10, "organisation", error=str(exc), status=400)
    return _form_page(web, quantity, kind, separate=req.params.get("separate") == "1")


@bp.route(route="purchase", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def purchase_submit(req: func.HttpRequest) -> func.HttpResponse:
    from adapters.stripe_gateway import StripeNotFound, StripeUnavailable
    from services.purchase import InvalidPurchase, parse_kind, parse_quantity, start_checkout

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
    try:
        kind = parse_kind(form.get("kind"))
        quantity = parse_quantity(form.get("quantity"), kind, web.settings)
    except InvalidPurchase as exc:
        return _form_page(web, 10, "organisation", error=str(exc), status=400)
    if form.get("action") == "update":
        # "Update price": the quote for what is on screen now; nothing is bought.
        return _form_page(web, quantity, kind, separate=form.get("separate") == "1")
    if form.get("separate") != "1" and _existing(web):
        # Not silently a second subscription: the page offers adding licenses to the existing one.
        t = translator(web.language)
        return _form_page(web, quantity, kind, error=t("purchase.existing.choose"), status=409)
    attempt = form.get("attempt") or secrets.token_urlsafe(16)
    try:
        url = start_checkout(bootstrap.stripe(), web.settings, buyer, quantity, kind, web.language, attempt[:64])
    except (StripeUnavailable, StripeNotFound) as exc:
        log.error("checkout could not be started: %s", exc)
        t = translator(web.language)
        return web.error_page(503, t("purchase.unavailable.title"), t("purchase.unavailable.body"))
    return web.redirect(url)


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
