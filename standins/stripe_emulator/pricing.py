"""What a price costs for a quantity, following Stripe's billing schemes."""


def amount_for(price, quantity):
    """Total in the currency's minor unit for ``quantity`` units of ``price``.

    volume:    the whole quantity is charged at the unit price of the tier it falls in.
    graduated: each unit is charged at the tier it falls in.
    Tiers may also carry a flat_amount, added once per tier that applies.
    """
    if price.get("billing_scheme") != "tiered":
        return (price.get("unit_amount") or 0) * quantity
    tiers = price.get("tiers") or []
    if price.get("tiers_mode") == "volume":
        tier = tier_for(tiers, quantity)
        if tier is None:
            return 0
        return (tier.get("unit_amount") or 0) * quantity + (tier.get("flat_amount") or 0)
    total, lower = 0, 0
    for tier in tiers:
        upper = tier.get("up_to")
        in_tier = (quantity if upper is None else min(quantity, upper)) - lower
        if in_tier <= 0:
            break
        total += (tier.get("unit_amount") or 0) * in_tier + (tier.get("flat_amount") or 0)
        if upper is None:
            break
        lower = upper
    return total


def tier_for(tiers, quantity):
    for tier in tiers:
        if tier.get("up_to") is None or quantity <= tier["up_to"]:
            return tier
    return None


def unit_amount_for(price, quantity):
    """The unit price shown to a buyer: for volume tiers, the tier's unit amount."""
    if price.get("billing_scheme") == "tiered" and price.get("tiers_mode") == "volume":
        tier = tier_for(price.get("tiers") or [], quantity)
        return (tier or {}).get("unit_amount") or 0
    if price.get("billing_scheme") == "tiered":
        return amount_for(price, quantity) // max(quantity, 1)
    return price.get("unit_amount") or 0


def format_money(amount, currency):
    symbol = {"eur": "€", "usd": "$", "gbp": "£"}.get(currency, currency.upper() + " ")
    return f"{symbol}{amount / 100:,.2f}"


def prorate(amount, remaining, period):
    """``amount × remaining / period`` in whole minor units, as Stripe prorates a line.

    Exact integer arithmetic (no floats): the fraction is clamped to [0, 1] and the result is
    rounded to the nearest cent, halves away from zero, so a credit is the exact negative of
    the charge for the same amount and a preview and the later update agree to the cent.
    """
    if period <= 0:
        return 0
    remaining = max(0, min(remaining, period))
    magnitude = (2 * abs(amount) * remaining + period) // (2 * period)
    return -magnitude if amount < 0 else magnitude
