"""Microsoft 365 admin consent for the add-in's app registration (capability 8).

Consent is recorded only after Entra confirms it (`confirm`): a client-credentials token for the
application in the tenant is issued only once the tenant consented (adapters/entra.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import Enum
from urllib.parse import urlencode, urlsplit

from adapters import keys
from adapters.entra import EntraApplication, Presence
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


class Confirmation(Enum):
    CONFIRMED = "confirmed"  # Entra confirms the application is present in the tenant: recorded
    NOT_YET = "not_yet"  # Entra says it is not (yet): nothing recorded
    UNAVAILABLE = "unavailable"  # Entra could not be asked: nothing recorded, try again later


def confirm(storage: TableStore, entra: EntraApplication, person: Person) -> Confirmation:
    """Record consent for `person`'s tenant only once Entra confirms it (the application's service
    principal exists there); the consent redirect's query string alone is never believed.

    `person` is whoever completed or re-checked the consent flow; the record names them as the one who
    confirmed it, which is all the server knows (not who granted it at Microsoft)."""
    presence = entra.presence_in(person.tid)
    if presence is Presence.PRESENT:
        _record(storage, person)
        return Confirmation.CONFIRMED
    return Confirmation.NOT_YET if presence is Presence.ABSENT else Confirmation.UNAVAILABLE


def _record(storage: TableStore, person: Person) -> None:
    storage.upsert(
        TENANT_CONSENT,
        {
            "PartitionKey": keys.encode(person.tid),
            "RowKey": "consent",
            "ConfirmedByOid": person.oid,
            "ConfirmedByEmail": person.email,
            "GrantedAt": datetime.now(UTC),
            "VerifiedWith": "client_credentials",
        },
    )


def granted(storage: TableStore, tenant_id: str) -> datetime | None:
    row = storage.get(TENANT_CONSENT, keys.encode(tenant_id), "consent")
    return row["GrantedAt"] if row else None


# What Entra's error codes mean for the admin in front of the screen (translation keys).
_EXPLANATIONS = {
    "AADSTS65001": "consent.error.not_granted",
    "AADSTS65004": "consent.error.declined",
    "AADSTS90094": "consent.error.needs_admin",
    "AADSTS90008": "consent.error.needs_admin",
    "AADSTS50020": "consent.error.wrong_tenant",
}


def error_code(error: str, description: str) -> str:
    """Entra's error as a code to quote (the AADSTS code in the description, else the OAuth error)."""
    code = re.search(r"AADSTS\d+", description or "")
    return code.group(0) if code else re.sub(r"[^\w.-]", "", error or "")[:60]


def explain(error: str, description: str) -> str:
    """A translation key for Entra's error (AADSTS code in the description, or the OAuth error)."""
    code = re.search(r"AADSTS\d+", description or "")
    if code and code.group(0) in _EXPLANATIONS:
        return _EXPLANATIONS[code.group(0)]
    if error == "access_denied":
        return "consent.error.declined"
    return "consent.error.other"
