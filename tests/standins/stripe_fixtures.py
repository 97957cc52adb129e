"""Fixtures for the Stripe emulator: a running emulator, a webhook receiver, a configured SDK.

Imported by tests/standins/conftest.py. One emulator subprocess serves the whole session;
each test gets a reset account, its webhook receiver wired in, and the catalog bootstrapped.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import stripe

from standins.stripe_emulator import launch
from standins.stripe_emulator.bootstrap import client_for, ensure_catalog

STRIPE_TEST_KEY = "sk_test_emulator_tests"
WEBHOOK_SECRET = "whsec_test_emulator_secret"


class WebhookReceiver:
    """A tiny HTTP endpoint recording every webhook POST (raw body + headers)."""

    def __init__(self):
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many requests with 500 (to exercise retries)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= 1 if failing else 0
                    receiver.requests.append({"headers": dict(self.headers), "body": body,
                                              "answered": 500 if failing else 200})
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def clear(self):
        with self._lock:
            self.requests.clear()
            self.fail_next = 0

    def events(self, secret=WEBHOOK_SECRET):
        """Accepted deliveries, verified exactly as the server does: construct_event on raw bytes."""
        with self._lock:
            accepted = [r for r in self.requests if r["answered"] == 200]
        return [stripe.Webhook.construct_event(r["body"], r["headers"]["Stripe-Signature"], secret)
                for r in accepted]

    def types(self):
        return [event.type for event in self.events()]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class StripeEnv:
    """Handles for one test: the emulator URL, an SDK client, control calls, the price."""

    def __init__(self, url, receiver):
        self.url = url
        self.receiver = receiver
        self.client = client_for(STRIPE_TEST_KEY, url)
        self.price_id = None

    def control(self, path, payload=None, method="POST", expect=200):
        response = requests.request(method, f"{self.url}/_emulator/{path}", json=payload,
                                    timeout=15)
        assert response.status_code == expect, response.text
        return response.json()

    def wait_for_webhooks(self):
        assert self.control("webhooks/wait", {"timeout": 10})["idle"]

    def api(self, method, path, *, data=None, headers=None):
        """A raw HTTP call, for what the SDK hides (headers, wire format)."""
        all_headers = {"Authorization": f"Bearer {STRIPE_TEST_KEY}", **(headers or {})}
        return requests.request(method, f"{self.url}{path}", data=data, headers=all_headers,
                                timeout=15)

    def checkout(self, quantity=3, **extra):
        params = {
            "mode": "subscription",
            "line_items": [{"price": self.price_id, "quantity": quantity}],
            "success_url": "https://app.example/purchase/complete?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/purchase",
            "customer_email": "buyer@contoso.example",
            **extra,
        }
        return self.client.v1.checkout.sessions.create(params=params)

    def paid_subscription(self, quantity=3, **extra):
        session = self.checkout(quantity, **extra)
        self.control(f"checkout/{session.id}/pay")
        session = self.client.v1.checkout.sessions.retrieve(session.id)
        return self.client.v1.subscriptions.retrieve(session.subscription)


@pytest.fixture(scope="session")
def stripe_emulator():
    """A running emulator subprocess (free port) shared by the session."""
    handle = launch(port=0, extra_args=["--async-payment-delay", "3600"])
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def stripe_env(stripe_emulator, webhook_receiver):
    """A fresh emulated account whose webhooks go to ``webhook_receiver``, catalog in place."""
    env = StripeEnv(stripe_emulator.url, webhook_receiver)
    env.control("reset")
    env.control("config", {"webhook_url": webhook_receiver.url, "webhook_secret": WEBHOOK_SECRET,
                           "retry_attempts": 3, "retry_backoff_seconds": 0.05,
                           "legacy_shapes": False, "async_payment_delay_seconds": 3600,
                           "async_payment_result": "succeeded"})
    env.price_id = ensure_catalog(env.client)
    env.wait_for_webhooks()
    webhook_receiver.clear()
    yield env
    env.control("config", {"delivery": "normal", "delay_seconds": 0})
    env.wait_for_webhooks()


def wait_until(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
