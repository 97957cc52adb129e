"""Stripe Tax, emulated for a seller in one EU country (Settings.seller_country, default DE).

Where the customer is (their address's country) decides, per invoice, tax-exclusive:

    seller's country               the seller's standard VAT rate     standard_rated
    other EU country, eu_vat ID    0 % (the buyer accounts for it)    reverse_charge
    other EU country, no VAT ID    that country's standard rate (OSS) standard_rated
    outside the EU                 0 %                                not_subject_to_tax
    tax_exempt=exempt | reverse    0 %                                customer_exempt | reverse_charge
    no country known               no tax, automatic_tax.status requires_location_inputs

Every line gets one ``taxes`` entry (amount rounded half away from zero, per line, as Stripe
does) whose ``tax_rate_details.tax_rate`` names a tax rate object created once per (country,
percentage) and reused; the invoice's ``total_taxes`` adds them up per rate. The standard
rates are those in force in 2025; the emulator is not a tax engine.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import objects, tax_ids

EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"})
STANDARD_RATES = {
    "AT": 20, "BE": 21, "BG": 20, "CY": 19, "CZ": 21, "DE": 19, "DK": 25, "EE": 24, "ES": 21,
    "FI": 25.5, "FR": 20, "GR": 24, "HR": 25, "HU": 27, "IE": 23, "IT": 22, "LT": 21, "LU": 17,
    "LV": 21, "MT": 18, "NL": 21, "PL": 23, "PT": 23, "RO": 21, "SE": 25, "SI": 22, "SK": 23,
}
DEFAULT_EU_RATE = 20
LIABILITY = {"type": "self"}


def decide(seller_country, country, tax_exempt="none", reverse_charge_id=False):
    """``(taxability_reason, percentage)`` for a sale to ``country``; None if it is unknown."""
    if not country:
        return None
    country = country.upper()
    if tax_exempt == "exempt":
        return "customer_exempt", 0
    if tax_exempt == "reverse":
        return "reverse_charge", 0
    if country == seller_country:
        return "standard_rated", STANDARD_RATES.get(country, DEFAULT_EU_RATE)
    if country in EU_COUNTRIES and seller_country in EU_COUNTRIES:
        if reverse_charge_id:
            return "reverse_charge", 0
        return "standard_rated", STANDARD_RATES.get(country, DEFAULT_EU_RATE)
    return "not_subject_to_tax", 0


def decide_for_customer(store, settings, customer):
    address = customer.get("address") or {}
    reverse = any(tax_ids.is_reverse_charge_id(record) for record in ids_of(store, customer))
    return decide(settings.seller_country, address.get("country"),
                  customer.get("tax_exempt") or "none", reverse)


def ids_of(store, customer):
    """The customer's tax ID records, oldest first (the order Stripe prints them in)."""
    return [store.get("tax_id", i) for i in customer.get("_tax_ids") or []
            if store.get("tax_id", i)]


def tax_amount(amount, percentage):
    exact = Decimal(amount) * Decimal(str(percentage)) / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))  # halves away from zero


def rate_for(store, country, percentage):
    """The tax rate object for (country, percentage), created the first time it is needed."""
    key = f"{country}:{percentage}"
    for record in store.all("tax_rate"):
        if record.get("_key") == key:
            return record
    tax_type, display_name = _tax_type(country)
    record = objects.tax_rate(store, country=country, percentage=percentage, tax_type=tax_type,
                              display_name=display_name)
    record["_key"] = key
    return store.add("tax_rate", record)


def _tax_type(country):
    if country in ("US",):
        return "sales_tax", "Sales tax"
    if country in ("AU", "CA", "NZ", "SG", "IN"):
        return "gst", "GST"
    return "vat", "VAT"


def line_tax(line, decision, rate_id):
    reason, percentage = decision
    return {"amount": tax_amount(line["amount"], percentage), "tax_behavior": "exclusive",
            "tax_rate_details": {"tax_rate": rate_id}, "taxability_reason": reason,
            "taxable_amount": line["amount"], "type": "tax_rate_details"}


def apply(store, settings, invoice, customer, enabled):
    """Compute (or clear) the invoice's tax: line ``taxes``, ``total_taxes``, the totals."""
    lines = invoice["_lines"]
    subtotal = sum(line["amount"] for line in lines)
    totals: dict[tuple[str, str], dict[str, Any]] = {}  # per (tax rate, taxability reason)
    status = None
    if enabled:
        decision = decide_for_customer(store, settings, customer)
        status = "complete" if decision else "requires_location_inputs"
        rate = None
        if decision:
            country = ((customer.get("address") or {}).get("country") or "").upper()
            rate = rate_for(store, country, decision[1])
        for line in lines:
            line["taxes"] = [line_tax(line, decision, rate["id"])] if rate else []
            for tax in line["taxes"]:
                key = (tax["tax_rate_details"]["tax_rate"], tax["taxability_reason"])
                total = totals.setdefault(key, {**tax, "amount": 0, "taxable_amount": 0})
                total["amount"] += tax["amount"]
                total["taxable_amount"] += tax["taxable_amount"]
    else:
        for line in lines:
            line["taxes"] = []
    tax_total = sum(t["amount"] for t in totals.values())
    invoice["automatic_tax"] = {
        "disabled_reason": None, "enabled": bool(enabled),
        "liability": dict(LIABILITY) if enabled else None,
        "provider": "stripe" if enabled else None, "status": status}
    invoice["total_taxes"] = list(totals.values())
    invoice.update(subtotal=subtotal, subtotal_excluding_tax=subtotal,
                   total_excluding_tax=subtotal, total=subtotal + tax_total,
                   amount_due=max(subtotal + tax_total, 0),
                   amount_remaining=max(subtotal + tax_total, 0))
    return invoice

