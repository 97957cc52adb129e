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


def _sdk_accepts(body: bytes, header: str, secret: str) -> bool:
    import stripe

    try:
        stripe.WebhookSignature.verify_header(body.decode(), header, secret, 300)
    except stripe.SignatureVerificationError:
        return False
    return True


def _we_accept(body: bytes, header: str) -> bool:
    try:
        gateway().verify_event(body, header)
    except InvalidWebhook:
        return False
    return True


def _headers(now: int) -> list[tuple[bytes, str]]:
    good = signature(now)
    digest = good.split("v1=")[1]
    other = signature(now, secret="whsec_other").split("v1=")[1]
    tampered = BODY.replace(b"evt_1", b"evt_2")
    return [
        (BODY, good),
        (BODY, f"t={now},v1={other},v1={digest}"),  # a secret being rolled: two signatures
        (BODY, f"t={now},v0={digest}"),  # only the scheme Stripe uses in test mode for other checks
        (BODY, f"t={now},v1={digest.upper()}"),
        (BODY, f"t={now},v1={other}"),
        (tampered, good),
        (BODY, f"t={now + 1},v1={digest}"),
        (BODY, f"t={now - 400},v1={signature(now - 400).split('v1=')[1]}"),  # too old for both
        (BODY, f"v1={digest},t={now}"),
        (BODY, f"t={now}, v1={digest}"),
        (BODY, f"t={now},v1={digest}=x"),
        (BODY, f"t={now},t={now - 9},v1={digest}"),
        (BODY, f"t={now},v1"),
        ("{\"id\": \"evt_ü\"}".encode(), signature(now, body="{\"id\": \"evt_ü\"}".encode())),
    ]


def test_the_signature_check_agrees_with_the_stripe_sdk():
    """The check is written out (the SDK stays off the acknowledgement's path); on every header here it
    reaches the SDK's verdict. Bodies that are not events are refused by us after the signature, so
    only the signature verdict is compared (`signature_ok`)."""
    now = int(time.time())
    for body, header in _headers(now):
        try:
            gateway().verify_event(body, header)
            signature_ok = True
        except InvalidWebhook as exc:
            signature_ok = "not a Stripe event" in str(exc)
        assert signature_ok == _sdk_accepts(body, header, SECRET), header


def test_verifying_does_not_load_the_stripe_sdk():
    """The SDK takes about half a second to import: the first acknowledgement after a cold start must
    not wait for it (it loads in the queue function that applies the event)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, time, hmac, hashlib\n"
        "from tests.unit.test_webhook_signature import BODY, gateway, signature\n"
        "assert gateway().verify_event(BODY, signature(time.time()))['id'] == 'evt_1'\n"
        "print('stripe' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
