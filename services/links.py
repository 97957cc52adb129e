"""Links into the portal, built from the configured public base URL (never from a request's Host)."""

from __future__ import annotations

from services.settings import Settings


def subscription_url(settings: Settings, subscription_id: str) -> str:
    return f"{settings.public_base_url}/api/subscriptions/{subscription_id}"


def invitation_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/api/invitations/{token}"


def setup_url(settings: Settings, subscription_id: str) -> str:
    return f"{subscription_url(settings, subscription_id)}/setup"
