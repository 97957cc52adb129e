"""Small builders for test inputs (settings values), instead of big fixtures."""

from __future__ import annotations

from typing import Any

LOCAL_CLIENT_ID = "5b1f7a3e-8c2d-4e6f-9a0b-1c2d3e4f5a6b"


def local_values(**overrides: Any) -> dict[str, str]:
    """App settings for local development; override any of them by name."""
    values = {
        "APP_ENVIRONMENT": "local",
        "PUBLIC_BASE_URL": "http://localhost:7071",
        "SUPPORT_EMAIL": "support@securemailmerge.example",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SESSION_SECRET": "local-dev-only-0123456789abcdef0123456789abcdef",
        "ENTRA_CLIENT_ID": LOCAL_CLIENT_ID,
        "ENTRA_CLIENT_SECRET": "local-dev-only-client-secret",
        "ENTRA_AUTHORITY": "https://localhost:7443/organizations",
        "API_AUDIENCES": f"api://localhost:7071/{LOCAL_CLIENT_ID},{LOCAL_CLIENT_ID}",
        "STRIPE_SECRET_KEY": "sk_test_local-dev-only",
        "STRIPE_WEBHOOK_SECRETS": "whsec_local-dev-only",
        "STRIPE_API_BASE": "http://localhost:12111",
    }
    values.update({k: str(v) for k, v in overrides.items()})
    return {k: v for k, v in values.items() if v != "None"}


def production_values(**overrides: Any) -> dict[str, str]:
    """App settings that pass production checks; override one to see it refused."""
    values = local_values(
        APP_ENVIRONMENT="production",
        PUBLIC_BASE_URL="https://licensing.securemailmerge.example",
        SESSION_SECRET="9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5b",
        ENTRA_CLIENT_SECRET="kX9~real-looking-secret",
        ENTRA_AUTHORITY="https://login.microsoftonline.com/organizations",
        STRIPE_SECRET_KEY="sk_live_51H8realkey",
        STRIPE_WEBHOOK_SECRETS="whsec_realsecret",
        STRIPE_API_BASE="None",
        ACS_ENDPOINT="https://smm-mail.germany.communication.azure.com",
        LEASE_SIGNING_KEYS="-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----",
    )
    values.update({k: str(v) for k, v in overrides.items()})
    return {k: v for k, v in values.items() if v != "None"}
