"""Finance in the Stripe emulator (PRODUCT.md 2.13), through the real stripe SDK: automatic tax
for a German seller (VAT, OSS, EU reverse charge), customers' billing details and tax IDs,
bank-transfer funding instructions, subscriptions paid by invoice (send_invoice) with due
dates and overdue handling, Checkout collecting business details, the yearly price, the
renewal notice (invoice.upcoming), the invoice PDF, and interval changes. Amounts are
checked against independent arithmetic, objects against Stripe's published schemas.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from io import BytesIO
from typing import Any, cast

import pytest
import requests
import stripe
from pypdf import PdfReader, PdfWriter

from standins.stripe_emulator.bootstrap import PRICE_LOOKUP_KEY, TIERS, YEARLY_PRICE_LOOKUP_KEY, ensure_catalog
from tests.standins.stripe_schema import STILL_SENT, StripeSchemas, assert_stripe_shape, wire

DAY = 86400
EUR = "eur"


# -- independent arithmetic and helpers --------------------------------------------------------

def vat(amount, percentage):
    """Tax on one line: amount × rate, rounded to the cent, halves away from zero."""
    exact = Decimal(amount) * Decimal(str(percentage)) / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def iban_is_valid(iban):
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(ord(c) - 55) if c.isalpha() else c for c in rearranged)
    return int(digits) % 97 == 1


ADDRESSES = {
    "DE": {"line1": "Hauptstraße 5", "postal_code": "10115", "city": "Berlin", "country": "DE"},
    "AT": {"line1": "Mariahilfer Straße 1", "postal_code": "1060", "city": "Wien",
           "country": "AT"},
    "FR": {"line1": "12 rue de Rivoli", "postal_code": "75001", "city": "Paris", "country": "FR"},
    "NL": {"line1": "Damrak 1", "postal_code": "1012 LG", "city": "Amsterdam", "country": "NL"},
    "IT": {"line1": "Via Roma 1", "postal_code": "00100", "city": "Roma", "country": "IT"},
    "ES": {"line1": "Gran Vía 1", "postal_code": "28013", "city": "Madrid", "country": "ES"},
    "BE": {"line1": "Rue Neuve 1", "postal_code": "1000", "city": "Bruxelles", "country": "BE"},
    "PL": {"line1": "ul. Marszałkowska 1", "postal_code": "00-001", "city": "Warszawa",
           "country": "PL"},
    "GR": {"line1": "Ermou 1", "postal_code": "10563", "city": "Athina", "country": "GR"},
    "US": {"line1": "1 Main St", "postal_code": "94105", "city": "San Francisco", "state": "CA",
           "country": "US"},
    "CH": {"line1": "Bahnhofstrasse 1", "postal_code": "8001", "city": "Zürich", "country": "CH"},
}


def new_customer(env, country=None, vat_id=None, name="Contoso GmbH", **extra):
    params: dict[str, Any] = {"email": "billing@contoso.example", "name": name, **extra}
    if country:
        params["address"] = ADDRESSES[country]
    if vat_id:
        params["tax_id_data"] = [{"type": "eu_vat", "value": vat_id}]
    return env.client.v1.customers.create(params=params)


def subscribe(env, customer, quantity=3, price=None, **extra):
    return env.client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price or env.price_id, "quantity": quantity}],
        "automatic_tax": {"enabled": True}, **extra})


def invoice_of(env, sub):
    return env.client.v1.invoices.retrieve(sub.latest_invoice)


# -- 3. automatic tax ------------------------------------------------------------------------------

TAX_CASES = [
    # customer country, VAT ID, rate, taxability reason
    ("DE", None, 19, "standard_rated"),
    ("DE", "DE123456789", 19, "standard_rated"),      # a German business pays German VAT
    ("FR", "FR40303265045", 0, "reverse_charge"),
    ("GR", "EL094259216", 0, "reverse_charge"),       # Greece's VAT prefix is EL
    ("FR", None, 20, "standard_rated"),               # OSS: the buyer's country's rate
    ("AT", None, 20, "standard_rated"),
    ("NL", None, 21, "standard_rated"),
    ("IT", None, 22, "standard_rated"),
    ("ES", None, 21, "standard_rated"),
    ("BE", None, 21, "standard_rated"),
    ("PL", None, 23, "standard_rated"),
    ("US", None, 0, "not_subject_to_tax"),
    ("CH", None, 0, "not_subject_to_tax"),
]


@pytest.mark.parametrize("country,vat_id,rate,reason", TAX_CASES)
def test_automatic_tax_by_where_the_customer_is(stripe_env, country, vat_id, rate, reason):
    customer = new_customer(stripe_env, country, vat_id)
    sub = subscribe(stripe_env, customer, quantity=3)
    assert sub.automatic_tax.enabled is True and sub.automatic_tax.liability.type == "self"
    invoice = invoice_of(stripe_env, sub)
    subtotal, tax = 3 * 600, vat(3 * 600, rate)
    assert (invoice.subtotal, invoice.total_excluding_tax, invoice.total) == (
        subtotal, subtotal, subtotal + tax)
    assert (invoice.amount_due, invoice.amount_paid, invoice.status) == (
        subtotal + tax, subtotal + tax, "paid")
    assert (invoice.automatic_tax.enabled, invoice.automatic_tax.status,
            invoice.automatic_tax.provider) == (True, "complete", "stripe")
    [total_tax] = invoice.total_taxes
    assert (total_tax.amount, total_tax.taxable_amount, total_tax.taxability_reason,
            total_tax.tax_behavior, total_tax.type) == (
        tax, subtotal, reason, "exclusive", "tax_rate_details")
    [line_tax] = invoice.lines.data[0].taxes
    assert (line_tax.amount, line_tax.taxability_reason) == (tax, reason)
    tax_rate = stripe_env.client.v1.tax_rates.retrieve(total_tax.tax_rate_details.tax_rate)
    assert (tax_rate.country, tax_rate.percentage, tax_rate.jurisdiction) == (country, rate, country)
    assert (tax_rate.inclusive, tax_rate.active) == (False, True)
    if country in ("DE", "FR", "GR", "AT"):
        assert (tax_rate.tax_type, tax_rate.display_name) == ("vat", "VAT")
    # The buyer as invoiced, and the seller.
    assert invoice.customer_name == "Contoso GmbH"
    assert invoice.customer_address.country == country
    assert [(t.type, t.value) for t in invoice.customer_tax_ids] == (
        [("eu_vat", vat_id)] if vat_id else [])
    assert (invoice.account_country, invoice.account_name) == ("DE", "SecureMailMerge GmbH")
    assert invoice.status_transitions.finalized_at is not None
    assert_stripe_shape(invoice, "invoice")
    assert_stripe_shape(tax_rate, "tax_rate")
    assert_stripe_shape(sub, "subscription")


def test_tax_rates_are_created_once_per_country_and_rate(stripe_env):
    first = invoice_of(stripe_env, subscribe(stripe_env, new_customer(stripe_env, "DE")))
    second = invoice_of(stripe_env, subscribe(stripe_env, new_customer(stripe_env, "DE"), 12))
    french = invoice_of(stripe_env, subscribe(stripe_env, new_customer(stripe_env, "FR")))
    ids = [i.total_taxes[0].tax_rate_details.tax_rate for i in (first, second, french)]
    assert ids[0] == ids[1] != ids[2]
    listed = stripe_env.client.v1.tax_rates.list()
    assert sorted(r.id for r in listed.data) == sorted({ids[0], ids[2]})
    assert second.total == 12 * 480 + vat(12 * 480, 19)


def test_without_a_location_no_tax_is_computed(stripe_env):
    sub = subscribe(stripe_env, new_customer(stripe_env))
    invoice = invoice_of(stripe_env, sub)
    assert invoice.automatic_tax.status == "requires_location_inputs"
    assert invoice.total_taxes == [] and invoice.lines.data[0].taxes == []
    assert invoice.total == invoice.subtotal == 1800
    assert_stripe_shape(invoice, "invoice")


@pytest.mark.parametrize("exempt,reason", [("exempt", "customer_exempt"),
                                           ("reverse", "reverse_charge")])
def test_tax_exempt_customers_pay_no_tax(stripe_env, exempt, reason):
    customer = new_customer(stripe_env, "DE", tax_exempt=exempt)
    invoice = invoice_of(stripe_env, subscribe(stripe_env, customer))
    assert invoice.total == 1800 and invoice.customer_tax_exempt == exempt
    assert [(t.amount, t.taxability_reason) for t in invoice.total_taxes] == [(0, reason)]


def test_without_automatic_tax_nothing_changes(stripe_env):
    customer = new_customer(stripe_env, "DE")
    sub = stripe_env.client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": stripe_env.price_id, "quantity": 3}]})
    invoice = invoice_of(stripe_env, sub)
    assert invoice.automatic_tax.enabled is False and invoice.automatic_tax.status is None
    assert invoice.total == 1800 and invoice.total_taxes == []


def test_preview_and_proration_invoice_are_taxed_line_by_line(stripe_env):
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=8)
    item = sub["items"].data[0]
    # An odd point in the period, so the proration amounts are not round.
    proration_date = item.current_period_start + (item.current_period_end -
                                                  item.current_period_start) // 3 + 7
    change = {"items": [{"id": item.id, "quantity": 12}], "proration_date": proration_date,
              "proration_behavior": "always_invoice"}
    preview = stripe_env.client.v1.invoices.create_preview(params={
        "subscription": sub.id, "subscription_details": change})
    amounts = [line.amount for line in preview.lines.data]
    assert amounts[0] < 0 < amounts[1]
    assert [line.taxes[0].amount for line in preview.lines.data] == [vat(a, 19) for a in amounts]
    expected_total = sum(amounts) + sum(vat(a, 19) for a in amounts)
    assert preview.total == preview.amount_due == expected_total
    assert preview.total_taxes[0].amount == sum(vat(a, 19) for a in amounts)
    assert_stripe_shape(preview, "invoice")
    updated = stripe_env.client.v1.subscriptions.update(sub.id, params=change)
    invoice = stripe_env.client.v1.invoices.retrieve(updated.latest_invoice)
    assert [line.taxes[0].amount for line in invoice.lines.data] == [
        line.taxes[0].amount for line in preview.lines.data]
    assert invoice.amount_paid == preview.amount_due


def test_preview_can_turn_automatic_tax_on(stripe_env):
    customer = new_customer(stripe_env, "AT")
    sub = stripe_env.client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": stripe_env.price_id, "quantity": 10}]})
    preview = stripe_env.client.v1.invoices.create_preview(params={
        "subscription": sub.id, "automatic_tax": {"enabled": True}})
    assert preview.total == 4800 + vat(4800, 20)
    assert stripe_env.client.v1.invoices.create_preview(params={
        "subscription": sub.id}).total == 4800


# -- 2. customers: billing details, tax IDs, funding instructions ---------------------------------

def test_customer_with_billing_details_and_a_tax_id(stripe_env, webhook_receiver):
    client = stripe_env.client
    customer = client.v1.customers.create(params={
        "email": "ap@alpenblick.example", "name": "Alpenblick Handels GmbH",
        "address": {**ADDRESSES["AT"], "line2": "3. Stock"}, "preferred_locales": ["de-AT"],
        "tax_id_data": [{"type": "eu_vat", "value": "ATU13585627"}],
        "invoice_settings": {"custom_fields": [{"name": "PO number", "value": "PO-2026-0815"}]},
        "tax_exempt": "none"})
    assert customer.address.line2 == "3. Stock" and customer.address.country == "AT"
    assert customer.preferred_locales == ["de-AT"]
    assert [f.to_dict() for f in customer.invoice_settings.custom_fields] == [
        {"name": "PO number", "value": "PO-2026-0815"}]
    assert "tax_ids" not in customer  # only when expanded, as in Stripe
    expanded = client.v1.customers.retrieve(customer.id, params={"expand": ["tax_ids", "tax"]})
    [tax_id] = expanded.tax_ids.data
    assert (tax_id.type, tax_id.value, tax_id.country, tax_id.customer) == (
        "eu_vat", "ATU13585627", "AT", customer.id)
    assert tax_id.verification.status == "verified"
    assert tax_id.verification.verified_name == "Alpenblick Handels GmbH"
    assert (expanded.tax.automatic_tax, expanded.tax.location.country) == ("supported", "AT")
    assert_stripe_shape(expanded, "customer")
    assert_stripe_shape(tax_id, "tax_id")
    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()
    assert [e.type for e in events] == ["customer.created", "customer.tax_id.created"]
    assert events[1].data.object.id == tax_id.id
    assert_stripe_shape(events[1].data.object, "tax_id")


def test_invoice_custom_fields_follow_stripes_limits(stripe_env):
    client = stripe_env.client
    customer = new_customer(stripe_env, "DE")
    field = {"name": "N" * 40, "value": "V" * 140}
    updated = client.v1.customers.update(customer.id, params={
        "invoice_settings": {"custom_fields": [field] * 4}})
    assert len(updated.invoice_settings.custom_fields) == 4
    for fields, param in (([field] * 5, "invoice_settings[custom_fields]"),
                          ([{**field, "name": "N" * 41}],
                           "invoice_settings[custom_fields][0][name]"),
                          ([field, {**field, "value": "V" * 141}],
                           "invoice_settings[custom_fields][1][value]")):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.customers.update(customer.id, params={
                "invoice_settings": {"custom_fields": fields}})
        assert raised.value.param == param
    assert len(client.v1.customers.retrieve(customer.id).invoice_settings.custom_fields) == 4
    cleared = client.v1.customers.update(customer.id, params={
        "invoice_settings": {"custom_fields": ""}})
    assert cleared.invoice_settings.custom_fields is None


def test_tax_id_endpoints(stripe_env, webhook_receiver):
    client = stripe_env.client
    customer = new_customer(stripe_env, "DE")
    tax_ids = client.v1.customers.tax_ids
    created = {value: tax_ids.create(customer.id, params={"type": kind, "value": value})
               for kind, value in (("eu_vat", "EL094259216"), ("gb_vat", "GB123456789"),
                                   ("ch_vat", "CHE-123.456.789 MWST"),
                                   ("eu_vat", "DE12345"))}
    assert [(t.type, t.country, t.verification.status) for t in created.values()] == [
        ("eu_vat", "GR", "verified"), ("gb_vat", "GB", "verified"), ("ch_vat", "CH", "verified"),
        ("eu_vat", "DE", "unverified")]
    for kind, value in (("eu_vat", "XX123456789"), ("gb_vat", "DE123456789"),
                        ("ch_vat", "123456789")):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            tax_ids.create(customer.id, params={"type": kind, "value": value})
        assert raised.value.code == "tax_id_invalid"
    listed = tax_ids.list(customer.id)
    assert [t.value for t in listed.data] == list(created)[::-1]  # newest first
    greek = created["EL094259216"]
    assert tax_ids.retrieve(customer.id, greek.id).value == "EL094259216"
    deleted = tax_ids.delete(customer.id, greek.id)
    assert (deleted.id, deleted.deleted) == (greek.id, True)
    assert_stripe_shape(deleted, "deleted_tax_id")
    with pytest.raises(stripe.InvalidRequestError):
        tax_ids.retrieve(customer.id, greek.id)
    assert len(tax_ids.list(customer.id).data) == 3
    other = new_customer(stripe_env, "DE")
    with pytest.raises(stripe.InvalidRequestError):  # another customer's tax ID
        tax_ids.retrieve(other.id, created["GB123456789"].id)
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types().count("customer.tax_id.created") == 4
    assert webhook_receiver.types()[-2:] == ["customer.tax_id.deleted", "customer.created"]
    for tax_id in created.values():
        assert_stripe_shape(tax_id, "tax_id")


def test_an_unverified_vat_id_is_no_reverse_charge(stripe_env):
    customer = new_customer(stripe_env, "FR", vat_id="FR123")  # FR, but not a VAT number's shape
    invoice = invoice_of(stripe_env, subscribe(stripe_env, customer))
    assert invoice.total_taxes[0].taxability_reason == "standard_rated"
    assert invoice.total == 1800 + vat(1800, 20)


def test_funding_instructions_give_each_customer_one_virtual_iban(stripe_env):
    client = stripe_env.client
    params: Any = {"funding_type": "bank_transfer", "currency": EUR,
                   "bank_transfer": {"type": "eu_bank_transfer",
                                     "eu_bank_transfer": {"country": "DE"}}}
    first_customer, second_customer = new_customer(stripe_env, "AT"), new_customer(stripe_env, "AT")
    first = client.v1.customers.funding_instructions.create(first_customer.id, params=params)
    again = client.v1.customers.funding_instructions.create(first_customer.id, params=params)
    other = client.v1.customers.funding_instructions.create(second_customer.id, params=params)
    assert (first.object, first.funding_type, first.currency) == (
        "funding_instructions", "bank_transfer", EUR)
    assert (first.bank_transfer.type, first.bank_transfer.country) == ("eu_bank_transfer", "DE")
    [address] = first.bank_transfer.financial_addresses
    assert (address.type, address.supported_networks) == ("iban", ["sepa"])
    iban = address.iban
    assert iban.iban.startswith("DE") and len(iban.iban) == 22 and iban_is_valid(iban.iban)
    assert (iban.country, iban.account_holder_name) == ("DE", "SecureMailMerge GmbH")
    assert len(iban.bic) in (8, 11)
    assert again.bank_transfer.financial_addresses[0].iban.iban == iban.iban
    assert other.bank_transfer.financial_addresses[0].iban.iban != iban.iban
    assert iban_is_valid(other.bank_transfer.financial_addresses[0].iban.iban)
    assert_stripe_shape(first, "funding_instructions")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.funding_instructions.create(first_customer.id, params={
            **params, "bank_transfer": {"type": "eu_bank_transfer",
                                        "eu_bank_transfer": {"country": "XX"}}})


def test_customer_details_update_and_clear(stripe_env):
    client = stripe_env.client
    customer = new_customer(stripe_env, "DE")
    moved = client.v1.customers.update(customer.id, params={"address": ADDRESSES["NL"],
                                                            "name": "Contoso B.V."})
    assert (moved.address.city, moved.address.line2, moved.name) == ("Amsterdam", None,
                                                                    "Contoso B.V.")
    invoice = invoice_of(stripe_env, subscribe(stripe_env, moved))
    assert invoice.total == 1800 + vat(1800, 21) and invoice.customer_name == "Contoso B.V."
    cleared = client.v1.customers.update(customer.id, params={"address": ""})
    assert cleared.address is None
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.update(customer.id, params={"tax_exempt": "sometimes"})
    assert raised.value.param == "tax_exempt"
    assert wire(client.v1.customers.retrieve(customer.id))["tax_exempt"] == "none"


# -- 5. paying by invoice: send_invoice subscriptions ----------------------------------------------

BANK_TRANSFER: Any = {
    "payment_method_types": ["customer_balance"],
    "payment_method_options": {"customer_balance": {
        "funding_type": "bank_transfer",
        "bank_transfer": {"type": "eu_bank_transfer", "eu_bank_transfer": {"country": "DE"}}}}}
PO_NUMBER = {"name": "PO number", "value": "PO-2026-0815"}


def business_customer(env, country="AT", vat_id="ATU13585627"):
    return new_customer(env, country, vat_id, name="Alpenblick Handels GmbH",
                        invoice_settings={"custom_fields": [PO_NUMBER]})


def by_invoice(env, customer, quantity=25, days=30, price=None, key=None, **extra):
    params = {"customer": customer.id,
              "items": [{"price": price or env.price_id, "quantity": quantity}],
              "collection_method": "send_invoice", "days_until_due": days,
              "payment_settings": BANK_TRANSFER, "automatic_tax": {"enabled": True},
              "metadata": {"purchase": "invoice"}, **extra}
    return env.client.v1.subscriptions.create(params=params,
                                              options={"idempotency_key": key} if key else None)


def pdf_text(data):
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(data)).pages)


def test_a_subscription_paid_by_invoice_is_active_with_an_open_sent_invoice(stripe_env,
                                                                           webhook_receiver):
    client = stripe_env.client
    customer = business_customer(stripe_env)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    sub = by_invoice(stripe_env, customer, key="purchase-42")
    again = by_invoice(stripe_env, customer, key="purchase-42")  # a retried request
    assert again.id == sub.id
    with pytest.raises(stripe.IdempotencyError):
        by_invoice(stripe_env, customer, quantity=26, key="purchase-42")
    assert [s.id for s in client.v1.subscriptions.list(params={"customer": customer.id}).data] == [
        sub.id]
    assert (sub.status, sub.collection_method, sub.days_until_due) == ("active", "send_invoice", 30)
    assert sub.metadata.to_dict() == {"purchase": "invoice"}
    assert sub.payment_settings.payment_method_types == ["customer_balance"]
    balance = sub.payment_settings.payment_method_options.customer_balance
    assert (balance.funding_type, balance.bank_transfer.type,
            balance.bank_transfer.eu_bank_transfer.country) == (
        "bank_transfer", "eu_bank_transfer", "DE")
    assert_stripe_shape(sub, "subscription")

    invoice = invoice_of(stripe_env, sub)
    finalized_at = invoice.status_transitions.finalized_at
    assert (invoice.status, invoice.collection_method, invoice.attempted) == (
        "open", "send_invoice", False)
    assert invoice.due_date == finalized_at + 30 * DAY
    assert invoice.next_payment_attempt is None and invoice.amount_paid == 0
    assert invoice.amount_due == invoice.total == 25 * 480  # reverse charge: no VAT
    assert [f.to_dict() for f in invoice.custom_fields] == [PO_NUMBER]
    assert invoice.payment_settings.payment_method_types == ["customer_balance"]
    assert_stripe_shape(invoice, "invoice")

    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()
    assert [e.type for e in events] == ["customer.subscription.created", "invoice.created",
                                        "invoice.finalized", "invoice.sent"]
    assert events[-1].data.object.id == invoice.id and events[-1].data.object.status == "open"
    for event in events:
        assert_stripe_shape(event.data.object, event.data.object.object)


def test_the_sent_invoice_shows_how_to_pay_it(stripe_env):
    client = stripe_env.client
    customer = business_customer(stripe_env)
    invoice = invoice_of(stripe_env, by_invoice(stripe_env, customer))
    iban = client.v1.customers.funding_instructions.create(customer.id, params={
        "funding_type": "bank_transfer", "currency": EUR, "bank_transfer": {
            "type": "eu_bank_transfer", "eu_bank_transfer": {"country": "DE"}}}
    ).bank_transfer.financial_addresses[0].iban
    page = requests.get(invoice.hosted_invoice_url, timeout=5).text
    document = pdf_text(requests.get(invoice.invoice_pdf, timeout=5).content)
    for text in (page, document):
        for shown in (iban.iban, iban.bic, invoice.number, "PO number", "PO-2026-0815",
                      "Tax to be paid on reverse charge basis", "ATU13585627",
                      "Alpenblick Handels GmbH", "Mariahilfer Straße 1", "1060 Wien",
                      "SecureMailMerge GmbH", "DE123456789", "€120.00"):
            assert shown in text, shown
    assert f"<td id='reference'>{invoice.number}</td>" in page
    assert "id='pay'" not in page  # a bank transfer, not a card payment


def test_paying_by_invoice_needs_days_until_due(stripe_env):
    customer = business_customer(stripe_env)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_env.client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": stripe_env.price_id, "quantity": 1}],
            "collection_method": "send_invoice"})
    assert raised.value.param == "days_until_due"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_env.client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": stripe_env.price_id, "quantity": 1}],
            "days_until_due": 30})
    assert raised.value.param == "days_until_due"
    assert stripe_env.client.v1.subscriptions.list().data == []


def test_an_unpaid_invoice_past_its_due_date_makes_the_subscription_past_due(stripe_env,
                                                                            webhook_receiver):
    client = stripe_env.client
    customer = business_customer(stripe_env)
    sub = by_invoice(stripe_env, customer, days=14)
    invoice = invoice_of(stripe_env, sub)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    stripe_env.control("clock/advance", {"seconds": 13 * DAY})
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"  # not due yet
    stripe_env.control("clock/advance", {"seconds": 2 * DAY})
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert client.v1.invoices.retrieve(invoice.id).status == "open"
    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()
    assert [e.type for e in events] == ["invoice.overdue", "customer.subscription.updated"]
    assert events[0].data.object.id == invoice.id
    assert events[1].data.previous_attributes.status == "active"

    # The bank transfer arrives (a declined card plays no part in it).
    webhook_receiver.clear()
    stripe_env.control(f"customers/{customer.id}/card", {"decline": True})
    paid = stripe_env.control(f"invoices/{invoice.id}/pay", {})["invoice"]
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == (
        "paid", invoice.total, 0)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == ["invoice.paid", "invoice.payment_succeeded",
                                        "customer.subscription.updated"]
    stripe_env.control("clock/advance", {"seconds": 5 * DAY})
    stripe_env.wait_for_webhooks()
    assert "invoice.overdue" not in webhook_receiver.types()[3:]  # once per invoice


def test_renewals_of_a_subscription_paid_by_invoice_are_sent_too(stripe_env, webhook_receiver):
    client = stripe_env.client
    sub = by_invoice(stripe_env, new_customer(stripe_env, "DE"), quantity=3, days=7)
    first = invoice_of(stripe_env, sub)
    assert first.total == 1800 + vat(1800, 19)
    stripe_env.control(f"invoices/{first.id}/pay", {})
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    stripe_env.control("clock/advance", {"seconds": 32 * DAY})
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "active" and renewed.latest_invoice != first.id
    invoice = client.v1.invoices.retrieve(renewed.latest_invoice)
    assert (invoice.status, invoice.billing_reason, invoice.amount_due) == (
        "open", "subscription_cycle", 1800 + vat(1800, 19))
    assert invoice.due_date == invoice.status_transitions.finalized_at + 7 * DAY
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == ["invoice.created", "invoice.finalized", "invoice.sent",
                                        "customer.subscription.updated"]


def test_every_finalized_invoice_is_announced(stripe_env, webhook_receiver):
    """invoice.finalized for card-paid invoices too: creation, renewal and a quantity change."""
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=3)
    stripe_env.control("clock/advance", {"seconds": 32 * DAY})
    stripe_env.client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": sub["items"].data[0].id, "quantity": 5}],
        "proration_behavior": "always_invoice"})
    stripe_env.wait_for_webhooks()
    finalized = [e.data.object for e in webhook_receiver.events() if e.type == "invoice.finalized"]
    invoices = stripe_env.client.v1.invoices.list(params={"subscription": sub.id}).data
    assert sorted(i.id for i in finalized) == sorted(i.id for i in invoices) and len(invoices) == 3
    assert {i.billing_reason for i in finalized} == {"subscription_create", "subscription_cycle",
                                                      "subscription_update"}


# -- 4. Checkout for businesses -------------------------------------------------------------------

def business_checkout(env, quantity=12, **extra):
    return env.checkout(quantity, billing_address_collection="required",
                        tax_id_collection={"enabled": True}, automatic_tax={"enabled": True},
                        **extra)


AT_BUYER = {"name": "Maria Huber", "business_name": "Alpenblick Handels GmbH",
            "line1": "Mariahilfer Straße 1", "postal_code": "1060", "city": "Wien",
            "country": "AT", "tax_id": "ATU13585627", "email": "ap@alpenblick.example"}
DE_BUYER = {"business_name": "Contoso GmbH", "line1": "Hauptstraße 5", "postal_code": "10115",
            "city": "Berlin", "country": "DE", "tax_id": "DE123456789"}


def test_checkout_collects_business_details_and_applies_reverse_charge(stripe_env):
    client = stripe_env.client
    session = business_checkout(stripe_env)
    assert (session.billing_address_collection, session.tax_id_collection.enabled) == (
        "required", True)
    assert (session.automatic_tax.enabled, session.automatic_tax.status) == (
        True, "requires_location_inputs")
    assert (session.amount_total, session.total_details.amount_tax) == (5760, 0)
    assert_stripe_shape(session, "checkout.session")
    stripe_env.control(f"checkout/{session.id}/pay", AT_BUYER)
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    details = done.customer_details
    assert (details.name, details.business_name, details.email, details.tax_exempt) == (
        "Alpenblick Handels GmbH", "Alpenblick Handels GmbH", "ap@alpenblick.example", "none")
    assert (details.address.line1, details.address.postal_code, details.address.city,
            details.address.country) == ("Mariahilfer Straße 1", "1060", "Wien", "AT")
    assert [(t.type, t.value) for t in details.tax_ids] == [("eu_vat", "ATU13585627")]
    assert (done.amount_subtotal, done.total_details.amount_tax, done.amount_total) == (
        5760, 0, 5760)
    assert done.automatic_tax.status == "complete"
    assert_stripe_shape(done, "checkout.session")
    customer = client.v1.customers.retrieve(done.customer, params={"expand": ["tax_ids"]})
    assert (customer.name, customer.address.country, customer.email) == (
        "Alpenblick Handels GmbH", "AT", "ap@alpenblick.example")
    assert [t.value for t in customer.tax_ids.data] == ["ATU13585627"]
    sub = client.v1.subscriptions.retrieve(done.subscription)
    assert sub.automatic_tax.enabled is True
    invoice = invoice_of(stripe_env, sub)
    assert [t.taxability_reason for t in invoice.total_taxes] == ["reverse_charge"]
    assert invoice.amount_paid == 5760


def test_checkout_charges_german_vat_to_a_german_business(stripe_env):
    client = stripe_env.client
    session = business_checkout(stripe_env)
    stripe_env.control(f"checkout/{session.id}/pay", DE_BUYER)
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    tax = vat(5760, 19)
    assert (done.total_details.amount_tax, done.amount_total) == (tax, 5760 + tax)
    [item] = done.line_items.data
    assert (item.amount_subtotal, item.amount_tax, item.amount_total) == (5760, tax, 5760 + tax)
    invoice = invoice_of(stripe_env, client.v1.subscriptions.retrieve(done.subscription))
    assert (invoice.total, invoice.amount_paid) == (5760 + tax, 5760 + tax)
    assert invoice.total_taxes[0].taxability_reason == "standard_rated"


def test_checkout_refuses_incomplete_or_invalid_business_details(stripe_env):
    session = business_checkout(stripe_env)
    missing = stripe_env.control(f"checkout/{session.id}/pay", {**DE_BUYER, "city": ""},
                                 expect=400)
    assert missing["error"]["param"] == "city"
    invalid = stripe_env.control(f"checkout/{session.id}/pay", {**DE_BUYER, "tax_id": "XX123"},
                                 expect=400)
    assert invalid["error"]["code"] == "tax_id_invalid"
    assert stripe_env.client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert stripe_env.client.v1.customers.list().data == []
    plain = stripe_env.checkout(3)  # collects no tax ID
    stripe_env.control(f"checkout/{plain.id}/pay", {"tax_id": "DE123456789"}, expect=400)


def test_checkout_with_automatic_tax_asks_at_least_for_the_country(stripe_env):
    session = stripe_env.checkout(3, automatic_tax={"enabled": True},
                                  billing_address_collection="auto")
    page = requests.get(session.url, timeout=5).text
    assert "id='country'" in page and "id='line1'" not in page and "id='tax_id'" not in page
    stripe_env.control(f"checkout/{session.id}/pay", {}, expect=400)
    stripe_env.control(f"checkout/{session.id}/pay", {"country": "FR"})
    done = stripe_env.client.v1.checkout.sessions.retrieve(session.id)
    assert done.total_details.amount_tax == vat(1800, 20)  # OSS: French VAT
    assert done.customer_details.address.country == "FR"


def test_checkout_for_an_existing_customer_updates_it_when_asked(stripe_env):
    client = stripe_env.client
    customer = new_customer(stripe_env, name="old name")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_env.checkout(3, customer_email=None, customer=customer.id,
                            automatic_tax={"enabled": True})
    assert raised.value.code == "customer_tax_location_invalid"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_env.checkout(3, customer_update={"name": "auto"})  # needs customer
    assert raised.value.param == "customer_update"
    session = business_checkout(stripe_env, customer_email=None, customer=customer.id,
                                customer_update={"name": "auto", "address": "auto"})
    stripe_env.control(f"checkout/{session.id}/pay", DE_BUYER)
    updated = client.v1.customers.retrieve(customer.id, params={"expand": ["tax_ids"]})
    assert (updated.name, updated.address.city) == ("Contoso GmbH", "Berlin")
    assert [t.value for t in updated.tax_ids.data] == ["DE123456789"]
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.customer == customer.id and done.total_details.amount_tax == vat(5760, 19)


def test_hosted_checkout_page_asks_for_business_details_and_shows_the_tax(stripe_env):
    session = business_checkout(stripe_env, quantity=3)
    page = requests.get(session.url, timeout=5).text
    for shown in ("id='business_name'", "id='line1'", "id='postal_code'", "id='city'",
                  "<select id='country'", "id='tax_id'", "purchasing as a business",
                  "Enter your address to calculate"):
        assert shown in page, shown
    form = {"email": "it@contoso.example", "business_purchase": "1", **DE_BUYER}
    quoted = requests.post(session.url, data={**form, "action": "quote"}, timeout=5).text
    assert f"€{vat(1800, 19) / 100:.2f}" in quoted
    assert f"€{(1800 + vat(1800, 19)) / 100:,.2f}" in quoted
    assert "value='Hauptstraße 5'" in quoted  # what was entered stays
    french = requests.post(session.url, data={**form, "action": "quote", "country": "FR",
                                              "tax_id": "FR40303265045"}, timeout=5).text
    assert "VAT (reverse charge)" in french and "€18.00</th>" in french
    refused = requests.post(session.url, data={**form, "action": "paid", "tax_id": "XX1"},
                            timeout=5)
    assert refused.status_code == 200 and "Invalid value for eu_vat" in refused.text
    paid = requests.post(session.url, data={**form, "action": "paid"}, allow_redirects=False,
                         timeout=5)
    assert paid.status_code == 303
    done = stripe_env.client.v1.checkout.sessions.retrieve(session.id)
    assert done.customer_details.business_name == "Contoso GmbH"
    assert done.amount_total == 1800 + vat(1800, 19)


def test_a_plain_checkout_still_collects_nothing(stripe_env):
    session = stripe_env.checkout(3)
    assert session.automatic_tax.enabled is False and session.tax_id_collection.enabled is False
    assert session.billing_address_collection is None
    page = requests.get(session.url, timeout=5).text
    assert "id='country'" not in page and "id='tax_id'" not in page
    stripe_env.control(f"checkout/{session.id}/pay", {"email": "x@contoso.example"})
    done = stripe_env.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.amount_total, done.total_details.amount_tax) == (1800, 0)
    assert done.customer_details.address is None and done.customer_details.tax_ids == []


# -- 1. the catalog: monthly and yearly ------------------------------------------------------------

def yearly_price(env):
    return env.client.v1.prices.list(params={"lookup_keys": [YEARLY_PRICE_LOOKUP_KEY]}).data[0]


def test_the_catalog_has_a_yearly_price_with_the_same_tiers(stripe_env):
    client = stripe_env.client
    prices = {p.lookup_key: p for p in client.v1.prices.list(params={
        "lookup_keys": [PRICE_LOOKUP_KEY, YEARLY_PRICE_LOOKUP_KEY], "expand": ["data.tiers"]}).data}
    monthly, yearly = prices[PRICE_LOOKUP_KEY], prices[YEARLY_PRICE_LOOKUP_KEY]
    assert monthly.id == stripe_env.price_id
    assert (yearly.recurring.interval, yearly.nickname, yearly.currency) == (
        "year", "SecureMailMerge seat (yearly)", EUR)
    assert (yearly.billing_scheme, yearly.tiers_mode, yearly.product) == (
        "tiered", "volume", "securemailmerge")
    assert [(t.up_to, t.unit_amount) for t in yearly.tiers] == [
        (None if tier["up_to"] == "inf" else tier["up_to"], 10 * tier["unit_amount"])
        for tier in cast(list[dict[str, Any]], TIERS)]
    assert monthly.tax_behavior == yearly.tax_behavior == "exclusive"
    assert client.v1.products.retrieve("securemailmerge").default_price == monthly.id
    assert_stripe_shape(yearly, "price")
    for quantity, total in ((9, 9 * 6000), (10, 10 * 4800)):
        assert stripe_env.client.v1.checkout.sessions.create(params={
            "mode": "subscription", "line_items": [{"price": yearly.id, "quantity": quantity}],
            "success_url": "https://app.example/done"}).amount_total == total


def test_ensure_catalog_completes_an_older_catalog_once(stripe_env):
    client = stripe_env.client
    stripe_env.control("reset")
    client.v1.products.create(params={"id": "securemailmerge", "name": "SecureMailMerge"})
    monthly = client.v1.prices.create(params={
        "product": "securemailmerge", "currency": EUR, "recurring": {"interval": "month"},
        "billing_scheme": "tiered", "tiers_mode": "volume", "tiers": TIERS,
        "lookup_key": PRICE_LOOKUP_KEY})
    assert monthly.tax_behavior == "unspecified"
    assert ensure_catalog(client) == monthly.id
    assert ensure_catalog(client) == monthly.id
    prices = client.v1.prices.list().data
    assert sorted(p.lookup_key for p in prices) == [PRICE_LOOKUP_KEY, YEARLY_PRICE_LOOKUP_KEY]
    assert {p.tax_behavior for p in prices} == {"exclusive"}
    with pytest.raises(stripe.InvalidRequestError):  # set once, as in Stripe
        client.v1.prices.update(monthly.id, params={"tax_behavior": "inclusive"})


def test_a_yearly_subscription_renews_after_a_year(stripe_env):
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=12,
                    price=yearly_price(stripe_env).id)
    item = sub["items"].data[0]
    assert 365 * DAY <= item.current_period_end - item.current_period_start <= 366 * DAY
    invoice = invoice_of(stripe_env, sub)
    assert invoice.total == 12 * 4800 + vat(12 * 4800, 19)
    stripe_env.control("clock/advance", {"seconds": 200 * DAY})
    assert stripe_env.client.v1.subscriptions.retrieve(sub.id).latest_invoice == invoice.id
    stripe_env.control("clock/advance", {"seconds": 170 * DAY})
    renewed = stripe_env.client.v1.subscriptions.retrieve(sub.id)
    assert renewed.latest_invoice != invoice.id
    assert renewed["items"].data[0].current_period_start == item.current_period_end


# -- 6. the renewal notice: invoice.upcoming -------------------------------------------------------

def upcoming_events(receiver):
    return [e for e in receiver.events() if e.type == "invoice.upcoming"]


def assert_upcoming_shape(preview):
    """An invoice without id (Stripe sends previews without one; its schema requires it)."""
    problems = StripeSchemas().errors(wire(preview), "invoice", undocumented=True,
                                      allowed_extra=STILL_SENT)
    assert problems == ["invoice: required property 'id' is missing"], problems


def test_invoice_upcoming_goes_out_thirty_days_before_a_yearly_renewal(stripe_env,
                                                                      webhook_receiver):
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=12,
                    price=yearly_price(stripe_env).id)
    renewal = sub["items"].data[0].current_period_end
    now = stripe_env.control("clock/advance", {"seconds": 0})["now"]
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    stripe_env.control("clock/advance", {"seconds": renewal - 30 * DAY - now - DAY})
    stripe_env.wait_for_webhooks()
    assert upcoming_events(webhook_receiver) == []
    stripe_env.control("clock/advance", {"seconds": 2 * DAY})
    stripe_env.control("clock/advance", {"seconds": 10 * DAY})  # sent once per period
    stripe_env.wait_for_webhooks()
    [event] = upcoming_events(webhook_receiver)
    preview = event.data.object
    assert "id" not in preview and preview.object == "invoice"
    assert (preview.billing_reason, preview.status) == ("upcoming", "draft")
    assert preview.parent.subscription_details.subscription == sub.id
    assert (preview.period_end, preview.next_payment_attempt) == (renewal, renewal)
    [line] = preview.lines.data
    assert (line.amount, line.quantity, line.period.start) == (12 * 4800, 12, renewal)
    assert preview.total == 12 * 4800 + vat(12 * 4800, 19)
    assert preview.total_taxes[0].taxability_reason == "standard_rated"
    assert_upcoming_shape(preview)
    assert webhook_receiver.types() == ["invoice.upcoming"]  # no renewal yet

    stripe_env.control("clock/advance", {"seconds": 25 * DAY})  # past the renewal
    stripe_env.wait_for_webhooks()
    assert len(upcoming_events(webhook_receiver)) == 1
    assert "invoice.finalized" in webhook_receiver.types()


def test_invoice_upcoming_days_are_a_setting_and_monthly_plans_get_none(stripe_env,
                                                                       webhook_receiver):
    stripe_env.control("config", {"upcoming_invoice_days": 7})
    try:
        yearly = by_invoice(stripe_env, business_customer(stripe_env), quantity=10,
                            price=yearly_price(stripe_env).id)
        subscribe(stripe_env, new_customer(stripe_env, "DE"))  # monthly
        stripe_env.control(f"invoices/{yearly.latest_invoice}/pay", {})
        renewal = yearly["items"].data[0].current_period_end
        now = stripe_env.control("clock/advance", {"seconds": 0})["now"]
        stripe_env.wait_for_webhooks()
        webhook_receiver.clear()
        stripe_env.control("clock/advance", {"seconds": renewal - 8 * DAY - now})
        stripe_env.wait_for_webhooks()
        assert upcoming_events(webhook_receiver) == []  # 8 days before: not yet; monthly: never
        stripe_env.control("clock/advance", {"seconds": 2 * DAY})
        stripe_env.wait_for_webhooks()
        [event] = upcoming_events(webhook_receiver)
        preview = event.data.object
        assert preview.parent.subscription_details.subscription == yearly.id
        assert preview.collection_method == "send_invoice"
        assert preview.next_payment_attempt is None  # a sent invoice is not charged
        assert preview.total == 10 * 4800  # reverse charge
    finally:
        stripe_env.control("config", {"upcoming_invoice_days": 30})


def test_invoice_upcoming_on_request(stripe_env, webhook_receiver):
    sub = subscribe(stripe_env, new_customer(stripe_env, "AT"), quantity=3)
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()
    answered = stripe_env.control(f"subscriptions/{sub.id}/upcoming")
    assert answered["id"] == sub.id
    stripe_env.wait_for_webhooks()
    [event] = webhook_receiver.events()
    assert event.type == "invoice.upcoming"
    assert event.data.object.total == 1800 + vat(1800, 20)
    assert event.data.object.period_end == sub["items"].data[0].current_period_end
    assert_upcoming_shape(event.data.object)
    stripe_env.client.v1.subscriptions.cancel(sub.id)
    refused = stripe_env.control(f"subscriptions/{sub.id}/upcoming", expect=400)
    assert refused["error"]["code"] == "invoice_upcoming_none"


# -- 7. the invoice PDF ----------------------------------------------------------------------------

def test_the_invoice_pdf_is_a_real_pdf_that_pypdf_reads_and_extends(stripe_env):
    customer = business_customer(stripe_env, "DE", "DE123456789")
    invoice = invoice_of(stripe_env, by_invoice(stripe_env, customer, quantity=12))
    response = requests.get(invoice.invoice_pdf, timeout=5)
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == f'inline; filename="{invoice.number}.pdf"'
    reader = PdfReader(BytesIO(response.content), strict=True)
    assert reader.metadata is not None and reader.metadata.title == f"Invoice {invoice.number}"
    text = "\n".join(page.extract_text() for page in reader.pages)
    tax = vat(12 * 480, 19)
    for shown in (invoice.number, "Alpenblick Handels GmbH", "Hauptstraße 5",
                  "10115 Berlin", "DE123456789", "PO number: PO-2026-0815",
                  "VAT 19 % on €57.60", f"€{tax / 100:.2f}", f"€{(5760 + tax) / 100:.2f}",
                  "Pay by bank transfer", "Reference:", "SecureMailMerge GmbH"):
        assert shown in text, shown
    assert "reverse charge" not in text  # a German buyer pays German VAT

    # What the server does with it: embed an e-invoice XML (factur-x uses pypdf to do so).
    writer = PdfWriter(clone_from=reader)
    writer.add_attachment("factur-x.xml", b"<rsm:CrossIndustryInvoice/>")
    out = BytesIO()
    writer.write(out)
    again = PdfReader(BytesIO(out.getvalue()), strict=True)
    assert list(again.attachments) == ["factur-x.xml"]
    assert again.pages[0].extract_text() == reader.pages[0].extract_text()


def test_a_long_invoice_continues_on_further_pages(stripe_env):
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=3)
    item = sub["items"].data[0].id
    for quantity in range(4, 34):  # 30 changes: 60 proration lines on the next invoice
        stripe_env.client.v1.subscription_items.update(item, params={
            "quantity": quantity, "proration_behavior": "create_prorations"})
    stripe_env.control("clock/advance", {"seconds": 32 * DAY})
    renewed = invoice_of(stripe_env, stripe_env.client.v1.subscriptions.retrieve(sub.id))
    assert len(renewed.lines.data) == 61
    reader = PdfReader(BytesIO(requests.get(renewed.invoice_pdf, timeout=5).content), strict=True)
    assert len(reader.pages) >= 2
    assert "Amount due" in reader.pages[-1].extract_text()
    assert renewed.number in reader.pages[0].extract_text()


# -- 8. switching between monthly and yearly -------------------------------------------------------

def prorated(amount, remaining, period):
    """amount × remaining / period in cents, halves away from zero."""
    exact = Decimal(amount) * Decimal(remaining) / Decimal(period)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def clock_now(env):
    return env.control("clock/advance", {"seconds": 0})["now"]


def test_monthly_to_yearly_without_proration_starts_a_yearly_cycle_now(stripe_env):
    client = stripe_env.client
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=12)
    item = sub["items"].data[0]
    stripe_env.control("clock/advance", {"seconds": 10 * DAY})
    before = clock_now(stripe_env)
    changed = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": yearly_price(stripe_env).id}],
        "proration_behavior": "none"})
    new_item = changed["items"].data[0]
    assert new_item.id == item.id and new_item.price.recurring.interval == "year"
    assert before <= changed.billing_cycle_anchor <= before + 2
    assert new_item.current_period_start == changed.billing_cycle_anchor
    assert 365 * DAY <= new_item.current_period_end - new_item.current_period_start <= 366 * DAY
    invoice = client.v1.invoices.retrieve(changed.latest_invoice)
    assert invoice.id != sub.latest_invoice and invoice.billing_reason == "subscription_update"
    assert [(line.amount, line.parent.subscription_item_details.proration)
            for line in invoice.lines.data] == [(12 * 4800, False)]
    assert (invoice.status, invoice.amount_paid) == ("paid", 12 * 4800 + vat(12 * 4800, 19))
    assert_stripe_shape(changed, "subscription")


def test_monthly_to_yearly_credits_the_unused_month(stripe_env):
    client = stripe_env.client
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=12)
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    half_way = start + (end - start) // 2
    change = {"items": [{"id": item.id, "price": yearly_price(stripe_env).id}],
              "proration_date": half_way}
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id,
                                                        "subscription_details": change})
    credit = -prorated(5760, end - half_way, end - start)
    assert [(line.amount, line.parent.subscription_item_details.proration)
            for line in preview.lines.data] == [(credit, True), (12 * 4800, False)]
    assert preview.total == credit + 12 * 4800 + vat(credit, 19) + vat(12 * 4800, 19)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].current_period_end == end
    changed = client.v1.subscriptions.update(sub.id, params=change)
    invoice = client.v1.invoices.retrieve(changed.latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [credit, 12 * 4800]
    assert invoice.amount_paid == preview.amount_due

    # And back: yearly to monthly credits the unused year.
    back = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": stripe_env.price_id}]})
    assert back["items"].data[0].price.recurring.interval == "month"
    lines = client.v1.invoices.retrieve(back.latest_invoice).lines.data
    assert lines[0].amount < 0 and lines[-1].amount == 5760


def test_a_quantity_change_keeps_the_billing_cycle(stripe_env):
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=12,
                    price=yearly_price(stripe_env).id)
    stripe_env.control("clock/advance", {"seconds": 40 * DAY})
    changed = stripe_env.client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": sub["items"].data[0].id, "quantity": 15}]})
    assert changed.billing_cycle_anchor == sub.billing_cycle_anchor
    assert changed.latest_invoice == sub.latest_invoice  # prorations wait for the renewal


def test_older_api_versions_see_taxes_in_their_own_shape(stripe_env):
    sub = subscribe(stripe_env, new_customer(stripe_env, "DE"), quantity=3)
    legacy = stripe_env.api("GET", f"/v1/invoices/{sub.latest_invoice}",
                            headers={"Stripe-Version": "2024-06-20"}).json()
    [total] = legacy["total_tax_amounts"]
    assert (total["amount"], total["inclusive"], total["taxability_reason"]) == (
        vat(1800, 19), False, "standard_rated")
    assert legacy["tax"] == vat(1800, 19) and "total_taxes" not in legacy
    assert legacy["lines"]["data"][0]["tax_amounts"][0]["tax_rate"] == total["tax_rate"]
