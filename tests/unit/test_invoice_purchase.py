"""An organisation's purchase (services/business_details.py, services/invoice_purchase.py, services/fulfilment.py):
what the purchase form must hold, what goes to Stripe when paying by invoice, and fulfilment without a
Checkout session, against in-memory storage."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory_storage import InMemoryStorage
from adapters.stripe_gateway import PriceTier, SeatPrice
from services import subscription_store
from services.business_details import parse_business_details
from services.fulfilment import Outcome, fulfil_invoice_purchase
from services.i18n import catalog
from services.invoice_purchase import buy_by_invoice
from services.purchase import InvalidPurchase, parse_payment
from services.settings import load_settings
from services.web_session import Person
from tests.factories import local_values

BUYER = Person(tid="11111111-1111-1111-1111-111111111111", oid="aaaaaaaa-0000-0000-0000-000000000001",
               name="Erika Mustermann", email="erika@contoso.example")
FORM = {"company": "Contoso GmbH", "line1": "Hauptstraße 1", "postal_code": "80331", "city": "München",
        "country": "DE", "vat_id": "de 136 695 976", "po_number": "PO-4711", "cost_centre": "",
        "accounting_email": "buchhaltung@contoso.example"}


@pytest.fixture
def settings():
    return load_settings(local_values(INVOICE_MIN_QUANTITY="10", INVOICE_DAYS_UNTIL_DUE="14"))


def test_complete_details_are_normalised() -> None:
    details = parse_business_details({**FORM, "company": "  Contoso   GmbH "})
    assert details.company == "Contoso GmbH"
    assert details.vat_id is not None and details.vat_id.value == "DE136695976"
    assert details.country == "DE" and details.finance.po_number == "PO-4711"


@pytest.mark.parametrize(("change", "field", "key"), [
    ({"company": ""}, "company", "purchase.details.error.company"),
    ({"line1": " "}, "line1", "purchase.details.error.line1"),
    ({"postal_code": ""}, "postal_code", "purchase.details.error.postal_code"),
    ({"city": ""}, "city", "purchase.details.error.city"),
    ({"city": "M" * 101}, "city", "purchase.details.error.too_long"),
    ({"company": "Contoso\tGmbH"}, "company", "purchase.details.error.invalid_characters"),
    ({"country": "US"}, "country", "purchase.details.error.country"),
    ({"vat_id": "DE136695975"}, "vat_id", "vat_id.checksum"),
    ({"vat_id": "ATU13585627"}, "vat_id", "purchase.details.error.vat_country"),
    ({"po_number": "P" * 141}, "po_number", "purchase.details.error.too_long"),
    ({"po_number": "PO\u202e1"}, "po_number", "purchase.details.error.invalid_characters"),
    ({"accounting_email": "buchhaltung"}, "accounting_email", "purchase.details.error.invalid_email"),
])
def test_each_refusal_names_its_field(change: dict[str, str], field: str, key: str) -> None:
    with pytest.raises(InvalidPurchase) as refused:
        parse_business_details({**FORM, **change})
    assert (refused.value.field, refused.value.key) == (field, key)
    assert key in catalog("en") and key in catalog("de")  # the page says it in its own language


def test_vat_id_is_optional_and_austrian_numbers_fit_austrian_addresses() -> None:
    assert parse_business_details({**FORM, "vat_id": ""}).vat_id is None
    austrian = parse_business_details({**FORM, "country": "AT", "vat_id": "ATU13585627"})
    assert austrian.vat_id is not None and austrian.vat_id.stripe_type == "eu_vat"


def test_invoice_only_for_organisations_from_the_minimum(settings) -> None:
    assert parse_payment("invoice", "organisation", 10, settings) == "invoice"
    assert parse_payment("", "organisation", 1, settings) == "stripe"
    for kind, quantity in (("organisation", 9), ("individual", 1)):
        with pytest.raises(InvalidPurchase) as refused:
            parse_payment("invoice", kind, quantity, settings)
        assert refused.value.key == "purchase.error.invoice_minimum"
    with pytest.raises(InvalidPurchase):
        parse_payment("cash", "organisation", 20, settings)


class RecordingStripe:
    """The two creations buy_by_invoice makes; records what would reach Stripe."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    def seat_price(self, interval: str = "month") -> SeatPrice:
        return SeatPrice(f"price_{interval}", "eur", interval, (PriceTier(None, 480),))

    def create_customer(self, params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        self.calls.append(("customer", params, idempotency_key))
        return {"id": "cus_1"}

    def create_subscription(self, params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        self.calls.append(("subscription", params, idempotency_key))
        return {"id": "sub_1", **params}


def test_what_reaches_stripe(settings) -> None:
    stripe = RecordingStripe()
    details = parse_business_details(FORM)
    buy_by_invoice(stripe, settings, BUYER, 25, "year", "de", details, "attempt-1")  # type: ignore[arg-type]
    (_, customer, customer_key), (_, subscription, subscription_key) = stripe.calls
    assert customer["name"] == "Contoso GmbH" and customer["address"]["country"] == "DE"
    assert customer["tax_id_data"] == [{"type": "eu_vat", "value": "DE136695976"}]
    assert customer["invoice_settings"]["custom_fields"] == [{"name": "Bestellnummer", "value": "PO-4711"}]
    assert subscription["collection_method"] == "send_invoice" and subscription["days_until_due"] == 14
    assert subscription["items"] == [{"price": "price_year", "quantity": 25}]
    assert subscription["payment_settings"]["payment_method_types"] == ["customer_balance"]
    assert subscription["metadata"]["purchase"] == "invoice"
    assert subscription["metadata"]["accounting_email"] == "buchhaltung@contoso.example"
    # The same form again reuses both keys (one customer, one subscription); another attempt does not.
    buy_by_invoice(stripe, settings, BUYER, 25, "year", "de", details, "attempt-1")  # type: ignore[arg-type]
    assert [c[2] for c in stripe.calls[2:]] == [customer_key, subscription_key]
    buy_by_invoice(stripe, settings, BUYER, 25, "year", "de", details, "attempt-2")  # type: ignore[arg-type]
    assert stripe.calls[4][2] != customer_key


def _bought(**metadata: str) -> dict[str, Any]:
    return {"id": "sub_invoice_1", "object": "subscription", "status": "active", "customer": "cus_1",
            "collection_method": "send_invoice", "cancel_at_period_end": False,
            "items": {"data": [{"id": "si_1", "quantity": 25, "current_period_end": 1_900_000_000}]},
            "metadata": {"buyer_tid": BUYER.tid, "buyer_oid": BUYER.oid, "buyer_email": BUYER.email,
                         "buyer_name": BUYER.name, "kind": "organisation", "language": "de",
                         "purchase": "invoice", "po_number": "PO-4711", "cost_centre": "",
                         "accounting_email": "buchhaltung@contoso.example", **metadata}}


def test_fulfilment_without_checkout_session_is_idempotent() -> None:
    storage = InMemoryStorage()
    first = fulfil_invoice_purchase(_bought(), storage=storage, buyer=(BUYER.tid, BUYER.oid))
    again = fulfil_invoice_purchase(_bought(), storage=storage)  # the webhook, later
    assert first.outcome is Outcome.FULFILLED and first.created and not again.created
    stored = subscription_store.load(storage, "sub_invoice_1")
    assert stored is not None and stored.quantity == 25 and stored.owner_email == BUYER.email
    assert (stored.po_number, stored.accounting_email) == ("PO-4711", "buchhaltung@contoso.example")
    assert stored.checkout_session_id == "" and stored.language == "de"
    assert [s.id for s, _ in subscription_store.for_user(storage, BUYER.tid, BUYER.oid)] == ["sub_invoice_1"]


def test_fulfilment_refuses_other_buyers_and_foreign_subscriptions() -> None:
    storage = InMemoryStorage()
    assert fulfil_invoice_purchase(_bought(), storage=storage, buyer=(BUYER.tid, "someone-else")).outcome \
        is Outcome.FOREIGN
    assert fulfil_invoice_purchase(_bought(purchase="checkout"), storage=storage).outcome is Outcome.NOT_OURS
    assert subscription_store.load(storage, "sub_invoice_1") is None
