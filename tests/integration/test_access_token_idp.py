"""Access-token validation against the local identity provider over HTTPS.

The provider runs as its own process (its real `serve` command) with a throw-away certificate directory;
the validator discovers its keys exactly as it discovers Entra's. The impostor tests go on to the license
check (in process, against Azurite): a valid token from another tenant that claims an assigned address.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

identity_provider = pytest.importorskip("standins.identity_provider")

from adapters.lookup_repository import LookupRepository  # noqa: E402
from adapters.subscription_repository import SubscriptionRepository  # noqa: E402
from adapters.table_storage import Storage  # noqa: E402
from services import license_check, subscription_store  # noqa: E402
from services.identity import InvalidToken, validator_for  # noqa: E402
from services.identity.access_token import AccessTokenValidator  # noqa: E402
from services.identity.signing_keys import REFRESH_COOLDOWN_SECONDS  # noqa: E402
from services.seat import LicenseLookup  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.subscription import Subscription  # noqa: E402
from services.subscription_cache import SubscriptionCache  # noqa: E402
from standins.identity_provider import client  # noqa: E402
from standins.identity_provider.cert import write_ca_bundle  # noqa: E402
from standins.identity_provider.directory import CONTOSO_ID, FABRIKAM_ID  # noqa: E402
from tests.factories import LOCAL_CLIENT_ID, local_values  # noqa: E402
from tests.license_fixtures import assign  # noqa: E402

APP_ID_URI = f"api://localhost:7071/{LOCAL_CLIENT_ID}"
ALICE = "alice@contoso.example"
IMPOSTOR = "alice.impostor@fabrikam.example"  # a fabrikam account whose email claim is alice's address
NO_LICENSE = license_check.Code.NO_LICENSE


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


@pytest.fixture
def storage(azurite):
    store = Storage(load_settings(local_values(AzureWebJobsStorage=azurite.connection_string)))
    store.ensure_created()
    return store


def contoso_subscription(storage) -> str:
    """A fresh, active subscription of the contoso tenant (written directly, no Stripe)."""
    subscription_id = f"sub_idp_{uuid.uuid4().hex[:12]}"
    assert subscription_store.create(storage, Subscription(
        id=subscription_id, kind="organisation", status="active", quantity=5, assigned_count=0,
        tenant_id=CONTOSO_ID, owner_tid=CONTOSO_ID, owner_oid="10000000-0000-4000-8000-000000000001",
        owner_email="admin@contoso.example", owner_name="Contoso Admin", language="en", stripe_customer_id="",
        checkout_session_id=f"cs_{subscription_id}", current_period_end=datetime.now(UTC) + timedelta(days=20)))
    return subscription_id


def checker() -> license_check.LicenseChecker:
    return license_check.LicenseChecker(SubscriptionCache(ttl=0), grace_days=14)


def logged_mismatch(caplog, principal, subscription_id: str) -> bool:
    """The mismatch is logged by ids (PRODUCT.md section 3), never revealed to the caller."""
    return any(r.levelname == "WARNING" and principal.tid in r.getMessage() and principal.oid in r.getMessage()
               and subscription_id in r.getMessage() for r in caplog.records)


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


def test_impostor_claiming_alices_address_gets_no_license_and_binds_nothing(provider, settings, storage, caplog):
    validator = validator_for(settings)
    impostor = validator.validate(issue(provider, IMPOSTOR))
    # A valid token whose address matches alice's seat; only its tenant differs.
    assert impostor.tid == FABRIKAM_ID
    assert ALICE in impostor.sign_in_addresses()
    subscription_id = contoso_subscription(storage)
    assign(storage, subscription_id, ALICE)
    seats, lookups = SubscriptionRepository(storage), LookupRepository(storage)

    decision = checker().check(storage, impostor)

    assert decision.code is NO_LICENSE and not decision.valid and decision.subscription is None
    assert not seats.seat(subscription_id, ALICE).bound
    assert subscription_id not in {row.subscription_id for row in lookups.licenses_of_oid(impostor.oid)}
    assert subscription_id in {row.subscription_id for row in lookups.licenses_of_address(ALICE)}
    assert logged_mismatch(caplog, impostor, subscription_id)

    # Claiming the address in every name claim changes nothing.
    spoofed = validator.validate(issue(provider, IMPOSTOR, claims={"preferred_username": ALICE, "upn": ALICE,
                                                                   "unique_name": ALICE}))
    assert spoofed.tid == FABRIKAM_ID and spoofed.preferred_username == ALICE
    assert checker().check(storage, spoofed).code is NO_LICENSE
    assert not seats.seat(subscription_id, ALICE).bound

    # The seat was free for the taking: alice herself binds it on her first check.
    alice = validator.validate(issue(provider, ALICE))
    assert checker().check(storage, alice).code is license_check.Code.VALID
    assert seats.seat(subscription_id, ALICE).bound_to(CONTOSO_ID, alice.oid)
    assert checker().check(storage, impostor).code is NO_LICENSE


def test_a_bound_lookup_row_naming_another_tenants_subscription_is_ignored(provider, settings, storage, caplog):
    """Bound rows are only written for the subscription's tenant; should one name another, it grants nothing."""
    impostor = validator_for(settings).validate(issue(provider, IMPOSTOR))
    subscription_id = contoso_subscription(storage)
    assign(storage, subscription_id, ALICE)
    stray = LicenseLookup(subscription_id, ALICE, CONTOSO_ID, bound_oid=impostor.oid)
    lookups = LookupRepository(storage)
    lookups.put_license(stray)
    try:
        decision = checker().check(storage, impostor)
    finally:
        lookups.delete_license(stray)

    assert decision.code is NO_LICENSE and decision.subscription is None
    assert logged_mismatch(caplog, impostor, subscription_id)
    assert not SubscriptionRepository(storage).seat(subscription_id, ALICE).bound


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
