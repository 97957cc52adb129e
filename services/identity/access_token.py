"""Validating Entra ID access tokens: the Outlook add-in's, and scripts calling the JSON API.

The rules are PRODUCT.md section 3: RS256 only, key by `kid` from the authority's JWKS, v1 and v2 issuers
templated with the token's `tid`, audience = the API's client id or App ID URI, `scp` contains the API
scope, a minute or two of clock skew. A person is (`tid`, `oid`); the sign-in names only help match a
seat's e-mail address on first use.

Nothing here depends on the environment: local development points `ENTRA_AUTHORITY` at the local identity
provider and everything else is the same code path.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from services.identity.signing_keys import JsonFetcher, KeySourceError, SigningKeys
from services.settings import Settings

log = logging.getLogger(__name__)

# The tenant of personal Microsoft accounts (outlook.com, live.com): not an organisation that can buy.
PERSONAL_ACCOUNTS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Entra tokens are a few KB; refusing giants early keeps base64/JSON parsing of junk cheap.
_MAX_TOKEN_LENGTH = 16 * 1024
# Accepted tokens remembered per validator (one per add-in user for about an hour: a busy instance's users).
_MAX_ACCEPTED = 50_000
_V2_TENANT_PLACEHOLDER = "{tenantid}"
_V1_TENANT_PLACEHOLDER = "{tid}"


class InvalidToken(Exception):
    """The token was not accepted. `reason` is for programs, `description` (also str()) for people.

    Descriptions are fixed phrases, never claim values from the token: they go back to the caller in a
    response header.
    """

    def __init__(self, reason: str, description: str):
        super().__init__(description)
        self.reason = reason
        self.description = description


@dataclass(frozen=True)
class Principal:
    """The caller proven by a valid access token."""

    tid: str
    oid: str
    scopes: frozenset[str]
    version: str  # "1.0" or "2.0"
    name: str | None = None
    preferred_username: str | None = None
    upn: str | None = None
    email: str | None = None
    unique_name: str | None = None

    def sign_in_addresses(self) -> frozenset[str]:
        """Lower-cased addresses a seat's assigned e-mail may match (PRODUCT.md section 3).

        All four claims count because a tenant's sign-in names often differ from mail addresses. This is
        only ever used together with `tid`: an address alone never identifies a person.
        """
        values = (self.preferred_username, self.upn, self.email, self.unique_name)
        return frozenset(v.strip().lower() for v in values if v and "@" in v)


@dataclass(frozen=True)
class TokenRules:
    """What a token must satisfy, taken from settings once."""

    audiences: tuple[str, ...]
    scope: str | None  # None: no `scp` needed (ID tokens carry none)
    v1_issuer_template: str
    allow_personal_accounts: bool
    clock_skew_seconds: int
    versions: tuple[str, ...] = ("1.0", "2.0")

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRules:
        """Access tokens for this API: the add-in's and scripts'."""
        return cls(
            audiences=tuple(settings.api_audiences),
            scope=settings.api_scope,
            v1_issuer_template=settings.entra_v1_issuer_template,
            allow_personal_accounts=settings.allow_personal_accounts,
            clock_skew_seconds=settings.token_clock_skew_seconds,
        )

    @classmethod
    def for_id_tokens(cls, settings: Settings) -> TokenRules:
        """ID tokens from the dashboard's sign-in: issued to our own client id by the v2.0 endpoint."""
        return cls(
            audiences=(settings.entra_client_id,),
            scope=None,
            v1_issuer_template=settings.entra_v1_issuer_template,
            allow_personal_accounts=settings.allow_personal_accounts,
            clock_skew_seconds=settings.token_clock_skew_seconds,
            versions=("2.0",),
        )


