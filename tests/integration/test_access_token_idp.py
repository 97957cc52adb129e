"""Access-token validation against the local identity provider over HTTPS.

The provider runs as its own process (its real `serve` command) with a throw-away certificate directory;
the validator discovers its keys exactly as it discovers Entra's.
"""

from __future__ import annotations

import pytest

identity_provider = pytest.importorskip("standins.identity_provider")

from standins.identity_provider import client  # noqa: E402
from standins.identity_provider.cert import write_ca_bundle  # noqa: E402
from standins.identity_provider.directory import CONTOSO_ID, FABRIKAM_ID  # noqa: E402

from services.identity import InvalidToken, validator_for  # noqa: E402
from services.identity.access_token import AccessTokenValidator  # noqa: E402
from services.identity.signing_keys import REFRESH_COOLDOWN_SECONDS  # noqa: E402
from services.settings import load_settings  # noqa: E402
from tests.factories import LOCAL_CLIENT_ID, local_values  # noqa: E402

APP_ID_URI = f"api://localhost:7071/{LOCAL_CLIENT_ID}"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    cert_dir = tmp_path_factory.mktemp("idp-certs")
    with identity_provider.launch(cert_dir=cert_dir) as launched:
        yield launched


@pytest.fixture(autouse=True)
def trust_provider(provider, monkeypatch):
    # This machine sets REQUESTS_CA_BUNDLE, which wins over `verify=` in requests: point it at a bundle
    # that also trusts the provider's local CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(write_ca_bundle(provider.cert_dir)))


@pytest.fixture
def settings(provider):
    return load_settings(local_values(ENTRA_AUTHORITY=f"{provider.url}/organizations"))


def issue(provider, user: str, **kwargs) -> str:
    kwargs.setdefault("audience", LOCAL_CLIENT_ID)
    return client.issue_token(provider.url, user, **kwargs)


def test_alice_v2_token_validates(provider, settings):
    principal = validator_for(settings).validate(issue(provider, "alice@contoso.example"))

    assert principal.tid == CONTOSO_ID
    assert principal.oid == "10000000-0000-4000-8000-000000000002"
    assert principal.version == "2.0"
    assert principal.sign_in_addresses() == {"alice@contoso.example"}
    assert "access_as_user" in principal.scopes


def test_alice_v1_token_with_app_id_uri_validates(provider, settings):
    principal = validator_for(settings).validate(
        issue(provider, "alice@contoso.example", audience=APP_ID_URI, ver=1)
    )

    assert (principal.tid, principal.version) == (CONTOSO_ID, "1.0")
    assert principal.upn == principal.unique_name == "alice@contoso.example"


def test_fabrikam_token_validates_with_its_own_tenant(provider, settings):
    principal = validator_for(settings).validate(issue(provider, "eve@fabrikam.example"))

    assert principal.tid == FABRIKAM_ID
    assert principal.oid == "20000000-0000-4000-8000-000000000003"


def test_impostor_claiming_alices_address_keeps_the_fabrikam_tenant(provider, settings):
    principal = validator_for(settings).validate(issue(provider, "alice.impostor@fabrikam.example"))

    # The address matches alice's seat, the tenant does not: the license check decides on (tid, oid).
    assert principal.tid == FABRIKAM_ID
    assert "alice@contoso.example" in principal.sign_in_addresses()


def test_sign_in_name_and_mail_address_both_count(provider, settings):
    principal = validator_for(settings).validate(issue(provider, "c.dupont@contoso.onmicrosoft.example"))

    assert principal.sign_in_addresses() == {"c.dupont@contoso.onmicrosoft.example", "claire.dupont@contoso.example"}


@pytest.mark.parametrize("kwargs, reason", [
    ({"audience": "api://someone-else"}, "audience_not_accepted"),
    ({"scope": "User.Read"}, "scope_missing"),
    ({"headers": {"kid": "not-published"}}, "unknown_signing_key"),
    ({"iss": f"https://localhost/{FABRIKAM_ID}/v2.0"}, "issuer_mismatch"),
    ({"tid": FABRIKAM_ID}, "issuer_mismatch"),
    ({"claims": {"oid": None}}, "missing_claim"),
    ({"lifetime": -600}, "token_expired"),
])
def test_provider_tokens_that_break_a_rule_are_rejected(provider, settings, kwargs, reason):
    with pytest.raises(InvalidToken) as caught:
        validator_for(settings).validate(issue(provider, "alice@contoso.example", **kwargs))

    assert caught.value.reason == reason


def test_key_rotation_at_the_provider_is_followed(tmp_path, monkeypatch):
    # A provider of its own: rotating the shared one's key would leave the other tests' cached
    # validator (real clock, inside its cooldown) behind.
    with identity_provider.launch(cert_dir=tmp_path) as own:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(write_ca_bundle(own.cert_dir)))
        settings = load_settings(local_values(ENTRA_AUTHORITY=f"{own.url}/organizations"))
        now = [0.0]
        validator = AccessTokenValidator.from_settings(settings, clock=lambda: now[0])
        validator.validate(issue(own, "alice@contoso.example"))

        client.rotate_key(own.url)
        rotated = issue(own, "bob@contoso.example")
        with pytest.raises(InvalidToken):
            validator.validate(rotated)  # inside the cooldown the new kid is not fetched yet
        now[0] += REFRESH_COOLDOWN_SECONDS + 1

        assert validator.validate(rotated).tid == CONTOSO_ID
