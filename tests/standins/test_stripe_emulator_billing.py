"""Billing in the Stripe emulator, driven through the real stripe SDK (16.x, API 2026-10-28.endive):
quantity changes with prorations over volume tiers, invoice previews, invoices and their hosted
pages, the billing portal, cancellation at period end, declined proration charges, the webhooks
Stripe sends for all of it — and every object checked against Stripe's published schemas
(tests/standins/stripe_schemas, see its README).
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, cast

import pytest
import requests
import stripe

from standins.stripe_emulator.bootstrap import TIERS
from tests.standins.stripe_fixtures import STRIPE_TEST_KEY
from tests.standins.stripe_schema import STILL_SENT, StripeSchemas, assert_stripe_shape, wire

SCHEMAS = StripeSchemas()
DAY = 86400


# -- independent arithmetic -------------------------------------------------------------------

def volume_total(quantity):
    """The bootstrap price's volume tiers: the whole quantity at the tier it falls in."""
    for tier in cast(list[dict[str, Any]], TIERS):
        if tier["up_to"] == "inf" or quantity <= tier["up_to"]:
            return quantity * tier["unit_amount"]
    raise AssertionError("no tier")


def prorated(amount, remaining, period):
    """amount × remaining / period, rounded half up (away from zero for credits), in cents."""
    exact = Fraction(amount) * Fraction(remaining, period)
    cents = Decimal(abs(exact.numerator)) / Decimal(exact.denominator)
    rounded = int(cents.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return -rounded if exact < 0 else rounded


# -- helpers -----------------------------------------------------------------------------------

@pytest.fixture
def sdk(stripe_env, monkeypatch):
    """The global-configuration style (stripe.Xxx.create/modify) pointed at the emulator."""
    monkeypatch.setattr(stripe, "api_key", STRIPE_TEST_KEY)
    monkeypatch.setattr(stripe, "api_base", stripe_env.url)
    return stripe_env


def thirty_day_price(env):
    """Same product and volume tiers as the catalog price, billed every 30 days."""
    return stripe.Price.create(
        product="securemailmerge", currency="eur",
        recurring={"interval": "day", "interval_count": 30},
        billing_scheme="tiered", tiers_mode="volume", tiers=cast(Any, TIERS))


def subscribe(quantity, price_id, email="owner@contoso.example"):
    customer = stripe.Customer.create(email=email, name="Contoso GmbH")
    return stripe.Subscription.create(customer=customer.id,
                                      items=[{"price": price_id, "quantity": quantity}])


def lines_of(invoice):
    return [(line.amount, line.quantity, line.parent.subscription_item_details.proration)
            for line in invoice.lines.data]


def types(receiver):
    return [event.type for event in receiver.events()]


# -- prorations over volume tiers ---------------------------------------------------------------

def test_volume_tier_proration_8_to_12_half_way_through_30_days(sdk, webhook_receiver):
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    assert end - start == 30 * DAY
    half_way = start + 15 * DAY
    # Independently: 8 licenses are in the 6.00 tier, 12 in the 4.80 tier (volume pricing).
    credit = -prorated(volume_total(8), end - half_way, end - start)
    charge = prorated(volume_total(12), end - half_way, end - start)
    assert (volume_total(8), volume_total(12)) == (4800, 5760)
    assert (credit, charge) == (-2400, 2880)

    # Preview of the immediate invoice (always_invoice) and of the next regular invoice.
    now_preview = stripe.Invoice.create_preview(
        customer=sub.customer, subscription=sub.id,
        subscription_details={"items": [{"id": item.id, "quantity": 12}],
                              "proration_date": half_way,
                              "proration_behavior": "always_invoice"})
    assert lines_of(now_preview) == [(credit, 8, True), (charge, 12, True)]
    assert (now_preview.total, now_preview.amount_due, now_preview.currency) == (480, 480, "eur")
    assert now_preview.id.startswith("upcoming_in_")
    assert now_preview.parent.subscription_details.subscription_proration_date == half_way
    next_preview = stripe.Invoice.create_preview(
        customer=sub.customer, subscription=sub.id,
        subscription_details={"items": [{"id": item.id, "quantity": 12}],
                              "proration_date": half_way})
    assert lines_of(next_preview) == [(credit, 8, True), (charge, 12, True), (5760, 12, False)]
    assert next_preview.amount_due == credit + charge + 5760 == 6240
    assert next_preview.lines.data[2].period.start == end
    for preview in (now_preview, next_preview):
        assert_stripe_shape(preview, "invoice")
    # A preview changes nothing.
    assert stripe.Subscription.retrieve(sub.id)["items"].data[0].quantity == 8

    sdk.wait_for_webhooks()
    webhook_receiver.clear()
    updated = stripe.SubscriptionItem.modify(item.id, quantity=12, proration_date=half_way,
                                             proration_behavior="always_invoice")
    assert updated.quantity == 12
    assert_stripe_shape(updated, "subscription_item")
    sub = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.billing_reason == "subscription_update"
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 480, 480)
    # The charge agrees with the preview to the cent, line by line.
    assert lines_of(invoice) == lines_of(now_preview)
    assert [line.period.start for line in invoice.lines.data] == [half_way, half_way]
    assert_stripe_shape(sub, "subscription")


