"""Checkout Sessions in subscription mode: creation, payment outcomes, expiry.

Business purchases (PRODUCT.md 2.13): ``billing_address_collection`` (auto: the country, as
far as tax needs it; required: the full address), ``tax_id_collection[enabled]`` (a VAT ID
field, "I'm purchasing as a business"), ``customer_update[name|address]=auto`` (save what the
buyer entered on an existing customer; only with ``customer``) and
``automatic_tax[enabled]`` (tax computed from the buyer's address, tax.py). The buyer's
details arrive from the hosted page or from ``POST /_emulator/checkout/{id}/pay``
(``BuyerDetails``); on completion the customer carries them, the subscription has automatic
tax, and the session shows ``customer_details`` and ``total_details.amount_tax``.
Sessions without these parameters behave as before: no address, no tax.
"""

from dataclasses import dataclass
from typing import Any

from . import billing, customers, objects, tax, tax_ids
from .errors import StripeError
from .forms import as_bool, as_int, as_list, as_metadata
from .pricing import amount_for

OUTCOMES = ("paid", "delayed", "declined")
ADDRESS_COLLECTION = ("auto", "required")
CUSTOMER_UPDATE = ("auto", "never")


@dataclass
class BuyerDetails:
    """What the buyer typed into Checkout (all optional until the session requires them)."""
    email: str | None = None
    name: str | None = None
    business_name: str | None = None
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    tax_id: str | None = None
    tax_id_type: str | None = None

    @classmethod
    def from_fields(cls, data):
        """From a form or a control call; ``address`` may come nested."""
        nested = data.get("address") if isinstance(data.get("address"), dict) else {}
        values = {**nested, **{k: v for k, v in data.items() if k != "address"}}
        return cls(**{name: (str(values[name]).strip() or None) if values.get(name) else None
                      for name in cls.__dataclass_fields__})

    def address(self):
        fields = {name: getattr(self, name) for name in customers.ADDRESS_FIELDS}
        if not any(fields.values()):
            return None
        return customers.address(fields, "address")

    def prefilled_from(self, customer):
        """Checkout shows an existing customer's name and address filled in: what the buyer did not
        change is the customer's."""
        if not customer:
            return self
        known = customer.get("address") or {}
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if not any(values[name] for name in customers.ADDRESS_FIELDS):
            values.update({name: known.get(name) or None for name in customers.ADDRESS_FIELDS})
        values["business_name"] = values["business_name"] or customer.get("name") or None
        return BuyerDetails(**values)

    def tax_id_check(self):
        """``(type, normalised value, format_ok)`` of the VAT ID entered, or None."""
        if not self.tax_id:
            return None
        kind = self.tax_id_type or tax_ids.type_for(self.tax_id)
        value, _country, format_ok = tax_ids.check(kind, self.tax_id, "tax_id")
        return kind, value, format_ok


def create_session(ctx, params):
    store = ctx.store
    mode = params.get("mode")
    if mode != "subscription":
        raise StripeError(400, "The Stripe emulator only supports mode=subscription.",
                          param="mode", code="parameter_invalid")
    if params.get("customer") and params.get("customer_email"):
        raise StripeError(400, "You may only specify one of these parameters: customer, "
                               "customer_email.", param="customer_email")
    customer = None
    if params.get("customer"):
        customer = store.require("customer", params["customer"], param="customer")
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
    business = _business_options(params, customer)
    session = objects.checkout_session(
        store, base_url=ctx.base_url, mode=mode, line_items=line_items,
        success_url=params.get("success_url"), cancel_url=params.get("cancel_url"),
        client_reference_id=params.get("client_reference_id"),
        customer_id=customer["id"] if customer else None,
        customer_email=params.get("customer_email"), metadata=as_metadata(params),
        locale=params.get("locale"),
        allow_promotion_codes=as_bool(params, "allow_promotion_codes"),
        subscription_data={"metadata": as_metadata(subscription_data),
                           "trial_period_days": trial_days,
                           "description": subscription_data.get("description")},
        currency=currency, amount_subtotal=0 if trial_days else subtotal)
    session.update(billing_address_collection=business["billing_address_collection"],
                   tax_id_collection=business["tax_id_collection"])
    session["_customer_update"] = business["customer_update"]
    session["automatic_tax"] = _automatic_tax(business["automatic_tax"], None)
    if business["automatic_tax"] and customer and customer.get("address"):
        _set_totals(session, quote(store, ctx.settings, session, BuyerDetails()))
    return store.add("checkout.session", session)


