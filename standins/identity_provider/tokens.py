"""Entra-shaped ID and access tokens.

Claims follow Microsoft's documented v2.0 ID token and v1.0/v2.0 access token references closely
enough that the server's validator (RS256, kid, templated issuer, aud, scp, tid/oid) and MSAL's token
cache (client_info, id_token claims) behave as they would against Entra.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass

import jwt

from .directory import User
from .keys import KeyRing

# Entra's well-known application id of Microsoft Graph: the audience of a token for plain sign-in.
GRAPH_RESOURCE = "00000003-0000-0000-c000-000000000000"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEFAULT_LIFETIME = 3600
V1_ISSUER_TEMPLATE = "https://sts.windows.net/{tid}/"


class ScopeError(ValueError):
    pass


@dataclass(frozen=True)
class RequestedScopes:
    """A scope string split the way Entra splits it: one resource per token."""

    resource: str              # the access token's audience
    names: tuple[str, ...]     # bare scope names for `scp`
    oidc: frozenset[str]       # openid/profile/email/offline_access that were asked for
    granted: str               # the `scope` value echoed in the token response

    @classmethod
    def parse(cls, scope: str) -> RequestedScopes:
        requested = scope.split()
        oidc = frozenset(s for s in requested if s in OIDC_SCOPES)
        resources: dict[str, list[str]] = {}
        for item in requested:
            if item in OIDC_SCOPES:
                continue
            if "/" in item:
                # "api://<client-id>/access_as_user" -> resource "api://<client-id>", scope "access_as_user"
                resource, _, name = item.rpartition("/")
            else:
                resource, name = GRAPH_RESOURCE, item  # "User.Read" means Graph, as in Entra
            if resource.lower() in ("https://graph.microsoft.com", GRAPH_RESOURCE):
                resource = GRAPH_RESOURCE
            resources.setdefault(resource, []).append(name)
        if len(resources) > 1:
            raise ScopeError(
                "AADSTS28000: Provided value for the input parameter scope is not valid because it "
                "contains more than one resource. Scope " + scope + " is not valid."
            )
        if not resources:
            return cls(GRAPH_RESOURCE, ("openid", "profile", "email"), oidc, " ".join(requested))
        resource, names = next(iter(resources.items()))
        # ".default" means "whatever was consented"; the stand-in has no consent store, so it grants
        # no named scope (validators that require scp then reject it, which is the honest outcome).
        scp = tuple(n for n in names if n != ".default")
        return cls(resource, scp, oidc, " ".join(requested))


def b64url_json(value: dict) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def pairwise_subject(user: User, app_id: str) -> str:
    # Entra's `sub` is unique per user *and* application, unlike `oid`; mimic that so nobody keys on it.
    digest = hashlib.sha256(f"{user.tenant_id}:{user.oid}:{app_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class TokenIssuer:
    def __init__(self, keys: KeyRing, base_url: str, v1_issuer_template: str = V1_ISSUER_TEMPLATE):
        self.keys = keys
        self.base_url = base_url.rstrip("/")
        self.v1_issuer_template = v1_issuer_template

    def v2_issuer(self, tenant_id: str) -> str:
        return f"{self.base_url}/{tenant_id}/v2.0"

    def v1_issuer(self, tenant_id: str) -> str:
        return self.v1_issuer_template.format(tid=tenant_id)

    def sign(self, claims: dict, headers: dict | None = None) -> str:
        key = self.keys.current
        header = {"typ": "JWT", "kid": key.kid, **(headers or {})}
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers=header)

    def client_info(self, user: User) -> str:
        # MSAL builds its home_account_id ("<uid>.<utid>") from this; without it the cache misbehaves.
        return b64url_json({"uid": user.oid, "utid": user.tenant_id})

    def id_token(
        self,
        user: User,
        client_id: str,
        nonce: str | None = None,
        auth_time: int | None = None,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> str:
        now = int(time.time())
        claims = {
            "ver": "2.0",
            "iss": self.v2_issuer(user.tenant_id),
            "sub": pairwise_subject(user, client_id),
            "aud": client_id,
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "auth_time": auth_time or now,
            "name": user.name,
            "preferred_username": user.preferred_username,
            "oid": user.oid,
            "tid": user.tenant_id,
            "uti": uuid.uuid4().hex,
        }
        if user.email:
            claims["email"] = user.email
        if nonce is not None:
            claims["nonce"] = nonce
        return self.sign(claims)

    def access_token_claims(
        self,
        user: User,
        client_id: str,
        audience: str,
        scp: tuple[str, ...] | list[str],
        ver: int = 2,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> dict:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "name": user.name,
            "oid": user.oid,
            "sub": pairwise_subject(user, audience),
            "tid": user.tenant_id,
            "uti": uuid.uuid4().hex,
        }
        if scp:
            claims["scp"] = " ".join(scp)
        if user.email:
            claims["email"] = user.email
        if ver == 1:
            # v1 tokens carry the sign-in name as upn/unique_name instead of preferred_username.
            claims.update(
                ver="1.0",
                iss=self.v1_issuer(user.tenant_id),
                appid=client_id,
                appidacr="1",
                upn=user.preferred_username,
                unique_name=user.preferred_username,
            )
        elif ver == 2:
            claims.update(
                ver="2.0",
                iss=self.v2_issuer(user.tenant_id),
                azp=client_id,
                azpacr="1",
                preferred_username=user.preferred_username,
            )
        else:
            raise ValueError("ver must be 1 or 2")
        return claims

    def access_token(self, user: User, client_id: str, audience: str, scp, ver: int = 2,
                     lifetime: int = DEFAULT_LIFETIME) -> str:
        return self.sign(self.access_token_claims(user, client_id, audience, scp, ver, lifetime))

    def app_token(self, tenant_id: str, client_id: str, audience: str, lifetime: int = DEFAULT_LIFETIME) -> str:
        """An app-only access token (client credentials): the application's service principal in the
        tenant is the subject; no user, no `scp`."""
        now = int(time.time())
        principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"service-principal:{tenant_id}:{client_id}"))
        return self.sign({
            "aud": audience, "iss": self.v2_issuer(tenant_id), "iat": now, "nbf": now, "exp": now + lifetime,
            "azp": client_id, "azpacr": "1", "idtyp": "app", "oid": principal, "sub": principal,
            "tid": tenant_id, "uti": uuid.uuid4().hex, "ver": "2.0",
        })
