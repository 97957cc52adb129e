"""The Entra stand-in behaves like Entra for MSAL and for a PyJWT-based bearer-token validator."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
import warnings
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import msal
import pytest
import requests
from cryptography import x509

from standins.identity_provider import client
from standins.identity_provider.directory import CONTOSO_ID, FABRIKAM_ID

CLIENT_ID = "5e4f1c2a-0000-4000-8000-00000000c11e"
API = f"api://{CLIENT_ID}"
REDIRECT_URI = "http://localhost:7071/api/auth/callback"
ALICE_OID = "10000000-0000-4000-8000-000000000002"


# --- helpers -----------------------------------------------------------------------------------------

def get(idp, path, **kwargs):
    return requests.get(idp.url + path, verify=str(idp.cert_file), timeout=10, **kwargs)


def verify_token(idp, token, audience, issuer):
    """What the server's validator does: key by kid from the JWKS, RS256 only, exact aud and iss."""
    keys = jwt.PyJWKSet.from_dict(get(idp, "/organizations/discovery/v2.0/keys").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=issuer)


def v2_issuer(idp, tid):
    return f"{idp.url}/{tid}/v2.0"


def msal_app(idp, authority_tenant="organizations"):
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential="local-secret",
        authority=f"{idp.url}/{authority_tenant}",
        instance_discovery=False,  # the only change a non-Microsoft authority host needs
    )


def start_flow(app, login_hint=None, response_mode=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MSAL recommends form_post; both modes are tested
        return app.initiate_auth_code_flow(
            [f"{API}/access_as_user"], redirect_uri=REDIRECT_URI, login_hint=login_hint,
            response_mode=response_mode,
        )


def auto_sign_in(flow, login_hint):
    """What a browser does after clicking the user's button, without the browser."""
    response = requests.get(
        flow["auth_uri"] + "&" + urlencode({"login_hint": login_hint, "auto_select": "1"}),
        allow_redirects=False, timeout=10,
    )
    return response


def callback_params(response):
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(location).query))


# --- discovery and keys ------------------------------------------------------------------------------

@pytest.mark.parametrize("segment, tid", [(CONTOSO_ID, CONTOSO_ID), ("fabrikam", FABRIKAM_ID)])
def test_tenant_discovery_names_the_tenant_in_issuer_and_endpoints(identity_provider, segment, tid):
    config = get(identity_provider, f"/{segment}/v2.0/.well-known/openid-configuration").json()

    base = f"{identity_provider.url}/{tid}"
    assert config["issuer"] == f"{base}/v2.0"
    assert config["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert config["end_session_endpoint"] == f"{base}/oauth2/v2.0/logout"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]


@pytest.mark.parametrize("segment", ["organizations", "common"])
def test_multi_tenant_discovery_templates_the_issuer_like_entra(identity_provider, segment):
    config = get(identity_provider, f"/{segment}/v2.0/.well-known/openid-configuration").json()

    assert config["issuer"] == f"{identity_provider.url}/{{tenantid}}/v2.0"
    assert config["token_endpoint"] == f"{identity_provider.url}/{segment}/oauth2/v2.0/token"


def test_unknown_tenant_is_a_400_like_entra(identity_provider):
    response = get(identity_provider, "/nonexistent/v2.0/.well-known/openid-configuration")

    assert response.status_code == 400
    assert response.json()["error_description"].startswith("AADSTS90002")


def test_jwks_publishes_rsa_signing_keys_by_kid(identity_provider):
    keys = get(identity_provider, f"/{CONTOSO_ID}/discovery/v2.0/keys").json()["keys"]

    assert keys
    for key in keys:
        assert {key["kty"], key["use"], key["alg"]} == {"RSA", "sig", "RS256"}
        assert key["kid"] and key["n"] and key["e"] == "AQAB"


def test_certificate_covers_localhost_and_bundle_keeps_public_roots(identity_provider):
    leaf = x509.load_pem_x509_certificates(identity_provider.cert_file.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)][:1] == ["127.0.0.1"]

    bundle = identity_provider.ca_bundle.read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 100  # certifi's roots are still there
    assert (identity_provider.cert_dir / "ca.pem").read_text().strip() in bundle


# --- the real MSAL auth-code flow --------------------------------------------------------------------

