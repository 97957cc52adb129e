"""Microsoft 365 admin consent for the add-in's app registration (capability 8)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from adapters.table_storage import TENANT_CONSENT, TableStore
from services.settings import Settings
from services.web_session import Person

CALLBACK_PATH = "/api/consent/callback"
# v2 admin consent needs a scope; `.default` asks for everything the registration declares.
CONSENT_SCOPE = "https://graph.microsoft.com/.default"


def consent_url(settings: Settings, tenant_id: str, state: str) -> str:
    parts = urlsplit(settings.entra_authority)
    base = f"{parts.scheme}://{parts.netloc}"
    query = urlencode(
        {
            "client_id": settings.entra_client_id,
            "redirect_uri": settings.public_base_url + CALLBACK_PATH,
            "state": state,
            "scope": CONSENT_SCOPE,
        }
    )
    return f"{base}/{tenant_id}/v2.0/adminconsent?{query}"


def record(storage: TableStore, admin: Person) -> None:
    storage.upsert(
        TENANT_CONSENT,
        {
            "PartitionKey": admin.tid,
            "RowKey": "consent",
            "GrantedByOid": admin.oid,
            "GrantedByEmail": admin.email,
            "GrantedAt": datetime.now(UTC),
        },
    )


def granted(storage: TableStore, tenant_id: str) -> datetime | None:
    row = storage.get(TENANT_CONSENT, tenant_id, "consent")
    return row["GrantedAt"] if row else None


# What Entra's error codes mean for the admin in front of the screen (translation keys).
_EXPLANATIONS = {
    "AADSTS65001": "consent.error.not_granted",
    "AADSTS65004": "consent.error.declined",
    "AADSTS90094": "consent.error.needs_admin",
    "AADSTS90008": "consent.error.needs_admin",
    "AADSTS50020": "consent.error.wrong_tenant",
}


def explain(error: str, description: str) -> str:
    """A translation key for Entra's error (AADSTS code in the description, or the OAuth error)."""
    code = re.search(r"AADSTS\d+", description or "")
    if code and code.group(0) in _EXPLANATIONS:
        return _EXPLANATIONS[code.group(0)]
    if error == "access_denied":
        return "consent.error.declined"
    return "consent.error.other"
