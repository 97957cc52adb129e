"""Authorization codes and refresh tokens: the state between /authorize and /token.

Codes are single-use, bound to client_id, redirect_uri and the PKCE challenge, and expire after five
minutes, so the server's sign-in code meets the same failures it would meet against Entra (replayed
callback, stale callback, tampered verifier).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from .directory import User

CODE_LIFETIME = 300
REFRESH_LIFETIME = 24 * 3600


class GrantError(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthorizationCode:
    user: User
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float


@dataclass(frozen=True)
class RefreshGrant:
    user: User
    client_id: str
    scope: str
    auth_time: int
    expires_at: float


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class GrantStore:
    def __init__(self):
        self._lock = threading.Lock()
        self._codes: dict[str, AuthorizationCode] = {}
        self._redeemed: dict[str, float] = {}  # remembered until expiry to report replay precisely
        self._refresh: dict[str, RefreshGrant] = {}

    def issue_code(self, **fields) -> str:
        code = "0." + secrets.token_urlsafe(48)
        now = time.time()
        grant = AuthorizationCode(auth_time=int(now), expires_at=now + CODE_LIFETIME, **fields)
        with self._lock:
            self._purge(now)
            self._codes[code] = grant
        return code

    def redeem_code(self, code: str, client_id: str | None, redirect_uri: str | None,
                    code_verifier: str | None) -> AuthorizationCode:
        now = time.time()
        with self._lock:
            self._purge(now)
            if code in self._redeemed:
                raise GrantError("invalid_grant", "AADSTS54005: OAuth2 Authorization code was already redeemed, "
                                 "please retry with a new valid code or use an existing refresh token.")
            grant = self._codes.pop(code, None)
            if grant is None:
                raise GrantError("invalid_grant", "AADSTS70008: The provided authorization code or refresh "
                                 "token has expired or is not valid. Send a new interactive authorization request.")
            # Consumed even if the checks below fail: a code gets exactly one attempt, as in Entra.
            self._redeemed[code] = grant.expires_at
        if grant.expires_at < now:
            raise GrantError("invalid_grant", "AADSTS70008: The provided authorization code or refresh token "
                             "has expired due to inactivity. Send a new interactive authorization request.")
        if client_id != grant.client_id:
            raise GrantError("invalid_grant", "AADSTS700005: Provided Authorization Code is intended to use "
                             "against other tenant or application.")
        if redirect_uri != grant.redirect_uri:
            raise GrantError("invalid_grant", "AADSTS50148: The redirect_uri is not the same as the one used "
                             "in the authorization request.")
        if grant.code_challenge:
            if not code_verifier:
                raise GrantError("invalid_grant", "AADSTS50148: The code_verifier is required because a "
                                 "code_challenge was supplied in the authorization request for PKCE.")
            if not hmac.compare_digest(s256(code_verifier), grant.code_challenge):
                raise GrantError("invalid_grant", "AADSTS501481: The Code_Verifier does not match the "
                                 "code_challenge supplied in the authorization request.")
        return grant

    def issue_refresh_token(self, user: User, client_id: str, scope: str, auth_time: int) -> str:
        token = "1." + secrets.token_urlsafe(64)
        grant = RefreshGrant(user, client_id, scope, auth_time, time.time() + REFRESH_LIFETIME)
        with self._lock:
            self._refresh[token] = grant
        return token

    def redeem_refresh_token(self, token: str, client_id: str | None) -> RefreshGrant:
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None or grant.expires_at < time.time():
            raise GrantError("invalid_grant", "AADSTS70008: The provided authorization code or refresh token "
                             "has expired due to inactivity. Send a new interactive authorization request.")
        if client_id != grant.client_id:
            raise GrantError("invalid_grant", "AADSTS700005: The refresh token was issued to a different "
                             "client.")
        return grant

    def _purge(self, now: float) -> None:
        for code in [c for c, g in self._codes.items() if g.expires_at < now - CODE_LIFETIME]:
            del self._codes[code]
        for code in [c for c, exp in self._redeemed.items() if exp < now]:
            del self._redeemed[code]


class ConsentStore:
    """Admin consent per tenant and application: what Entra keeps as the application's service
    principal in the tenant. Granted by /adminconsent; until then client credentials for the
    application in that tenant are refused (AADSTS700016), as in Entra."""

    def __init__(self):
        self._lock = threading.Lock()
        self._granted: dict[tuple[str, str], float] = {}  # (tenant id, client id) -> when

    def grant(self, tenant_id: str, client_id: str) -> None:
        with self._lock:
            self._granted.setdefault((tenant_id.lower(), client_id.lower()), time.time())

    def revoke(self, tenant_id: str, client_id: str) -> bool:
        with self._lock:
            return self._granted.pop((tenant_id.lower(), client_id.lower()), None) is not None

    def granted(self, tenant_id: str, client_id: str) -> bool:
        with self._lock:
            return (tenant_id.lower(), client_id.lower()) in self._granted

    def all(self) -> list[dict]:
        with self._lock:
            items = sorted(self._granted.items())
        return [{"tenant": t, "client_id": c, "granted_at": int(at)} for (t, c), at in items]
