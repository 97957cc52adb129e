"""Building test data through the real paths: a purchase is a real Checkout session in the Stripe
emulator, paid there, and fulfilled by the same `fulfil()` the redirect and the webhook call."""

from __future__ import annotations

import uuid

from adapters.stripe_gateway import StripeGateway
from services.checkout import start_checkout
from services.fulfilment import fulfil
from services.purchase import Kind
from services.subscription import Subscription
from services.web_session import Person

CONTOSO = "11111111-1111-1111-1111-111111111111"
FABRIKAM = "22222222-2222-2222-2222-222222222222"


def person(email: str, tid: str = CONTOSO, oid: str | None = None, name: str | None = None) -> Person:
    return Person(tid=tid, oid=oid or str(uuid.uuid4()), name=name or email.split("@")[0].title(), email=email)


def checkout(stack, buyer: Person, quantity: int = 5, kind: Kind = "organisation", language: str = "en") -> str:
    """A Checkout session for `buyer`, not yet paid; returns its id."""
    url = start_checkout(StripeGateway(stack.settings), stack.settings, buyer, quantity, kind, language,
                         attempt=uuid.uuid4().hex)
    return url.rstrip("/").rsplit("/", 1)[-1]


# What a buyer types into Checkout, which requires the billing address (Stripe Tax computes VAT from it). A
# Swiss business buyer: no VAT is charged (outside the EU), so amounts in tests are the net prices; the tests
# of VAT itself give German and Austrian buyers (tests/integration/test_invoice_purchase.py).
BUYER_ADDRESS = {"business_name": "Contoso AG", "line1": "Bahnhofstrasse 1", "postal_code": "8001",
                 "city": "Zürich", "country": "CH"}


def pay(stack, session_id: str, outcome: str = "paid", **details: str) -> dict:
    """Pay the Checkout session as the buyer would on Stripe's page (`details` over BUYER_ADDRESS)."""
    return stack.emulator_control(f"checkout/{session_id}/pay", {"outcome": outcome, **BUYER_ADDRESS, **details})


def purchased_subscription(stack, buyer: Person, quantity: int = 5, kind: Kind = "organisation",
                           language: str = "en") -> Subscription:
    """Buy and fulfil: what exists after the buyer paid and came back through the redirect."""
    session_id = checkout(stack, buyer, quantity, kind, language)
    pay(stack, session_id)
    result = fulfil(session_id, storage=stack.storage(), stripe=StripeGateway(stack.settings),
                    buyer=(buyer.tid, buyer.oid))
    assert result.subscription is not None, result.outcome
    return result.subscription
