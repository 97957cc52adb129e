"""A Stripe event shaped for another API version than the one the code calls Stripe with is logged.

Stripe shapes each event by its webhook endpoint's API version (set when the endpoint is created,
docs/operations.md "Connect Stripe"); the code reads the shapes of STRIPE_API_VERSION. A mismatch is worth
a warning in the logs, not a failure: the event is still applied.
"""

from __future__ import annotations

import json
import logging

import pytest

from adapters.memory_storage import InMemoryStorage
from adapters.stripe_gateway import StripeGateway
from services.billing_events import Billing, apply
from services.settings import load_settings
from tests.factories import local_values


@pytest.fixture
def billing() -> Billing:
    settings = load_settings(local_values())
    return Billing(storage=InMemoryStorage(), stripe=StripeGateway(settings), settings=settings)


def _event(event_id: str, **fields: object) -> bytes:
    # An event type the server does not use: applying it touches neither Stripe nor any subscription.
    return json.dumps({"id": event_id, "object": "event", "type": "customer.created", **fields}).encode()


def test_an_event_of_another_api_version_is_applied_with_a_warning(billing, caplog):
    configured = billing.settings.stripe_api_version
    with caplog.at_level(logging.WARNING, logger="services.billing_events"):
        result = apply(_event("evt_other", api_version="2024-06-20"), billing)
    assert result.startswith("customer.created evt_other: ignored")
    (record,) = [r for r in caplog.records if r.name == "services.billing_events"]
    assert record.levelno == logging.WARNING
    assert "evt_other" in record.getMessage() and "2024-06-20" in record.getMessage()
    assert f"STRIPE_API_VERSION is {configured}" in record.getMessage()


@pytest.mark.parametrize("fields", [{"api_version": None}, {}, {"api_version": "configured"}])
def test_no_warning_for_the_configured_version_or_none(billing, caplog, fields):
    if fields.get("api_version") == "configured":
        fields = {"api_version": billing.settings.stripe_api_version}
    with caplog.at_level(logging.WARNING, logger="services.billing_events"):
        apply(_event("evt_same", **fields), billing)
    assert [r for r in caplog.records if r.name == "services.billing_events"] == []