def test_msal_auth_code_flow_signs_in_the_chosen_user(trust_identity_provider):
    idp = trust_identity_provider
    app = msal_app(idp)
    flow = start_flow(app, login_hint="alice@contoso.example")

    result = app.acquire_token_by_auth_code_flow(flow, callback_params(auto_sign_in(flow, "alice@contoso.example")))

    assert "error" not in result, result
    claims = result["id_token_claims"]
    assert (claims["tid"], claims["oid"]) == (CONTOSO_ID, ALICE_OID)
    assert claims["aud"] == CLIENT_ID and claims["preferred_username"] == "alice@contoso.example"
    id_claims = verify_token(idp, result["id_token"], CLIENT_ID, v2_issuer(idp, CONTOSO_ID))
    assert id_claims["nonce"] == claims["nonce"] and id_claims["ver"] == "2.0"

    access = verify_token(idp, result["access_token"], API, v2_issuer(idp, CONTOSO_ID))
    assert access["scp"] == "access_as_user" and access["azp"] == CLIENT_ID
    assert (access["tid"], access["oid"], access["ver"]) == (CONTOSO_ID, ALICE_OID, "2.0")
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{ALICE_OID}.{CONTOSO_ID}"  # from client_info

    refreshed = app.acquire_token_silent([f"{API}/access_as_user"], account=account, force_refresh=True)
    assert refreshed and refreshed["access_token"] != result["access_token"]


def test_chooser_form_signs_in_the_clicked_account(trust_identity_provider):
    """The browser path without a browser: submit the page's form with the account button's value."""
    app = msal_app(trust_identity_provider)
    flow = start_flow(app)
    page = requests.get(flow["auth_uri"], timeout=10).text

    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))
    hidden = {n: html.unescape(v) for n, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    button = re.search(r'name="select_user" value="([^"]+)" aria-label="Sign in as Bob Berg', page).group(1)
    clicked = requests.post(action, data={**hidden, "select_user": button}, allow_redirects=False, timeout=10)

    result = app.acquire_token_by_auth_code_flow(flow, callback_params(clicked))
    assert result["id_token_claims"]["preferred_username"] == "bob@contoso.example"


def test_form_post_response_mode_works_with_msal(trust_identity_provider):
    app = msal_app(trust_identity_provider)
    flow = start_flow(app, response_mode="form_post")

    page = auto_sign_in(flow, "c.dupont@contoso.onmicrosoft.example")

    assert page.status_code == 200
    assert f'action="{REDIRECT_URI}"' in page.text
    fields = {name: html.unescape(value)
              for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert result["id_token_claims"]["email"] == "claire.dupont@contoso.example"
    assert result["id_token_claims"]["preferred_username"] == "c.dupont@contoso.onmicrosoft.example"


def test_replayed_code_is_rejected(trust_identity_provider):
    app = msal_app(trust_identity_provider)
    flow = start_flow(app)
    params = callback_params(auto_sign_in(flow, "bob@contoso.example"))
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), params)

    replay = app.acquire_token_by_auth_code_flow(dict(flow), params)

    assert replay["error"] == "invalid_grant"
    assert "AADSTS54005" in replay["error_description"]


def test_wrong_pkce_verifier_is_rejected(trust_identity_provider):
    app = msal_app(trust_identity_provider)
    flow = start_flow(app)
    params = callback_params(auto_sign_in(flow, "alice@contoso.example"))

    result = app.acquire_token_by_auth_code_flow({**flow, "code_verifier": "x" * 43}, params)

    assert result["error"] == "invalid_grant"
    assert "AADSTS501481" in result["error_description"]


def test_tenant_authority_offers_only_its_own_users(trust_identity_provider):
    app = msal_app(trust_identity_provider, authority_tenant=CONTOSO_ID)
    flow = start_flow(app, login_hint="alice@contoso.example")

    page = requests.get(flow["auth_uri"], timeout=10)
    assert "alice@contoso.example" in page.text and "eve@fabrikam.example" not in page.text
    assert 'class="hinted" autofocus' in page.text

    outsider = callback_params(auto_sign_in(flow, "eve@fabrikam.example"))
    assert outsider["error"] == "login_required" and outsider["state"] == flow["state"]


def test_spoofing_user_has_alices_email_but_own_tenant_and_oid(trust_identity_provider):
    app = msal_app(trust_identity_provider)
    flow = start_flow(app)

    result = app.acquire_token_by_auth_code_flow(
        flow, callback_params(auto_sign_in(flow, "alice.impostor@fabrikam.example")))

    claims = result["id_token_claims"]
    assert claims["email"] == "alice@contoso.example"
    assert claims["tid"] == FABRIKAM_ID and claims["oid"] != ALICE_OID