def test_proration_over_the_catalog_month_matches_preview(stripe_env):
    """The monthly catalog price: period lengths vary, the arithmetic must not."""
    client = stripe_env.client
    sub = stripe_env.paid_subscription(quantity=8)
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    proration_date = start + (end - start) // 2 + 7  # an odd point, to exercise rounding
    remaining, period = end - proration_date, end - start
    expected = [-prorated(volume_total(8), remaining, period),
                prorated(volume_total(12), remaining, period)]
    change = {"items": [{"id": item.id, "quantity": 12}], "proration_date": proration_date,
              "proration_behavior": "always_invoice"}
    preview = client.v1.invoices.create_preview(params={
        "subscription": sub.id, "subscription_details": change})
    assert [line.amount for line in preview.lines.data] == expected
    updated = client.v1.subscriptions.update(sub.id, params=change)
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert [line.amount for line in invoice.lines.data] == expected
    assert invoice.amount_paid == preview.amount_due == sum(expected)


def test_decrease_billed_at_once_becomes_customer_credit(sdk):
    """12 -> 8 half-way: the negative proration invoice leaves credit for the next invoice."""
    price = thirty_day_price(sdk)
    sub = subscribe(12, price.id)
    item = sub["items"].data[0]
    half_way = item.current_period_start + 15 * DAY
    stripe.SubscriptionItem.modify(item.id, quantity=8, proration_date=half_way,
                                   proration_behavior="always_invoice")
    invoice: Any = stripe.Invoice.retrieve(str(stripe.Subscription.retrieve(sub.id).latest_invoice))
    assert lines_of(invoice) == [(-2880, 12, True), (2400, 8, True)]
    assert (invoice.total, invoice.amount_due, invoice.status) == (-480, 0, "paid")
    assert (invoice.starting_balance, invoice.ending_balance) == (0, -480)
    assert stripe.Customer.retrieve(sub.customer).balance == -480
    preview = stripe.Invoice.create_preview(subscription=sub.id)
    assert (preview.total, preview.starting_balance, preview.amount_due) == (4800, -480, 4320)
    assert_stripe_shape(invoice, "invoice")


def test_create_prorations_wait_for_the_next_invoice(sdk, webhook_receiver):
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    item = sub["items"].data[0]
    half_way = item.current_period_start + 15 * DAY
    first_invoice = sub.latest_invoice
    changed = stripe.Subscription.modify(sub.id, items=[{"id": item.id, "quantity": 12}],
                                         proration_date=half_way,
                                         proration_behavior="create_prorations")
    assert changed.latest_invoice == first_invoice  # nothing billed now
    assert changed["items"].data[0].quantity == 12
    # The pending proration items show up in the next invoice's preview ...
    preview = stripe.Invoice.create_preview(customer=sub.customer, subscription=sub.id)
    assert lines_of(preview) == [(-2400, 8, True), (2880, 12, True), (5760, 12, False)]
    # ... and on the renewal invoice itself.
    sdk.control("clock/advance", {"seconds": 31 * DAY})
    renewed = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])
    assert renewed.latest_invoice.billing_reason == "subscription_cycle"
    assert lines_of(renewed.latest_invoice) == lines_of(preview)
    assert renewed.latest_invoice.amount_paid == 6240
    assert_stripe_shape(renewed, "subscription")


