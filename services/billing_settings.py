"""A subscription's finance settings and billing details (PRODUCT.md 2.13; owner or `billing.manage`).

The finance settings are kept on the subscription (services/subscription.py): the purchase-order
number and the cost centre, which Stripe prints on every future invoice as the customer's invoice
custom fields, and the accounting e-mail address, which receives every invoice. Changing them:

1. every value is checked before anything is written (`parse_settings`: a refusal names the field);
2. values equal to the stored ones change nothing: no Stripe call, no audit entry;
3. when the PO number or the cost centre changed, the Stripe customer's custom fields are set (named
   in the subscription's language; empty values left out; none at all clears them). Stripe down is
   StripeUnavailable (503) with nothing stored;
4. the subscription row and one audit entry (`billing.settings_changed`, before and after of what
   changed) are committed together through the unit of work.

If two people save different values at the same moment on two instances, the last to reach Stripe
and the last to commit may differ; saving again aligns them (both sides take the whole set).

The billing details (company name, address, tax ids) belong to the Stripe customer and are changed in
Stripe's billing portal (services/billing_account.py); they are only read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from adapters.stripe_gateway import StripeNotFound
from adapters.subscription_repository import PartitionWrites
from services.address_list import address_problem
from services.audit import Actor, AuditEntry
from services.billing_account import NoCustomer
from services.billing_changes import stripe_refusals
from services.billing_events import Billing
from services.seat import normalise_address
from services.subscription import Subscription
from services.unit_of_work import Plan, Refused, UnitOfWork

ACTION = "billing.settings_changed"
FIELDS = ("po_number", "cost_centre", "accounting_email")
# Stripe's limit for an invoice custom field's value; invoices print it on one line.
MAX_TEXT = 140
# Characters an invoice cannot print, as the body of a regular-expression class: Unicode's controls (Cc),
# formatting characters (Cf: zero-width, bidirectional overrides) and private use (Co) of the Basic
# Multilingual Plane. The API description (handlers/billing_openapi.py) states this same text. Lone
# surrogates (Cs), which JSON escapes can carry, are refused here besides: a JSON Schema pattern cannot
# name them in every regular-expression engine (Rust's, which validators such as jsonschema-rs use,
# refuses them).
UNPRINTABLE = ("\\x00-\\x1f\\x7f-\\x9f\\xad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u180e"
               "\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb")
_UNPRINTABLE = re.compile(f"[{UNPRINTABLE}\\ud800-\\udfff]")
# The custom fields' names, as the invoice's reader reads them.
_FIELD_NAMES = {"de": ("Bestellnummer", "Kostenstelle"), "en": ("PO number", "Cost centre")}


class InvalidBillingSetting(Refused):
    """A value that cannot be used (answer 400); `field` names it, `code` says why: `unknown_field`,
    `invalid_type` (not a string), `too_long` (with `maximum`), `invalid_characters`, or
    `invalid_email` (with `reason` from the one address grammar: services/address_list.address_problem).
    Nothing was changed."""

    status = 400

    def __init__(self, field: str, code: str, message: str, *, maximum: int | None = None, reason: str = ""):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.maximum = maximum
        self.reason = reason


@dataclass(frozen=True)
class BillingSettings:
    po_number: str = ""
    cost_centre: str = ""
    accounting_email: str = ""

    @classmethod
    def of(cls, subscription: Subscription) -> BillingSettings:
        return cls(subscription.po_number, subscription.cost_centre, subscription.accounting_email)

    def differences(self, other: BillingSettings) -> tuple[str, ...]:
        """The fields whose values differ, in FIELDS order."""
        return tuple(name for name in FIELDS if getattr(self, name) != getattr(other, name))


@dataclass(frozen=True)
class SettingsChange:
    subscription: Subscription  # as stored now
    settings: BillingSettings
    changed: tuple[str, ...]  # the fields this request changed; () when it changed nothing


@dataclass(frozen=True)
class TaxId:
    type: str  # Stripe's tax id type: eu_vat, gb_vat, ...
    value: str
    country: str  # "" when Stripe did not say
    verification: str  # Stripe's verification status (pending, verified, unverified, unavailable) or ""


@dataclass(frozen=True)
class BillingDetails:
    """The Stripe customer as its invoices show it."""

    name: str
    email: str
    line1: str
    line2: str
    postal_code: str
    city: str
    state: str
    country: str
    tax_ids: tuple[TaxId, ...]

    @property
    def address_lines(self) -> tuple[str, ...]:
        """The address as printed: street lines, postcode with city, state, country; empty parts left out."""
        place = " ".join(part for part in (self.postal_code, self.city) if part)
        return tuple(line for line in (self.line1, self.line2, place, self.state, self.country) if line)

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> BillingDetails:
        address = data.get("address") or {}
        tax_ids = (data.get("tax_ids") or {}).get("data") or []
        return cls(
            name=str(data.get("name") or ""), email=str(data.get("email") or ""),
            line1=str(address.get("line1") or ""), line2=str(address.get("line2") or ""),
            postal_code=str(address.get("postal_code") or ""), city=str(address.get("city") or ""),
            state=str(address.get("state") or ""), country=str(address.get("country") or ""),
            tax_ids=tuple(TaxId(type=str(t.get("type") or ""), value=str(t.get("value") or ""),
                                country=str(t.get("country") or ""),
                                verification=str((t.get("verification") or {}).get("status") or ""))
                          for t in tax_ids),
        )


def invoice_custom_fields(language: str, po_number: str, cost_centre: str) -> list[tuple[str, str]]:
    """The (name, value) pairs Stripe prints on every invoice of the customer, named in the
    subscription's language; empty values are left out (none at all: no custom fields)."""
    names = _FIELD_NAMES["de" if language == "de" else "en"]
    return [(name, value) for name, value in zip(names, (po_number, cost_centre), strict=True) if value]


