"""Entra's token-signing keys, discovered from the authority and cached per process.

Why our own cache rather than PyJWT's `PyJWKClient`: the license check runs on every add-in start, so the
rules here matter more than convenience —

* keys stay cached for about a day (Entra publishes a new key weeks before signing with it);
* an unknown `kid` triggers a refetch, but at most once per cooldown for the whole process, so a burst of
  forged or stale tokens cannot turn into a burst of requests against Entra;
* a failed fetch never discards keys we already have, and surfaces as `KeySourceError` for the caller to
  turn into a rejected token rather than a 500;
* the issuer template comes from the same discovery document, so a local authority works unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

log = logging.getLogger(__name__)

KEY_LIFETIME_SECONDS = 24 * 3600
REFRESH_COOLDOWN_SECONDS = 5 * 60
# With nothing cached every request would fail anyway; retry sooner than the cooldown so a short outage at
# cold start does not reject tokens for five minutes, but still not on every request.
RETRY_AFTER_FAILURE_SECONDS = 10
FETCH_TIMEOUT_SECONDS = 5


class KeySourceError(Exception):
    """The discovery document or the JWKS could not be fetched or made no sense."""


class JsonFetcher(Protocol):
    def get_json(self, url: str) -> Any:
        """The parsed JSON body of a GET, or KeySourceError."""


class HttpJsonFetcher:
    """GET over `requests` with a short timeout.

    TLS trust follows requests' defaults, so REQUESTS_CA_BUNDLE (set for the local identity provider)
    applies here as it does to MSAL.
    """

    def __init__(self, timeout: float = FETCH_TIMEOUT_SECONDS):
        self.timeout = timeout

    def get_json(self, url: str) -> Any:
        import requests  # only when keys are (re)fetched: not on the import path of a cold start

        try:
            response = requests.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise KeySourceError(f"GET {url} failed: {exc}") from exc


@dataclass(frozen=True)
class _KeySet:
    issuer_template: str
    keys: Mapping[str, jwt.PyJWK]
    loaded_at: float


class SigningKeys:
    """The authority's issuer template and RS256 keys by `kid`; thread-safe, one per process."""

    def __init__(
        self,
        authority: str,
        fetcher: JsonFetcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        key_lifetime: float = KEY_LIFETIME_SECONDS,
        refresh_cooldown: float = REFRESH_COOLDOWN_SECONDS,
        retry_after_failure: float = RETRY_AFTER_FAILURE_SECONDS,
    ):
        self.discovery_url = authority.rstrip("/") + "/v2.0/.well-known/openid-configuration"
        self._fetcher = fetcher or HttpJsonFetcher()
        self._clock = clock
        self._key_lifetime = key_lifetime
        self._refresh_cooldown = refresh_cooldown
        self._retry_after_failure = retry_after_failure
        self._lock = threading.Lock()
        # Replaced as a whole, never mutated: readers on the fast path need no lock.
        self._current: _KeySet | None = None
        self._last_attempt: float | None = None

    def generation(self) -> object:
        """The key set in use (refreshed first if it is due): a validated token stays trusted while this
        is the same object (AccessTokenValidator's cache)."""
        return self._ensure_loaded()

    def issuer_template(self) -> str:
        """The discovery document's `issuer` (with `{tenantid}` for organizations/common)."""
        return self._ensure_loaded().issuer_template

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`, refetching once per cooldown if it is unknown; None if still unknown."""
        current = self._ensure_loaded()
        found = current.keys.get(kid)
        if found is not None:
            return found
        try:
            current = self._refresh(current)
        except KeySourceError as exc:
            # We hold keys, just not this one: the token is unknown, not the key source broken.
            log.warning("signing-key refresh for unknown kid failed; keeping cached keys: %s", exc)
        return current.keys.get(kid)

    def _ensure_loaded(self) -> _KeySet:
        current = self._current
        if current is not None and self._clock() - current.loaded_at < self._key_lifetime:
            return current
        try:
            return self._refresh(current)
        except KeySourceError:
            if current is None:
                raise
            log.warning("signing keys are older than %ss and could not be refreshed; still using them",
                        self._key_lifetime, exc_info=True)
            return current

    def _refresh(self, seen: _KeySet | None) -> _KeySet:
        """Fetch discovery and JWKS unless another thread did, or the cooldown forbids it.

        `seen` is the key set the caller looked at: if it has been replaced meanwhile, the newer one is
        the answer and nothing is fetched. Callers wait on the lock instead of fetching in parallel.
        """
        with self._lock:
            current = self._current
            if current is not None and current is not seen:  # replaced meanwhile (only ever by a loaded set)
                return current
            now = self._clock()
            wait = self._refresh_cooldown if current is not None else self._retry_after_failure
            if self._last_attempt is not None and now - self._last_attempt < wait:
                if current is None:
                    raise KeySourceError("signing keys unavailable (last fetch failed; retrying shortly)")
                return current
            self._last_attempt = now
            loaded = self._fetch(now)
            self._current = loaded
            log.info("loaded %d signing keys from %s", len(loaded.keys), self.discovery_url)
            return loaded

    def _fetch(self, now: float) -> _KeySet:
        discovery = self._fetcher.get_json(self.discovery_url)
        if not isinstance(discovery, dict):
            raise KeySourceError("discovery document is not a JSON object")
        issuer, jwks_uri = discovery.get("issuer"), discovery.get("jwks_uri")
        if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or not jwks_uri:
            raise KeySourceError("discovery document lacks issuer or jwks_uri")
        jwks = self._fetcher.get_json(jwks_uri)
        keys = _rs256_keys(jwks)
        if not keys:
            raise KeySourceError(f"no usable RS256 signing keys at {jwks_uri}")
        return _KeySet(issuer_template=issuer, keys=keys, loaded_at=now)


def _rs256_keys(jwks: Any) -> dict[str, jwt.PyJWK]:
    """RSA signature keys by kid; anything else in the set is ignored, not fatal."""
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(entries, list):
        raise KeySourceError("JWKS has no keys array")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        # Entra's keys carry no `alg`; one that names another algorithm is not for RS256 tokens.
        if not isinstance(kid, str) or not kid or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            # Binding the algorithm here means a key can only ever verify RS256, whatever a token claims.
            keys[kid] = jwt.PyJWK(entry, algorithm="RS256")
        except jwt.PyJWTError as exc:
            log.warning("ignoring unusable JWKS entry %s: %s", kid, exc)
    return keys
