"""/_emulator/* control endpoints (JSON, no auth) for tests and developers.

They drive what a real account does on its own (renewals, failed payments, dunning, the
clock, bank transfers arriving) and shape webhook delivery (duplicates, reordering, holding,
dropping, delays).

    GET  /health, /config, /events          POST /config, /reset
    POST /webhooks/release, /webhooks/wait, /events/{id}/resend
    POST /checkout/{id}/pay        pay without a browser: {"outcome": "paid"|"delayed"|
                                   "declined", "email", and what a business buyer enters:
                                   "name", "business_name", "line1", "line2", "postal_code",
                                   "city", "state", "country" (or "address": {...}), "tax_id"
                                   (type from the value: eu_vat, gb_vat "GB...", ch_vat
                                   "CHE..."; or "tax_id_type")}. 400 as the page would refuse
                                   it: address missing where required, invalid VAT ID.
    POST /checkout/{id}/async      {"result": "succeeded"|"failed"}
    POST /subscriptions/{id}/fail_payment | pay | renew | advance | trial_will_end
    POST /subscriptions/{id}/upcoming
                                   send invoice.upcoming for the next renewal now (any
                                   interval); answers the subscription
    POST /customers/{id}/card      {"decline": true|false, "decline_code": ...}: the card
                                   declines every automatic charge until set back
    POST /invoices/{id}/pay        retry an open invoice ({"force": true}: succeed anyway); a
                                   sent invoice (send_invoice) is paid as a bank transfer
                                   arriving: invoice.paid, invoice.payment_succeeded, and a
                                   past_due subscription is active again. Answers
                                   {"invoice": {...}, "decline_code": null|code}
    POST /clock/advance            {"seconds": N}: in time order (clock.py): trial_will_end,
                                   invoice.upcoming (yearly plans, upcoming_invoice_days
                                   before renewal), invoice.overdue + past_due for sent
                                   invoices past their due date, renewals (charged to the
                                   card as it is, or sent), cancel_at_period_end
                                   cancellations, checkout expiry. Answers {"now", ...}

POST /config also takes "upcoming_invoice_days" (default 30), "account_name" (default
"SecureMailMerge GmbH"), "seller_country" (default "DE"), "account_vat_id" and
"account_address" (the seller printed on invoices).
"""

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from . import billing, checkout, clock, upcoming
from .errors import StripeError
from .render import render
from .webhooks import DELIVERY_MODES

ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []


def route(method, pattern):
    def register(function):
        ROUTES.append((method, re.compile("^/_emulator" + pattern + "$"), function))
        return function
    return register


def handle(emulator, method, path, query, body, base_url):
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        raise StripeError(400, "Control endpoints take a JSON body.") from None
    if not isinstance(data, dict):
        raise StripeError(400, "Control endpoints take a JSON object.")
    data.update({k: v[0] for k, v in parse_qs(query).items() if k not in data})
    for route_method, pattern, function in ROUTES:
        found = pattern.match(path)
        if found and route_method == method:
            return function(emulator, data, base_url, **found.groupdict())
    raise StripeError(404, f"Unknown control endpoint {method} {path}")


def _render(emulator, record):
    return render(emulator.store, record, legacy=emulator.settings.legacy_shapes)


# -- configuration -----------------------------------------------------------------------

def _config_view(settings):
    return {"webhook_endpoints": [{"url": url, "secret": secret}
                                  for url, secret in settings.endpoints],
            "delivery": settings.delivery, "delay_seconds": settings.delay_seconds,
            "drop_next": list(settings.drop_next), "legacy_shapes": settings.legacy_shapes,
            "retry_attempts": settings.retry_attempts,
            "retry_backoff_seconds": settings.retry_backoff_seconds,
            "async_payment_delay_seconds": settings.async_payment_delay_seconds,
            "async_payment_result": settings.async_payment_result,
            "upcoming_invoice_days": settings.upcoming_invoice_days,
            "account_name": settings.account_name, "seller_country": settings.seller_country,
            "account_vat_id": settings.account_vat_id,
            "account_address": dict(settings.account_address)}


@route("GET", "/health")
def health(emulator, data, base_url):
    return 200, {"ok": True, "url": base_url}


@route("GET", "/config")
def get_config(emulator, data, base_url):
    return 200, _config_view(emulator.settings)