def _business_options(params, customer):
    collection = params.get("billing_address_collection") or None
    if collection not in (None, *ADDRESS_COLLECTION):
        raise StripeError(400, "Invalid billing_address_collection: must be one of auto or "
                               "required", code="parameter_invalid",
                          param="billing_address_collection")
    raw_tax_ids = params.get("tax_id_collection")
    tax_id_collection = {"enabled": False, "required": "never"}
    if isinstance(raw_tax_ids, dict):
        enabled = bool(as_bool(raw_tax_ids, "enabled", False))
        required = raw_tax_ids.get("required") or "never"
        if required not in ("if_supported", "never"):
            raise StripeError(400, "Invalid tax_id_collection[required]", code="parameter_invalid",
                              param="tax_id_collection[required]")
        tax_id_collection = {"enabled": enabled, "required": required}
    update = params.get("customer_update")
    customer_update = {}
    if update is not None:
        if not customer:
            raise StripeError(400, "`customer_update` can only be used with `customer`.",
                              code="parameter_invalid", param="customer_update")
        if not isinstance(update, dict):
            raise StripeError(400, "Invalid hash", code="parameter_invalid",
                              param="customer_update")
        for key, value in update.items():
            if key not in ("name", "address", "shipping") or value not in CUSTOMER_UPDATE:
                raise StripeError(400, f"Invalid customer_update[{key}]: must be auto or never",
                                  code="parameter_invalid", param=f"customer_update[{key}]")
            customer_update[key] = value
    raw_tax = params.get("automatic_tax")
    automatic = isinstance(raw_tax, dict) and bool(as_bool(raw_tax, "enabled", False))
    if customer and automatic and not customer.get("address") and \
            customer_update.get("address") != "auto":
        raise StripeError(400, "Automatic tax calculation in Checkout requires a valid address on "
                               "the Customer. Add a valid address to the Customer or set "
                               "`customer_update[address]` to 'auto' to save the address "
                               "entered in Checkout to the Customer.",
                          code="customer_tax_location_invalid", param="customer_update[address]")
    if customer and tax_id_collection["enabled"] and customer_update.get("name") != "auto":
        raise StripeError(400, "To collect tax IDs for an existing customer, set "
                               "`customer_update[name]` to 'auto'.", code="parameter_invalid",
                          param="customer_update[name]")
    return {"billing_address_collection": collection, "tax_id_collection": tax_id_collection,
            "customer_update": customer_update, "automatic_tax": automatic}


def _automatic_tax(enabled, status):
    return {"enabled": enabled, "liability": dict(tax.LIABILITY) if enabled else None,
            "provider": "stripe" if enabled else None,
            "status": (status or "requires_location_inputs") if enabled else None}


def asks_for_address(session):
    """Which address fields the hosted page shows: "full", "country" or None."""
    if session["billing_address_collection"] == "required":
        return "full"
    return "country" if session["automatic_tax"]["enabled"] else None


def quote(store, settings, session, details):
    """``(subtotal, tax, status, reason)`` for the session with what the buyer entered so far."""
    subtotal = session["amount_subtotal"] or 0
    if not session["automatic_tax"]["enabled"]:
        return subtotal, 0, None, None
    customer = store.get("customer", session["customer"]) if session["customer"] else None
    country = details.country or ((customer or {}).get("address") or {}).get("country")
    checked = _quiet_tax_id(details)
    reverse = bool(checked and checked[0] == "eu_vat" and checked[2])
    if customer:
        reverse = reverse or any(tax_ids.is_reverse_charge_id(record)
                                 for record in tax.ids_of(store, customer))
    exempt = (customer or {}).get("tax_exempt") or "none"
    decision = tax.decide(settings.seller_country, country, exempt, reverse)
    if decision is None:
        return subtotal, 0, "requires_location_inputs", None
    amount = sum(tax.tax_amount(item["amount_subtotal"], decision[1])
                 for item in session["_line_items"]) if subtotal else 0
    return subtotal, amount, "complete", decision[0]


def _quiet_tax_id(details):
    try:
        return details.tax_id_check()
    except StripeError:
        return None


def _set_totals(session, quoted):
    subtotal, amount, status, _reason = quoted
    session["amount_total"] = subtotal + amount
    session["total_details"]["amount_tax"] = amount
    session["automatic_tax"] = _automatic_tax(session["automatic_tax"]["enabled"], status)


def success_redirect(session):
    """Stripe substitutes the literal {CHECKOUT_SESSION_ID} in success_url."""
    return (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session["id"])


def _check_details(session, details, customer):
    """What the session requires of the buyer; raises a 400 the page shows as it is."""
    wanted = asks_for_address(session)
    if wanted == "full":
        missing = [name for name in ("line1", "postal_code", "city", "country")
                   if not getattr(details, name)]
        if missing:
            raise StripeError(400, "Enter your billing address (street, postal code, city and "
                                   "country).", code="parameter_missing", param=missing[0])
    elif wanted == "country" and not details.country and not (
            (customer or {}).get("address") or {}).get("country"):
        raise StripeError(400, "Select your country: it decides the tax.",
                          code="parameter_missing", param="country")
    if details.tax_id and not session["tax_id_collection"]["enabled"]:
        raise StripeError(400, "This Checkout Session does not collect tax IDs.",
                          code="parameter_unknown", param="tax_id")
    details.address()        # a malformed country is refused before anything is created
    details.tax_id_check()   # so is a VAT ID that cannot be one (tax_id_invalid)


