"""Who may do what on a subscription (PRODUCT.md capability 4).

The owner holds every permission and alone manages delegates, cancels and transfers ownership.
Delegated administrators (a later capability) hold the permissions the owner gave them. Every
route that touches a subscription asks here, through the gate in `handlers/gate.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.table_storage import TableStore
from services import subscription_store
from services.seat import same_tenant
from services.subscription import Subscription
from services.web_session import Person

LICENSES_ASSIGN = "licenses.assign"
SUBSCRIPTION_VIEW = "subscription.view"
QUANTITY_MANAGE = "quantity.manage"
BILLING_MANAGE = "billing.manage"
DELEGABLE = (LICENSES_ASSIGN, SUBSCRIPTION_VIEW, QUANTITY_MANAGE, BILLING_MANAGE)
OWNER = "owner"  # manage delegates, cancel, transfer ownership
PERMISSIONS = DELEGABLE + (OWNER,)

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


def _owner(subscription: Subscription, person: Person) -> frozenset[str]:
    # A person is (tid, oid): never an e-mail address alone.
    if person.oid == subscription.owner_oid and same_tenant(person.tid, subscription.owner_tid):
        return frozenset(PERMISSIONS)
    return frozenset()


# Who holds permissions on a subscription: each source names the permissions it gives `person`.
# Today only the owner; delegation adds its delegates here, nothing else changes.
HOLDERS: tuple[Callable[[Subscription, Person], frozenset[str]], ...] = (_owner,)


def permissions(subscription: Subscription, person: Person) -> frozenset[str]:
    held: frozenset[str] = frozenset()
    for source in HOLDERS:
        held |= source(subscription, person)
    return held


def can(subscription: Subscription, person: Person | None, permission: str) -> bool:
    return person is not None and permission in permissions(subscription, person)


def visible(subscription: Subscription, person: Person) -> bool:
    """May `person` know that this subscription exists? Anyone who holds a permission on it (viewing
    is implied by every other permission); a refusal then is 403, not 404."""
    return bool(permissions(subscription, person))


def require(subscription: Subscription, person: Person, permission: str) -> None:
    if not can(subscription, person, permission):
        raise Forbidden(permission)


def authorize(subscription: Subscription | None, person: Person, permission: str) -> Subscription:
    """The subscription if `person` holds `permission` on it; NotVisible (404) for an unknown or an
    invisible one alike, Forbidden (403) for one they may see without holding `permission`."""
    if subscription is None or not visible(subscription, person):
        raise NotVisible()
    require(subscription, person, permission)
    return subscription


def load(storage: TableStore, subscription_id: str) -> Subscription | None:
    """The subscription with that id, None for ids that cannot be ours (not looked up)."""
    if not subscription_id or len(subscription_id) > MAX_ID_LENGTH:
        return None
    return subscription_store.load(storage, subscription_id)