@route("POST", "/config")
def set_config(emulator, data, base_url):
    settings = emulator.settings
    if "webhook_endpoints" in data:
        settings.endpoints[:] = [(e["url"], e.get("secret") or "")
                                 for e in data["webhook_endpoints"] or []]
    if "webhook_url" in data:
        secret = data.get("webhook_secret") or (settings.endpoints[0][1]
                                                if settings.endpoints else "")
        settings.endpoints[:] = [(data["webhook_url"], secret)] if data["webhook_url"] else []
    elif "webhook_secret" in data:
        settings.endpoints[:] = [(url, data["webhook_secret"]) for url, _ in settings.endpoints]
    if "delivery" in data:
        if data["delivery"] not in DELIVERY_MODES:
            raise StripeError(400, f"delivery must be one of {', '.join(DELIVERY_MODES)}")
        settings.delivery = data["delivery"]
    if "drop_next" in data:
        drops = data["drop_next"]
        settings.drop_next.extend([drops] if isinstance(drops, str) else drops or [])
    if isinstance(data.get("account_address"), dict):
        settings.account_address = {**settings.account_address, **data["account_address"]}
    for key, kind in (("delay_seconds", float), ("retry_attempts", int),
                      ("retry_backoff_seconds", float), ("async_payment_delay_seconds", float),
                      ("legacy_shapes", bool), ("async_payment_result", str),
                      ("upcoming_invoice_days", int), ("account_name", str),
                      ("seller_country", str), ("account_vat_id", str)):
        if key in data:
            setattr(settings, key, kind(data[key]))
    return 200, _config_view(settings)


@route("POST", "/reset")
def reset(emulator, data, base_url):
    emulator.reset()
    return 200, {"ok": True}


# -- webhooks ----------------------------------------------------------------------------

@route("GET", "/events")
def delivery_log(emulator, data, base_url):
    dispatcher = emulator.dispatcher
    return 200, {"deliveries": list(dispatcher.log),
                 "held": [{"event": e["id"], "type": e["type"]} for e in dispatcher.held]}


@route("POST", "/webhooks/release")
def release(emulator, data, base_url):
    count = emulator.dispatcher.release(data.get("order"))
    return 200, {"released": count}


@route("POST", "/webhooks/wait")
def wait(emulator, data, base_url):
    """Block until queued deliveries were attempted: a deterministic point for tests."""
    idle = emulator.dispatcher.wait_idle(float(data.get("timeout", 10)))
    return 200, {"idle": idle}


@route("POST", "/events/(?P<event_id>[^/]+)/resend")
def resend(emulator, data, base_url, event_id):
    with emulator.store.lock:
        event = emulator.store.require("event", event_id)
    emulator.dispatcher.resend(event)
    return 200, {"resent": event_id}


# -- checkout ----------------------------------------------------------------------------

@route("POST", "/checkout/(?P<session_id>[^/]+)/pay")
def pay_checkout(emulator, data, base_url, session_id):
    """Pay without a browser: {"outcome": "paid"|"delayed"|"declined", "email": ..., and what
    a business buyer enters: "name", "business_name", "line1", "line2", "postal_code", "city",
    "state", "country" (or "address": {...}), "tax_id" (its type follows from the value, or
    "tax_id_type")}."""
    with emulator.action(base_url) as ctx:
        session = ctx.store.require("checkout.session", session_id)
        checkout.complete(ctx, session, data.get("outcome", "paid"),
                          details=checkout.BuyerDetails.from_fields(data))
        result = {"session": _render(emulator, session),
                  "redirect_url": checkout.success_redirect(session)}
    return 200, result


@route("POST", "/checkout/(?P<session_id>[^/]+)/async")
def settle_checkout(emulator, data, base_url, session_id):
    """Settle a delayed payment now. {"result": "succeeded"|"failed"}"""
    with emulator.action(base_url) as ctx:
        session = ctx.store.require("checkout.session", session_id)
        checkout.settle(ctx, session, data.get("result", "succeeded"))
        result = _render(emulator, session)
    return 200, result


# -- subscriptions -----------------------------------------------------------------------

def _with_subscription(emulator, base_url, subscription_id, change):
    with emulator.action(base_url) as ctx:
        sub = ctx.store.require("subscription", subscription_id)
        change(ctx, sub)
        result = _render(emulator, sub)
    return 200, result


@route("POST", "/subscriptions/(?P<sid>[^/]+)/fail_payment")
def fail_payment(emulator, data, base_url, sid):
    """A renewal (or a retry of the open invoice) fails: past_due."""
    def change(ctx, sub):
        invoice = billing.open_invoice(ctx, sub)
        if invoice and sub["status"] in ("past_due", "unpaid"):
            billing.fail_invoice(ctx, invoice)  # a dunning retry of the same invoice
        else:
            billing.renew(ctx, sub, succeeded=False)
    return _with_subscription(emulator, base_url, sid, change)


