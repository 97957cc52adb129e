"""The Stripe emulator, exercised through the real stripe SDK (16.x) and raw HTTP."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
import requests
import stripe

from standins.stripe_emulator import launch
from standins.stripe_emulator.bootstrap import PRICE_LOOKUP_KEY, client_for, ensure_catalog
from tests.standins.stripe_fixtures import STRIPE_TEST_KEY, WEBHOOK_SECRET, wait_until

FIXTURES = pathlib.Path("/work/shared/stripe/fixtures3.json")
REPO = pathlib.Path(__file__).resolve().parents[2]


# -- SDK configuration ------------------------------------------------------------------

def test_global_api_base_style(stripe_env, monkeypatch):
    """Legacy global configuration: stripe.api_key + stripe.api_base (read on every request)."""
    monkeypatch.setattr(stripe, "api_key", STRIPE_TEST_KEY)
    monkeypatch.setattr(stripe, "api_base", stripe_env.url)
    customer = stripe.Customer.create(email="global@example.com", metadata={"k": "v"})
    assert customer.id.startswith("cus_")
    assert stripe.Customer.retrieve(customer.id).metadata.to_dict() == {"k": "v"}


def test_client_base_addresses_style(stripe_env):
    """StripeClient(api_key, base_addresses={"api": url}) with the v1 service namespace."""
    client = stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": stripe_env.url})
    customer = client.v1.customers.create(params={"email": "client@example.com"})
    listed = client.v1.customers.list(params={"email": "client@example.com"})
    assert [c.id for c in listed.data] == [customer.id]


def test_api_key_required_in_stripe_error_shape(stripe_env):
    response = requests.get(f"{stripe_env.url}/v1/customers", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    bad = stripe.StripeClient("sk_live_nope", base_addresses={"api": stripe_env.url})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.customers.list()


def test_stripe_version_is_echoed_and_errors_have_stripe_shape(stripe_env):
    response = stripe_env.api("GET", "/v1/customers/cus_missing",
                              headers={"Stripe-Version": "2026-10-28.endive"})
    assert response.status_code == 404
    assert response.headers["Stripe-Version"] == "2026-10-28.endive"
    assert response.headers["Request-Id"].startswith("req_")
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_env.client.v1.checkout.sessions.create(params={
            "mode": "subscription", "line_items": [{"price": "price_nope", "quantity": 1}],
            "success_url": "https://x/"})
    assert raised.value.http_status == 400 and raised.value.param == "line_items[0][price]"


# -- object shapes ----------------------------------------------------------------------

# Stripe removed invoice.subscription in 2025-03-31 (now parent.subscription_details), but
# the published fixtures still list it; the legacy-shape test covers it instead.
REMOVED_IN_CURRENT_API = {"invoice": {"subscription"}}


def test_shapes_have_every_key_of_stripe_fixtures(stripe_env):
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    sub = stripe_env.paid_subscription(quantity=2)
    session = stripe_env.client.v1.checkout.sessions.list().data[0]
    raw = lambda path: stripe_env.api("GET", path).json()  # noqa: E731
    invoice = raw(f"/v1/invoices/{sub.latest_invoice}")
    configuration = stripe_env.client.v1.billing_portal.configurations.create(params={
        "features": {"payment_method_update": {"enabled": True}}})
    portal = stripe_env.client.v1.billing_portal.sessions.create(params={
        "customer": sub.customer, "return_url": "https://app.example/billing",
        "configuration": configuration.id})
    customer = stripe_env.client.v1.customers.create(params={
        "address": {"country": "DE"}, "tax_id_data": [{"type": "eu_vat", "value": "DE123456789"}]})
    taxed = stripe_env.client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": stripe_env.price_id}],
        "automatic_tax": {"enabled": True}})
    tax_rate = raw(f"/v1/invoices/{taxed.latest_invoice}")["total_taxes"][0]["tax_rate_details"]
    funding = stripe_env.client.v1.customers.funding_instructions.create(customer.id, params={
        "funding_type": "bank_transfer", "currency": "eur",
        "bank_transfer": {"type": "eu_bank_transfer", "eu_bank_transfer": {"country": "DE"}}})
    produced = {
        "tax_rate": raw(f"/v1/tax_rates/{tax_rate['tax_rate']}"),
        "tax_id": raw(f"/v1/customers/{customer.id}/tax_ids")["data"][0],
        "funding_instructions": funding.to_dict(),
        "product": raw("/v1/products/securemailmerge"),
        "price": raw(f"/v1/prices/{stripe_env.price_id}"),
        "customer": raw(f"/v1/customers/{sub.customer}"),
        "checkout.session": raw(f"/v1/checkout/sessions/{session.id}"),
        "item": raw(f"/v1/checkout/sessions/{session.id}/line_items")["data"][0],
        "subscription": raw(f"/v1/subscriptions/{sub.id}"),
        "subscription_item": raw(f"/v1/subscription_items/{sub['items'].data[0].id}"),
        "invoice": invoice,
        "line_item": invoice["lines"]["data"][0],
        "event": raw("/v1/events")["data"][0],
        "billing_portal.session": portal.to_dict(),
        "billing_portal.configuration": configuration.to_dict(),
    }
    problems = {}
    for kind, obj in produced.items():
        assert obj["object"] == fixtures[kind]["object"], kind
        expected = set(fixtures[kind]) - REMOVED_IN_CURRENT_API.get(kind, set())
        missing = expected - set(obj)
        if missing:
            problems[kind] = sorted(missing)
    assert problems == {}
    assert "current_period_end" not in produced["subscription"]
    assert produced["invoice"]["parent"]["subscription_details"]["subscription"] == sub.id


# -- prices and tiers -------------------------------------------------------------------

def test_tiers_only_when_expanded(stripe_env):
    client = stripe_env.client
    assert "tiers" not in client.v1.prices.retrieve(stripe_env.price_id)
    expanded = client.v1.prices.retrieve(stripe_env.price_id, params={"expand": ["tiers"]})
    assert [(t.up_to, t.unit_amount) for t in expanded.tiers] == [(9, 600), (None, 480)]
    listed = client.v1.prices.list(params={"lookup_keys": [PRICE_LOOKUP_KEY]})
    assert "tiers" not in listed.data[0]
    listed = client.v1.prices.list(params={"lookup_keys": [PRICE_LOOKUP_KEY],
                                           "expand": ["data.tiers"]})
    assert listed.data[0].tiers[1].unit_amount == 480
    assert listed.data[0].tiers_mode == "volume" and listed.data[0].billing_scheme == "tiered"


def test_bootstrap_is_idempotent_and_scriptable(stripe_env):
    assert ensure_catalog(stripe_env.client) == stripe_env.price_id
    output = subprocess.run(
        [sys.executable, "scripts/stripe_setup.py", "--api-key", STRIPE_TEST_KEY,
         "--api-base", stripe_env.url], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == stripe_env.price_id
    assert len(stripe_env.client.v1.prices.list().data) == 2  # monthly and yearly


@pytest.mark.parametrize("quantity,total", [(1, 600), (9, 5400), (10, 4800), (12, 5760)])
def test_volume_tier_amount(stripe_env, quantity, total):
    session = stripe_env.checkout(quantity)
    assert session.amount_total == total
    page = requests.get(session.url, timeout=5).text
    assert f"€{total / 100:,.2f}" in page


# -- checkout and webhooks --------------------------------------------------------------

def test_checkout_paid_flow_sends_signed_webhooks(stripe_env, webhook_receiver, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", STRIPE_TEST_KEY)
    monkeypatch.setattr(stripe, "api_base", stripe_env.url)
    session = stripe.checkout.Session.create(
        mode="subscription", line_items=[{"price": stripe_env.price_id, "quantity": 12}],
        success_url="https://app.example/done?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example/cancel", client_reference_id="tenant-1:oid-1",
        customer_email="buyer@contoso.example", metadata={"purchase": "p1"},
        subscription_data={"metadata": {"org": "contoso"}}, locale="de",
        allow_promotion_codes=True)
    assert session.status == "open" and session.url == f"{stripe_env.url}/checkout/{session.id}"
    assert session.success_url.endswith("{CHECKOUT_SESSION_ID}")

    paid = stripe_env.control(f"checkout/{session.id}/pay", {"outcome": "paid"})
    assert paid["redirect_url"] == f"https://app.example/done?session_id={session.id}"

    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription", "line_items"])
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.client_reference_id == "tenant-1:oid-1"
    assert isinstance(done.subscription, stripe.Subscription)  # expanded
    assert done.subscription.status == "active"
    assert done.subscription.metadata.to_dict() == {"org": "contoso"}
    item = done.subscription["items"].data[0]
    assert item.quantity == 12 and item.price.id == stripe_env.price_id
    assert item.current_period_end > item.current_period_start
    assert done.line_items.data[0].amount_total == 5760
    assert done.customer == done.subscription.customer

    sub = stripe.Subscription.retrieve(done.subscription.id, expand=["latest_invoice"])
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)  # expanded
    assert invoice.status == "paid" and invoice.amount_paid == 5760
    assert invoice.hosted_invoice_url is not None and invoice.invoice_pdf is not None
    assert invoice.parent.subscription_details.subscription == sub.id
    assert requests.get(invoice.hosted_invoice_url, timeout=5).status_code == 200
    assert requests.get(invoice.invoice_pdf, timeout=5).content.startswith(b"%PDF")

    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()  # construct_event verified each signature
    assert [e.type for e in events] == [
        "customer.created", "customer.subscription.created", "invoice.created",
        "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
        "customer.subscription.updated", "checkout.session.completed"]
    completed = events[-1]
    assert completed.data.object.id == session.id
    assert completed.data.object.subscription == sub.id
    updated = events[-2]
    assert updated.data.previous_attributes.status == "incomplete"
    assert completed.api_version == "2026-10-28.endive" and completed.livemode is False
    assert completed.request.id is None  # the buyer paid, not an API request (as in Stripe)
    # Stored events are retrievable as delivered.
    assert stripe.Event.retrieve(completed.id).data.object.id == session.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(webhook_receiver.requests[0]["body"],
                                       webhook_receiver.requests[0]["headers"]["Stripe-Signature"],
                                       "whsec_wrong")


def test_hosted_checkout_page_buttons(stripe_env):
    session = stripe_env.checkout(12)
    page = requests.get(session.url, timeout=5).text
    for text in ("SecureMailMerge", "12 ×", "€4.80", "€57.60", ">Pay<",
                 "Pay with SEPA Direct Debit (delayed)", "Pay (card declined)", "Cancel"):
        assert text in page

    declined = requests.post(session.url, data={"action": "declined"}, allow_redirects=False,
                             timeout=5)
    assert declined.status_code == 200 and "declined" in declined.text
    assert stripe_env.client.v1.customers.list().data == []

    cancel = requests.post(session.url, data={"action": "cancel"}, allow_redirects=False,
                           timeout=5)
    assert cancel.headers["Location"] == "https://app.example/purchase"

    paid = requests.post(session.url, data={"action": "paid", "email": "it@contoso.example"},
                         allow_redirects=False, timeout=5)
    assert paid.status_code == 303
    assert paid.headers["Location"] == (
        f"https://app.example/purchase/complete?session_id={session.id}")
    customer = stripe_env.client.v1.customers.list().data[0]
    assert customer.email == "it@contoso.example"


def test_declined_card_creates_nothing(stripe_env, webhook_receiver):
    session = stripe_env.checkout()
    error = stripe_env.control(f"checkout/{session.id}/pay", {"outcome": "declined"}, expect=402)
    assert error["error"]["type"] == "card_error" and error["error"]["code"] == "card_declined"
    assert stripe_env.client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert stripe_env.client.v1.subscriptions.list().data == []
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == []


@pytest.mark.parametrize("result,status", [("succeeded", "active"),
                                           ("failed", "incomplete_expired")])
def test_delayed_payment(stripe_env, webhook_receiver, result, status):
    session = stripe_env.checkout()
    stripe_env.control(f"checkout/{session.id}/pay", {"outcome": "delayed"})
    pending = stripe_env.client.v1.checkout.sessions.retrieve(session.id)
    assert (pending.status, pending.payment_status) == ("complete", "unpaid")
    assert stripe_env.client.v1.subscriptions.retrieve(pending.subscription).status == "incomplete"

    stripe_env.control(f"checkout/{session.id}/async", {"result": result})
    sub = stripe_env.client.v1.subscriptions.retrieve(pending.subscription)
    assert sub.status == status
    stripe_env.wait_for_webhooks()
    types = webhook_receiver.types()
    assert types.index("checkout.session.completed") < types.index(
        f"checkout.session.async_payment_{result}")
    expected_invoice_event = "invoice.paid" if result == "succeeded" else "invoice.payment_failed"
    assert expected_invoice_event in types


def test_delayed_payment_settles_on_its_own(stripe_env, webhook_receiver):
    stripe_env.control("config", {"async_payment_delay_seconds": 0.1,
                                  "async_payment_result": "failed"})
    session = stripe_env.checkout()
    stripe_env.control(f"checkout/{session.id}/pay", {"outcome": "delayed"})
    assert wait_until(
        lambda: "checkout.session.async_payment_failed" in webhook_receiver.types())
    stripe_env.control("config", {"async_payment_delay_seconds": 3600,
                                  "async_payment_result": "succeeded"})


def test_trial_needs_no_payment(stripe_env):
    session = stripe_env.checkout(5, subscription_data={"trial_period_days": 14})
    assert session.amount_total == 0
    stripe_env.control(f"checkout/{session.id}/pay")
    done = stripe_env.client.v1.checkout.sessions.retrieve(session.id,
                                                           params={"expand": ["subscription"]})
    assert done.payment_status == "no_payment_required"
    assert done.subscription.status == "trialing"
    assert done.subscription.trial_end - done.subscription.trial_start == 14 * 86400
    assert done.subscription["items"].data[0].current_period_end == done.subscription.trial_end
    stripe_env.control(f"subscriptions/{done.subscription.id}/trial_will_end")
    stripe_env.wait_for_webhooks()
    assert "customer.subscription.trial_will_end" in stripe_env.receiver.types()


def test_expire_session(stripe_env, webhook_receiver):
    session = stripe_env.checkout()
    expired = stripe_env.client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_env.client.v1.checkout.sessions.expire(session.id)
    stripe_env.control(f"checkout/{session.id}/pay", expect=400)
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == ["checkout.session.expired"]


def test_idempotency_key(stripe_env):
    params = {"email": "idem@example.com"}
    first = stripe_env.client.v1.customers.create(params=params,
                                                  options={"idempotency_key": "key-1"})
    again = stripe_env.api("POST", "/v1/customers", data=params,
                           headers={"Idempotency-Key": "key-1"})
    assert again.json()["id"] == first.id
    assert again.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        stripe_env.client.v1.customers.create(params={"email": "other@example.com"},
                                              options={"idempotency_key": "key-1"})
    assert len(stripe_env.client.v1.customers.list().data) == 1
    event = stripe_env.client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.request.id.startswith("req_") and event.request.idempotency_key == "key-1"


# -- delivery modes ---------------------------------------------------------------------

def _customer_created(env, email="mode@example.com"):
    return env.client.v1.customers.create(params={"email": email})


def test_duplicate_delivery(stripe_env, webhook_receiver):
    stripe_env.control("config", {"delivery": "duplicate"})
    customer = _customer_created(stripe_env)
    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()
    assert [e.type for e in events] == ["customer.created"] * 2
    assert events[0].id == events[1].id and events[0].data.object.id == customer.id


def test_reverse_delivery(stripe_env, webhook_receiver):
    stripe_env.control("config", {"delivery": "reverse"})
    session = stripe_env.checkout()
    stripe_env.control(f"checkout/{session.id}/pay")
    stripe_env.wait_for_webhooks()
    types = webhook_receiver.types()
    assert types[0] == "checkout.session.completed" and types[-1] == "customer.created"


def test_hold_and_release(stripe_env, webhook_receiver):
    stripe_env.control("config", {"delivery": "hold"})
    _customer_created(stripe_env, "a@example.com")
    _customer_created(stripe_env, "b@example.com")
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == []
    held = stripe_env.control("events", method="GET")["held"]
    assert len(held) == 2
    stripe_env.control("config", {"delivery": "normal"})
    assert stripe_env.control("webhooks/release", {"order": "reverse"})["released"] == 2
    stripe_env.wait_for_webhooks()
    emails = [e.data.object.email for e in webhook_receiver.events()]
    assert emails == ["b@example.com", "a@example.com"]


def test_drop_next_and_resend(stripe_env, webhook_receiver):
    stripe_env.control("config", {"drop_next": "customer.subscription.created"})
    sub = stripe_env.paid_subscription()
    stripe_env.wait_for_webhooks()
    assert "customer.subscription.created" not in webhook_receiver.types()
    dropped = [d for d in stripe_env.control("events", method="GET")["deliveries"]
               if d["status"] == "dropped"]
    assert [d["type"] for d in dropped] == ["customer.subscription.created"]
    # The event still exists in the API (reconciliation can find it) and can be resent.
    stored = stripe_env.client.v1.events.retrieve(dropped[0]["event"])
    assert stored.data.object.id == sub.id
    stripe_env.control(f"events/{stored.id}/resend")
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types()[-1] == "customer.subscription.created"


def test_retries_non_2xx_with_backoff(stripe_env, webhook_receiver):
    webhook_receiver.fail_next = 2
    _customer_created(stripe_env)
    stripe_env.wait_for_webhooks()
    assert [r["answered"] for r in webhook_receiver.requests] == [500, 500, 200]
    assert webhook_receiver.types() == ["customer.created"]
    event_id = webhook_receiver.events()[0].id
    assert stripe_env.client.v1.events.retrieve(event_id).pending_webhooks == 0


# -- subscriptions ----------------------------------------------------------------------

def test_fail_payment_then_pay_then_dunning_end(stripe_env, webhook_receiver):
    sub = stripe_env.paid_subscription()
    period_end = sub["items"].data[0].current_period_end
    webhook_receiver.clear()
    stripe_env.wait_for_webhooks()
    webhook_receiver.clear()

    failed = stripe_env.control(f"subscriptions/{sub.id}/fail_payment")
    assert failed["status"] == "past_due"
    assert failed["items"]["data"][0]["current_period_start"] == period_end
    invoice = stripe_env.client.v1.invoices.retrieve(failed["latest_invoice"])
    assert (invoice.status, invoice.attempt_count, invoice.billing_reason) == (
        "open", 1, "subscription_cycle")
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == ["invoice.created", "invoice.finalized",
                                        "invoice.payment_failed", "customer.subscription.updated"]
    assert webhook_receiver.events()[-1].data.previous_attributes.status == "active"

    webhook_receiver.clear()
    assert stripe_env.control(f"subscriptions/{sub.id}/pay")["status"] == "active"
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types() == ["invoice.paid", "invoice.payment_succeeded",
                                        "customer.subscription.updated"]

    stripe_env.control(f"subscriptions/{sub.id}/fail_payment")
    assert stripe_env.control(f"subscriptions/{sub.id}/advance",
                              {"status": "unpaid"})["status"] == "unpaid"
    canceled = stripe_env.control(f"subscriptions/{sub.id}/advance", {"status": "canceled"})
    assert canceled["status"] == "canceled"
    stripe_env.wait_for_webhooks()
    assert webhook_receiver.types()[-1] == "customer.subscription.deleted"


def test_update_quantity_cancel_at_period_end_and_cancel(stripe_env, webhook_receiver):
    client = stripe_env.client
    sub = stripe_env.paid_subscription(quantity=3)
    item = sub["items"].data[0]
    preview = client.v1.invoices.create_preview(params={
        "subscription": sub.id,
        "subscription_details": {"items": [{"id": item.id, "quantity": 12}],
                                 "proration_behavior": "always_invoice"}})
    assert preview.amount_due > 0 and any(line.amount < 0 for line in preview.lines.data)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].quantity == 3

    updated = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "quantity": 12}], "proration_behavior": "always_invoice",
        "metadata": {"changed_by": "owner"}})
    assert updated["items"].data[0].quantity == 12
    assert updated.latest_invoice != sub.latest_invoice
    assert client.v1.invoices.retrieve(updated.latest_invoice).billing_reason == (
        "subscription_update")
    assert [s.id for s in client.v1.subscriptions.list(
        params={"price": stripe_env.price_id, "customer": sub.customer}).data] == [sub.id]

    at_end = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert at_end.cancel_at_period_end and at_end.cancel_at == item.current_period_end
    undone = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert not undone.cancel_at_period_end and undone.cancel_at is None

    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert client.v1.subscriptions.list(params={"customer": sub.customer}).data == []
    assert len(client.v1.subscriptions.list(params={"status": "canceled"}).data) == 1
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert len(invoices) == 2
    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()
    quantity_change = [e for e in events if e.type == "customer.subscription.updated"
                       and "items" in e.data.previous_attributes]
    assert quantity_change[0].data.previous_attributes["items"]["data"][0]["quantity"] == 3
    assert events[-1].type == "customer.subscription.deleted"


def test_direct_subscription_create_and_item_update(stripe_env):
    client = stripe_env.client
    customer = client.v1.customers.create(params={"email": "direct@example.com"})
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": stripe_env.price_id, "quantity": 2}]})
    assert sub.status == "active"
    item = client.v1.subscription_items.update(sub["items"].data[0].id,
                                               params={"quantity": 4,
                                                       "proration_behavior": "none"})
    assert item.quantity == 4 and item.subscription == sub.id
    listed = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert listed.data[0].quantity == 4


def test_clock_advance_renews(stripe_env):
    sub = stripe_env.paid_subscription()
    stripe_env.control("clock/advance", {"seconds": 32 * 86400})
    renewed = stripe_env.client.v1.subscriptions.retrieve(sub.id)
    assert renewed.latest_invoice != sub.latest_invoice
    assert renewed["items"].data[0].current_period_start == (
        sub["items"].data[0].current_period_end)


# -- API versions -----------------------------------------------------------------------

def test_legacy_shapes_by_stripe_version_header(stripe_env):
    sub = stripe_env.paid_subscription()
    legacy = stripe_env.api("GET", f"/v1/subscriptions/{sub.id}?expand[]=latest_invoice",
                            headers={"Stripe-Version": "2024-06-20"}).json()
    assert legacy["current_period_end"] == sub["items"].data[0].current_period_end
    assert "current_period_end" not in legacy["items"]["data"][0]
    assert legacy["latest_invoice"]["subscription"] == sub.id
    assert "parent" not in legacy["latest_invoice"]
    current = stripe_env.api("GET", f"/v1/invoices/{sub.latest_invoice}",
                             headers={"Stripe-Version": "2025-03-31.basil"}).json()
    assert "subscription" not in current and current["parent"]["subscription_details"]


def test_legacy_shapes_option_for_webhooks(stripe_env, webhook_receiver):
    stripe_env.control("config", {"legacy_shapes": True})
    sub = stripe_env.paid_subscription()
    stripe_env.wait_for_webhooks()
    events = webhook_receiver.events()
    assert {e.api_version for e in events} == {"2024-06-20"}
    created = next(e for e in events if e.type == "customer.subscription.created")
    assert created.data.object.current_period_end == sub["items"].data[0].current_period_end
    paid = next(e for e in events if e.type == "invoice.paid")
    assert paid.data.object.subscription == sub.id


# -- lists ------------------------------------------------------------------------------

def test_list_pagination(stripe_env):
    client = stripe_env.client
    ids = [client.v1.customers.create(params={"email": f"p{i}@example.com"}).id
           for i in range(5)]
    page = client.v1.customers.list(params={"limit": 2})
    assert page.object == "list" and page.url == "/v1/customers" and page.has_more
    assert [c.id for c in page.data] == ids[::-1][:2]
    assert [c.id for c in page.auto_paging_iter()] == ids[::-1]


# -- process lifecycle ------------------------------------------------------------------

def test_state_file_survives_restart(tmp_path):
    state = tmp_path / "stripe.json"
    with launch(state_file=state) as first:
        client = client_for(STRIPE_TEST_KEY, first.url)
        price_id = ensure_catalog(client)
        customer = client.v1.customers.create(params={"email": "persist@example.com"})
    assert first.process.returncode == 0  # SIGTERM shuts down cleanly
    with launch(state_file=state) as second:
        client = client_for(STRIPE_TEST_KEY, second.url)
        assert client.v1.customers.retrieve(customer.id).email == "persist@example.com"
        assert ensure_catalog(client) == price_id


def test_webhook_url_from_command_line(webhook_receiver):
    webhook_receiver.clear()
    with launch(webhook_url=webhook_receiver.url, webhook_secret=WEBHOOK_SECRET) as emulator:
        client_for(STRIPE_TEST_KEY, emulator.url).v1.customers.create(params={"email": "x@y.z"})
        assert wait_until(lambda: webhook_receiver.types() == ["customer.created"])
