"""Starting a purchase paid through Stripe Checkout (card or SEPA Direct Debit): the Checkout session.

`attempt` identifies one submitted purchase form (a token rendered into it): a double-clicked or retried
submit reuses the idempotency keys, and so the same customer and session instead of a second one.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from adapters.stripe_gateway import StripeGateway, StripeUnavailable
from services.business_details import BusinessDetails, create_customer, finance_metadata
from services.fulfilment import buyer_reference
from services.purchase import Interval, Kind, buyer_metadata
from services.settings import Settings
from services.web_session import Person

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams


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
