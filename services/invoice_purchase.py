"""Buying by invoice (bank transfer): PRODUCT.md 2.13.

An organisation buying at least INVOICE_MIN_QUANTITY licenses may pay by invoice instead of card or SEPA
direct debit. There is no Checkout session: with the business details checked on the purchase page
(services/business_details.py), this module creates the Stripe customer (name, address, VAT ID, PO number
on every invoice) and the subscription with `collection_method=send_invoice` and bank-transfer payment
(`customer_balance`, EU bank transfer). Stripe issues the first invoice at once with the bank details it
assigns to the customer; the licenses work at once; an invoice unpaid past its due date makes the
subscription `past_due` and the usual grace rules apply (services/subscription.py).

A retried or double-clicked submit of the same form reuses the idempotency keys and so the same customer
and subscription; fulfilment is idempotent (services/fulfilment.py), from the purchase request, from the
`customer.subscription.created` webhook and from the daily reconciliation, whichever comes first.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from adapters.stripe_gateway import StripeGateway
from services.business_details import BusinessDetails, create_customer, finance_metadata
from services.fulfilment import PURCHASE_BY_INVOICE
from services.purchase import Interval, buyer_metadata
from services.settings import Settings
from services.web_session import Person

if TYPE_CHECKING:
    from stripe.params import SubscriptionCreateParams


def buy_by_invoice(stripe: StripeGateway, settings: Settings, buyer: Person, quantity: int, interval: Interval,
                   language: str, details: BusinessDetails, attempt: str) -> dict[str, Any]:
    """Create the Stripe customer and the subscription paid by invoice; returns the subscription."""
    price = stripe.seat_price(interval)
    # The same form submitted again (same attempt token, same content) reuses the keys: one customer,
    # one subscription. Changed content is a new purchase with new keys.
    material = "|".join((buyer.tid, buyer.oid, str(quantity), interval, language, attempt, repr(details)))
    key = hashlib.sha256(material.encode()).hexdigest()[:40]
    customer = create_customer(stripe, buyer, language, details, f"invoice-{key}")
    subscription: SubscriptionCreateParams = {
        "customer": customer,
        "items": [{"price": price.id, "quantity": quantity}],
        "collection_method": "send_invoice",
        "days_until_due": settings.invoice_days_until_due,
        "payment_settings": {
            "payment_method_types": ["customer_balance"],
            "payment_method_options": {"customer_balance": {
                "funding_type": "bank_transfer",
                "bank_transfer": {"type": "eu_bank_transfer", "eu_bank_transfer": {"country": "DE"}}}},
        },
        "automatic_tax": {"enabled": settings.stripe_automatic_tax},
        "metadata": {**buyer_metadata(buyer, "organisation", language), "purchase": PURCHASE_BY_INVOICE,
                     **finance_metadata(details)},
    }
    return stripe.create_subscription(subscription, idempotency_key=f"invoice-subscription-{key}")