class AccessTokenValidator:
    """Checks Entra-signed JWTs against one authority and one set of rules.

    Access tokens by default; ID tokens with `TokenRules.for_id_tokens`. Get it from `validator_for` /
    `id_token_validator_for` rather than constructing it per request: it holds the key cache.
    """

    def __init__(self, rules: TokenRules, keys: SigningKeys):
        self.rules = rules
        self.keys = keys
        # Tokens this validator accepted, until they expire: the add-in sends the same token for about an
        # hour, and checking its signature and claims again each time is most of a license check's own
        # work. Only an accepted token is remembered, with its time window and the key set it was checked
        # against: when the keys are refreshed (daily, or for an unknown kid), it is checked again.
        self._accepted: dict[str, tuple[Principal, float, float, object]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, fetcher: JsonFetcher | None = None,
                      clock: Callable[[], float] | None = None) -> AccessTokenValidator:
        keys = (SigningKeys(settings.entra_authority, fetcher) if clock is None
                else SigningKeys(settings.entra_authority, fetcher, clock=clock))
        return cls(TokenRules.from_settings(settings), keys)

    def validate(self, token: str) -> Principal:
        """The Principal of a valid token, or InvalidToken saying why not."""
        accepted = self._accepted.get(token)
        if accepted is not None:
            principal, not_before, expires, generation = accepted
            skew = self.rules.clock_skew_seconds
            if not_before - skew <= time.time() < expires + skew and generation is self.keys.generation():
                return principal
        principal, claims = self._validated(token)
        generation = self.keys.generation()
        if len(self._accepted) >= _MAX_ACCEPTED:
            self._accepted.clear()  # a burst of new people: start over rather than track ages
        nbf = claims.get("nbf")
        self._accepted[token] = (principal, float(nbf) if isinstance(nbf, int | float) else 0.0,
                                 float(claims["exp"]), generation)
        return principal

    def _validated(self, token: str) -> tuple[Principal, dict[str, Any]]:
        header = _header(token)
        key = self._signing_key(header)
        claims = self._verified_claims(token, key)
        tid = _tenant(claims)
        self._check_issuer(claims, tid)
        oid = claims["oid"]
        if not isinstance(oid, str) or not _GUID.match(oid):
            raise InvalidToken("invalid_claim", "object id (oid) is not a GUID")
        scopes = _scopes(claims)
        if self.rules.scope is not None and self.rules.scope not in scopes:
            raise InvalidToken("scope_missing", f"scope {self.rules.scope} missing")
        return Principal(
            tid=tid.lower(),
            oid=oid.lower(),
            scopes=scopes,
            version=claims["ver"],
            name=_optional_str(claims, "name"),
            preferred_username=_optional_str(claims, "preferred_username"),
            upn=_optional_str(claims, "upn"),
            email=_optional_str(claims, "email"),
            unique_name=_optional_str(claims, "unique_name"),
        ), claims

    def _signing_key(self, header: dict[str, Any]) -> jwt.PyJWK:
        # Checked before any key lookup so that alg=none / HS256 tokens cannot trigger JWKS refetches.
        if header.get("alg") != "RS256":
            raise InvalidToken("unsupported_algorithm", "token must be signed with RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("unknown_signing_key", "token names no signing key (kid)")
        try:
            key = self.keys.key(kid)
        except KeySourceError as exc:
            log.error("cannot validate access tokens, signing keys unavailable: %s", exc)
            raise InvalidToken("signing_keys_unavailable", "signing keys unavailable, try again later") from exc
        if key is None:
            raise InvalidToken("unknown_signing_key", "unknown signing key")
        return key

    def _verified_claims(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=list(self.rules.audiences),
                leeway=self.rules.clock_skew_seconds,
                options={"require": ["exp", "iss", "aud", "tid", "oid", "ver"],
                         "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token_expired", "token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("token_not_yet_valid", "token not yet valid") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("bad_signature", "signature verification failed") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("audience_not_accepted", "audience not accepted") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken("missing_claim", f"claim {exc.claim} missing") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise InvalidToken("unsupported_algorithm", "token must be signed with RS256") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed_token", "token is malformed") from exc
        except jwt.PyJWTError as exc:
            # E.g. InvalidKeyError for a published key shorter than 2048 bits: not the caller's fault,
            # but the token cannot be trusted either.
            log.warning("access token not verifiable with key %s: %s", key.key_id, exc)
            raise InvalidToken("bad_signature", "signature verification failed") from exc
        # PyJWT accepts a list of audiences; Entra issues exactly one, so anything else was not made by it.
        if not isinstance(claims["aud"], str):
            raise InvalidToken("audience_not_accepted", "audience not accepted")
        return claims

    def _check_issuer(self, claims: dict[str, Any], tid: str) -> None:
        version = claims["ver"]
        template = self.keys.issuer_template()
        if version not in self.rules.versions:
            raise InvalidToken("unsupported_version", "token version not accepted")
        if version == "2.0":
            expected = template.replace(_V2_TENANT_PLACEHOLDER, tid)
        else:  # "1.0"
            expected = self.rules.v1_issuer_template.replace(_V1_TENANT_PLACEHOLDER, tid)
        if claims["iss"] != expected:
            raise InvalidToken("issuer_mismatch", "issuer does not match tenant")
        # A single-tenant authority publishes a literal issuer naming its tenant. v2 tokens are held to it
        # by the comparison above, but the v1 template comes from settings: without this, a v1 token from
        # any tenant would pass.
        if _V2_TENANT_PLACEHOLDER not in template and tid.lower() not in _path_segments(template):
            raise InvalidToken("issuer_mismatch", "issuer does not match tenant")
        if tid.lower() == PERSONAL_ACCOUNTS_TENANT and not self.rules.allow_personal_accounts:
            raise InvalidToken("personal_account", "personal Microsoft accounts are not accepted")


def _header(token: Any) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken("malformed_token", "token is malformed")
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("malformed_token", "token is malformed") from exc


def _tenant(claims: dict[str, Any]) -> str:
    tid = claims["tid"]
    if not isinstance(tid, str) or not _GUID.match(tid):
        raise InvalidToken("invalid_tenant", "tenant id (tid) is not a GUID")
    return tid


def _path_segments(url: str) -> list[str]:
    return urlsplit(url).path.lower().split("/")


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scp = claims.get("scp")
    return frozenset(scp.split()) if isinstance(scp, str) else frozenset()


def _optional_str(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


_lock = threading.Lock()
_keys_by_authority: dict[str, SigningKeys] = {}
_validators: dict[tuple[str, TokenRules], AccessTokenValidator] = {}


def _shared_validator(authority: str, rules: TokenRules) -> AccessTokenValidator:
    # One key cache per authority, shared by the access- and ID-token validators: Entra signs both with
    # the same keys, and two caches would mean twice the fetches. Keyed by values, not by Settings (which
    # holds lists and is not hashable); a test with other settings gets its own entries.
    with _lock:
        validator = _validators.get((authority, rules))
        if validator is None:
            keys = _keys_by_authority.get(authority)
            if keys is None:
                keys = _keys_by_authority[authority] = SigningKeys(authority)
            validator = _validators[(authority, rules)] = AccessTokenValidator(rules, keys)
        return validator


_last_validator: tuple[Settings, AccessTokenValidator] | None = None


def validator_for(settings: Settings) -> AccessTokenValidator:
    """The process-wide validator of this API's access tokens; its key cache stays warm across requests."""
    global _last_validator
    last = _last_validator
    if last is not None and last[0] is settings:  # the settings of this process: every request
        return last[1]
    validator = _shared_validator(settings.entra_authority, TokenRules.from_settings(settings))
    _last_validator = (settings, validator)
    return validator


def id_token_validator_for(settings: Settings) -> AccessTokenValidator:
    """The process-wide validator of dashboard sign-in ID tokens (audience: ENTRA_CLIENT_ID, no scope)."""
    return _shared_validator(settings.entra_authority, TokenRules.for_id_tokens(settings))
