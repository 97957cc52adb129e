"""Checkout Sessions in subscription mode: creation, payment outcomes, expiry."""

from typing import Any

from . import billing, objects
from .errors import StripeError
from .forms import as_bool, as_int, as_list, as_metadata
from .pricing import amount_for

OUTCOMES = ("paid", "delayed", "declined")


def create_session(ctx, params):
    store = ctx.store
    mode = params.get("mode")
    if mode != "subscription":
        raise StripeError(400, "The Stripe emulator only supports mode=subscription.",
                          param="mode", code="parameter_invalid")
    if params.get("customer") and params.get("customer_email"):
        raise StripeError(400, "You may only specify one of these parameters: customer, "
                               "customer_email.", param="customer_email")
    customer_id = None
    if params.get("customer"):
        customer_id = store.require("customer", params["customer"], param="customer")["id"]
    raw_items = as_list(params.get("line_items"))
    if not raw_items:
        raise StripeError(400, "line_items is required in subscription mode.",
                          param="line_items", code="parameter_missing")
    line_items, currency, subtotal = [], None, 0
    for index, raw in enumerate(raw_items):
        price = store.require("price", raw.get("price"), param=f"line_items[{index}][price]")
        if not price.get("recurring"):
            raise StripeError(400, "You must specify at least one recurring price in "
                                   "`subscription` mode.", param=f"line_items[{index}][price]")
        quantity = as_int(raw, "quantity", 1, minimum=1)
        product = store.get("product", price["product"]) or {"name": price["product"]}
        amount = amount_for(price, quantity)
        line_items.append(objects.checkout_line_item(price, quantity, amount, product["name"]))
        currency = currency or price["currency"]
        subtotal += amount
    subscription_data = params.get("subscription_data") or {}
    trial_days = as_int(subscription_data, "trial_period_days", None, minimum=1)
    session = objects.checkout_session(
        store, base_url=ctx.base_url, mode=mode, line_items=line_items,
        success_url=params.get("success_url"), cancel_url=params.get("cancel_url"),
        client_reference_id=params.get("client_reference_id"), customer_id=customer_id,
        customer_email=params.get("customer_email"), metadata=as_metadata(params),
        locale=params.get("locale"),
        allow_promotion_codes=as_bool(params, "allow_promotion_codes"),
        subscription_data={"metadata": as_metadata(subscription_data),
                           "trial_period_days": trial_days,
                           "description": subscription_data.get("description")},
        currency=currency, amount_subtotal=0 if trial_days else subtotal)
    return store.add("checkout.session", session)


def success_redirect(session):
    """Stripe substitutes the literal {CHECKOUT_SESSION_ID} in success_url."""
    return (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session["id"])


def complete(ctx, session, outcome="paid", email=None, name=None):
    """The buyer submitted the hosted page. Returns the session (unchanged if declined)."""
    if outcome not in OUTCOMES:
        raise StripeError(400, f"outcome must be one of {', '.join(OUTCOMES)}", param="outcome")
    if session["status"] != "open":
        raise StripeError(400, f"This Checkout Session is no longer active "
                               f"(status: {session['status']}).", code="checkout_session_inactive")
    if outcome == "declined":
        raise StripeError(402, "Your card was declined.", type="card_error",
                          code="card_declined", decline_code="generic_decline")
    store = ctx.store
    if session["customer"]:
        customer = store.require("customer", session["customer"])
    else:
        customer = billing.create_customer(
            ctx, email=email or session["customer_email"] or "buyer@example.com", name=name,
            preferred_locales=[session["locale"]] if session["locale"] else None)
    data = session["_subscription_data"]
    items: list[tuple[dict[str, Any], int, dict[str, str]]] = [
        (store.get("price", li["price"]), li["quantity"], {}) for li in session["_line_items"]
    ]
    sub = billing.create_subscription(
        ctx, customer=customer, items=items, metadata=dict(data["metadata"]),
        trial_period_days=data["trial_period_days"], description=data.get("description"),
        payment="processing" if outcome == "delayed" and not data["trial_period_days"]
        else "checkout")
    if data["trial_period_days"]:
        payment_status = "no_payment_required"
    else:
        payment_status = "unpaid" if outcome == "delayed" else "paid"
    session.update(
        status="complete", payment_status=payment_status, customer=customer["id"],
        subscription=sub["id"],
        customer_details={"address": None, "business_name": None, "email": customer["email"],
                          "individual_name": None, "name": customer["name"], "phone": None,
                          "tax_exempt": "none", "tax_ids": []})
    session["payment_method_types"] = ["sepa_debit"] if outcome == "delayed" else ["card"]
    ctx.events.emit("checkout.session.completed", session)
    if payment_status == "unpaid":
        session["_async_pending"] = True
        ctx.emulator.later(ctx.settings.async_payment_delay_seconds, _settle_later,
                           ctx.emulator, session["id"], ctx.settings.async_payment_result)
    return session


def settle(ctx, session, result):
    """The delayed payment of a completed session succeeded or failed."""
    if result not in ("succeeded", "failed"):
        raise StripeError(400, "result must be succeeded or failed", param="result")
    if not session.get("_async_pending"):
        raise StripeError(400, "This Checkout Session has no pending delayed payment.")
    session["_async_pending"] = False
    sub = ctx.store.require("subscription", session["subscription"])
    billing.settle_first_invoice(ctx, sub, result == "succeeded")
    if result == "succeeded":
        session["payment_status"] = "paid"
    ctx.events.emit(f"checkout.session.async_payment_{result}", session)
    return session


def _settle_later(emulator, session_id, result):
    with emulator.action() as ctx:
        session = ctx.store.get("checkout.session", session_id)
        if session and session.get("_async_pending"):
            settle(ctx, session, result)


def expire(ctx, session):
    if session["status"] != "open":
        raise StripeError(400, f"Only Checkout Sessions with a status in [\"open\"] can be "
                               f"expired. This Checkout Session has a status of "
                               f"\"{session['status']}\".", param="session")
    session["status"] = "expired"
    ctx.events.emit("checkout.session.expired", session)
    return session
