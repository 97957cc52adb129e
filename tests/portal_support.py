"""Subscriptions for the portal's page tests, bought through the Stripe emulator like a buyer would:
Checkout asks for the billing address (Stripe Tax), so the payment gives one."""

from __future__ import annotations

from adapters.stripe_gateway import StripeGateway
from services.fulfilment import fulfil
from services.subscription import Subscription
from services.web_session import Person
from tests.builders import checkout

BILLING_ADDRESS = {"name": "Contoso GmbH", "line1": "Hauptstraße 1", "postal_code": "10115", "city": "Berlin",
                   "country": "DE"}


def bought(stack, buyer: Person, quantity: int = 5) -> Subscription:
    """Checkout, pay (with the billing address) and fulfil, as after the buyer came back from paying."""
    session_id = checkout(stack, buyer, quantity)
    stack.emulator_control(f"checkout/{session_id}/pay", {"outcome": "paid", **BILLING_ADDRESS})
    result = fulfil(session_id, storage=stack.storage(), stripe=StripeGateway(stack.settings),
                    buyer=(buyer.tid, buyer.oid))
    assert result.subscription is not None, result.outcome
    return result.subscription
