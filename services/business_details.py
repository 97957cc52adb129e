"""The buying organisation's business details (PRODUCT.md 2.13): legal name, billing address, VAT ID, and
the finance settings that go with them (purchase-order number, cost centre, accounting e-mail address).

An organisation gives them on the purchase page, whichever way it pays; all of them are checked here
before anything reaches Stripe (a refusal names the field), then they become the Stripe customer the
subscription is billed to: invoices carry the name, address and VAT ID, the PO number and cost centre as
custom fields, and Stripe Tax computes VAT from the address and the VAT ID (reverse charge within the
EU). Stripe Checkout may still change the name and address (`customer_update`), the billing portal later.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.stripe_gateway import StripeGateway
from services.billing_settings import BillingSettings, InvalidBillingSetting, invoice_custom_fields, parse_settings
from services.purchase import InvalidPurchase
from services.vat_id import InvalidVatId, VatId, parse_vat_id
from services.web_session import Person

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams

# Where this server bills to: the EU, the rest of the EEA, Switzerland and the United Kingdom (the SEPA
# area, so an invoice can be paid by bank transfer). The purchase page offers these countries.
BILLING_COUNTRIES: tuple[str, ...] = (
    "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)
# Form field -> longest value; Stripe allows 200 characters for a name or an address line.
_LIMITS = {"company": 200, "line1": 200, "line2": 200, "postal_code": 20, "city": 100}
_REQUIRED = ("company", "line1", "postal_code", "city")
# The form's field names, kept as typed when the page is shown again.
FORM_FIELDS = ("company", "line1", "line2", "postal_code", "city", "country", "vat_id", "po_number",
               "cost_centre", "accounting_email")


@dataclass(frozen=True)
class BusinessDetails:
    company: str
    line1: str
    line2: str
    postal_code: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    vat_id: VatId | None
    finance: BillingSettings  # PO number, cost centre, accounting address


def _line(form: Mapping[str, str], name: str) -> str:
    raw = form.get(name) or ""
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in raw.strip()):
        raise InvalidPurchase(f"{name}: contains characters that cannot be printed", field=name,
                              key="purchase.details.error.invalid_characters")
    value = " ".join(raw.split())  # one line, single spaces
    if not value and name in _REQUIRED:
        raise InvalidPurchase(f"{name}: required", field=name, key=f"purchase.details.error.{name}")
    if len(value) > _LIMITS[name]:
        raise InvalidPurchase(f"{name}: at most {_LIMITS[name]} characters", field=name,
                              key="purchase.details.error.too_long", max=_LIMITS[name])
    return value


def parse_business_details(form: Mapping[str, str]) -> BusinessDetails:
    """Everything an organisation's purchase needs, checked before anything is sent to Stripe."""
    lines = {name: _line(form, name) for name in _LIMITS}
    country = (form.get("country") or "").strip().upper()
    if country not in BILLING_COUNTRIES:
        raise InvalidPurchase("country: choose the country of the billing address", field="country",
                              key="purchase.details.error.country")
    vat_id = None
    if (form.get("vat_id") or "").strip():
        try:
            vat_id = parse_vat_id(form["vat_id"])
        except InvalidVatId as exc:
            raise InvalidPurchase(f"vat_id: {exc}", field="vat_id", key=exc.code) from None
        if vat_id.country != country:
            raise InvalidPurchase("vat_id: the VAT ID is from another country than the billing address",
                                  field="vat_id", key="purchase.details.error.vat_country")
    try:
        finance = parse_settings({name: form.get(name) or "" for name in ("po_number", "cost_centre",
                                                                           "accounting_email")}, BillingSettings())
    except InvalidBillingSetting as exc:
        raise InvalidPurchase(str(exc), field=exc.field, key=f"purchase.details.error.{exc.code}",
                              max=exc.maximum or 0) from None
    return BusinessDetails(country=country, vat_id=vat_id, finance=finance, **lines)


def create_customer(stripe: StripeGateway, buyer: Person, language: str, details: BusinessDetails,
                    purchase_key: str) -> str:
    """The Stripe customer the purchase bills to; the same `purchase_key` (one submitted form) makes one
    customer however often it is sent. Returns its id."""
    fields = invoice_custom_fields(language, details.finance.po_number, details.finance.cost_centre)
    params: CustomerCreateParams = {
        "email": buyer.email,
        "name": details.company,
        "address": {"line1": details.line1, "line2": details.line2, "postal_code": details.postal_code,
                    "city": details.city, "country": details.country},
        "preferred_locales": [language],
        "metadata": {"buyer_tid": buyer.tid, "buyer_oid": buyer.oid},
    }
    if fields:
        params["invoice_settings"] = {"custom_fields": [{"name": n, "value": v} for n, v in fields]}
    if details.vat_id is not None:
        params["tax_id_data"] = [{"type": details.vat_id.stripe_type, "value": details.vat_id.value}]
    key = hashlib.sha256(f"{purchase_key}|{details!r}".encode()).hexdigest()[:40]
    return str(stripe.create_customer(params, idempotency_key=f"customer-{key}")["id"])


def finance_metadata(details: BusinessDetails | None) -> dict[str, str]:
    """The finance settings as Stripe subscription metadata, so whichever fulfilment runs first (the
    purchase request, the webhook, reconciliation) stores them on the new subscription."""
    if details is None:
        return {}
    finance = details.finance
    return {"po_number": finance.po_number, "cost_centre": finance.cost_centre,
            "accounting_email": finance.accounting_email}
