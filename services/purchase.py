"""Starting a purchase: the quantity, the price it costs, and the Stripe Checkout session."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from adapters.stripe_gateway import SeatPrice, StripeGateway, StripeUnavailable
from services.fulfilment import buyer_reference
from services.settings import Settings
from services.web_session import Person

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

Kind = Literal["organisation", "individual"]


class InvalidPurchase(ValueError):
    """What the buyer asked for cannot be bought; the message says why."""


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
            f"the number of licenses must be a whole number from 1 to {settings.max_quantity}"
        ) from None
    if not 1 <= quantity <= settings.max_quantity:
        raise InvalidPurchase(f"the number of licenses must be from 1 to {settings.max_quantity}")
    return quantity


def parse_kind(raw: str | None) -> Kind:
    if raw in (None, "", "organisation"):
        return "organisation"
    if raw == "individual":
        return "individual"
    raise InvalidPurchase("choose a purchase for your organisation or for yourself")


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


def start_checkout(
    stripe: StripeGateway,
    settings: Settings,
    buyer: Person,
    quantity: int,
    kind: Kind,
    language: str,
    attempt: str,
) -> str:
    """Create the Checkout session and return its URL.

    `attempt` identifies this purchase form (a token rendered into it): a double-clicked or retried
    submit reuses the idempotency key and so the same session instead of creating a second one.
    """
    if kind == "individual":
        quantity = 1
    price = stripe.seat_price()
    base = settings.public_base_url
    params: SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": price.id, "quantity": quantity}],
        "success_url": f"{base}/api/purchase/complete?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base}/api/purchase?cancelled=1",
        "client_reference_id": buyer_reference(buyer.tid, buyer.oid),
        "customer_email": buyer.email,
        "locale": language if language in ("en", "de") else "auto",
        "metadata": {
            "buyer_tid": buyer.tid,
            "buyer_oid": buyer.oid,
            "buyer_email": buyer.email,
            "buyer_name": buyer.name[:200],
            "kind": kind,
            "language": language,
        },
        "subscription_data": {"metadata": {"buyer_tid": buyer.tid, "buyer_oid": buyer.oid, "kind": kind}},
    }
    key_material = f"{buyer.tid}|{buyer.oid}|{kind}|{quantity}|{attempt}"
    idempotency_key = "checkout-" + hashlib.sha256(key_material.encode()).hexdigest()[:40]
    session = stripe.create_checkout_session(params, idempotency_key=idempotency_key)
    if not session.url:  # always set for a hosted (the default ui_mode) session
        raise StripeUnavailable("Stripe created a Checkout session without a URL")
    return session.url
