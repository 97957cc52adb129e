"""License leases: short-lived JWTs signed by this server's own key, verifiable by the add-in offline.

A lease says "this person (`tid`, `oid`) held a license of this code in this subscription until `exp`".
The add-in caches it and keeps working while the server cannot be reached (PRODUCT.md capability 7).

Keys: `LEASE_SIGNING_KEYS` holds PEM private keys (EC P-256 for ES256, or Ed25519 for EdDSA), newest
first, separated by blank lines. The newest signs; all of them are published at `/api/license/keys` so a
lease signed before a rotation still verifies until it expires. To rotate: put the new key first, keep the
old one second for at least LEASE_TTL_HOURS, then drop it.

No key configured (the settings refuse that outside local development): one is generated on first use
and kept in `.data/lease-signing-key.pem`, so leases survive restarts of a developer's host. Which case
applies depends only on whether a key is configured, never on the environment name.

`kid` is the RFC 7638 JWK thumbprint of the public key: stable, derived from the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from services.settings import APP_ROOT, Settings

# Where a generated key is kept when none is configured.
GENERATED_KEY_FILE = APP_ROOT / ".data" / "lease-signing-key.pem"
# `aud` of every lease: a lease is for the add-in, never an access token for anything else.
LEASE_AUDIENCE = "securemailmerge-addin"
LEASE_TYPE = "license-lease+jwt"

# How long a signed lease is handed out again for the same answer (LeaseKeys.lease), and how many are kept.
REUSE_FOR = timedelta(minutes=5)
_MAX_RECENT = 50_000

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)


class LeaseKeyError(RuntimeError):
    """LEASE_SIGNING_KEYS cannot be used (not a PEM private key, unsupported curve)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    private_key: Any
    alg: str  # "ES256" | "EdDSA"
    public_jwk: dict[str, str]  # with kid, alg, use

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    @classmethod
    def from_private_key(cls, private_key: Any) -> SigningKey:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise LeaseKeyError(f"EC lease keys must use P-256, not {private_key.curve.name}")
            numbers = private_key.public_key().public_numbers()
            members = {
                "crv": "P-256",
                "kty": "EC",
                "x": _b64url(numbers.x.to_bytes(32, "big")),
                "y": _b64url(numbers.y.to_bytes(32, "big")),
            }
            alg = "ES256"
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
            alg = "EdDSA"
        else:
            raise LeaseKeyError("lease keys must be EC P-256 (ES256) or Ed25519 (EdDSA) private keys")
        return cls(private_key, alg, {**members, "kid": thumbprint(members), "alg": alg, "use": "sig"})


def thumbprint(members: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace; base64url."""
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return _b64url(hashlib.sha256(canonical).digest())


def parse_keys(pems: str) -> list[SigningKey]:
    """Every PEM private key in `pems`, in order (newest first)."""
    # Some secret stores flatten newlines to a literal "\n".
    text = pems.replace("\\n", "\n")
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(text)]
    if not blocks:
        raise LeaseKeyError("LEASE_SIGNING_KEYS holds no PEM private key")
    keys = []
    for number, block in enumerate(blocks, start=1):
        try:
            private_key = serialization.load_pem_private_key(block.encode("ascii"), password=None)
        except (ValueError, TypeError) as exc:
            raise LeaseKeyError(f"LEASE_SIGNING_KEYS: key {number} is not a readable unencrypted private key") from exc
        keys.append(SigningKey.from_private_key(private_key))
    return keys


def generate_pem() -> str:
    """A new EC P-256 private key as PKCS#8 PEM (for LEASE_SIGNING_KEYS or the local key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _generated_key_pem(path: Path) -> str:
    """The key kept in `path`, created once; concurrent first starts agree on one key."""
    if path.is_file():
        return path.read_text(encoding="ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generate_pem())
    try:
        os.link(temp, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii")


class LeaseKeys:
    """The keys of one configuration: the first signs, all are published."""

    def __init__(self, keys: list[SigningKey], issuer: str):
        if not keys:
            raise LeaseKeyError("no lease signing key")
        self.keys = keys
        self.issuer = issuer
        self._by_kid = {key.kid: key for key in keys}
        # Leases issued in the last REUSE_FOR, by what they say: the add-in checks at every start, and a
        # lease a few minutes old says the same as a new one (see `lease`).
        self._recent: dict[tuple[Any, ...], tuple[float, str, datetime]] = {}

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(key.public_jwk) for key in self.keys]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.current
        headers = {"kid": key.kid, "typ": LEASE_TYPE}
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=headers)

    def issue(
        self,
        *,
        tid: str,
        oid: str,
        subscription_id: str,
        code: str,
        valid: bool,
        ttl: timedelta,
        not_after: datetime | None,
        now: datetime | None = None,
    ) -> tuple[str, datetime]:
        """A signed lease and its expiry: `ttl` from now, never beyond `not_after`."""
        now = now or datetime.now(UTC)
        expires = now + ttl
        if not_after is not None and not_after < expires:
            expires = max(not_after, now)
        exp = int(expires.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": LEASE_AUDIENCE,
            "sub": oid,
            "tid": tid,
            "oid": oid,
            "sid": subscription_id,
            "code": code,
            "valid": valid,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        return self.sign(claims), datetime.fromtimestamp(exp, tz=UTC)

    def lease(
        self,
        *,
        tid: str,
        oid: str,
        subscription_id: str,
        code: str,
        valid: bool,
        ttl: timedelta,
        not_after: datetime | None,
        now: datetime | None = None,
    ) -> tuple[str, datetime]:
        """Like `issue`, but the lease issued for the same answer within the last REUSE_FOR is handed
        out again instead of signing a new one: its expiry is at most REUSE_FOR earlier, and signing
        is a good part of a license check's own work."""
        now = now or datetime.now(UTC)
        key = (tid, oid, subscription_id, code, valid, ttl, not_after)
        recent = self._recent.get(key)
        stamp = now.timestamp()
        if recent is not None and 0 <= stamp - recent[0] < REUSE_FOR.total_seconds():
            return recent[1], recent[2]
        token, expires = self.issue(tid=tid, oid=oid, subscription_id=subscription_id, code=code, valid=valid,
                                    ttl=ttl, not_after=not_after, now=now)
        if len(self._recent) >= _MAX_RECENT:
            self._recent.clear()
        self._recent[key] = (stamp, token, expires)
        return token, expires

    def verify(self, token: str, leeway: int = 0) -> dict[str, Any]:
        """The claims of a lease signed by one of these keys (what the add-in does with the JWKS)."""
        header = jwt.get_unverified_header(token)
        key = self._by_kid.get(header.get("kid", ""))
        if key is None:
            raise jwt.InvalidTokenError("unknown lease key")
        return jwt.decode(
            token, key.private_key.public_key(), algorithms=[key.alg], audience=LEASE_AUDIENCE,
            issuer=self.issuer, leeway=leeway,
        )


_lock = threading.Lock()
_cache: dict[tuple[str | None, str, str], LeaseKeys] = {}


def keys_for(settings: Settings, generated_key_file: Path = GENERATED_KEY_FILE) -> LeaseKeys:
    """The process-wide keys for these settings (parsed once, not per request)."""
    cache_key = (settings.lease_signing_keys, settings.public_base_url, str(generated_key_file))
    keys = _cache.get(cache_key)
    if keys is None:
        with _lock:
            keys = _cache.get(cache_key)
            if keys is None:
                pems = settings.lease_signing_keys or _generated_key_pem(generated_key_file)
                keys = _cache[cache_key] = LeaseKeys(parse_keys(pems), issuer=settings.public_base_url)
    return keys
