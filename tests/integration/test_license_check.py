"""The add-in's license check through HTTP on the local host, with tokens from the local identity provider.

Most tests use the shared stack and buy their subscriptions through the Stripe emulator. Subscription
states are changed (through the emulator's controls and the webhook) before a subscription's first check,
so the per-instance subscription cache never holds an older state. Outage, CORS, rate-limit and key
rotation tests run their own Azurite and host (`own`), which they may stop and restart.
"""

from __future__ import annotations

import concurrent.futures
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests

from adapters import keys
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES, Storage
from local_host import LaunchedHost
from local_host import launch as launch_host
from local_host.azurite import start_azurite
from services import subscription_store
from services.lease import LEASE_AUDIENCE, generate_pem, parse_keys
from services.settings import load_settings
from services.subscription import Subscription
from tests.builders import person, purchased_subscription
from tests.conftest import REPO_ROOT, app_values, wait_for
from tests.license_fixtures import (
    CONTOSO_ID,
    FABRIKAM_ID,
    assign,
    check,
    new_user,
    revoke,
    set_over_quantity,
    token_for,
)

ALL_CODES = {"VALID", "NO_LICENSE", "PAST_DUE_GRACE", "SUSPENDED", "EXPIRED", "OVER_QUANTITY", "PENDING_PAYMENT"}


def verify_lease(base_url: str, lease: str) -> dict:
    """What the add-in does: find the lease's kid in /api/license/keys and verify the signature."""
    jwks = requests.get(f"{base_url}/api/license/keys", timeout=10).json()
    header = jwt.get_unverified_header(lease)
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
    return jwt.decode(lease, key, algorithms=["ES256", "EdDSA"], audience=LEASE_AUDIENCE)


def buy(stack, seats: int = 5):
    return purchased_subscription(stack, person("buyer@contoso.example"), quantity=seats)


def wait_for_status(stack, subscription_id: str, status: str) -> Subscription:
    return wait_for(lambda: (s := subscription_store.load(stack.storage(), subscription_id))
                    and s.status == status and s,
                    message=f"subscription {status}")


# --- the shared stack ---------------------------------------------------------------------------------


def test_licensed_user_is_valid_and_the_seat_binds_on_first_use(stack):
    subscription = buy(stack)
    user = new_user(stack.identity_provider)
    address = user["preferred_username"]
    assign(stack.storage(), subscription.id, address.upper())  # addresses match case-insensitively

    response = check(stack.url, token_for(stack, user))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["valid"], body["code"]) == (True, "VALID")
    assert body["subscription"] == {"id": subscription.id, "status": "active"}
    assert body["seat"] == {"status": "active", "email": address}
    assert body["detail"].startswith("Your SecureMailMerge license is valid")
    assert body["expires_at"].startswith(subscription.current_period_end.strftime("%Y-%m-%dT%H:%M"))
    claims = verify_lease(stack.url, body["lease"])
    assert (claims["tid"], claims["oid"], claims["sid"], claims["code"]) == (
        CONTOSO_ID, user["oid"], subscription.id, "VALID")
    assert claims["exp"] - claims["iat"] == 72 * 3600

    storage = stack.storage()
    seat = storage.get(SUBSCRIPTIONS, subscription.id, keys.seat_row(address))
    assert (seat["BoundTid"], seat["BoundOid"]) == (CONTOSO_ID, user["oid"])
    assert seat["LastSeenOn"] == datetime.now(UTC).date().isoformat()
    lookup = storage.get(USER_LICENSES, keys.licenses_of_oid(user['oid']), subscription.id)
    assert lookup["LastSeenOn"] == seat["LastSeenOn"]
    # The address row stays until the next day's last-seen write removes it: a first check is one write
    # shorter (tests/unit/test_license_binding.py shows the removal).
    assert lookup["AddressRow"] is True

    # Steady state, in German.
    again = check(stack.url, token_for(stack, user), **{"Accept-Language": "de-DE,de;q=0.9"}).json()
    assert again["code"] == "VALID" and again["detail"].startswith("Deine SecureMailMerge-Lizenz ist gültig")


def test_a_seat_matches_the_email_claim_when_the_sign_in_name_differs(stack):
    subscription = buy(stack)
    user = new_user(stack.identity_provider, email=f"mail-{datetime.now().timestamp()}@contoso.example")
    assign(stack.storage(), subscription.id, user["email"])
    assert check(stack.url, token_for(stack, user)).json()["code"] == "VALID"