def complete(ctx, session, outcome="paid", email=None, name=None, details=None):
    """The buyer submitted the hosted page. Returns the session (unchanged if declined)."""
    details = details or BuyerDetails(email=email, name=name)
    if outcome not in OUTCOMES:
        raise StripeError(400, f"outcome must be one of {', '.join(OUTCOMES)}", param="outcome")
    if session["status"] != "open":
        raise StripeError(400, f"This Checkout Session is no longer active "
                               f"(status: {session['status']}).", code="checkout_session_inactive")
    store = ctx.store
    existing = store.get("customer", session["customer"]) if session["customer"] else None
    details = details.prefilled_from(existing)
    _check_details(session, details, existing)
    if outcome == "declined":
        raise StripeError(402, "Your card was declined.", type="card_error",
                          code="card_declined", decline_code="generic_decline")
    customer = _buyer(ctx, session, details)
    data = session["_subscription_data"]
    items: list[tuple[dict[str, Any], int, dict[str, str]]] = [
        (store.get("price", li["price"]), li["quantity"], {}) for li in session["_line_items"]
    ]
    sub = billing.create_subscription(
        ctx, customer=customer, items=items, metadata=dict(data["metadata"]),
        trial_period_days=data["trial_period_days"], description=data.get("description"),
        payment="processing" if outcome == "delayed" and not data["trial_period_days"]
        else "checkout", automatic_tax=session["automatic_tax"]["enabled"])
    if data["trial_period_days"]:
        payment_status = "no_payment_required"
    else:
        payment_status = "unpaid" if outcome == "delayed" else "paid"
    first_invoice = store.get("invoice", sub["latest_invoice"])
    _record_totals(session, first_invoice, trial=bool(data["trial_period_days"]))
    session.update(
        status="complete", payment_status=payment_status, customer=customer["id"],
        subscription=sub["id"],
        customer_details={
            "address": customer["address"], "business_name": details.business_name,
            "email": customer["email"], "individual_name": None,
            "name": details.business_name or details.name or customer["name"], "phone": None,
            "tax_exempt": customer["tax_exempt"],
            "tax_ids": [{"type": record["type"], "value": record["value"]}
                        for record in tax.ids_of(store, customer)]})
    session["payment_method_types"] = ["sepa_debit"] if outcome == "delayed" else ["card"]
    ctx.events.emit("checkout.session.completed", session)
    if payment_status == "unpaid":
        session["_async_pending"] = True
        ctx.emulator.later(ctx.settings.async_payment_delay_seconds, _settle_later,
                           ctx.emulator, session["id"], ctx.settings.async_payment_result)
    return session


def _buyer(ctx, session, details):
    """The session's customer, created or updated with what the buyer entered."""
    address = details.address() if asks_for_address(session) else None
    checked = details.tax_id_check()
    display_name = details.business_name or details.name
    if not session["customer"]:
        params: dict[str, Any] = {
            "email": details.email or session["customer_email"] or "buyer@example.com",
            "name": display_name,
            "preferred_locales": [session["locale"]] if session["locale"] else []}
        if address:
            params["address"] = address
        if checked:
            params["tax_id_data"] = [{"type": checked[0], "value": checked[1]}]
        return customers.create(ctx, params)
    customer = ctx.store.require("customer", session["customer"])
    update = session.get("_customer_update") or {}
    changes: dict[str, Any] = {}
    if update.get("name") == "auto" and display_name:
        changes["name"] = display_name
    if update.get("address") == "auto" and address:
        changes["address"] = address
    if changes:
        customers.update(ctx, customer, changes)
    if checked:
        customers.add_tax_id(ctx, customer, checked[0], checked[1], param="tax_id")
    return customer


def _record_totals(session, invoice, trial):
    """The amounts as the first invoice charged them (tax included)."""
    taxes_by_line = [sum(t["amount"] for t in line["taxes"]) for line in invoice["_lines"]]
    for item, line_tax in zip(session["_line_items"], taxes_by_line, strict=False):
        item["amount_tax"] = 0 if trial else line_tax
        item["amount_total"] = item["amount_subtotal"] + item["amount_tax"]
    tax_total = 0 if trial else invoice["total"] - invoice["subtotal"]
    session["amount_total"] = (session["amount_subtotal"] or 0) + tax_total
    session["total_details"]["amount_tax"] = tax_total
    if session["automatic_tax"]["enabled"]:
        session["automatic_tax"] = _automatic_tax(True, invoice["automatic_tax"]["status"])


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
