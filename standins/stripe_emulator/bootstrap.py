"""Create the SecureMailMerge product and its volume-tiered seat prices, if missing.

Uses only the real stripe SDK, so the same code sets up a real Stripe test/live account
(``--api-key sk_test_...``) and the emulator (``--api-base http://127.0.0.1:12111``).
Idempotent: prices are found by their lookup keys, the product by its fixed id.

Two prices with the same volume tiers: monthly, and yearly at ten times the monthly unit
amounts (two months free). Both are tax-exclusive (``tax_behavior=exclusive``): Stripe Tax
adds VAT on top, as a B2B price list shows net amounts.
"""

import stripe

PRODUCT_ID = "securemailmerge"
PRODUCT_NAME = "SecureMailMerge"
PRICE_LOOKUP_KEY = "securemailmerge_seat_monthly"
YEARLY_PRICE_LOOKUP_KEY = "securemailmerge_seat_yearly"
CURRENCY = "eur"
INTERVAL = "month"
TAX_BEHAVIOR = "exclusive"
# Volume tiers, in cents per license per month: the whole quantity is charged at the
# tier it falls in (12 licenses -> 12 x 4.80).
TIERS = [
    {"up_to": 9, "unit_amount": 600},
    {"up_to": "inf", "unit_amount": 480},
]
# The same tiers per license per year: 10 x the monthly amounts.
YEARLY_TIERS = [
    {"up_to": 9, "unit_amount": 6000},
    {"up_to": "inf", "unit_amount": 4800},
]
PRICES = [
    {"lookup_key": PRICE_LOOKUP_KEY, "interval": "month", "tiers": TIERS,
     "nickname": "SecureMailMerge seat (monthly)"},
    {"lookup_key": YEARLY_PRICE_LOOKUP_KEY, "interval": "year", "tiers": YEARLY_TIERS,
     "nickname": "SecureMailMerge seat (yearly)"},
]


def client_for(api_key, api_base=None):
    """A StripeClient for Stripe, or for the emulator when ``api_base`` is given."""
    return stripe.StripeClient(api_key, base_addresses={"api": api_base.rstrip("/")} if api_base else None)


def ensure_catalog(client):
    """Returns the monthly seat price's id, creating the product and the monthly and yearly
    prices only when absent (a price created before tax_behavior existed is made exclusive)."""
    existing = {price.lookup_key: price for price in client.v1.prices.list(params={
        "lookup_keys": [spec["lookup_key"] for spec in PRICES], "active": True, "limit": 10}).data}
    product = None
    ids = {}
    for spec in PRICES:
        price = existing.get(spec["lookup_key"])
        if price is None:
            product = product or _product(client)
            price = client.v1.prices.create(params={
                "product": product.id,
                "currency": CURRENCY,
                "recurring": {"interval": spec["interval"]},
                "billing_scheme": "tiered",
                "tiers_mode": "volume",
                "tiers": spec["tiers"],
                "lookup_key": spec["lookup_key"],
                "nickname": spec["nickname"],
                "tax_behavior": TAX_BEHAVIOR,
            })
        elif price.tax_behavior == "unspecified":
            client.v1.prices.update(price.id, params={"tax_behavior": TAX_BEHAVIOR})
        ids[spec["lookup_key"]] = price.id
    if product is not None and not product.default_price:
        client.v1.products.update(product.id, params={"default_price": ids[PRICE_LOOKUP_KEY]})
    return ids[PRICE_LOOKUP_KEY]


def _product(client):
    try:
        return client.v1.products.retrieve(PRODUCT_ID)
    except stripe.InvalidRequestError:
        return client.v1.products.create(params={"id": PRODUCT_ID, "name": PRODUCT_NAME})