def test_unlicensed_user_gets_no_license_and_no_lease(stack):
    body = check(stack.url, token_for(stack, new_user(stack.identity_provider))).json()
    assert (body["valid"], body["code"], body["lease"], body["subscription"], body["seat"]) == (
        False, "NO_LICENSE", None, None, None)


def test_past_due_in_grace_stays_valid_with_the_grace_end_as_expiry(stack):
    subscription = buy(stack)
    stack.emulator_control(f"subscriptions/{subscription.id}/fail_payment")
    past_due = wait_for_status(stack, subscription.id, "past_due")
    user = new_user(stack.identity_provider)
    assign(stack.storage(), subscription.id, user["preferred_username"])

    body = check(stack.url, token_for(stack, user)).json()
    assert (body["valid"], body["code"], body["seat"]["status"]) == (True, "PAST_DUE_GRACE", "active")
    assert past_due.past_due_since is not None
    grace_end = past_due.past_due_since + timedelta(days=stack.settings.grace_days)
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == grace_end
    assert verify_lease(stack.url, body["lease"])["exp"] <= grace_end.timestamp()


@pytest.mark.parametrize("ending, code, seat_status", [("unpaid", "SUSPENDED", "suspended"),
                                                       ("canceled", "EXPIRED", "expired")])
def test_suspended_and_cancelled_subscriptions_are_not_valid(stack, ending, code, seat_status):
    subscription = buy(stack)
    stack.emulator_control(f"subscriptions/{subscription.id}/fail_payment")
    wait_for_status(stack, subscription.id, "past_due")
    stack.emulator_control(f"subscriptions/{subscription.id}/advance", {"status": ending})
    wait_for_status(stack, subscription.id, ending)
    user = new_user(stack.identity_provider)
    assign(stack.storage(), subscription.id, user["preferred_username"])

    body = check(stack.url, token_for(stack, user)).json()
    assert (body["valid"], body["code"], body["seat"]["status"], body["lease"]) == (False, code, seat_status, None)
    assert body["subscription"]["status"] == ending


def test_over_quantity_seat_and_the_best_of_two_subscriptions(stack):
    crowded, other = buy(stack), buy(stack)
    user = new_user(stack.identity_provider)
    address = user["preferred_username"]
    assign(stack.storage(), crowded.id, address)
    set_over_quantity(stack.storage(), crowded.id, address)

    body = check(stack.url, token_for(stack, user)).json()
    assert (body["valid"], body["code"], body["seat"]["status"]) == (False, "OVER_QUANTITY", "over_quantity")

    # A second seat in a good subscription wins.
    assign(stack.storage(), other.id, address)
    body = check(stack.url, token_for(stack, user)).json()
    assert (body["valid"], body["code"], body["subscription"]["id"]) == (True, "VALID", other.id)
    # Steady state from now on: both seats bound, the best still chosen.
    assert check(stack.url, token_for(stack, user)).json()["subscription"]["id"] == other.id


def test_revoked_seat_is_unlicensed_at_once(stack):
    subscription = buy(stack)
    user = new_user(stack.identity_provider)
    assign(stack.storage(), subscription.id, user["preferred_username"])
    assert check(stack.url, token_for(stack, user)).json()["code"] == "VALID"

    revoke(stack.storage(), subscription.id, user["preferred_username"])
    assert check(stack.url, token_for(stack, user)).json()["code"] == "NO_LICENSE"


def test_same_address_from_another_tenant_is_never_licensed(stack):
    subscription = buy(stack)
    alice = new_user(stack.identity_provider)
    address = alice["preferred_username"]
    impostor = new_user(stack.identity_provider, FABRIKAM_ID, email=address)
    assign(stack.storage(), subscription.id, address)

    body = check(stack.url, token_for(stack, impostor)).json()
    assert (body["valid"], body["code"], body["subscription"], body["seat"]) == (False, "NO_LICENSE", None, None)
    assert address not in body["detail"] and subscription.id not in str(body)
    seat = stack.storage().get(SUBSCRIPTIONS, subscription.id, keys.seat_row(address))
    assert seat["BoundOid"] == ""
    assert wait_for(lambda: f"token tenant {FABRIKAM_ID} (oid {impostor['oid']})" in stack.host.logs(), timeout=5)
    # Also when the impostor's token claims the address in every name claim.
    spoofed = token_for(stack, impostor, preferred_username=address, upn=address, unique_name=address)
    assert check(stack.url, spoofed).json()["code"] == "NO_LICENSE"

    # The real user still gets the seat.
    assert check(stack.url, token_for(stack, alice)).json()["code"] == "VALID"
    assert check(stack.url, token_for(stack, impostor)).json()["code"] == "NO_LICENSE"


