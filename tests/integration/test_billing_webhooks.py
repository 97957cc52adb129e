"""Stripe webhooks end to end: the emulator signs and delivers, the app verifies, queues and applies.

Everything goes through the production Stripe adapter (the real SDK) and the running local host.
"""

import hashlib
import hmac
import json
import time

import pytest
import requests
import stripe

from adapters import keys
from adapters.stripe_gateway import StripeGateway
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, STRIPE_EVENTS
from services import subscription_store
from services.billing_events import Billing, apply, invoice_subscription_id, reconcile
from services.subscription import LicenseState, StripeSubscriptionState
from tests.builders import checkout, pay, person, purchased_subscription
from tests.conftest import STRIPE_KEY, WEBHOOK_SECRET, wait_for
from tests.mail_support import unpacked


@pytest.fixture(autouse=True)
def normal_delivery(stack):
    yield
    stack.emulator_control("config", {"delivery": "normal", "legacy_shapes": False, "delay_seconds": 0})
    stack.emulator_control("webhooks/release")


def client(stack):
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stack.stripe_emulator.url})


def signed(body: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> dict:
    timestamp = at or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


def event_body(event_type: str, obj: dict, event_id: str) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
                       "data": {"object": obj}}).encode()


def load(stack, subscription_id):
    return subscription_store.load(stack.storage(), subscription_id)


