"""Fixtures for the local stand-ins' own tests (the `identity_provider` fixture: tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def trust_identity_provider(identity_provider, monkeypatch):
    """Make requests (and so MSAL) trust the provider: REQUESTS_CA_BUNDLE overrides Session.verify."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity_provider.ca_bundle))
    return identity_provider


# Stripe emulator fixtures live in their own module (separate owner); re-exported here.
from tests.standins.stripe_fixtures import (  # noqa: E402,F401
    stripe_emulator,
    stripe_env,
    webhook_receiver,
)
