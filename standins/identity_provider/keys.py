"""RS256 signing keys, published as a JWKS the way Entra publishes its keys.

Keys are kept in the certificate directory so tokens minted before a restart still verify afterwards
(test fixtures and a developer's open session survive restarting the stand-in). Rotation keeps the old
public key in the JWKS, as Entra does during a rollover, so validators can be tested against a `kid`
they have not cached yet while old tokens stay valid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .cert import directory_lock, write_atomically

CURRENT_KEY_FILE = "signing-key.pem"
_RETIRED_PREFIX = "signing-key.retired."
_RETIRED_KEPT = 2  # how many earlier keys stay published after rotations


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def wrap(cls, private_key: rsa.RSAPrivateKey) -> SigningKey:
        return cls(kid=_thumbprint(private_key.public_key()), private_key=private_key)

    def jwk(self) -> dict:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64url_uint(numbers.n),
            "e": b64url_uint(numbers.e),
        }

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    # RFC 7638 thumbprint: the kid is stable for a key across restarts and derived, not invented.
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": b64url_uint(numbers.e), "kty": "RSA", "n": b64url_uint(numbers.n)},
        separators=(",", ":"), sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _new_key() -> SigningKey:
    return SigningKey.wrap(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _load(path: Path) -> SigningKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return SigningKey.wrap(key)


class KeyRing:
    """The current signing key plus recently retired ones that are still published."""

    def __init__(self, key_dir: str | os.PathLike | None = None):
        self._dir = Path(key_dir) if key_dir is not None else None
        self._lock = threading.Lock()
        if self._dir is None:
            self._current, self._retired = _new_key(), []
            return
        with directory_lock(self._dir):
            current_path = self._dir / CURRENT_KEY_FILE
            if not current_path.exists():
                write_atomically(current_path, _new_key().pem(), mode=0o600)
            self._current = _load(current_path)
            retired = sorted(
                self._dir.glob(_RETIRED_PREFIX + "*.pem"), key=lambda p: p.stat().st_mtime, reverse=True
            )
            self._retired = [_load(p) for p in retired[:_RETIRED_KEPT]]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._current

    def published(self) -> list[SigningKey]:
        with self._lock:
            return [self._current, *self._retired]

    def find(self, kid: str) -> SigningKey | None:
        return next((k for k in self.published() if k.kid == kid), None)

    def jwks(self) -> dict:
        return {"keys": [k.jwk() for k in self.published()]}

    def rotate(self) -> SigningKey:
        """Make a new current key; the previous one stays in the JWKS."""
        new = _new_key()
        with self._lock:
            old = self._current
            if self._dir is not None:
                with directory_lock(self._dir):
                    write_atomically(self._dir / f"{_RETIRED_PREFIX}{old.kid}.pem", old.pem(), mode=0o600)
                    write_atomically(self._dir / CURRENT_KEY_FILE, new.pem(), mode=0o600)
                    for stale in sorted(
                        self._dir.glob(_RETIRED_PREFIX + "*.pem"), key=lambda p: p.stat().st_mtime
                    )[:-_RETIRED_KEPT]:
                        stale.unlink(missing_ok=True)
            self._current = new
            self._retired = [old, *self._retired][:_RETIRED_KEPT]
        return new
