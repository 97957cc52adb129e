"""The Stripe webhook signature (adapters/stripe_gateway.verify_event): the 300 s tolerance applies to
timestamps in the past and in the future alike, so a signature dated ahead cannot be replayed later."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from adapters.stripe_gateway import InvalidWebhook, StripeGateway
from services.settings import load_settings
from tests.factories import local_values

SECRET = "whsec_unit_test_secret"
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "ping", "data": {"object": {}}}).encode()


def gateway() -> StripeGateway:
    return StripeGateway(load_settings(local_values(STRIPE_WEBHOOK_SECRETS=SECRET)))


def signature(at: float, body: bytes = BODY, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{int(at)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(at)},v1={digest}"


@pytest.mark.parametrize("offset", [0, -299, 299, -60, 60])
def test_within_the_tolerance_either_way_is_accepted(offset):
    assert gateway().verify_event(BODY, signature(time.time() + offset))["id"] == "evt_1"


@pytest.mark.parametrize("offset", [-301, -3600, 301, 3600, 365 * 24 * 3600])
def test_outside_the_tolerance_either_way_is_refused(offset):
    with pytest.raises(InvalidWebhook):
        gateway().verify_event(BODY, signature(time.time() + offset))


@pytest.mark.parametrize("header", ["t=abc,v1=00", "v1=00", "t=,v1=", "t=99999999999999999999,v1=00", "garbage"])
def test_malformed_headers_are_refused(header):
    with pytest.raises(InvalidWebhook):
        gateway().verify_event(BODY, header)
