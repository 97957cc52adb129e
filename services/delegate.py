"""Delegated administrators and invitations: the rules (PRODUCT.md capability 4 and section 3).

- A delegate is a person, (`tid`, `oid`), bound when they accepted an invitation; the owner gave them
  some of the delegable permissions. Their row lives in the subscription's partition, so the gate
  reads it on every request: a removed delegate or a narrowed grant takes effect on the next one.
- An invitation names an e-mail address, the permissions offered and who offered them. Its link
  carries a 256-bit random token; only the token's SHA-256 is stored. It expires, is used once
  (consumed in the same transaction that adds the delegate, under the subscription's ETag) and a
  resend replaces the token, so the old link stops working at once.
- An ownership offer is an invitation of kind `owner`: at most one per subscription; accepting it
  makes the accepting person the owner in one transaction, so there is always exactly one owner.
- Accepting needs the invited account: one of its sign-in names is the invited address (the same
  matching as seat binding), and its tenant is the subscription's.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from services.audit import Actor
from services.seat import normalise_address, same_tenant

LICENSES_ASSIGN = "licenses.assign"
SUBSCRIPTION_VIEW = "subscription.view"
QUANTITY_MANAGE = "quantity.manage"
BILLING_MANAGE = "billing.manage"
DELEGABLE = (LICENSES_ASSIGN, SUBSCRIPTION_VIEW, QUANTITY_MANAGE, BILLING_MANAGE)
OWNER = "owner"  # manage delegates, cancel, transfer ownership: the owner's alone
PERMISSIONS = DELEGABLE + (OWNER,)

DELEGATE: Final = "delegate"  # Final: typed as the literal, so it is an InvitationKind
OWNER_OFFER: Final = "owner"
InvitationKind = Literal["delegate", "owner"]
FormerOwner = Literal["delegate", "leave"]

# 256 bits, URL-safe (43 characters).
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 100


class InvalidPermissions(ValueError):
    def __init__(self, unknown: list[str]):
        super().__init__(f"unknown permission(s) {', '.join(unknown)}; choose from {', '.join(DELEGABLE)}"
                         if unknown else f"choose at least one permission of {', '.join(DELEGABLE)}")
        self.unknown = unknown


def parse_permissions(values: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The delegable permissions named; InvalidPermissions for unknown ones or none at all."""
    chosen = {str(v).strip() for v in values if str(v).strip()}
    unknown = sorted(chosen - set(DELEGABLE))
    if unknown or not chosen:
        raise InvalidPermissions(unknown)
    return frozenset(chosen)


def ordered(permissions: frozenset[str]) -> list[str]:
    """In the order the product names them (pages, mails, API)."""
    return [p for p in PERMISSIONS if p in permissions]


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def plausible_token(token: str) -> bool:
    """Cheap shape check before any lookup (a tampered or truncated link is refused up front)."""
    return 20 <= len(token) <= MAX_TOKEN_CHARS and all(c.isalnum() or c in "-_" for c in token)


@dataclass(frozen=True)
class Delegate:
    tid: str
    oid: str
    email: str
    name: str
    permissions: frozenset[str]
    added_at: datetime
    added_by: str = ""
    etag: str | None = None

    def is_person(self, tid: str, oid: str) -> bool:
        return self.oid == oid and same_tenant(self.tid, tid)


@dataclass(frozen=True)
class Invitation:
    email: str  # the invited address, normalised
    token_hash: str
    kind: InvitationKind
    invited_by: Actor
    created_at: datetime
    expires_at: datetime
    permissions: frozenset[str] = frozenset()
    former_owner: FormerOwner = "delegate"  # owner offers: what the former owner becomes
    billing_email_follows: bool = False  # owner offers: Stripe's customer e-mail follows the new owner
    etag: str | None = None

    @classmethod
    def new(cls, email: str, kind: InvitationKind, invited_by: Actor, days: int, *,
            permissions: frozenset[str] = frozenset(), former_owner: FormerOwner = "delegate",
            billing_email_follows: bool = False, now: datetime | None = None) -> tuple[Invitation, str]:
        """A fresh invitation and its token (which is shown or mailed once, never stored)."""
        now = now or datetime.now(UTC)
        token = new_token()
        invitation = cls(normalise_address(email), token_hash(token), kind, invited_by, now,
                         now + timedelta(days=days), permissions, former_owner, billing_email_follows)
        return invitation, token

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at


@dataclass(frozen=True)
class InvitationLookup:
    """Token hash -> invitation (a lookup row), so a link finds its subscription; `gone` deletes it."""

    token_hash: str
    subscription_id: str
    kind: InvitationKind
    email: str
    expires_at: datetime
    gone: bool = False


@dataclass(frozen=True)
class Acceptor:
    """Who accepts: the signed-in person and every sign-in name their token carried."""

    tid: str
    oid: str
    name: str
    email: str
    sign_in_names: frozenset[str] = field(default_factory=frozenset)

    def is_address(self, address: str) -> bool:
        names = {normalise_address(n) for n in self.sign_in_names | {self.email} if n}
        return normalise_address(address) in names
