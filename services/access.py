"""Who may do what on a subscription (PRODUCT.md capability 4).

The owner holds every permission and alone manages delegates, cancels and transfers ownership.
Delegated administrators hold the permissions the owner gave them: their row in the subscription's
partition is read on every request, so a removed delegate or a narrowed grant takes effect at once.
Every route that touches a subscription asks here, through the gate in `handlers/gate.py`.

Two permissions are never granted themselves but follow from the grantable ones:
`licenses.read` (the license list: anyone who may assign or view) and `subscription.read` (the
subscription's own page: anyone who holds any permission on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters import keys
from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import TableStore
from services.delegate import (
    BILLING_MANAGE,
    DELEGABLE,
    LICENSES_ASSIGN,
    OWNER,
    QUANTITY_MANAGE,
    SUBSCRIPTION_VIEW,
)
from services.seat import same_tenant
from services.subscription import Subscription
from services.web_session import Person

__all__ = ["BILLING_MANAGE", "DELEGABLE", "LICENSES_ASSIGN", "OWNER", "QUANTITY_MANAGE", "SUBSCRIPTION_VIEW",
           "LICENSES_READ", "SUBSCRIPTION_READ", "PERMISSIONS", "Caller", "Forbidden", "NotVisible", "authorize",
           "load", "caller_on"]

LICENSES_READ = "licenses.read"
SUBSCRIPTION_READ = "subscription.read"
PERMISSIONS = DELEGABLE + (OWNER, LICENSES_READ, SUBSCRIPTION_READ)

# Subscription ids are Table Storage partition keys we minted; anything longer is not one of ours.
MAX_ID_LENGTH = 100


class Forbidden(PermissionError):
    """The person may see the subscription but not do this on it (answer 403)."""

    def __init__(self, permission: str):
        super().__init__(f"you do not have the {permission} permission on this subscription")
        self.permission = permission


class NotVisible(LookupError):
    """Unknown subscription id, or one the person may not see: the same answer (404) for both, so an
    id is never confirmed to a stranger."""


@dataclass(frozen=True)
class Caller(Person):
    """A person with what they hold on one subscription (for this request only: never cached)."""

    role: str | None = None  # "owner" | "delegate" | None
    permissions: frozenset[str] = frozenset()

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def _effective(granted: frozenset[str]) -> frozenset[str]:
    held = set(granted)
    if held & {LICENSES_ASSIGN, SUBSCRIPTION_VIEW}:
        held.add(LICENSES_READ)
    if held:
        held.add(SUBSCRIPTION_READ)
    return frozenset(held)


def caller_on(storage: TableStore, subscription: Subscription, person: Person) -> Caller:
    """What `person` holds on `subscription`: everything as its owner (a person is (tid, oid), never an
    address alone), the delegated permissions as a delegate, else nothing."""

    def caller(role: str | None = None, permissions: frozenset[str] = frozenset()) -> Caller:
        return Caller(tid=person.tid, oid=person.oid, name=person.name, email=person.email,
                      sign_in_names=person.sign_in_names, role=role, permissions=permissions)

    if person.oid == subscription.owner_oid and same_tenant(person.tid, subscription.owner_tid):
        return caller(role="owner", permissions=_effective(frozenset(DELEGABLE + (OWNER,))))
    delegate = SubscriptionRepository(storage).delegate(subscription.id, person.tid, person.oid)
    if delegate is not None and delegate.is_person(person.tid, person.oid):
        return caller(role="delegate", permissions=_effective(delegate.permissions & set(DELEGABLE)))
    return caller()


def authorize(storage: TableStore, subscription: Subscription | None, person: Person,
              permission: str) -> tuple[Caller, Subscription]:
    """The caller and the subscription if `person` holds `permission` on it; NotVisible (404) for an
    unknown or an invisible one alike, Forbidden (403) for one they may see without holding it."""
    if subscription is None:
        raise NotVisible()
    caller = caller_on(storage, subscription, person)
    if not caller.permissions:
        raise NotVisible()
    if not caller.can(permission):
        raise Forbidden(permission)
    return caller, subscription


def load(storage: TableStore, subscription_id: str) -> Subscription | None:
    """The subscription with that id, None for ids that cannot be ours (not looked up)."""
    if not subscription_id or len(subscription_id) > MAX_ID_LENGTH or not keys.usable(subscription_id):
        return None
    return SubscriptionRepository(storage).load(subscription_id)