def test_user_added_at_runtime_can_sign_in(trust_identity_provider):
    idp = trust_identity_provider
    added = client.add_user(idp.url, "fabrikam", "Frank Added", "frank@fabrikam.example")
    assert added["tenant_id"] == FABRIKAM_ID and any(u["oid"] == added["oid"] for u in client.list_users(idp.url))
    app = msal_app(idp)
    flow = start_flow(app)

    result = app.acquire_token_by_auth_code_flow(flow, callback_params(auto_sign_in(flow, "frank@fabrikam.example")))

    assert result["id_token_claims"]["oid"] == added["oid"]


# --- admin consent and logout ------------------------------------------------------------------------

def _consent_query(**extra):
    return urlencode({"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "state": "s1",
                      "scope": f"{API}/.default", **extra})


def test_admin_consent_accept_and_cancel(identity_provider):
    page = get(identity_provider, f"/organizations/v2.0/adminconsent?{_consent_query()}")
    assert "admin@contoso.example" in page.text and "alice@contoso.example" not in page.text

    accept = requests.post(
        f"{identity_provider.url}/organizations/v2.0/adminconsent?{_consent_query()}",
        data={"select_user": f"{FABRIKAM_ID}:20000000-0000-4000-8000-000000000001"},
        verify=str(identity_provider.cert_file), allow_redirects=False, timeout=10)
    assert callback_params(accept) == {"admin_consent": "True", "tenant": FABRIKAM_ID, "state": "s1",
                                       "scope": f"{API}/.default"}

    cancel = requests.post(
        f"{identity_provider.url}/organizations/v2.0/adminconsent?{_consent_query()}",
        data={"decision": "cancel"}, verify=str(identity_provider.cert_file), allow_redirects=False, timeout=10)
    denied = callback_params(cancel)
    assert denied["error"] == "access_denied" and denied["error_description"].startswith("AADSTS65004")


def test_logout_redirects_back(identity_provider):
    response = get(identity_provider, "/organizations/oauth2/v2.0/logout?post_logout_redirect_uri="
                   "http%3A%2F%2Flocalhost%3A7071%2Fapi%2Fsigned-out", allow_redirects=False)

    assert response.status_code == 302 and response.headers["Location"] == "http://localhost:7071/api/signed-out"


# --- tokens for validator tests ----------------------------------------------------------------------

