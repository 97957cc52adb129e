"""How a subscription's invoices are collected: charged to the card on file, or sent to the
customer to pay by bank transfer (``collection_method=send_invoice``).

Sent invoices are due ``days_until_due`` days after finalization (required with send_invoice,
refused without it, as in Stripe). Paying by bank transfer is Stripe's ``customer_balance``
payment method with ``funding_type=bank_transfer``: the hosted invoice and its PDF then show
the customer's virtual IBAN (funding.py) and the invoice number as the payment reference.
"""

from . import objects
from .errors import StripeError
from .forms import as_int, as_list

METHODS = ("charge_automatically", "send_invoice")
BANK_TRANSFER_TYPES = ("eu_bank_transfer",)
EU_BANK_TRANSFER_COUNTRIES = ("BE", "DE", "ES", "FR", "IE", "NL")


def fields(params, current=None):
    """collection_method, days_until_due and payment_settings from create/update parameters.

    ``current``: the subscription being updated (its values stand where params say nothing).
    """
    current = current or {}
    method = params.get("collection_method") or current.get("collection_method") or METHODS[0]
    if method not in METHODS:
        raise StripeError(400, f"Invalid collection_method: must be one of {', '.join(METHODS)}",
                          code="parameter_invalid", param="collection_method")
    days = as_int(params, "days_until_due", None, minimum=0)
    if days is None and method == "send_invoice" and current.get("collection_method") == method:
        days = current.get("days_until_due")
    if method == "send_invoice" and days is None:
        raise StripeError(400, "Missing required param: days_until_due. It is required when "
                               "collection_method is send_invoice.",
                          code="parameter_missing", param="days_until_due")
    if method == "charge_automatically" and days is not None:
        raise StripeError(400, "You can only set days_until_due when collection_method is "
                               "send_invoice.", code="parameter_invalid", param="days_until_due")
    settings = current.get("payment_settings")
    if "payment_settings" in params:
        settings = payment_settings(params["payment_settings"])
    result = {"collection_method": method, "days_until_due": days}
    if settings is not None:
        result["payment_settings"] = settings
    return result


def payment_settings(raw):
    if raw in ("", None):
        raw = {}
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", code="parameter_invalid", param="payment_settings")
    types = as_list(raw.get("payment_method_types")) or None
    options = raw.get("payment_method_options")
    balance = None
    if isinstance(options, dict) and isinstance(options.get("customer_balance"), dict):
        balance = customer_balance(options["customer_balance"])
    elif types and "customer_balance" in types:
        balance = customer_balance({})
    save = raw.get("save_default_payment_method") or "off"
    return {"payment_method_options": objects.payment_method_options(balance)
            if balance or isinstance(options, dict) else None,
            "payment_method_types": types, "save_default_payment_method": save}


def customer_balance(raw):
    param = "payment_settings[payment_method_options][customer_balance]"
    funding_type = raw.get("funding_type") or None
    if funding_type not in (None, "bank_transfer"):
        raise StripeError(400, "funding_type must be bank_transfer.", code="parameter_invalid",
                          param=f"{param}[funding_type]")
    transfer = raw.get("bank_transfer") if isinstance(raw.get("bank_transfer"), dict) else {}
    kind = transfer.get("type") or None
    if kind not in (None, *BANK_TRANSFER_TYPES):
        raise StripeError(400, "The Stripe emulator supports eu_bank_transfer only.",
                          code="parameter_invalid", param=f"{param}[bank_transfer][type]")
    eu = transfer.get("eu_bank_transfer") if isinstance(transfer.get("eu_bank_transfer"), dict) \
        else None
    if eu is not None and eu.get("country") not in EU_BANK_TRANSFER_COUNTRIES:
        raise StripeError(400, f"country must be one of {', '.join(EU_BANK_TRANSFER_COUNTRIES)}.",
                          code="parameter_invalid",
                          param=f"{param}[bank_transfer][eu_bank_transfer][country]")
    bank_transfer: dict = {"type": kind}
    if eu is not None:
        bank_transfer["eu_bank_transfer"] = {"country": eu["country"]}
    return {"bank_transfer": bank_transfer, "funding_type": funding_type}


def pays_by_bank_transfer(invoice):
    """Whether the invoice asks for a bank transfer (customer balance) rather than a card."""
    return "customer_balance" in (invoice["payment_settings"]["payment_method_types"] or [])