# --- signature ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers_for",
    [
        pytest.param(lambda body: signed(body, secret="whsec_wrong"), id="wrong-secret"),
        pytest.param(lambda body: signed(body, at=int(time.time()) - 600), id="ten-minutes-old"),
        pytest.param(lambda body: {**signed(body), "Stripe-Signature": "t=1,v1=deadbeef"}, id="forged"),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="missing"),
    ],
)
def test_bad_signatures_are_rejected_and_change_nothing(stack, headers_for):
    subscription = purchased_subscription(stack, person("sig@contoso.example"))
    body = event_body("customer.subscription.deleted", {"id": subscription.id, "object": "subscription"},
                      "evt_forged_1")
    response = requests.post(f"{stack.url}/api/stripe/webhook", data=body, headers=headers_for(body), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_webhook"
    time.sleep(0.5)
    assert stack.storage().get("StripeEvents", "_1", "evt_forged_1") is None
    assert load(stack, subscription.id).status == "active"


def test_malformed_body_with_valid_signature_is_400(stack):
    body = b"not json"
    response = requests.post(f"{stack.url}/api/stripe/webhook", data=body, headers=signed(body), timeout=10)
    assert response.status_code == 400


def test_each_configured_secret_is_accepted_during_rotation(stack):
    from services.settings import load_settings

    gateway = StripeGateway(load_settings({**stack.env, "STRIPE_WEBHOOK_SECRETS": f"whsec_new,{WEBHOOK_SECRET}"}))
    body = event_body("ping", {}, "evt_rotation")
    assert gateway.verify_event(body, signed(body)["Stripe-Signature"])["id"] == "evt_rotation"
    assert gateway.verify_event(body, signed(body, secret="whsec_new")["Stripe-Signature"])["id"] == "evt_rotation"


def test_unknown_event_types_are_acknowledged(stack):
    body = event_body("radar.early_fraud_warning.created", {"id": "issfr_1"}, "evt_unknown_type")
    response = requests.post(f"{stack.url}/api/stripe/webhook", data=body, headers=signed(body), timeout=10)
    assert response.status_code == 200
    wait_for(lambda: stack.storage().get("StripeEvents", "pe", "evt_unknown_type"), message="unknown event recorded")


# --- order, duplicates, state ------------------------------------------------------------------


def test_webhook_alone_creates_the_subscription_and_the_finish_setup_mail(stack):
    """A buyer who never comes back through the redirect."""
    buyer = person("never-returns@contoso.example")
    session_id = checkout(stack, buyer, quantity=4)
    pay(stack, session_id)
    stack.settle()
    created = wait_for(lambda: subscription_store.by_checkout_session(stack.storage(), session_id),
                       message="fulfilled by webhook")
    assert created.quantity == 4 and created.owner_email == "never-returns@contoso.example"
    mail = wait_for(lambda: [m for m in stack.outbox() if m["to"] == "never-returns@contoso.example"],
                    message="finish-setup mail")
    assert "finish setup" in mail[0]["subject"]
    assert f"/api/subscriptions/{created.id}/setup" in mail[0]["text"]


def test_duplicated_and_reversed_deliveries_give_one_subscription_with_the_newest_state(stack):
    stack.emulator_control("config", {"delivery": "duplicate"})
    buyer = person("dupes@contoso.example")
    session_id = checkout(stack, buyer, quantity=3)
    pay(stack, session_id)
    stack.settle()
    stack.emulator_control("config", {"delivery": "hold"})
    subscription = subscription_store.by_checkout_session(stack.storage(), session_id)
    item = client(stack).v1.subscriptions.retrieve(subscription.id)["items"]["data"][0]
    client(stack).v1.subscriptions.update(subscription.id, params={"items": [{"id": item["id"], "quantity": 8}]})
    client(stack).v1.subscriptions.update(subscription.id, params={"items": [{"id": item["id"], "quantity": 6}]})
    # The older update arrives last.
    stack.emulator_control("webhooks/release", {"order": "reverse"})
    stack.settle()
    stored = load(stack, subscription.id)
    assert stored.quantity == 6
    assert len(subscription_store.for_user(stack.storage(), buyer.tid, buyer.oid)) == 1


def test_updated_before_created_leaves_the_newest_state(stack):
    stack.emulator_control("config", {"delivery": "hold"})
    buyer = person("early-update@contoso.example")
    session_id = checkout(stack, buyer, quantity=2)
    pay(stack, session_id)
    stack.emulator_control("webhooks/release", {"order": "reverse"})  # updated, then ..., then created
    stack.settle()
    stored = wait_for(lambda: subscription_store.by_checkout_session(stack.storage(), session_id), message="fulfilled")
    assert stored.status == "active" and stored.quantity == 2


class MailsKept:
    """The stack's storage, except that mails are kept here instead of queued (the host would send them)."""

    def __init__(self, store):
        self._store = store
        self.mails = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    def send(self, queue, body, visibility_timeout=None):
        if queue == OUTBOUND_EMAIL_QUEUE:
            self.mails.extend(unpacked(body))
        else:
            self._store.send(queue, body, visibility_timeout)


def test_an_event_delivered_twice_is_applied_once(stack):
    """Stripe redelivers an invoice.payment_failed after the owner paid: no second payment-failed mail."""
    subscription = purchased_subscription(stack, person("redelivered@contoso.example"))
    stack.settle()
    stack.emulator_control("config", {"delivery": "hold"})  # the host applies none of what follows
    stack.emulator_control(f"subscriptions/{subscription.id}/fail_payment")
    held = stack.emulator_get("events")["held"]
    event_id = next(e["event"] for e in held if e["type"] == "invoice.payment_failed")
    event = requests.get(f"{stack.stripe_emulator.url}/v1/events/{event_id}", timeout=10,
                         headers={"Authorization": f"Bearer {STRIPE_KEY}"}).json()
    body = json.dumps(event).encode()
    storage = MailsKept(stack.storage())
    billing = Billing(storage=storage, stripe=StripeGateway(stack.settings), settings=stack.settings)

    first = apply(body, billing)
    recorded = stack.storage().get(STRIPE_EVENTS, *keys.stripe_event(event_id))
    assert load(stack, subscription.id).status == "past_due"
    assert [m["id"] for m in storage.mails] == [f"payment-failed-{event_id}"], first
    # The owner pays; then Stripe delivers the failure once more.
    stack.emulator_control(f"subscriptions/{subscription.id}/pay")
    second = apply(body, billing)

    assert [m["id"] for m in storage.mails] == [f"payment-failed-{event_id}"], second
    assert load(stack, subscription.id).status == "past_due"  # not re-read for an event already applied
    again = stack.storage().get(STRIPE_EVENTS, *keys.stripe_event(event_id))
    assert again["AppliedAt"] == recorded["AppliedAt"]  # recorded once, at the first application
    assert second.endswith("already applied")
    # The held deliveries (the same failure, then the payment) leave the newest state.
    stack.emulator_control("config", {"delivery": "normal"})
    stack.emulator_control("webhooks/release")
    stack.settle()
    assert load(stack, subscription.id).status == "active"


def test_failed_payment_moves_to_past_due_grace_and_mails_the_owner(stack):
    subscription = purchased_subscription(stack, person("late-payer@contoso.example"))
    stack.emulator_control(f"subscriptions/{subscription.id}/fail_payment")
    stack.settle()
    stored = load(stack, subscription.id)
    assert stored.status == "past_due" and stored.past_due_since is not None
    assert stored.license_state(grace_days=14) is LicenseState.PAST_DUE_GRACE
    assert stored.license_state(grace_days=0) is LicenseState.SUSPENDED
    mails = wait_for(lambda: [m for m in stack.outbox()
                              if m["to"] == "late-payer@contoso.example" and "payment failed" in m["subject"]],
                     message="payment failed mail")
    assert len(mails) == 1
    # Paying ends the grace period.
    stack.emulator_control(f"subscriptions/{subscription.id}/pay")
    stack.settle()
    stored = load(stack, subscription.id)
    assert stored.status == "active" and stored.past_due_since is None


def test_deleted_subscription_expires(stack):
    subscription = purchased_subscription(stack, person("leaving@contoso.example"))
    client(stack).v1.subscriptions.cancel(subscription.id)
    stack.settle()
    stored = load(stack, subscription.id)
    assert stored.status == "canceled" and stored.license_state(14) is LicenseState.EXPIRED


def test_end_of_dunning_suspends(stack):
    subscription = purchased_subscription(stack, person("unpaid@contoso.example"))
    stack.emulator_control(f"subscriptions/{subscription.id}/fail_payment")
    stack.emulator_control(f"subscriptions/{subscription.id}/advance", {"status": "unpaid"})
    stack.settle()
    assert load(stack, subscription.id).license_state(14) is LicenseState.SUSPENDED


def test_trial_will_end_mails_the_owner(stack):
    subscription = purchased_subscription(stack, person("trial@contoso.example"))
    stack.emulator_control(f"subscriptions/{subscription.id}/trial_will_end")
    stack.settle()
    wait_for(lambda: [m for m in stack.outbox() if m["to"] == "trial@contoso.example" and "trial" in m["subject"]],
             message="trial mail")


def test_delayed_payment_waits_for_async_payment_succeeded(stack):
    buyer = person("sepa@contoso.example")
    session_id = checkout(stack, buyer, quantity=2)
    pay(stack, session_id, outcome="delayed")
    stack.settle()
    from services.fulfilment import Outcome, fulfil

    gateway = StripeGateway(stack.settings)
    result = fulfil(session_id, storage=stack.storage(), stripe=gateway, buyer=(buyer.tid, buyer.oid))
    assert result.outcome is Outcome.PENDING_PAYMENT
    assert subscription_store.by_checkout_session(stack.storage(), session_id) is None
    stack.emulator_control(f"checkout/{session_id}/async", {"result": "succeeded"})
    stack.settle()
    stored = wait_for(lambda: subscription_store.by_checkout_session(stack.storage(), session_id),
                      message="fulfilled after async payment")
    assert stored.quantity == 2


def test_missed_webhooks_are_repaired_by_reconciliation(stack):
    # A purchase whose webhooks never arrive and whose buyer never returns ...
    stack.emulator_control("config", {"delivery": "hold"})
    buyer = person("missed@contoso.example")
    session_id = checkout(stack, buyer, quantity=9)
    pay(stack, session_id)
    # ... and a subscription whose cancellation webhook is lost.
    stack.emulator_control("config", {"delivery": "normal"})
    other = purchased_subscription(stack, person("missed-cancel@contoso.example"))
    stack.settle()  # the purchase's own events are through; only the cancellation's get lost
    stack.emulator_control("config", {"drop_next": ["customer.subscription.deleted", "customer.subscription.updated"]})
    client(stack).v1.subscriptions.cancel(other.id)
    stack.emulator_control("webhooks/wait")
    assert load(stack, other.id).status == "active"
    assert subscription_store.by_checkout_session(stack.storage(), session_id) is None

    billing = Billing(storage=stack.storage(), stripe=StripeGateway(stack.settings), settings=stack.settings)
    repaired = reconcile(billing)
    created = subscription_store.by_checkout_session(stack.storage(), session_id)
    assert created is not None and created.quantity == 9
    assert load(stack, other.id).status == "canceled"
    assert {created.id, other.id} <= set(repaired)
    # By hand, for one subscription: nothing left to repair.
    assert reconcile(billing, other.id) == []
    stack.emulator_control("webhooks/release")


# --- payload shapes ----------------------------------------------------------------------------------


def test_invoice_subscription_is_found_in_both_shapes():
    assert invoice_subscription_id({"parent": {"subscription_details": {"subscription": "sub_new"}}}) == "sub_new"
    assert invoice_subscription_id({"subscription": "sub_old", "parent": None}) == "sub_old"
    assert invoice_subscription_id({"subscription": {"id": "sub_expanded"}}) == "sub_expanded"
    assert invoice_subscription_id({"parent": None}) is None


def test_subscription_period_end_is_read_from_both_shapes():
    current = StripeSubscriptionState.from_stripe(
        {"id": "sub_1", "status": "active", "customer": "cus_1",
         "items": {"data": [{"quantity": 3, "current_period_end": 1900000000}]}}
    )
    legacy = StripeSubscriptionState.from_stripe(
        {"id": "sub_1", "status": "active", "customer": "cus_1", "current_period_end": 1900000000,
         "items": {"data": [{"quantity": 3}]}}
    )
    assert current.current_period_end == legacy.current_period_end and current.quantity == legacy.quantity == 3
    unknown = StripeSubscriptionState.from_stripe({"id": "sub_1", "status": "some_future_status",
                                                   "customer": {"id": "cus_2"}})
    assert unknown.status == "some_future_status" and unknown.customer_id == "cus_2"


def test_legacy_shaped_webhooks_are_applied(stack):
    stack.emulator_control("config", {"legacy_shapes": True})
    subscription = purchased_subscription(stack, person("legacy@contoso.example"))
    stack.emulator_control(f"subscriptions/{subscription.id}/fail_payment")
    stack.settle()
    assert load(stack, subscription.id).status == "past_due"
    log = stack.emulator_get("events")["deliveries"]
    assert log, "the emulator delivered events"