def test_token_command_output_verifies_against_jwks(identity_provider):
    output = subprocess.run(
        [sys.executable, "-m", "standins.identity_provider", "token", "--url", identity_provider.url,
         "--cert-dir", str(identity_provider.cert_dir), "--user", "alice@contoso.example",
         "--audience", API, "--scope", "access_as_user"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()

    claims = verify_token(identity_provider, output, API, v2_issuer(identity_provider, CONTOSO_ID))
    assert claims["scp"] == "access_as_user" and claims["preferred_username"] == "alice@contoso.example"


def test_v1_token_has_sts_issuer_and_upn(identity_provider):
    token = client.issue_token(identity_provider.url, "c.dupont@contoso.onmicrosoft.example", audience=API,
                               ver=1, verify=str(identity_provider.cert_file))

    claims = verify_token(identity_provider, token, API, f"https://sts.windows.net/{CONTOSO_ID}/")
    assert claims["ver"] == "1.0" and claims["appid"]
    assert claims["upn"] == claims["unique_name"] == "c.dupont@contoso.onmicrosoft.example"
    assert "preferred_username" not in claims


def test_claim_overrides_craft_invalid_tokens(identity_provider):
    verify = str(identity_provider.cert_file)
    expired = client.issue_token(identity_provider.url, "alice@contoso.example", audience=API,
                                 exp=int(time.time()) - 600, verify=verify)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify_token(identity_provider, expired, API, v2_issuer(identity_provider, CONTOSO_ID))

    no_tid = client.issue_token(identity_provider.url, "alice@contoso.example", audience=API, tid=None,
                                verify=verify)
    assert "tid" not in jwt.decode(no_tid, options={"verify_signature": False})

    full_scope = client.issue_token(identity_provider.url, "eve@fabrikam.example",
                                    scope=f"{API}/access_as_user", verify=verify)
    claims = jwt.decode(full_scope, options={"verify_signature": False})
    assert (claims["aud"], claims["scp"], claims["tid"]) == (API, "access_as_user", FABRIKAM_ID)


def test_an_email_shared_across_tenants_does_not_pick_a_user(identity_provider):
    verify = str(identity_provider.cert_file)
    for tenant in ("contoso", "fabrikam"):
        client.add_user(identity_provider.url, tenant, "Twin", f"twin@{tenant}.example",
                        email="twin@shared.example", verify=verify)

    with pytest.raises(RuntimeError, match="matches 2 users by email"):
        client.issue_token(identity_provider.url, "twin@shared.example", audience=API, verify=verify)
    token = client.issue_token(identity_provider.url, "twin@shared.example", tenant="fabrikam", audience=API,
                               verify=verify)
    assert jwt.decode(token, options={"verify_signature": False})["tid"] == FABRIKAM_ID


def test_key_rotation_keeps_old_tokens_verifiable(identity_provider):
    verify = str(identity_provider.cert_file)
    before = client.issue_token(identity_provider.url, "bob@contoso.example", audience=API, verify=verify)

    rotated = client.rotate_key(identity_provider.url, verify=verify)
    after = client.issue_token(identity_provider.url, "bob@contoso.example", audience=API, verify=verify)

    assert jwt.get_unverified_header(after)["kid"] == rotated["kid"] != jwt.get_unverified_header(before)["kid"]
    for token in (before, after):
        verify_token(identity_provider, token, API, v2_issuer(identity_provider, CONTOSO_ID))


# --- registered clients, persistence and expiry (in-process: fast, and inspectable) -------------------

@pytest.fixture
def registered_client_provider(tmp_path):
    from standins.identity_provider import start_in_thread
    from standins.identity_provider.directory import DEFAULT_DIRECTORY, Directory

    data = {**DEFAULT_DIRECTORY, "clients": [
        {"client_id": CLIENT_ID, "client_secret": "right-secret", "redirect_uris": [REDIRECT_URI]}]}
    users_file = tmp_path / "users.json"
    users_file.write_text(__import__("json").dumps(data))
    running = start_in_thread(cert_dir=tmp_path / "certs", directory=Directory.from_file(users_file))
    yield running
    running.stop()


def _code_for(running, login_hint="alice@contoso.example"):
    query = urlencode({"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
                       "scope": "openid", "login_hint": login_hint, "auto_select": "1"})
    response = requests.get(f"{running.url}/organizations/oauth2/v2.0/authorize?{query}",
                            verify=running.cert_file, allow_redirects=False, timeout=10)
    return callback_params(response)["code"]


def test_registered_client_needs_its_secret_via_basic_or_body(registered_client_provider):
    running = registered_client_provider
    token_url = f"{running.url}/organizations/oauth2/v2.0/token"
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}

    wrong = requests.post(token_url, data={**form, "code": _code_for(running), "client_id": CLIENT_ID,
                                           "client_secret": "wrong"}, verify=running.cert_file, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"

    basic = requests.post(token_url, data={**form, "code": _code_for(running)}, auth=(CLIENT_ID, "right-secret"),
                          verify=running.cert_file, timeout=10)
    assert basic.status_code == 200 and "id_token" in basic.json()


def test_registered_client_redirect_uri_is_enforced_without_redirecting(registered_client_provider):
    running = registered_client_provider
    query = urlencode({"client_id": CLIENT_ID, "redirect_uri": "https://evil.example/cb",
                       "response_type": "code", "scope": "openid"})

    response = requests.get(f"{running.url}/organizations/oauth2/v2.0/authorize?{query}", verify=running.cert_file,
                            allow_redirects=False, timeout=10)

    assert response.status_code == 400 and "AADSTS50011" in response.text


def test_expired_code_is_rejected(registered_client_provider, monkeypatch):
    from standins.identity_provider import grants

    running = registered_client_provider
    code = _code_for(running)
    later = time.time() + grants.CODE_LIFETIME + 1
    monkeypatch.setattr(grants.time, "time", lambda: later)

    with pytest.raises(grants.GrantError, match="AADSTS70008"):
        running.provider.grants.redeem_code(code, CLIENT_ID, REDIRECT_URI, None)


def test_signing_key_survives_a_restart(tmp_path):
    from standins.identity_provider.keys import KeyRing

    first = KeyRing(tmp_path)
    rotated = first.rotate()

    again = KeyRing(tmp_path)
    assert again.current.kid == rotated.kid
    assert {k.kid for k in again.published()} == {k.kid for k in first.published()}