@route("POST", "/subscriptions/(?P<sid>[^/]+)/pay")
def pay_subscription(emulator, data, base_url, sid):
    """Pay the open invoice (back to active), or renew successfully if nothing is open."""
    def change(ctx, sub):
        invoice = billing.open_invoice(ctx, sub)
        if invoice is None:
            billing.renew(ctx, sub, succeeded=True)
            return
        billing.pay_invoice(ctx, invoice)
        billing.invoice_settled(ctx, invoice)
    return _with_subscription(emulator, base_url, sid, change)


@route("POST", "/subscriptions/(?P<sid>[^/]+)/renew")
def renew_subscription(emulator, data, base_url, sid):
    return _with_subscription(emulator, base_url, sid,
                              lambda ctx, sub: billing.renew(ctx, sub, succeeded=True))


@route("POST", "/subscriptions/(?P<sid>[^/]+)/advance")
def end_dunning(emulator, data, base_url, sid):
    """Stripe's dunning ran out: {"status": "unpaid"|"canceled"}."""
    status = data.get("status")
    if status not in ("unpaid", "canceled"):
        raise StripeError(400, "status must be unpaid or canceled", param="status")

    def change(ctx, sub):
        if status == "unpaid":
            billing.set_status(ctx, sub, "unpaid")
        else:
            billing.cancel(ctx, sub, reason="payment_failed")
    return _with_subscription(emulator, base_url, sid, change)


@route("POST", "/subscriptions/(?P<sid>[^/]+)/trial_will_end")
def trial_will_end(emulator, data, base_url, sid):
    def change(ctx, sub):
        sub["_trial_will_end_sent"] = True
        ctx.events.emit("customer.subscription.trial_will_end", sub)
    return _with_subscription(emulator, base_url, sid, change)


@route("POST", "/subscriptions/(?P<sid>[^/]+)/upcoming")
def upcoming_notice(emulator, data, base_url, sid):
    """Send invoice.upcoming for the next renewal now (whatever the interval and date)."""
    return _with_subscription(emulator, base_url, sid, upcoming.notify)


# -- payments --------------------------------------------------------------------------

@route("POST", "/customers/(?P<cid>[^/]+)/card")
def set_card(emulator, data, base_url, cid):
    """Make the customer's card decline every charge from now on, or pay again.

    {"decline": true, "decline_code": "insufficient_funds"} (default code: generic_decline)
    or {"decline": false}. Applies to every automatic charge: immediate proration invoices
    (proration_behavior=always_invoice), renewals on clock advance, invoice retries.
    """
    decline = data.get("decline", True)
    code = data.get("decline_code") or "generic_decline"
    if code not in billing.DECLINE_MESSAGES:
        raise StripeError(400, f"decline_code must be one of {', '.join(billing.DECLINE_MESSAGES)}",
                          param="decline_code")
    with emulator.action(base_url) as ctx:
        customer = ctx.store.require("customer", cid)
        customer["_decline_code"] = code if decline else None
    return 200, {"customer": cid, "decline_code": customer["_decline_code"]}


@route("POST", "/invoices/(?P<invoice_id>[^/]+)/pay")
def pay_invoice(emulator, data, base_url, invoice_id):
    """Retry an open invoice with the customer's card ({"force": true}: it succeeds anyway);
    a sent invoice (collection_method=send_invoice) is paid by the bank transfer arriving.

    A paid invoice ends past_due and applies a pending update (pending_if_incomplete).
    """
    with emulator.action(base_url) as ctx:
        invoice = ctx.store.require("invoice", invoice_id)
        if invoice["status"] != "open":
            raise StripeError(400, f"Invoice is already {invoice['status']}.",
                              code="invoice_not_open" if invoice["status"] != "paid"
                              else "invoice_already_paid")
        if data.get("force") or invoice["collection_method"] == "send_invoice":
            billing.pay_invoice(ctx, invoice)  # the card is not involved: paid as such
            decline = None
        else:
            decline = billing.collect(ctx, invoice)
        if decline is None:
            billing.invoice_settled(ctx, invoice)
        result = {"invoice": _render(emulator, invoice), "decline_code": decline}
    return (200 if decline is None else 402), result


# -- clock -------------------------------------------------------------------------------

@route("POST", "/clock/advance")
def advance_clock(emulator, data, base_url):
    """Move the account's clock forward and let due things happen, in time order (clock.py)."""
    seconds = int(data.get("seconds", 0))
    if seconds < 0:
        raise StripeError(400, "The clock only moves forward.", param="seconds")
    with emulator.action(base_url) as ctx:
        now = clock.advance(ctx, seconds)
    return 200, {"now": now, "clock_offset": ctx.store.clock_offset}
