"""What a purchase asks for: the kind, the quantity, the billing interval, how to pay, and the price it costs
(services/checkout.py and services/invoice_purchase.py start it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapters.stripe_gateway import SeatPrice
from services.settings import Settings
from services.web_session import Person

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
        minimum = settings.invoice_min_quantity
        raise InvalidPurchase(f"paying by invoice needs an organisation purchase of at least {minimum} "
                              f"license{'' if minimum == 1 else 's'}", field="payment",
                              key="purchase.error.invoice_minimum", count=settings.invoice_min_quantity)
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
