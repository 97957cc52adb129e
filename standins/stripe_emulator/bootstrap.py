"""Create the SecureMailMerge product and its volume-tiered seat price, if missing.

Uses only the real stripe SDK, so the same code sets up a real Stripe test/live account
(``--api-key sk_test_...``) and the emulator (``--api-base http://127.0.0.1:12111``).
Idempotent: the price is found by its lookup key, the product by its fixed id.
"""

import stripe

PRODUCT_ID = "securemailmerge"
PRODUCT_NAME = "SecureMailMerge"
PRICE_LOOKUP_KEY = "securemailmerge_seat_monthly"
CURRENCY = "eur"
INTERVAL = "month"
# Volume tiers, in cents per license per month: the whole quantity is charged at the
# tier it falls in (12 licenses -> 12 x 4.80).
TIERS = [
    {"up_to": 9, "unit_amount": 600},
    {"up_to": "inf", "unit_amount": 480},
]


def client_for(api_key, api_base=None):
    """A StripeClient for Stripe, or for the emulator when ``api_base`` is given."""
    return stripe.StripeClient(api_key, base_addresses={"api": api_base.rstrip("/")} if api_base else None)


def ensure_catalog(client):
    """Returns the seat price's id, creating product and price only when absent."""
    prices = client.v1.prices.list(params={"lookup_keys": [PRICE_LOOKUP_KEY], "active": True,
                                           "limit": 1})
    if prices.data:
        return prices.data[0].id
    try:
        product = client.v1.products.retrieve(PRODUCT_ID)
    except stripe.InvalidRequestError:
        product = client.v1.products.create(params={"id": PRODUCT_ID, "name": PRODUCT_NAME})
    price = client.v1.prices.create(params={
        "product": product.id,
        "currency": CURRENCY,
        "recurring": {"interval": INTERVAL},
        "billing_scheme": "tiered",
        "tiers_mode": "volume",
        "tiers": TIERS,
        "lookup_key": PRICE_LOOKUP_KEY,
        "nickname": "SecureMailMerge seat (monthly)",
    })
    if not product.default_price:
        client.v1.products.update(product.id, params={"default_price": price.id})
    return price.id