def parse_settings(values: Mapping[str, object], current: BillingSettings) -> BillingSettings:
    """The settings `values` asks for. A field given as a string replaces the current value ("" clears
    it); a field left out keeps it. Every field is checked before anything is returned: unknown keys,
    non-strings, PO number and cost centre longer than MAX_TEXT characters or with characters that do
    not print, an accounting address outside the one address grammar are refused (InvalidBillingSetting
    naming the field)."""
    unknown = sorted(str(key) for key in values if key not in FIELDS)
    if unknown:
        raise InvalidBillingSetting(unknown[0], "unknown_field",
                                    f"not a billing setting; send only {', '.join(FIELDS)}")
    wanted: dict[str, str] = {}
    for name in FIELDS:
        if name not in values:
            wanted[name] = getattr(current, name)
            continue
        value = values[name]
        if not isinstance(value, str):
            raise InvalidBillingSetting(name, "invalid_type", 'a string ("" clears it)')
        wanted[name] = _email(value) if name == "accounting_email" else _text(name, value)
    return BillingSettings(**wanted)


def _text(name: str, raw: str) -> str:
    """One line as invoices print it: surrounding spaces dropped, inner runs of spaces made one."""
    if len(raw) > MAX_TEXT:
        raise InvalidBillingSetting(name, "too_long", f"at most {MAX_TEXT} characters (Stripe's limit for a field "
                                    "printed on invoices)", maximum=MAX_TEXT)
    if _UNPRINTABLE.search(raw):
        raise InvalidBillingSetting(name, "invalid_characters", "contains characters that cannot be printed on an "
                                    "invoice (line breaks, tabs, other control or zero-width characters)")
    return " ".join(raw.split())


def _email(raw: str) -> str:
    address = normalise_address(raw)
    if not address:
        return ""
    problem = address_problem(address)
    if problem is not None:
        raise InvalidBillingSetting("accounting_email", "invalid_email", {
            "too_long": "too long: at most 254 characters, 64 before the @",
            "non_ascii": "internationalised addresses are not supported; use the mailbox's ASCII address",
        }.get(problem, "not a valid e-mail address"), reason=problem)
    return address


def change(billing: Billing, actor: Actor, subscription: Subscription, wanted: BillingSettings) -> SettingsChange:
    """Store `wanted` (checked by `parse_settings`), setting the Stripe customer's invoice custom fields
    first when the PO number or the cost centre changed; audited once as `actor`'s."""
    current = BillingSettings.of(subscription)
    if not wanted.differences(current):
        return SettingsChange(subscription, wanted, ())
    if (wanted.po_number, wanted.cost_centre) != (current.po_number, current.cost_centre):
        if not subscription.stripe_customer_id:
            raise NoCustomer()
        fields = invoice_custom_fields(subscription.language, wanted.po_number, wanted.cost_centre)
        with stripe_refusals():
            try:
                billing.stripe.set_invoice_custom_fields(subscription.stripe_customer_id, fields)
            except StripeNotFound:
                raise NoCustomer() from None

    def decide(fresh: Subscription) -> Plan[SettingsChange]:
        before = BillingSettings.of(fresh)
        changed = wanted.differences(before)
        if not changed:  # the same values were stored meanwhile (a double submit)
            return Plan(SettingsChange(fresh, wanted, ()))
        updated = replace(fresh, po_number=wanted.po_number, cost_centre=wanted.cost_centre,
                          accounting_email=wanted.accounting_email, updated_at=datetime.now(UTC))
        entry = AuditEntry(actor, ACTION, before={name: getattr(before, name) for name in changed},
                           after={name: getattr(wanted, name) for name in changed})
        return Plan(SettingsChange(updated, wanted, changed), PartitionWrites(updated, create=[entry]))

    return UnitOfWork(billing.storage).change(subscription.id, decide)


def billing_details(billing: Billing, subscription: Subscription) -> BillingDetails:
    """The Stripe customer's name, address and tax ids (NoCustomer when there is none; StripeUnavailable
    when Stripe cannot be reached)."""
    if not subscription.stripe_customer_id:
        raise NoCustomer()
    with stripe_refusals():
        try:
            data = billing.stripe.customer_billing_details(subscription.stripe_customer_id)
        except StripeNotFound:
            raise NoCustomer() from None
    if data.get("deleted"):
        raise NoCustomer()
    return BillingDetails.from_stripe(data)
