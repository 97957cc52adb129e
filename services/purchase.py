"""Starting a purchase: the quantity, the price it costs, and the Stripe Checkout session."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from adapters.stripe_gateway import SeatPrice, StripeGateway, StripeUnavailable
from services.business_details import BusinessDetails, create_customer, finance_metadata
from services.fulfilment import buyer_reference
from services.settings import Settings
from services.web_session import Person

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

Kind = Literal["organisation", "individual"]
Interval = Literal["month", "year"]
Payment = Literal["stripe", "invoice"]


class InvalidPurchase(ValueError):
    """What the buyer asked for cannot be bought; the message says why, `field` names the form field
    and `key` the translated text (services/i18n, with `params`)."""

    def __init__(self, message: str, *, field: str = "quantity", key: str = "", **params: object):
        super().__init__(message)
        self.field = field
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Quote:
    quantity: int
    unit_amount: int
    total: int
    currency: str
    interval: str
    discounted: bool  # the volume tier applies


def parse_quantity(raw: str | None, kind: str, settings: Settings) -> int:
    if kind == "individual":
        return 1  # an individual subscription is one license for the buyer
    try:
        quantity = int((raw or "").strip())
    except ValueError:
        raise InvalidPurchase(
            f"the number of licenses must be a whole number from 1 to {settings.max_quantity}",
            key="purchase.error.quantity", max=settings.max_quantity) from None
    if not 1 <= quantity <= settings.max_quantity:
        raise InvalidPurchase(f"the number of licenses must be from 1 to {settings.max_quantity}",
                              key="purchase.error.quantity", max=settings.max_quantity)
    return quantity


def parse_kind(raw: str | None) -> Kind:
    if raw in (None, "", "organisation"):
        return "organisation"
    if raw == "individual":
        return "individual"
    raise InvalidPurchase("choose a purchase for your organisation or for yourself", field="kind",
                          key="purchase.error.kind")


def parse_interval(raw: str | None) -> Interval:
    if raw in (None, "", "month"):
        return "month"
    if raw == "year":
        return "year"
    raise InvalidPurchase("choose monthly or annual billing", field="interval", key="purchase.error.interval")


def parse_payment(raw: str | None, kind: str, quantity: int, settings: Settings) -> Payment:
    """Card or SEPA direct debit through Stripe Checkout, or (organisations from INVOICE_MIN_QUANTITY
    licenses) pay by invoice."""
    if raw in (None, "", "stripe"):
        return "stripe"
    if raw != "invoice":
        raise InvalidPurchase("choose how to pay", field="payment", key="purchase.error.payment")
    if not invoice_allowed(kind, quantity, settings):
        raise InvalidPurchase(f"paying by invoice needs an organisation purchase of at least "
                              f"{settings.invoice_min_quantity} licenses", field="payment",
                              key="purchase.error.invoice_minimum", min=settings.invoice_min_quantity)
    return "invoice"


def invoice_allowed(kind: str, quantity: int, settings: Settings) -> bool:
    return kind == "organisation" and quantity >= settings.invoice_min_quantity


def quote(price: SeatPrice, quantity: int) -> Quote:
    unit = price.unit_amount_for(quantity)
    return Quote(
        quantity=quantity,
        unit_amount=unit,
        total=unit * quantity,
        currency=price.currency,
        interval=price.interval,
        discounted=unit < price.unit_amount_for(1),
    )


def buyer_metadata(buyer: Person, kind: str, language: str) -> dict[str, str]:
    """Who bought, as Stripe keeps it on the purchase: fulfilment makes them the owner."""
    return {"buyer_tid": buyer.tid, "buyer_oid": buyer.oid, "buyer_email": buyer.email,
            "buyer_name": buyer.name[:200], "kind": kind, "language": language}


def start_checkout(
    stripe: StripeGateway,
    settings: Settings,
    buyer: Person,
    quantity: int,
    kind: Kind,
    language: str,
    attempt: str,
    *,
    interval: Interval = "month",
    business: BusinessDetails | None = None,
) -> str:
    """Create the Checkout session and return its URL.

    `attempt` identifies this purchase form (a token rendered into it): a double-clicked or retried
    submit reuses the idempotency key and so the same session instead of creating a second one.
    An organisation's `business` details (checked on the purchase page) become the Stripe customer first,
    so the invoices carry them and Stripe Tax knows where the buyer is; Checkout shows them and may
    change the name and address. Without them, Checkout asks for the billing address itself.
    """
    if kind == "individual":
        quantity = 1
    price = stripe.seat_price(interval)
    base = settings.public_base_url
    key_material = f"{buyer.tid}|{buyer.oid}|{kind}|{quantity}|{interval}|{attempt}"
    key = hashlib.sha256(key_material.encode()).hexdigest()[:40]
    params: SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": price.id, "quantity": quantity}],
        "success_url": f"{base}/api/purchase/complete?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base}/api/purchase?cancelled=1",
        "client_reference_id": buyer_reference(buyer.tid, buyer.oid),
        "locale": language if language in ("en", "de") else "auto",
        "metadata": {**buyer_metadata(buyer, kind, language), **finance_metadata(business)},
        "subscription_data": {"metadata": {"buyer_tid": buyer.tid, "buyer_oid": buyer.oid, "kind": kind}},
        # The billing address is what Stripe Tax computes VAT from; an organisation may give (or correct)
        # its VAT ID for the EU reverse charge. Both land on the Stripe customer.
        "billing_address_collection": "required",
        "automatic_tax": {"enabled": settings.stripe_automatic_tax},
    }
    if kind == "organisation":
        params["tax_id_collection"] = {"enabled": True}
    if business is not None:
        params["customer"] = create_customer(stripe, buyer, language, business, f"checkout-{key}")
        params["customer_update"] = {"name": "auto", "address": "auto"}
    else:
        params["customer_email"] = buyer.email
    session = stripe.create_checkout_session(params, idempotency_key=f"checkout-{key}")
    if not session.url:  # always set for a hosted (the default ui_mode) session
        raise StripeUnavailable("Stripe created a Checkout session without a URL")
    return session.url
