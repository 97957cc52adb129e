"""Entra ID as the application itself (not a signed-in user): is the app present in a tenant?

Admin consent creates the application's service principal in the consenting tenant. A client-
credentials token for the application in that tenant is issued only once the service principal exists
there, so asking for one is how the server confirms a consent: the consent redirect's query string
(`admin_consent=True`) proves nothing, anyone can type it. MSAL is imported on first use (heavy); the
authority comes from settings, so the local identity provider answers locally and Entra in Azure.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from services.settings import Settings

log = logging.getLogger(__name__)

# Entra's answers for "this application has no service principal in that tenant (yet)".
_NOT_PRESENT = ("AADSTS700016", "AADSTS7000229", "AADSTS500011")
# The application's own resource: any `.default` works for the question; Graph is what consent asked for.
_SCOPE = "https://graph.microsoft.com/.default"


class Presence(Enum):
    PRESENT = "present"  # a token was issued: the tenant has consented
    ABSENT = "absent"  # Entra says the application is not in that tenant: no consent (yet)
    UNKNOWN = "unknown"  # Entra could not be asked, or refused us for another reason (our credentials)


class EntraApplication:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def presence_in(self, tenant_id: str) -> Presence:
        """Whether the application's service principal exists in `tenant_id`."""
        import msal  # heavy: only the consent routes load it

        parts = urlsplit(self._settings.entra_authority)
        try:
            app: Any = msal.ConfidentialClientApplication(
                self._settings.entra_client_id,
                client_credential=self._settings.entra_client_secret,
                authority=f"{parts.scheme}://{parts.netloc}/{tenant_id}",
                instance_discovery=False,  # as for sign-in (services/identity/signin.py)
            )
            result = app.acquire_token_for_client(scopes=[_SCOPE])
        except Exception as exc:  # noqa: BLE001 - network errors, an authority that does not answer
            log.warning("client credentials for tenant %s could not be requested: %s", tenant_id, type(exc).__name__)
            return Presence.UNKNOWN
        if isinstance(result, dict) and result.get("access_token"):
            return Presence.PRESENT
        description = str((result or {}).get("error_description", ""))
        if any(code in description for code in _NOT_PRESENT):
            return Presence.ABSENT
        # invalid_client (our secret), a throttled or failing Entra: not the tenant's answer.
        log.warning("client credentials for tenant %s refused: %s", tenant_id, (result or {}).get("error"))
        return Presence.UNKNOWN
