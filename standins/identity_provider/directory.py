"""Tenants, users and (optional) app registrations of the stand-in directory.

The built-in directory covers the identity cases the licensing rules care about (PRODUCT.md section 3):
two tenants, an admin per tenant for admin consent, a user whose sign-in name differs from their mail
address, and a user in another tenant whose `email` claim equals a contoso user's address (spoofing).
Object ids are fixed so tests and docs can refer to them.

A users file (JSON) replaces the built-in directory; it has the same shape as DEFAULT_DIRECTORY:
  {"tenants": [{"id": GUID, "name": "contoso", "display_name": "...",
                "users": [{"oid", "name", "preferred_username", "email"?, "admin"?}]}],
   "clients": [{"client_id", "client_secret"?, "redirect_uris"?}]}
Clients are optional: an unregistered client_id is accepted with any secret and redirect URI, which is
what local development wants; a registered one is checked like Entra would.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

MULTI_TENANT_SEGMENTS = ("organizations", "common")

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

CONTOSO_ID = "11111111-1111-1111-1111-111111111111"
FABRIKAM_ID = "22222222-2222-2222-2222-222222222222"

DEFAULT_DIRECTORY = {
    "tenants": [
        {
            "id": CONTOSO_ID,
            "name": "contoso",
            "display_name": "Contoso",
            "users": [
                {"oid": "10000000-0000-4000-8000-000000000001", "name": "Contoso Admin",
                 "preferred_username": "admin@contoso.example", "email": "admin@contoso.example",
                 "admin": True},
                {"oid": "10000000-0000-4000-8000-000000000002", "name": "Alice Anders",
                 "preferred_username": "alice@contoso.example", "email": "alice@contoso.example"},
                {"oid": "10000000-0000-4000-8000-000000000003", "name": "Bob Berg",
                 "preferred_username": "bob@contoso.example", "email": "bob@contoso.example"},
                # Sign-in name differs from the mail address: license matching must look at both.
                {"oid": "10000000-0000-4000-8000-000000000004", "name": "Claire Dupont",
                 "preferred_username": "c.dupont@contoso.onmicrosoft.example",
                 "email": "claire.dupont@contoso.example"},
            ],
        },
        {
            "id": FABRIKAM_ID,
            "name": "fabrikam",
            "display_name": "Fabrikam",
            "users": [
                {"oid": "20000000-0000-4000-8000-000000000001", "name": "Fabrikam Admin",
                 "preferred_username": "admin@fabrikam.example", "email": "admin@fabrikam.example",
                 "admin": True},
                # Claims contoso Alice's address as `email` from another tenant: must get NO_LICENSE.
                {"oid": "20000000-0000-4000-8000-000000000002", "name": "Alice Impostor",
                 "preferred_username": "alice.impostor@fabrikam.example",
                 "email": "alice@contoso.example"},
                {"oid": "20000000-0000-4000-8000-000000000003", "name": "Eve Evans",
                 "preferred_username": "eve@fabrikam.example", "email": "eve@fabrikam.example"},
            ],
        },
    ],
    "clients": [],
}


@dataclass(frozen=True)
class User:
    tenant_id: str
    oid: str
    name: str
    preferred_username: str
    email: str | None = None
    admin: bool = False

    def public(self) -> dict:
        return asdict(self)


@dataclass
class Tenant:
    id: str
    name: str
    display_name: str
    users: list[User] = field(default_factory=list)


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()


class DirectoryError(LookupError):
    pass


class Directory:
    """Thread-safe: tests add users while the server handles requests."""

    def __init__(self, data: dict):
        self._lock = threading.Lock()
        self._tenants: list[Tenant] = []
        for t in data.get("tenants", []):
            tenant = Tenant(id=t["id"].lower(), name=t["name"], display_name=t.get("display_name", t["name"]))
            self._tenants.append(tenant)
            for u in t.get("users", []):
                self._add(tenant, u)
        self._clients = {
            c["client_id"]: Client(c["client_id"], c.get("client_secret"), tuple(c.get("redirect_uris", ())))
            for c in data.get("clients", [])
        }

    @classmethod
    def default(cls) -> Directory:
        return cls(DEFAULT_DIRECTORY)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Directory:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    # --- tenants -------------------------------------------------------------------------------------

    def tenants(self) -> list[Tenant]:
        with self._lock:
            return list(self._tenants)

    def tenant(self, key: str) -> Tenant | None:
        """A tenant by GUID or short name (Entra also accepts domain names in place of the GUID)."""
        key = key.lower()
        with self._lock:
            return next((t for t in self._tenants if key in (t.id, t.name.lower())), None)

    def tenants_for_segment(self, segment: str) -> list[Tenant] | None:
        """Tenants an authority path segment admits; None when the segment names no tenant."""
        if segment.lower() in MULTI_TENANT_SEGMENTS:
            return self.tenants()
        tenant = self.tenant(segment)
        return [tenant] if tenant else None

    # --- users ---------------------------------------------------------------------------------------

    def users(self, tenants: list[Tenant] | None = None) -> list[User]:
        with self._lock:
            return [u for t in (tenants or self._tenants) for u in t.users]

    def user(self, tenant_id: str, oid: str) -> User | None:
        return next(
            (u for u in self.users() if u.tenant_id == tenant_id.lower() and u.oid == oid.lower()), None
        )

    def find_user(self, identifier: str, tenants: list[Tenant] | None = None) -> User:
        """Resolve a sign-in name, object id or (if unambiguous) e-mail address to one user.

        The sign-in name wins over e-mail because an e-mail claim is not unique across tenants (the
        fabrikam impostor shares alice's address).
        """
        wanted = identifier.strip().lower()
        candidates = self.users(tenants)
        for attribute in ("preferred_username", "oid", "email"):
            matches = [u for u in candidates if (getattr(u, attribute) or "").lower() == wanted]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise DirectoryError(
                    f"{identifier!r} matches {len(matches)} users by {attribute}; pass a tenant or oid"
                )
        raise DirectoryError(f"no user {identifier!r}")

    def add_user(
        self,
        tenant: str,
        name: str,
        preferred_username: str,
        email: str | None = None,
        oid: str | None = None,
        admin: bool = False,
    ) -> User:
        found = self.tenant(tenant)
        if found is None:
            raise DirectoryError(f"no tenant {tenant!r}")
        return self._add(
            found,
            {"oid": oid, "name": name, "preferred_username": preferred_username, "email": email, "admin": admin},
        )

    def _add(self, tenant: Tenant, spec: dict) -> User:
        oid = (spec.get("oid") or str(uuid.uuid4())).lower()
        if not _GUID.match(oid):
            raise DirectoryError(f"oid {oid!r} is not a GUID")
        if not spec.get("name") or not spec.get("preferred_username"):
            raise DirectoryError("a user needs name and preferred_username")
        user = User(
            tenant_id=tenant.id,
            oid=oid,
            name=spec["name"],
            preferred_username=spec["preferred_username"],
            email=spec.get("email") or None,
            admin=bool(spec.get("admin", False)),
        )
        with self._lock:
            if any(u.oid == oid for u in tenant.users):
                raise DirectoryError(f"tenant {tenant.name} already has a user with oid {oid}")
            tenant.users.append(user)
        return user

    # --- app registrations ---------------------------------------------------------------------------

    def client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))
