"""Calls to a running stand-in's test helpers (/_admin/...), for scripts and tests.

`verify` is passed per request on purpose: requests lets REQUESTS_CA_BUNDLE override a Session's
`verify`, but not a per-request one. Pass the stand-in's cert.pem (or ca-bundle.pem), or leave it None
to rely on REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

from typing import Any

import requests

_TIMEOUT = 10


def _call(method: str, base_url: str, path: str, verify, json: dict | None = None) -> Any:
    response = requests.request(method, base_url.rstrip("/") + path, json=json, verify=verify, timeout=_TIMEOUT)
    if response.status_code >= 400:
        try:
            detail = response.json().get("error_description", response.text)
        except ValueError:
            detail = response.text
        raise RuntimeError(f"identity provider {method} {path} failed ({response.status_code}): {detail}")
    return response.json()


def issue_token_response(
    base_url: str,
    user: str,
    *,
    tenant: str | None = None,
    audience: str | None = None,
    scope: str | None = None,
    ver: int = 2,
    lifetime: int | None = None,
    client_id: str | None = None,
    headers: dict | None = None,
    claims: dict | None = None,
    verify: Any = None,
) -> dict:
    """Like issue_token, but returns {"access_token", "claims", "kid", "user"}."""
    spec: dict[str, Any] = {"user": user, "ver": ver}
    for name, value in (("tenant", tenant), ("audience", audience), ("scope", scope),
                        ("lifetime", lifetime), ("client_id", client_id), ("headers", headers),
                        ("claims", claims)):
        if value is not None:
            spec[name] = value
    return _call("POST", base_url, "/_admin/token", verify, spec)


def issue_token(
    base_url: str,
    user: str,
    *,
    tenant: str | None = None,
    audience: str | None = None,
    scope: str | None = None,
    ver: int = 2,
    lifetime: int | None = None,
    client_id: str | None = None,
    headers: dict | None = None,
    claims: dict | None = None,
    verify: Any = None,
    **overrides: Any,
) -> str:
    """An access token for `user` (sign-in name, oid or unambiguous e-mail), signed by the provider's key.

    `scope` holds bare names ("access_as_user") when `audience` is given, or full scopes
    ("api://<client-id>/access_as_user") from which the audience is derived. Claim overrides come as
    keyword arguments or `claims=` (for names that clash with parameters, such as "ver" or "scope"); a
    value of None removes the claim. `headers` overrides JWT header fields, e.g. {"kid": "unknown"}.

        issue_token(url, "alice@contoso.example", audience="api://<id>", exp=int(time.time()) - 300)
    """
    return issue_token_response(
        base_url, user, tenant=tenant, audience=audience, scope=scope, ver=ver, lifetime=lifetime,
        client_id=client_id, headers=headers, claims={**(claims or {}), **overrides} or None, verify=verify,
    )["access_token"]


def add_user(base_url: str, tenant: str, name: str, preferred_username: str, *, email: str | None = None,
             oid: str | None = None, admin: bool = False, verify: Any = None) -> dict:
    return _call("POST", base_url, "/_admin/users", verify, {
        "tenant": tenant, "name": name, "preferred_username": preferred_username, "email": email,
        "oid": oid, "admin": admin,
    })


def list_users(base_url: str, verify: Any = None) -> list[dict]:
    return _call("GET", base_url, "/_admin/users", verify)["users"]


def rotate_key(base_url: str, verify: Any = None) -> dict:
    """Make a new current signing key; returns {"kid", "published"}."""
    return _call("POST", base_url, "/_admin/rotate-key", verify)


def jwks(base_url: str, tenant: str = "organizations", verify: Any = None) -> dict:
    return _call("GET", base_url, f"/{tenant}/discovery/v2.0/keys", verify)


def grant_consent(base_url: str, tenant: str, client_id: str, verify: Any = None) -> dict:
    """Record admin consent for `client_id` in `tenant`, as an administrator's /adminconsent would."""
    return _call("POST", base_url, "/_admin/consents", verify, {"tenant": tenant, "client_id": client_id})


def revoke_consent(base_url: str, tenant: str, client_id: str, verify: Any = None) -> bool:
    """Forget the consent (the service principal deleted): client credentials are refused again."""
    return bool(_call("POST", base_url, "/_admin/consents/revoke", verify,
                      {"tenant": tenant, "client_id": client_id})["revoked"])
