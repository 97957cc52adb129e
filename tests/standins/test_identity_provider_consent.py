"""The Entra stand-in keeps admin consent per tenant and application, like Entra's service principals:
client credentials for an application in a tenant succeed only once that tenant has consented."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import jwt
import msal
import pytest
import requests

from standins.identity_provider import client
from standins.identity_provider.directory import CONTOSO_ID, FABRIKAM_ID
from tests.standins.test_identity_provider import REDIRECT_URI, callback_params, verify_token

FABRIKAM_ADMIN = f"{FABRIKAM_ID}:20000000-0000-4000-8000-000000000001"
GRAPH = "00000003-0000-0000-c000-000000000000"


@pytest.fixture
def client_id() -> str:
    return str(uuid.uuid4())  # a fresh application: no tenant has consented to it


def app_for(idp, client_id: str, tenant: str) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, client_credential="local-secret",
                                              authority=f"{idp.url}/{tenant}", instance_discovery=False)


def test_client_credentials_are_refused_until_the_tenant_consents(trust_identity_provider, client_id):
    idp = trust_identity_provider
    before = app_for(idp, client_id, FABRIKAM_ID).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert before["error"] == "unauthorized_client" and "AADSTS700016" in before["error_description"]

    query = urlencode({"client_id": client_id, "redirect_uri": REDIRECT_URI, "state": "s",
                       "scope": "https://graph.microsoft.com/.default"})
    accepted = requests.post(f"{idp.url}/{FABRIKAM_ID}/v2.0/adminconsent?{query}", data={"select_user": FABRIKAM_ADMIN},
                             allow_redirects=False, timeout=10)
    assert callback_params(accepted)["admin_consent"] == "True"

    after = app_for(idp, client_id, FABRIKAM_ID).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    claims = verify_token(idp, after["access_token"], GRAPH, f"{idp.url}/{FABRIKAM_ID}/v2.0")
    assert (claims["tid"], claims["azp"], claims["idtyp"]) == (FABRIKAM_ID, client_id, "app")
    assert "scp" not in claims and "preferred_username" not in claims
    # Consent is per tenant: Contoso has not consented.
    other = app_for(idp, client_id, CONTOSO_ID).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert "AADSTS700016" in other["error_description"]


def test_a_revoked_consent_refuses_again_and_the_admin_helpers_list_it(identity_provider, client_id):
    verify = str(identity_provider.ca_bundle)
    client.grant_consent(identity_provider.url, "contoso", client_id, verify=verify)
    listed = requests.get(f"{identity_provider.url}/_admin/consents", verify=verify, timeout=10).json()["consents"]
    assert {"tenant": CONTOSO_ID, "client_id": client_id} in [{k: c[k] for k in ("tenant", "client_id")}
                                                              for c in listed]
    token = _token(identity_provider, CONTOSO_ID, client_id)
    assert token.status_code == 200 and jwt.decode(token.json()["access_token"],
                                                   options={"verify_signature": False})["tid"] == CONTOSO_ID
    assert client.revoke_consent(identity_provider.url, CONTOSO_ID, client_id, verify=verify)
    assert _token(identity_provider, CONTOSO_ID, client_id).status_code == 400


def _token(idp, tenant: str, client_id: str, **form: str) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "s",
            "scope": "https://graph.microsoft.com/.default", **form}
    return requests.post(f"{idp.url}/{tenant}/oauth2/v2.0/token", data=data, verify=str(idp.ca_bundle), timeout=10)


@pytest.mark.parametrize("tenant, form, code", [
    ("organizations", {}, "AADSTS50059"),  # client credentials need a tenant
    (CONTOSO_ID, {"scope": "https://graph.microsoft.com/User.Read"}, "AADSTS1002012"),  # only /.default
    (CONTOSO_ID, {"client_secret": ""}, "AADSTS7000218"),  # a confidential client must authenticate
])
def test_client_credentials_are_shaped_like_entra(identity_provider, client_id, tenant, form, code):
    client.grant_consent(identity_provider.url, CONTOSO_ID, client_id, verify=str(identity_provider.ca_bundle))
    refused = _token(identity_provider, tenant, client_id, **form)
    assert refused.status_code in (400, 401) and code in refused.json()["error_description"]
