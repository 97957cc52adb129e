"""Admin consent cannot be forged (issue 18, item 4): the consent callback's query string proves
nothing, so consent is recorded only after Entra (here the local identity provider, which keeps
consent per tenant) issues a client-credentials token for the application in that tenant.

Through real HTTP with dashboard sessions; the identity provider's consent for the tenant is reset
first, so no other test's consent leaks in.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from services import consent
from standins.identity_provider import client as idp
from standins.identity_provider.directory import CONTOSO_ID
from tests.integration.test_gate import page, session_cookie
from tests.licenses_support import idp_person

CONTOSO_ADMIN = f"{CONTOSO_ID}:10000000-0000-4000-8000-000000000001"


@pytest.fixture
def no_consent(stack):
    """Contoso has not consented, at the identity provider or in the app's records."""
    verify = str(stack.identity_provider.ca_bundle)
    idp.revoke_consent(stack.identity_provider.url, CONTOSO_ID, stack.settings.entra_client_id, verify=verify)
    stack.storage().delete("TenantConsent", CONTOSO_ID, "consent")
    yield
    idp.revoke_consent(stack.identity_provider.url, CONTOSO_ID, stack.settings.entra_client_id, verify=verify)
    stack.storage().delete("TenantConsent", CONTOSO_ID, "consent")


def _start(stack, cookie: str) -> str:
    """Start consent in this session; the state the app expects back."""
    status, headers, _ = page(stack.url, "GET", "/api/consent/start", cookie)
    assert status == 302
    return dict(parse_qsl(urlsplit(headers["Location"]).query))["state"]


def _callback(stack, cookie: str, state: str) -> tuple[int, str]:
    query = urlencode({"admin_consent": "True", "tenant": CONTOSO_ID, "state": state})
    status, _, text = page(stack.url, "GET", f"/api/consent/callback?{query}", cookie)
    return status, text


def test_a_forged_callback_by_a_non_administrator_records_nothing(stack, no_consent):
    alice = idp_person(stack, "alice@contoso.example")
    cookie, _ = session_cookie(stack, alice)
    status, text = _callback(stack, cookie, _start(stack, cookie))
    assert status == 200 and "Not confirmed yet" in text and "Check again" in text
    assert consent.granted(stack.storage(), CONTOSO_ID) is None
    status, _, text = page(stack.url, "GET", "/api/consent/check", cookie)
    assert status == 200 and "Not confirmed yet" in text
    assert consent.granted(stack.storage(), CONTOSO_ID) is None


def test_consent_granted_at_the_identity_provider_is_confirmed_and_recorded(stack, no_consent):
    admin = idp_person(stack, "admin@contoso.example")
    cookie, _ = session_cookie(stack, admin)
    state = _start(stack, cookie)
    # The administrator approves at "Microsoft": the identity provider now holds the tenant's consent.
    query = urlencode({"client_id": stack.settings.entra_client_id, "state": state,
                       "redirect_uri": stack.settings.public_base_url + consent.CALLBACK_PATH,
                       "scope": consent.CONSENT_SCOPE})
    approved = requests.post(f"{stack.identity_provider.url}/{CONTOSO_ID}/v2.0/adminconsent?{query}",
                             data={"select_user": CONTOSO_ADMIN}, verify=str(stack.identity_provider.ca_bundle),
                             allow_redirects=False, timeout=10)
    assert approved.status_code == 302
    callback = urlsplit(approved.headers["Location"])
    status, _, text = page(stack.url, "GET", f"{callback.path}?{callback.query}", cookie)
    assert status == 200 and "admin consent for your organisation is recorded" in text
    assert consent.granted(stack.storage(), CONTOSO_ID) is not None


def test_consent_granted_meanwhile_is_found_by_check_again(stack, no_consent):
    alice = idp_person(stack, "alice@contoso.example")
    cookie, _ = session_cookie(stack, alice)
    idp.grant_consent(stack.identity_provider.url, CONTOSO_ID, stack.settings.entra_client_id,
                      verify=str(stack.identity_provider.ca_bundle))
    status, _, text = page(stack.url, "GET", "/api/consent/check", cookie)
    assert status == 200 and "admin consent for your organisation is recorded" in text
    assert consent.granted(stack.storage(), CONTOSO_ID) is not None
    status, _, text = page(stack.url, "GET", "/api/consent", cookie)
    assert "was recorded on" in text


def test_check_again_needs_a_session(stack):
    status, headers, _ = page(stack.url, "GET", "/api/consent/check")
    assert status == 303 and headers["Location"].startswith("/api/signin")
