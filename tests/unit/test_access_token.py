"""Access-token validation against a real local HTTP server serving discovery + JWKS.

Tokens are signed with locally generated RSA keys by PyJWT; nothing in PyJWT or in the validator is
mocked. Time for the key cache is a fake clock, so cooldowns are tested without sleeping.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import azure.functions as func
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers import bearer
from services.identity import InvalidToken, Principal, id_token_validator_for, validator_for
from services.identity.access_token import PERSONAL_ACCOUNTS_TENANT, AccessTokenValidator
from services.identity.signing_keys import REFRESH_COOLDOWN_SECONDS
from services.settings import load_settings
from tests.factories import LOCAL_CLIENT_ID, local_values

CONTOSO = "11111111-1111-1111-1111-111111111111"
FABRIKAM = "22222222-2222-2222-2222-222222222222"
ALICE_OID = "10000000-0000-4000-8000-000000000002"
ENTRA_V2_ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0"
APP_ID_URI = f"api://localhost:7071/{LOCAL_CLIENT_ID}"


# --- keys and tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RsaKey:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str) -> RsaKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict:
        # Shaped like Entra's: no "alg", use=sig.
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


# Generating RSA keys takes a moment; the same three serve every test.
KEY_A = RsaKey.generate("key-a")
KEY_B = RsaKey.generate("key-b")
KEY_STRANGER = RsaKey.generate("key-a")  # same kid as KEY_A, different key: a forged signature


def v2_claims(tid: str = CONTOSO, **overrides: Any) -> dict:
    now = int(time.time())
    claims = {
        "aud": LOCAL_CLIENT_ID,
        "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
        "iat": now, "nbf": now, "exp": now + 3600,
        "name": "Alice Anders",
        "oid": ALICE_OID,
        "preferred_username": "Alice@Contoso.example",
        "email": "alice@contoso.example",
        "scp": "access_as_user User.Read",
        "sub": "pairwise-subject",
        "tid": tid,
        "ver": "2.0",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def v1_claims(tid: str = CONTOSO, **overrides: Any) -> dict:
    claims = v2_claims(tid, aud=APP_ID_URI, iss=f"https://sts.windows.net/{tid}/", ver="1.0",
                       preferred_username=None, upn="alice@contoso.onmicrosoft.example",
                       unique_name="alice@contoso.onmicrosoft.example")
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict, key: RsaKey = KEY_A, **header: Any) -> str:
    return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT", **header})


# --- the authority: a real HTTP server ------------------------------------------------------------


@dataclass
class Authority:
    """What the local server publishes, and how often each document was fetched."""

    base_url: str = ""
    keys: list[RsaKey] = field(default_factory=lambda: [KEY_A])
    issuer: str = ENTRA_V2_ISSUER
    down: bool = False
    slow_seconds: float = 0.0
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def authority(self) -> str:
        return f"{self.base_url}/organizations"

    @property
    def jwks_fetches(self) -> int:
        return self.hits.get("/organizations/discovery/v2.0/keys", 0)

    def respond(self, path: str) -> tuple[int, Any]:
        self.hits[path] = self.hits.get(path, 0) + 1
        time.sleep(self.slow_seconds)
        if self.down:
            return 503, {"error": "temporarily_unavailable"}
        if path == "/organizations/v2.0/.well-known/openid-configuration":
            return 200, {"issuer": self.issuer, "jwks_uri": f"{self.base_url}/organizations/discovery/v2.0/keys"}
        if path == "/organizations/discovery/v2.0/keys":
            return 200, {"keys": [k.jwk() for k in self.keys]}
        return 404, {"error": "not_found"}


@pytest.fixture
def authority():
    state = Authority()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = state.respond(self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() otherwise waits up to half a second per test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def settings_for(authority: Authority, **overrides: Any):
    return load_settings(local_values(ENTRA_AUTHORITY=authority.authority, **overrides))


@pytest.fixture
def validator(authority: Authority, clock: FakeClock) -> AccessTokenValidator:
    return AccessTokenValidator.from_settings(settings_for(authority), clock=clock)


def rejected(validator: AccessTokenValidator, token: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    return caught.value


# --- valid tokens -----------------------------------------------------------------------------------


def test_valid_v2_token_gives_the_principal(validator):
    principal = validator.validate(sign(v2_claims()))

    assert principal == Principal(
        tid=CONTOSO, oid=ALICE_OID, scopes=frozenset({"access_as_user", "User.Read"}), version="2.0",
        name="Alice Anders", preferred_username="Alice@Contoso.example", email="alice@contoso.example",
    )
    assert principal.sign_in_addresses() == {"alice@contoso.example"}


def test_valid_v1_token_with_app_id_uri_audience(validator):
    principal = validator.validate(sign(v1_claims()))

    assert (principal.tid, principal.oid, principal.version) == (CONTOSO, ALICE_OID, "1.0")
    assert principal.sign_in_addresses() == {"alice@contoso.onmicrosoft.example", "alice@contoso.example"}


def test_issuer_is_templated_with_each_tenant(validator):
    assert validator.validate(sign(v2_claims(FABRIKAM))).tid == FABRIKAM
    assert validator.validate(sign(v1_claims(FABRIKAM))).tid == FABRIKAM


def test_warm_cache_fetches_nothing_per_request(validator, authority):
    for _ in range(5):
        validator.validate(sign(v2_claims()))

    assert authority.jwks_fetches == 1
    assert authority.hits["/organizations/v2.0/.well-known/openid-configuration"] == 1


# --- signatures and keys ------------------------------------------------------------------------------


def test_wrong_signature_is_rejected(validator):
    assert rejected(validator, sign(v2_claims(), KEY_STRANGER)).reason == "bad_signature"


def test_tampered_payload_is_rejected(validator):
    header, _, signature = sign(v2_claims()).split(".")
    forged_payload = jwt.utils.base64url_encode(json.dumps(v2_claims(oid=str(uuid.uuid4()))).encode()).decode()

    assert rejected(validator, f"{header}.{forged_payload}.{signature}").reason == "bad_signature"


def test_unknown_kid_refetches_once_then_rejects_and_the_cooldown_holds(validator, authority, clock):
    validator.validate(sign(v2_claims()))
    clock.advance(REFRESH_COOLDOWN_SECONDS + 1)

    first = rejected(validator, sign(v2_claims(), RsaKey("unknown-1", KEY_B.private)))
    assert first.reason == "unknown_signing_key"
    assert authority.jwks_fetches == 2

    clock.advance(30)
    second = rejected(validator, sign(v2_claims(), RsaKey("unknown-2", KEY_B.private)))
    assert second.reason == "unknown_signing_key"
    assert authority.jwks_fetches == 2  # within the cooldown: no second fetch

    clock.advance(REFRESH_COOLDOWN_SECONDS)
    rejected(validator, sign(v2_claims(), RsaKey("unknown-3", KEY_B.private)))
    assert authority.jwks_fetches == 3


def test_many_concurrent_unknown_kids_cause_one_fetch(validator, authority, clock):
    validator.validate(sign(v2_claims()))
    clock.advance(REFRESH_COOLDOWN_SECONDS + 1)
    tokens = [sign(v2_claims(), RsaKey(f"unknown-{i}", KEY_B.private)) for i in range(20)]
    reasons: list[str] = []
    # A slow authority and a common start line: every thread is waiting while the first one fetches.
    authority.slow_seconds = 0.2
    start = threading.Barrier(len(tokens))

    def attempt(token: str) -> None:
        start.wait()
        try:
            validator.validate(token)
        except InvalidToken as exc:
            reasons.append(exc.reason)

    threads = [threading.Thread(target=attempt, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert reasons == ["unknown_signing_key"] * 20
    assert authority.jwks_fetches == 2


def test_concurrent_requests_with_a_rotated_key_wait_for_the_one_fetch(validator, authority, clock):
    validator.validate(sign(v2_claims()))
    authority.keys = [KEY_A, KEY_B]
    clock.advance(REFRESH_COOLDOWN_SECONDS + 1)
    authority.slow_seconds = 0.2
    start = threading.Barrier(20)
    oids: list[str] = []

    def attempt() -> None:
        start.wait()
        oids.append(validator.validate(sign(v2_claims(), KEY_B)).oid)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    # Requests that arrive while the refetch is under way must see its result, not the old key set.
    assert oids == [ALICE_OID] * 20
    assert authority.jwks_fetches == 2


def test_rotated_key_is_accepted_after_one_refetch(validator, authority, clock):
    validator.validate(sign(v2_claims()))
    authority.keys = [KEY_A, KEY_B]
    clock.advance(REFRESH_COOLDOWN_SECONDS + 1)

    assert validator.validate(sign(v2_claims(), KEY_B)).oid == ALICE_OID
    assert authority.jwks_fetches == 2
    assert validator.validate(sign(v2_claims(), KEY_A)).oid == ALICE_OID
    assert authority.jwks_fetches == 2


def test_keys_are_refreshed_after_a_day(validator, authority, clock):
    validator.validate(sign(v2_claims()))
    clock.advance(24 * 3600 + 1)

    validator.validate(sign(v2_claims()))
    assert authority.jwks_fetches == 2


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # signing the test token
def test_a_published_key_shorter_than_2048_bits_is_not_trusted(validator, authority):
    weak = RsaKey("weak", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    authority.keys = [KEY_A, weak]

    assert rejected(validator, sign(v2_claims(), weak)).reason == "bad_signature"


def test_missing_kid_is_rejected_without_a_fetch(validator, authority):
    token = jwt.encode(v2_claims(), KEY_A.private, algorithm="RS256")

    assert rejected(validator, token).reason == "unknown_signing_key"
    assert authority.jwks_fetches == 0


# --- algorithms -----------------------------------------------------------------------------------------


def test_alg_none_is_rejected(validator, authority):
    # The "none" algorithm takes no key: None or "" (encode()'s signature admits only the latter).
    token = jwt.encode(v2_claims(), "", algorithm="none", headers={"kid": KEY_A.kid})

    assert rejected(validator, token).reason == "unsupported_algorithm"
    assert authority.jwks_fetches == 0


def test_hs256_signed_with_the_public_key_is_rejected(validator):
    # The classic confusion attack: HMAC "signed" with the RSA public key a verifier might reuse as secret.
    # PyJWT refuses to encode with a PEM as HMAC secret, so the token is assembled by hand.
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KEY_A.kid}).encode())
    payload = b64(json.dumps(v2_claims()).encode())
    mac = hmac.new(KEY_A.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()

    assert rejected(validator, f"{header}.{payload}.{b64(mac)}").reason == "unsupported_algorithm"


def test_other_asymmetric_algorithms_are_rejected(validator):
    token = jwt.encode(v2_claims(), KEY_A.private, algorithm="PS256", headers={"kid": KEY_A.kid})

    assert rejected(validator, token).reason == "unsupported_algorithm"


# --- audience, issuer, tenant ------------------------------------------------------------------------


def test_wrong_audience_is_rejected(validator):
    error = rejected(validator, sign(v2_claims(aud="00000003-0000-0000-c000-000000000000")))

    assert (error.reason, error.description) == ("audience_not_accepted", "audience not accepted")


def test_audience_list_is_rejected(validator):
    assert rejected(validator, sign(v2_claims(aud=[LOCAL_CLIENT_ID, "other"]))).reason == "audience_not_accepted"


def test_wrong_issuer_is_rejected(validator):
    token = sign(v2_claims(iss=f"https://evil.example/{CONTOSO}/v2.0"))

    assert rejected(validator, token).reason == "issuer_mismatch"


def test_issuer_of_another_tenant_is_rejected(validator):
    v2 = sign(v2_claims(CONTOSO, iss=f"https://login.microsoftonline.com/{FABRIKAM}/v2.0"))
    v1 = sign(v1_claims(CONTOSO, iss=f"https://sts.windows.net/{FABRIKAM}/"))

    assert rejected(validator, v2).description == "issuer does not match tenant"
    assert rejected(validator, v1).reason == "issuer_mismatch"


def test_v1_issuer_on_a_v2_token_is_rejected(validator):
    assert rejected(validator, sign(v2_claims(iss=f"https://sts.windows.net/{CONTOSO}/"))).reason == "issuer_mismatch"


def test_unknown_version_is_rejected(validator):
    assert rejected(validator, sign(v2_claims(ver="3.0"))).reason == "unsupported_version"


@pytest.mark.parametrize("tid", ["contoso", "{tenantid}", "11111111-1111-1111-1111-11111111111", 42])
def test_non_guid_tenant_is_rejected(validator, tid):
    token = sign(v2_claims(tid=CONTOSO, iss=f"https://login.microsoftonline.com/{tid}/v2.0") | {"tid": tid})

    assert rejected(validator, token).reason == "invalid_tenant"


def test_personal_account_tenant_is_rejected_by_default(validator):
    error = rejected(validator, sign(v2_claims(PERSONAL_ACCOUNTS_TENANT)))

    assert error.reason == "personal_account"


def test_personal_account_tenant_is_accepted_when_configured(authority, clock):
    validator = AccessTokenValidator.from_settings(
        settings_for(authority, ALLOW_PERSONAL_ACCOUNTS="true"), clock=clock
    )

    assert validator.validate(sign(v2_claims(PERSONAL_ACCOUNTS_TENANT))).tid == PERSONAL_ACCOUNTS_TENANT


def test_single_tenant_authority_rejects_other_tenants_also_for_v1(authority, clock):
    authority.issuer = f"https://login.microsoftonline.com/{CONTOSO}/v2.0"
    validator = AccessTokenValidator.from_settings(settings_for(authority), clock=clock)

    assert validator.validate(sign(v2_claims(CONTOSO))).tid == CONTOSO
    assert validator.validate(sign(v1_claims(CONTOSO))).tid == CONTOSO
    assert rejected(validator, sign(v2_claims(FABRIKAM))).reason == "issuer_mismatch"
    assert rejected(validator, sign(v1_claims(FABRIKAM))).reason == "issuer_mismatch"


# --- scope and claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scp", [None, "", "User.Read", "access_as_user_extra", ["access_as_user"]])
def test_missing_scope_is_rejected(validator, scp):
    error = rejected(validator, sign(v2_claims(scp=scp)))

    assert (error.reason, error.description) == ("scope_missing", "scope access_as_user missing")


@pytest.mark.parametrize("claim", ["exp", "tid", "oid", "aud", "iss", "ver"])
def test_required_claims(validator, claim):
    claims = v2_claims()
    del claims[claim]

    error = rejected(validator, sign(claims))
    assert (error.reason, error.description) == ("missing_claim", f"claim {claim} missing")


def test_non_guid_oid_is_rejected(validator):
    assert rejected(validator, sign(v2_claims(oid="alice"))).reason == "invalid_claim"


# --- time -----------------------------------------------------------------------------------------------


def test_expired_token_is_rejected(validator):
    now = int(time.time())
    error = rejected(validator, sign(v2_claims(iat=now - 7200, nbf=now - 7200, exp=now - 300)))

    assert (error.reason, error.description) == ("token_expired", "token expired")


def test_not_yet_valid_token_is_rejected(validator):
    now = int(time.time())

    assert rejected(validator, sign(v2_claims(nbf=now + 600, iat=now))).reason == "token_not_yet_valid"
    assert rejected(validator, sign(v2_claims(nbf=now, iat=now + 600))).reason == "token_not_yet_valid"


def test_clock_skew_within_the_setting_is_accepted(validator):
    now = int(time.time())  # TOKEN_CLOCK_SKEW_SECONDS defaults to 90

    assert validator.validate(sign(v2_claims(exp=now - 30)))
    assert validator.validate(sign(v2_claims(nbf=now + 30, iat=now + 30)))


# --- junk and outages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [
    "", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20_000, None, 42, "é.é.é",
    jwt.utils.base64url_encode(b'["not","an","object"]').decode() + ".e30.sig",
])
def test_garbage_is_rejected_cleanly(validator, authority, token):
    assert rejected(validator, token).reason in {"malformed_token", "unsupported_algorithm"}
    assert authority.jwks_fetches == 0


def test_garbage_payload_with_valid_signature_is_rejected(validator):
    token = jwt.api_jws.encode(b"not json", KEY_A.private, algorithm="RS256", headers={"kid": KEY_A.kid})

    assert rejected(validator, token).reason == "malformed_token"


def test_key_endpoint_down_rejects_with_a_reason(validator, authority, clock):
    authority.down = True

    error = rejected(validator, sign(v2_claims()))
    assert (error.reason, error.description) == (
        "signing_keys_unavailable", "signing keys unavailable, try again later")

    # Not hammered while down: the next try waits a few seconds.
    rejected(validator, sign(v2_claims()))
    assert authority.hits["/organizations/v2.0/.well-known/openid-configuration"] == 1

    authority.down = False
    clock.advance(11)
    assert validator.validate(sign(v2_claims())).oid == ALICE_OID


def test_key_endpoint_unreachable_rejects_with_a_reason(clock):
    settings = load_settings(local_values(ENTRA_AUTHORITY="http://127.0.0.1:9/organizations"))
    validator = AccessTokenValidator.from_settings(settings, clock=clock)

    assert rejected(validator, sign(v2_claims())).reason == "signing_keys_unavailable"


def test_cached_keys_survive_a_failed_refresh(validator, authority, clock):
    validator.validate(sign(v2_claims()))
    authority.down = True

    clock.advance(REFRESH_COOLDOWN_SECONDS + 1)
    assert rejected(validator, sign(v2_claims(), KEY_B)).reason == "unknown_signing_key"
    clock.advance(24 * 3600)
    assert validator.validate(sign(v2_claims())).oid == ALICE_OID
    # Only the first load reached the JWKS: each later attempt failed at discovery and kept the old keys.
    assert authority.jwks_fetches == 1


def test_jwks_entries_that_are_not_rs256_signature_keys_are_ignored(validator, authority, clock):
    authority.keys = [KEY_A]
    extra = [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
             {**KEY_B.jwk(), "use": "enc"},
             {**KEY_B.jwk(), "kid": "ps", "alg": "PS256"}]
    original = authority.respond

    def respond(path: str):
        status, body = original(path)
        if path.endswith("/keys"):
            body["keys"] += extra
        return status, body

    authority.respond = respond
    assert validator.validate(sign(v2_claims())).oid == ALICE_OID
    clock.advance(REFRESH_COOLDOWN_SECONDS + 1)
    assert rejected(validator, sign(v2_claims(), RsaKey("hmac", KEY_B.private))).reason == "unknown_signing_key"


# --- the process-wide validator --------------------------------------------------------------------


def test_validator_for_returns_one_validator_per_configuration(authority):
    settings = settings_for(authority)

    assert validator_for(settings) is validator_for(settings_for(authority))
    assert validator_for(settings) is not validator_for(settings_for(authority, API_SCOPE="other"))


def test_id_token_validator_wants_our_client_id_and_no_scope(authority):
    settings = settings_for(authority)
    id_token = sign(v2_claims(aud=settings.entra_client_id, scp=None, nonce="n-1"))

    principal = id_token_validator_for(settings).validate(id_token)
    assert (principal.tid, principal.oid, principal.scopes) == (CONTOSO, ALICE_OID, frozenset())
    # Same keys, one cache: the second validator did not fetch again.
    validator_for(settings).validate(sign(v2_claims()))
    assert authority.jwks_fetches == 1


def test_id_token_validator_refuses_api_tokens_and_v1(authority):
    settings = settings_for(authority)
    validator = id_token_validator_for(settings)

    assert rejected(validator, sign(v2_claims(aud=APP_ID_URI))).reason == "audience_not_accepted"
    v1 = sign(v1_claims(aud=settings.entra_client_id))
    assert rejected(validator, v1).reason == "unsupported_version"


# --- handlers/bearer ----------------------------------------------------------------------------------


def request(authorization: str | None = None) -> func.HttpRequest:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return func.HttpRequest(method="GET", url="http://localhost:7071/api/license", headers=headers, body=b"")


def challenge(req: func.HttpRequest, settings) -> func.HttpResponse:
    with pytest.raises(InvalidToken) as caught:
        bearer.authenticate(req, settings)
    return bearer.unauthorized(caught.value)


def test_bearer_accepts_a_valid_token(authority):
    principal = bearer.authenticate(request(f"Bearer {sign(v2_claims())}"), settings_for(authority))

    assert (principal.tid, principal.oid) == (CONTOSO, ALICE_OID)
    assert bearer.authenticate(request(f"bearer  {sign(v1_claims())}"), settings_for(authority)).version == "1.0"


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwYXNz"])
def test_bearer_without_a_token_challenges_without_an_error(authority, authorization):
    response = challenge(request(authorization), settings_for(authority))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="securemailmerge"'
    body = json.loads(response.get_body())
    assert (body["error"], body["reason"]) == ("invalid_token", "missing_token")
    assert authority.jwks_fetches == 0


@pytest.mark.parametrize("authorization, description", [
    ("Bearer not-a-token", "token is malformed"),
    ("Bearer", "token is malformed"),
    ("Bearer a b", "token is malformed"),
])
def test_bearer_with_a_malformed_header_says_so(authority, authorization, description):
    response = challenge(request(authorization), settings_for(authority))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="securemailmerge", error="invalid_token", error_description="{description}"'
    )


def test_bearer_with_an_expired_token_gives_the_reason(authority):
    now = int(time.time())
    response = challenge(request(f"Bearer {sign(v2_claims(exp=now - 600))}"), settings_for(authority))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="securemailmerge", error="invalid_token", error_description="token expired"'
    )
    assert json.loads(response.get_body()) == {
        "error": "invalid_token", "message": "token expired", "reason": "token_expired",
    }
    assert response.headers["Cache-Control"] == "no-store"


# --- accepted tokens are remembered until they expire (the add-in sends one token for an hour) ------------


def test_an_accepted_token_is_not_verified_again_until_it_expires(validator, authority, monkeypatch):
    token = sign(v2_claims())
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    principal = validator.validate(token)
    verified: list[int] = []
    real_decode = jwt.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        verified.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    assert validator.validate(token) == principal and verified == []
    # Past its expiry (and the clock skew) the remembered answer no longer counts: the token is checked
    # again (and PyJWT, on its own clock, refuses an expired one: test_expired_token_is_rejected).
    monkeypatch.setattr(time, "time", lambda: expires + 3600)
    validator.validate(token)
    assert verified == [1]


def test_a_remembered_token_is_checked_again_when_the_keys_are_refreshed(validator, authority, clock):
    token = sign(v2_claims())
    validator.validate(token)
    authority.keys = [KEY_B]  # Entra stopped publishing the key that signed it
    clock.advance(24 * 3600 + 1)
    assert rejected(validator, token).reason == "unknown_signing_key"