def test_proration_behavior_none_bills_nothing(sdk):
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    item = sub["items"].data[0]
    preview = stripe.Invoice.create_preview(
        subscription=sub.id, subscription_details={
            "items": [{"id": item.id, "quantity": 12}], "proration_behavior": "none"})
    assert lines_of(preview) == [(5760, 12, False)]
    changed = stripe.SubscriptionItem.modify(item.id, quantity=12, proration_behavior="none")
    assert changed.quantity == 12
    assert stripe.Subscription.retrieve(sub.id).latest_invoice == sub.latest_invoice


def test_upcoming_invoice_endpoint_is_gone(stripe_env):
    sub = stripe_env.paid_subscription()
    for path in (f"/v1/invoices/upcoming?customer={sub.customer}",
                 f"/v1/invoices/upcoming/lines?customer={sub.customer}"):
        response = stripe_env.api("GET", path)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("Unrecognized request URL (GET: /v1/invoices/upcoming")


# -- invoices -----------------------------------------------------------------------------------

def test_list_and_retrieve_invoices_with_hosted_page_and_pdf(sdk):
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    item_id = sub["items"].data[0].id
    for quantity in (9, 12, 15):
        stripe.SubscriptionItem.modify(item_id, quantity=quantity,
                                       proration_behavior="always_invoice")
    other = subscribe(2, price.id, email="other@fabrikam.example")

    first_page = stripe.Invoice.list(customer=sub.customer, subscription=sub.id, limit=2)
    assert first_page.has_more and len(first_page.data) == 2
    rest = stripe.Invoice.list(customer=sub.customer, subscription=sub.id, limit=2,
                               starting_after=first_page.data[-1].id)
    invoices = first_page.data + rest.data
    assert not rest.has_more and len(invoices) == 4
    assert [i.billing_reason for i in invoices] == ["subscription_update"] * 3 + [
        "subscription_create"]
    assert other.latest_invoice not in {i.id for i in invoices}
    numbers = [str(i.number) for i in invoices]
    assert len(set(numbers)) == 4 and all(re.fullmatch(r"[A-Z0-9]{8}-\d{4}", n) for n in numbers)
    assert [i.created for i in invoices] == sorted((i.created for i in invoices), reverse=True)
    for invoice in invoices:
        assert (invoice.status, invoice.currency) == ("paid", "eur")
        assert invoice.amount_paid == invoice.amount_due
        assert invoice.hosted_invoice_url.startswith(sdk.url + "/invoice/")
        assert invoice.invoice_pdf.startswith(sdk.url + "/invoice/")
        assert_stripe_shape(invoice, "invoice")
    one: Any = stripe.Invoice.retrieve(invoices[0].id)
    assert one.number == invoices[0].number and one.total == invoices[0].total

    page = requests.get(one.hosted_invoice_url, timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert one.number in page.text and ">paid<" in page.text
    pdf = requests.get(one.invoice_pdf, timeout=5)
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert_valid_pdf(pdf.content)
    assert one.number.encode() in pdf.content


def assert_valid_pdf(data):
    """Header, trailer and a cross-reference table whose offsets point at its objects."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF", data).group(1))
    assert data[startxref:startxref + 4] == b"xref"
    header = re.match(rb"xref\s+0 (\d+)\s+", data[startxref:])
    count = int(header.group(1))
    entries = data[startxref + header.end():].split(b"\n")[:count]
    for number, entry in enumerate(entries[1:], start=1):
        offset = int(entry[:10])
        assert data[offset:].startswith(f"{number} 0 obj".encode()), number
    assert b"/Type /Catalog" in data and b"/Type /Page " in data


def test_hosted_invoice_page_pays_an_open_invoice(sdk):
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    sdk.control(f"customers/{sub.customer}/card", {"decline": True})
    stripe.SubscriptionItem.modify(sub["items"].data[0].id, quantity=12,
                                   proration_behavior="always_invoice")
    invoice: Any = stripe.Invoice.retrieve(str(stripe.Subscription.retrieve(sub.id).latest_invoice))
    assert invoice.status == "open"
    page = requests.get(invoice.hosted_invoice_url, timeout=5).text
    assert "id='pay'" in page
    declined = requests.post(invoice.hosted_invoice_url, timeout=5)
    assert "declined" in declined.text
    sdk.control(f"customers/{sub.customer}/card", {"decline": False})
    paid = requests.post(invoice.hosted_invoice_url, allow_redirects=False, timeout=5)
    assert paid.status_code == 303
    assert stripe.Invoice.retrieve(invoice.id).status == "paid"
    assert stripe.Subscription.retrieve(sub.id).status == "active"


# -- billing portal -----------------------------------------------------------------------------

FINANCE_FEATURES: Any = {
    "payment_method_update": {"enabled": True},
    "customer_update": {"enabled": True, "allowed_updates": ["address", "tax_id"]},
    "invoice_history": {"enabled": True},
    "subscription_update": {"enabled": False},
    "subscription_cancel": {"enabled": False},
}


def test_portal_configuration_and_session_show_only_enabled_features(sdk, webhook_receiver):
    sub = sdk.paid_subscription(quantity=3)
    configuration = stripe.billing_portal.Configuration.create(
        features=FINANCE_FEATURES, business_profile={"headline": "SecureMailMerge billing"},
        metadata={"purpose": "finance"})
    assert configuration.features.customer_update.allowed_updates == ["address", "tax_id"]
    assert configuration.features.subscription_cancel.enabled is False
    assert configuration.features.payment_method_update.enabled is True
    assert configuration.is_default is False and configuration.active is True
    assert_stripe_shape(configuration, "billing_portal.configuration")
    listed = stripe.billing_portal.Configuration.list(limit=10)
    assert [c.id for c in listed.data] == [configuration.id]
    assert_stripe_shape(listed.data[0], "billing_portal.configuration")

    session = stripe.billing_portal.Session.create(
        customer=sub.customer, return_url="https://app.example/subscriptions/1",
        configuration=configuration.id)
    assert session.url == f"{sdk.url}/billing_portal/{session.id}"
    assert session.configuration == configuration.id and session.flow is None
    assert_stripe_shape(session, "billing_portal.session")

    page = requests.get(session.url, timeout=5).text
    for shown in ("id='payment-method'", "id='billing-information'", "id='invoice-history'",
                  "id='line1'", "id='tax_id'", "href='https://app.example/subscriptions/1'"):
        assert shown in page, shown
    for hidden in ("Cancel plan", "Update plan", "id='email'"):
        assert hidden not in page, hidden
    invoice: Any = stripe.Invoice.retrieve(str(sub.latest_invoice))
    assert invoice.hosted_invoice_url in page

    sdk.wait_for_webhooks()
    webhook_receiver.clear()
    saved = requests.post(session.url, data={
        "action": "customer_update", "line1": "Hauptstr. 1", "postal_code": "10115",
        "city": "Berlin", "country": "DE", "tax_id": "DE123456789"}, timeout=5)
    assert saved.status_code == 200 and "DE123456789" in saved.text
    customer = stripe.Customer.retrieve(sub.customer)
    assert (customer.address.city, customer.address.country) == ("Berlin", "DE")
    assert_stripe_shape(customer, "customer")
    refused = requests.post(session.url, data={"action": "cancel",
                                               "subscription": sub.id}, timeout=5)
    assert refused.status_code == 403
    assert stripe.Subscription.retrieve(sub.id).cancel_at_period_end is False
    sdk.wait_for_webhooks()
    assert types(webhook_receiver) == ["customer.updated", "customer.tax_id.created"]
    assert [t.value for t in stripe.Customer.list_tax_ids(sub.customer).data] == ["DE123456789"]


def test_portal_with_cancellation_enabled_cancels_at_period_end(sdk):
    sub = sdk.paid_subscription()
    features: Any = {**FINANCE_FEATURES,
                     "subscription_cancel": {"enabled": True, "mode": "at_period_end"}}
    configuration = stripe.billing_portal.Configuration.create(features=features)
    session = stripe.billing_portal.Session.create(customer=sub.customer,
                                                   configuration=configuration.id,
                                                   return_url="https://app.example/")
    assert "Cancel plan" in requests.get(session.url, timeout=5).text
    requests.post(session.url, data={"action": "cancel", "subscription": sub.id}, timeout=5)
    canceled = stripe.Subscription.retrieve(sub.id)
    assert canceled.cancel_at_period_end and canceled.status == "active"


def test_portal_session_needs_a_configuration(sdk):
    sub = sdk.paid_subscription()
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.billing_portal.Session.create(customer=sub.customer, return_url="https://x/")
    assert "customer portal settings" in str(raised.value)


# -- cancellation -------------------------------------------------------------------------------

def test_cancel_at_period_end_undo_and_end_of_period(sdk, webhook_receiver):
    sub = sdk.paid_subscription()
    period_end = sub["items"].data[0].current_period_end
    sdk.wait_for_webhooks()
    webhook_receiver.clear()
    scheduled = stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert (scheduled.status, scheduled.cancel_at_period_end) == ("active", True)
    assert scheduled.cancel_at == period_end and scheduled.canceled_at is not None
    assert scheduled.cancellation_details.reason == "cancellation_requested"
    undone = stripe.Subscription.modify(sub.id, cancel_at_period_end=False)
    assert (undone.cancel_at_period_end, undone.cancel_at, undone.canceled_at) == (
        False, None, None)
    stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    sdk.control("clock/advance", {"seconds": 10 * DAY})
    assert stripe.Subscription.retrieve(sub.id).status == "active"  # not yet
    sdk.control("clock/advance", {"seconds": 25 * DAY})
    ended = stripe.Subscription.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", period_end)
    assert ended.latest_invoice == sub.latest_invoice  # no renewal invoice
    assert_stripe_shape(ended, "subscription")
    sdk.wait_for_webhooks()
    events = webhook_receiver.events()
    assert [e.type for e in events] == ["customer.subscription.updated"] * 3 + [
        "customer.subscription.deleted"]
    assert events[0].data.previous_attributes.cancel_at_period_end is False
    assert events[1].data.previous_attributes.cancel_at_period_end is True


# -- a declined card on the immediate proration invoice -----------------------------------------

@pytest.fixture
def declining(sdk, webhook_receiver):
    """A 30-day subscription of 8 licenses whose card declines from now on."""
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    sdk.control(f"customers/{sub.customer}/card", {"decline": True,
                                                   "decline_code": "insufficient_funds"})
    sdk.wait_for_webhooks()
    webhook_receiver.clear()
    return sub


def test_declined_with_allow_incomplete_goes_past_due(sdk, declining, webhook_receiver):
    sub, item = declining, declining["items"].data[0]
    changed = stripe.SubscriptionItem.modify(item.id, quantity=12,
                                             proration_behavior="always_invoice")
    assert changed.quantity == 12
    after = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])
    invoice = after.latest_invoice
    assert after.status == "past_due"
    assert (invoice.status, invoice.attempted, invoice.attempt_count) == ("open", True, 1)
    assert invoice.amount_due > 0 and invoice.amount_paid == 0
    assert invoice.next_payment_attempt is not None
    assert_stripe_shape(after, "subscription")
    sdk.wait_for_webhooks()
    assert types(webhook_receiver) == ["invoice.created", "invoice.finalized",
                                       "invoice.payment_failed", "customer.subscription.updated"]
    # The owner fixes the card; the retry pays and the subscription is active again.
    sdk.control(f"customers/{sub.customer}/card", {"decline": False})
    sdk.control(f"invoices/{invoice.id}/pay")
    assert stripe.Subscription.retrieve(sub.id).status == "active"
    assert stripe.Invoice.retrieve(invoice.id).status == "paid"


def test_declined_with_error_if_incomplete_changes_nothing(sdk, declining, webhook_receiver):
    sub, item = declining, declining["items"].data[0]
    with pytest.raises(stripe.CardError) as raised:
        stripe.Subscription.modify(sub.id, items=[{"id": item.id, "quantity": 12}],
                                   proration_behavior="always_invoice",
                                   payment_behavior="error_if_incomplete")
    error = raised.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error.decline_code == "insufficient_funds"
    after = stripe.Subscription.retrieve(sub.id)
    assert (after.status, after["items"].data[0].quantity) == ("active", 8)
    assert after.latest_invoice == sub.latest_invoice
    assert len(stripe.Invoice.list(subscription=sub.id).data) == 1
    sdk.wait_for_webhooks()
    assert types(webhook_receiver) == []


def test_declined_with_pending_if_incomplete_waits_for_payment(sdk, declining,
                                                              webhook_receiver):
    sub, item = declining, declining["items"].data[0]
    pending = stripe.SubscriptionItem.modify(item.id, quantity=12,
                                             proration_date=item.current_period_start + 15 * DAY,
                                             proration_behavior="always_invoice",
                                             payment_behavior="pending_if_incomplete")
    assert pending.quantity == 8  # not applied yet
    after: Any = stripe.Subscription.retrieve(sub.id)
    assert after.status == "active"
    assert after.pending_update.subscription_items[0].quantity == 12
    assert after.pending_update.expires_at > after.created
    assert_stripe_shape(after, "subscription")
    invoice = stripe.Invoice.retrieve(after.latest_invoice)
    assert (invoice.status, invoice.total) == ("open", 480)
    sdk.wait_for_webhooks()
    assert "invoice.payment_failed" in types(webhook_receiver)

    sdk.control(f"customers/{sub.customer}/card", {"decline": False})
    sdk.control(f"invoices/{invoice.id}/pay")
    applied = stripe.Subscription.retrieve(sub.id)
    assert applied["items"].data[0].quantity == 12 and applied.pending_update is None


def test_renewal_with_a_declined_card_goes_past_due(sdk, declining):
    sdk.control("clock/advance", {"seconds": 31 * DAY})
    renewed = stripe.Subscription.retrieve(declining.id, expand=["latest_invoice"])
    assert renewed.status == "past_due" and renewed.latest_invoice.status == "open"


# -- webhooks ----------------------------------------------------------------------------------

def test_quantity_change_webhooks_in_current_shapes(sdk, webhook_receiver):
    price = thirty_day_price(sdk)
    sub = subscribe(8, price.id)
    sdk.wait_for_webhooks()
    webhook_receiver.clear()
    item = sub["items"].data[0]
    stripe.Subscription.modify(sub.id, items=[{"id": item.id, "quantity": 12}],
                               proration_date=item.current_period_start + 15 * DAY,
                               proration_behavior="always_invoice",
                               idempotency_key="quantity-8-12")
    sdk.wait_for_webhooks()
    events = webhook_receiver.events()
    assert [e.type for e in events] == [
        "invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
        "customer.subscription.updated"]
    by_type = {e.type: e for e in events}
    assert by_type["invoice.created"].data.object.status == "draft"
    assert by_type["invoice.finalized"].data.object.status == "open"
    paid = by_type["invoice.paid"].data.object
    assert paid.status == "paid" and paid.amount_paid == 480
    assert paid.parent.subscription_details.subscription == sub.id
    assert "subscription" not in paid  # removed from invoices in 2025-03-31.basil
    updated = by_type["customer.subscription.updated"]
    item = updated.data.object["items"].data[0]
    assert item.quantity == 12 and item.current_period_end > item.current_period_start
    assert "current_period_end" not in updated.data.object
    assert updated.data.previous_attributes["items"]["data"][0]["quantity"] == 8
    assert updated.request.idempotency_key == "quantity-8-12"
    for event in events:
        assert event.api_version == "2026-10-28.endive"
        assert_stripe_shape(event, "event")
        payload = wire(event.data.object)
        schema = {"invoice": "invoice", "subscription": "subscription"}[payload["object"]]
        assert_stripe_shape(payload, schema)


def test_idempotent_quantity_change_is_applied_once(stripe_env):
    client = stripe_env.client
    sub = stripe_env.paid_subscription(quantity=8)
    params = {"items": [{"id": sub["items"].data[0].id, "quantity": 12}],
              "proration_behavior": "always_invoice"}
    first = client.v1.subscriptions.update(sub.id, params=params,
                                           options={"idempotency_key": "double-click"})
    again = client.v1.subscriptions.update(sub.id, params=params,
                                           options={"idempotency_key": "double-click"})
    assert first.latest_invoice == again.latest_invoice
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 2


# -- fidelity: every object the emulator returns ----------------------------------------------

def test_every_returned_object_matches_stripes_schema(stripe_env, webhook_receiver):
    client = stripe_env.client
    raw = lambda path: stripe_env.api("GET", path).json()  # noqa: E731

    open_session = stripe_env.checkout(quantity=4)
    assert_stripe_shape(open_session, "checkout.session")
    sub = stripe_env.paid_subscription(quantity=12, subscription_data={
        "metadata": {"tenant": "contoso"}})
    session = client.v1.checkout.sessions.list().data[0]
    expanded = raw(f"/v1/checkout/sessions/{session.id}?expand[]=line_items"
                   f"&expand[]=subscription&expand[]=subscription.latest_invoice")
    checks = {
        "checkout.session": [raw(f"/v1/checkout/sessions/{session.id}"), expanded],
        "item": raw(f"/v1/checkout/sessions/{session.id}/line_items")["data"],
        "customer": [raw(f"/v1/customers/{sub.customer}")],
        "subscription": [raw(f"/v1/subscriptions/{sub.id}"),
                         raw(f"/v1/subscriptions/{sub.id}?expand[]=latest_invoice")],
        "subscription_item": [raw(f"/v1/subscription_items/{sub['items'].data[0].id}")],
        "invoice": [raw(f"/v1/invoices/{sub.latest_invoice}")],
        "line_item": raw(f"/v1/invoices/{sub.latest_invoice}/lines")["data"],
        "price": [raw(f"/v1/prices/{stripe_env.price_id}?expand[]=tiers")],
        "product": [raw("/v1/products/securemailmerge")],
    }
    item_id = sub["items"].data[0].id
    change = {"items": [{"id": item_id, "quantity": 8}], "proration_behavior": "always_invoice"}
    checks["invoice"].append(wire(client.v1.invoices.create_preview(params={
        "subscription": sub.id, "subscription_details": change})))
    client.v1.subscriptions.update(sub.id, params=change)
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    checks["subscription"].append(raw(f"/v1/subscriptions/{sub.id}"))
    checks["invoice"] += raw(f"/v1/invoices?customer={sub.customer}")["data"]
    configuration = client.v1.billing_portal.configurations.create(params={
        "features": FINANCE_FEATURES})
    portal = client.v1.billing_portal.sessions.create(params={
        "customer": sub.customer, "configuration": configuration.id,
        "return_url": "https://app.example/",
        "flow_data": {"type": "payment_method_update"}})
    checks["billing_portal.configuration"] = [wire(configuration)]
    checks["billing_portal.session"] = [wire(portal)]
    stripe_env.wait_for_webhooks()
    checks["event"] = raw("/v1/events?limit=100")["data"]
    assert {e["type"] for e in checks["event"]} >= {
        "checkout.session.completed", "customer.created", "customer.subscription.created",
        "customer.subscription.updated", "invoice.created", "invoice.finalized",
        "invoice.paid"}

    problems: dict[str, list[str]] = {}
    for schema, objects in checks.items():
        assert objects, schema
        for obj in objects:
            found = SCHEMAS.errors(obj, schema, undocumented=True, allowed_extra=STILL_SENT)
            if found:
                problems.setdefault(schema, []).extend(found[:5])
    # Webhook payloads: each data.object against the schema of its type.
    for event in checks["event"]:
        payload = event["data"]["object"]
        found = SCHEMAS.errors(payload, payload["object"], undocumented=True,
                               allowed_extra=STILL_SENT)
        if found:
            problems.setdefault(f"event {event['type']}", []).extend(found[:5])
    assert problems == {}, json.dumps(problems, indent=1)


def test_validator_honours_nullable_and_rejects_unvendored_schemas():
    """The checks above are only as good as the validator: pin its semantics."""
    assert SCHEMAS.version == "2026-07-29.dahlia"
    address = {"city": None, "country": "DE", "line1": None, "line2": None,
               "postal_code": None, "state": None}
    assert SCHEMAS.errors(address, "address") == []
    assert SCHEMAS.errors({**address, "country": 49}, "address")
    period = {"start": 1, "end": None}  # period.end is not nullable
    assert SCHEMAS.errors(period, "invoice_line_item_period") == [
        "invoice_line_item_period.end: null is not allowed (not nullable)"]
    # customer.discount is nullable: null is fine, an object must match `discount`, which is
    # not vendored, so the emulator would have to vendor it before returning one.
    assert not [e for e in SCHEMAS.errors({"discount": None}, "customer") if "discount" in e]
    assert any("not vendored" in e for e in SCHEMAS.errors({"discount": {"id": "di_1"}},
                                                           "customer"))
    # Expandable fields take an id or the object.
    item_errors = SCHEMAS.errors({"price": "price_1"}, "billing_bill_resource_invoicing_pricing"
                                                       "_pricing_price_details")
    assert item_errors == ["billing_bill_resource_invoicing_pricing_pricing_price_details: "
                           "required property 'product' is missing"]
    assert SCHEMAS.errors({"enabled": True, "surprise": 1}, "portal_invoice_list",
                          undocumented=True) == [
        "portal_invoice_list: 'surprise' is not a documented property of portal_invoice_list"]
