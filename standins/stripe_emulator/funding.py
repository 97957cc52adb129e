"""Bank transfers to the account: each customer's own virtual IBAN (customer balance funding).

Stripe gives every customer who pays by bank transfer a virtual IBAN of its own, so an
incoming SEPA credit transfer can be matched to the customer; the invoice number is the
payment reference. The emulator derives a German IBAN from the customer id (the same IBAN on
every call) with correct ISO 13616 check digits, so IBAN validators accept it.
"""

import hashlib

from . import objects
from .errors import StripeError

BANK_CODE = "10077777"        # an 8-digit German bank code (Bankleitzahl), made up
BIC = "SXPYDEHHXXX"
BANK_ADDRESS = {"city": "Frankfurt am Main", "country": "DE", "line1": "Stripe-Emulator-Platz 1",
                "line2": None, "postal_code": "60311", "state": None}
COUNTRIES = ("DE",)


def iban_check_digits(country, bban):
    """ISO 13616 / ISO 7064 MOD 97-10: the two digits after the country code."""
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{98 - number % 97:02d}"


def is_valid_iban(iban):
    compact = iban.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def virtual_iban(customer_id, country="DE"):
    digest = hashlib.sha256(customer_id.encode()).hexdigest()
    account = f"{int(digest, 16) % 10**10:010d}"
    bban = BANK_CODE + account
    return f"{country}{iban_check_digits(country, bban)}{bban}"


def iban_record(settings, customer_id, country="DE"):
    return {"account_holder_address": dict(settings.account_address),
            "account_holder_name": settings.account_name, "bank_address": dict(BANK_ADDRESS),
            "bic": BIC, "country": country, "iban": virtual_iban(customer_id, country)}


def instructions(settings, customer, params):
    """POST /v1/customers/{id}/funding_instructions (bank_transfer, eu_bank_transfer)."""
    if params.get("funding_type") != "bank_transfer":
        raise StripeError(400, "Missing required param: funding_type.", code="parameter_missing",
                          param="funding_type")
    currency = (params.get("currency") or "").lower()
    if currency != "eur":
        raise StripeError(400, "The Stripe emulator funds customer balances in eur only.",
                          code="parameter_invalid", param="currency")
    transfer = params.get("bank_transfer")
    transfer = transfer if isinstance(transfer, dict) else {}
    if transfer.get("type") != "eu_bank_transfer":
        raise StripeError(400, "The Stripe emulator supports bank_transfer[type]=eu_bank_transfer "
                               "only.", code="parameter_invalid", param="bank_transfer[type]")
    eu = transfer.get("eu_bank_transfer")
    eu = eu if isinstance(eu, dict) else {}
    country = (eu.get("country") or "").upper()
    if country not in COUNTRIES:
        raise StripeError(400, f"The Stripe emulator issues {', '.join(COUNTRIES)} IBANs only.",
                          code="parameter_invalid", param="bank_transfer[eu_bank_transfer][country]")
    return objects.funding_instructions(country=country, currency=currency,
                                        iban=iban_record(settings, customer["id"], country))