def test_two_people_matching_one_address_at_once_bind_it_only_once(stack):
    subscription = buy(stack)
    address = f"shared-{datetime.now().timestamp()}@contoso.example"
    first = new_user(stack.identity_provider, preferred_username=address)
    second = new_user(stack.identity_provider, email=address)
    assign(stack.storage(), subscription.id, address)
    tokens = [token_for(stack, first), token_for(stack, second)] * 4

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda token: check(stack.url, token).json(), tokens))
    seat = stack.storage().get(SUBSCRIPTIONS, subscription.id, keys.seat_row(address))
    winner = seat["BoundOid"]
    assert winner in (first["oid"], second["oid"])
    for token, body in zip(tokens, bodies, strict=True):
        holder = jwt.decode(token, options={"verify_signature": False})["oid"]
        assert body["code"] == ("VALID" if holder == winner else "NO_LICENSE")


def test_bad_or_missing_token_gets_401_with_a_challenge(stack):
    response = check(stack.url, None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="securemailmerge"'
    user = new_user(stack.identity_provider)
    for token in ("not-a-jwt", token_for(stack, user, aud="api://someone-else"),
                  token_for(stack, user, scp="User.Read")):
        response = check(stack.url, token)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.json()["error"] == "invalid_token"


def test_openapi_documents_the_check_with_every_code(stack):
    document = requests.get(f"{stack.url}/api/openapi.json", timeout=10).json()
    assert {"/license", "/license/keys"} <= set(document["paths"])
    assert set(document["components"]["schemas"]["LicenseCheck"]["properties"]["code"]["enum"]) == ALL_CODES
    assert {"200", "401", "429", "503"} <= set(document["paths"]["/license"]["get"]["responses"])


# --- an own Azurite and host: outage, CORS, rate limit, key rotation -------------------------------------

ADDIN_ORIGIN = "https://addin.securemailmerge.example"


class OwnStack:
    def __init__(self, azurite, identity_provider, stripe_emulator, outbox: Path):
        self.azurite, self.identity_provider, self.stripe_emulator, self.outbox = (
            azurite, identity_provider, stripe_emulator, outbox)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://localhost:{self.port}"
        self.host: LaunchedHost | None = None
        self.start()

    def start(self, **overrides) -> None:
        self.stop()
        values = dict(ADDIN_ORIGINS=f"{ADDIN_ORIGIN},https://other.example", LICENSE_RATE_LIMIT_PER_MINUTE="30",
                      LEASE_SIGNING_KEYS=generate_pem())
        values.update(overrides)
        self.env = app_values(self.azurite, self.identity_provider, self.stripe_emulator, self.outbox, self.url,
                              **values)
        self.settings = load_settings(self.env)
        self.host = launch_host(REPO_ROOT, env=self.env, port=self.port)

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None

    def storage(self) -> Storage:
        storage = Storage(self.settings)
        storage.ensure_created()
        return storage

    def licensed_user(self) -> dict:
        """A contoso user with a seat in a fresh active subscription (written directly, no Stripe)."""
        sid = f"sub_own_{datetime.now().timestamp()}".replace(".", "")
        storage = self.storage()
        subscription_store.create(storage, Subscription(
            id=sid, kind="organisation", status="active", quantity=5, assigned_count=0, tenant_id=CONTOSO_ID,
            owner_tid=CONTOSO_ID, owner_oid="10000000-0000-4000-8000-000000000001",
            owner_email="admin@contoso.example", owner_name="Contoso Admin", language="en",
            stripe_customer_id="", checkout_session_id=f"cs_{sid}",
            current_period_end=datetime.now(UTC) + timedelta(days=20)))
        user = new_user(self.identity_provider)
        assign(storage, sid, user["preferred_username"])
        return user


@pytest.fixture(scope="module")
def own(identity_provider, stripe_emulator, tmp_path_factory):
    azurite = start_azurite(location=tmp_path_factory.mktemp("own-azurite"))
    stack = OwnStack(azurite, identity_provider, stripe_emulator, tmp_path_factory.mktemp("own-outbox"))
    yield stack
    stack.stop()
    azurite.stop()


def own_token(own, user) -> str:
    from standins.identity_provider import client as idp

    return idp.issue_token(own.identity_provider.url, user["oid"], audience=own.settings.api_audiences[0],
                           scope="access_as_user", verify=str(own.identity_provider.ca_bundle))


def test_storage_outage_answers_503_with_retry_after_never_no_license(own):
    user = own.licensed_user()
    token = own_token(own, user)
    assert check(own.url, token).json()["code"] == "VALID"

    own.azurite.pause()  # connections hang: timeouts
    try:
        started = datetime.now()
        response = check(own.url, token)
        elapsed = (datetime.now() - started).total_seconds()
    finally:
        own.azurite.resume()
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert response.json()["error"] == "unavailable"
    assert elapsed < 5, f"the storage budget is about 2 s, took {elapsed:.1f} s"

    own.azurite.stop()  # connections refused
    try:
        response = check(own.url, token)
        assert response.status_code == 503 and response.headers["Retry-After"]
        # First use (email partitions) fails the same way: never a false NO_LICENSE.
        response = check(own.url, own_token(own, new_user(own.identity_provider)))
        assert response.status_code == 503
    finally:
        own.azurite.restart()
    assert check(own.url, token).json()["code"] == "VALID"


def test_cors_for_the_addin_origin_only(own):
    user = own.licensed_user()
    preflight = requests.options(f"{own.url}/api/license", headers={
        "Origin": ADDIN_ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"}, timeout=10)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ADDIN_ORIGIN
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()

    response = check(own.url, own_token(own, user), Origin=ADDIN_ORIGIN)
    assert response.headers["Access-Control-Allow-Origin"] == ADDIN_ORIGIN
    assert "Origin" in response.headers["Vary"]
    unauthorized = check(own.url, None, Origin=ADDIN_ORIGIN)
    assert unauthorized.headers["Access-Control-Allow-Origin"] == ADDIN_ORIGIN  # the add-in can read the 401

    for origin in ("https://evil.example", "https://addin.securemailmerge.example.evil.example"):
        assert "Access-Control-Allow-Origin" not in check(own.url, own_token(own, user), Origin=origin).headers
        refused = requests.options(f"{own.url}/api/license", headers={"Origin": origin}, timeout=10)
        assert "Access-Control-Allow-Origin" not in refused.headers


def test_rate_limit_per_user_answers_429(own):
    user, other = own.licensed_user(), own.licensed_user()
    token = own_token(own, user)
    statuses = [check(own.url, token).status_code for _ in range(35)]
    assert statuses[:30] == [200] * 30
    limited = check(own.url, token)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert check(own.url, own_token(own, other)).status_code == 200


def test_leases_verify_against_the_published_keys_before_and_after_rotation(own):
    old_pem, new_pem = generate_pem(), generate_pem()
    old_kid, new_kid = parse_keys(old_pem)[0].kid, parse_keys(new_pem)[0].kid
    user = own.licensed_user()
    own.start(LEASE_SIGNING_KEYS=old_pem)
    old_lease = check(own.url, own_token(own, user)).json()["lease"]
    assert jwt.get_unverified_header(old_lease)["kid"] == old_kid
    assert verify_lease(own.url, old_lease)["oid"] == user["oid"]

    own.start(LEASE_SIGNING_KEYS=f"{new_pem}\n\n{old_pem}")  # rotated: new key first, old still published
    keys = requests.get(f"{own.url}/api/license/keys", timeout=10)
    assert [k["kid"] for k in keys.json()["keys"]] == [new_kid, old_kid]
    assert "max-age" in keys.headers["Cache-Control"]
    assert all("d" not in k for k in keys.json()["keys"])
    new_lease = check(own.url, own_token(own, user)).json()["lease"]
    assert jwt.get_unverified_header(new_lease)["kid"] == new_kid
    assert verify_lease(own.url, new_lease)["oid"] == user["oid"]
    assert verify_lease(own.url, old_lease)["oid"] == user["oid"]

    own.start(LEASE_SIGNING_KEYS=new_pem)  # old key retired after its leases expired
    with pytest.raises(StopIteration):
        verify_lease(own.url, old_lease)
