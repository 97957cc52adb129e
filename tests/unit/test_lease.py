"""Lease signing keys: parsing, thumbprints, rotation, expiry caps, the generated local key."""

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from services.lease import LEASE_AUDIENCE, LeaseKeyError, LeaseKeys, generate_pem, keys_for, parse_keys, thumbprint
from services.settings import load_settings
from tests.factories import local_values

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _issue(keys: LeaseKeys, **overrides):
    args: dict[str, Any] = dict(tid="t", oid="o", subscription_id="sub_1", code="VALID", valid=True,
                                ttl=timedelta(hours=72), not_after=None, now=datetime.now(UTC))
    args.update(overrides)
    return keys.issue(**args)


def test_rfc7638_thumbprint_example():
    # The RSA example of RFC 7638 section 3.1.
    members = {
        "e": "AQAB",
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
             "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
             "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XP"
             "ksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }
    assert thumbprint(members) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_keys_newest_first_all_published_newest_signs():
    old, new = generate_pem(), generate_pem()
    keys = parse_keys(f"{new}\n\n{old}")
    assert len(keys) == 2 and keys[0].kid != keys[1].kid
    assert all(k.public_jwk["kty"] == "EC" and k.public_jwk["alg"] == "ES256" and "d" not in k.public_jwk for k in keys)
    lease_keys = LeaseKeys(keys, issuer="https://licensing.example")
    token, _ = _issue(lease_keys)
    assert jwt.get_unverified_header(token)["kid"] == keys[0].kid
    assert lease_keys.jwks()["keys"][1]["kid"] == keys[1].kid


def test_a_lease_signed_before_rotation_verifies_with_the_published_jwks():
    old, new = generate_pem(), generate_pem()
    before = LeaseKeys(parse_keys(old), issuer="https://licensing.example")
    token, _ = _issue(before)
    after = LeaseKeys(parse_keys(f"{new}\n\n{old}"), issuer="https://licensing.example")
    published = {k["kid"]: jwt.PyJWK(k) for k in after.jwks()["keys"]}
    key = published[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=LEASE_AUDIENCE)
    assert claims["sid"] == "sub_1" and claims["code"] == "VALID"
    # Once the old key is dropped, its leases no longer verify.
    with pytest.raises(jwt.InvalidTokenError):
        LeaseKeys(parse_keys(new), issuer="https://licensing.example").verify(token)


def test_ed25519_keys_sign_eddsa():
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    keys = LeaseKeys(parse_keys(pem), issuer="i")
    token, _ = _issue(keys)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert keys.verify(token)["oid"] == "o"
    assert keys.jwks()["keys"][0]["kty"] == "OKP"


def test_expiry_is_capped_by_not_after():
    keys = LeaseKeys(parse_keys(generate_pem()), issuer="i")
    now = datetime.now(UTC)
    _, expires = _issue(keys, now=now, not_after=now + timedelta(hours=5))
    assert expires == datetime.fromtimestamp(int((now + timedelta(hours=5)).timestamp()), tz=UTC)
    _, expires = _issue(keys, now=now, not_after=now + timedelta(days=30))
    assert expires == datetime.fromtimestamp(int((now + timedelta(hours=72)).timestamp()), tz=UTC)


@pytest.mark.parametrize("value", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_unusable_keys_are_refused_with_a_clear_error(value):
    with pytest.raises(LeaseKeyError, match="LEASE_SIGNING_KEYS"):
        parse_keys(value)


def test_other_curves_are_refused():
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(LeaseKeyError, match="P-256"):
        parse_keys(pem)


def test_flattened_newlines_are_accepted():
    pem = generate_pem()
    assert parse_keys(pem.replace("\n", "\\n"))[0].kid == parse_keys(pem)[0].kid


def test_without_a_configured_key_one_is_generated_once_and_kept(tmp_path):
    settings = load_settings(local_values(PUBLIC_BASE_URL="http://localhost:7123"))
    path = tmp_path / "lease.pem"
    first = keys_for(settings, generated_key_file=path)
    assert path.is_file()
    kid = first.current.kid
    # Another process (a restarted host) reads the same file.
    assert parse_keys(path.read_text())[0].kid == kid
    assert keys_for(settings, generated_key_file=path) is first


def test_a_configured_key_is_used_and_no_file_written(tmp_path):
    pem = generate_pem()
    settings = load_settings(local_values(LEASE_SIGNING_KEYS=pem))
    keys = keys_for(settings, generated_key_file=tmp_path / "never.pem")
    assert keys.current.kid == parse_keys(pem)[0].kid
    assert not (tmp_path / "never.pem").exists()


def test_a_lease_for_the_same_answer_is_handed_out_again_for_a_few_minutes():
    keys = LeaseKeys(parse_keys(generate_pem()), issuer="https://licensing.example")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def lease(at: datetime, code: str = "VALID") -> tuple[str, datetime]:
        return keys.lease(tid="t", oid="o", subscription_id="sub_1", code=code, valid=True,
                          ttl=timedelta(hours=72), not_after=None, now=at)

    first, expires = lease(now)
    assert lease(now + timedelta(minutes=4)) == (first, expires)
    # Another answer, or later than REUSE_FOR: a new lease.
    assert lease(now + timedelta(minutes=4), code="PAST_DUE_GRACE")[0] != first
    later, later_expires = lease(now + timedelta(minutes=6))
    assert later != first and later_expires > expires
    claims = jwt.decode(later, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 72 * 3600
