"""Who may do what on a subscription (PRODUCT.md capability 4).

The owner holds every permission and alone manages delegates, cancels and transfers ownership.
Delegated administrators (a later capability) hold the permissions the owner gave them. Every
endpoint that touches a subscription asks here first.
"""

from __future__ import annotations

from services import subscription_store
from services.storage import Storage
from services.subscription import Subscription
from services.web_session import Person

LICENSES_ASSIGN = "licenses.assign"
SUBSCRIPTION_VIEW = "subscription.view"
QUANTITY_MANAGE = "quantity.manage"
BILLING_MANAGE = "billing.manage"
DELEGABLE = (LICENSES_ASSIGN, SUBSCRIPTION_VIEW, QUANTITY_MANAGE, BILLING_MANAGE)
OWNER = "owner"  # manage delegates, cancel, transfer ownership


class Forbidden(PermissionError):
    """The person may not do this on this subscription (answer 403, or 404 to hide it)."""


def permissions(subscription: Subscription, person: Person) -> frozenset[str]:
    # A person is (tid, oid): never an e-mail address alone.
    if (person.tid, person.oid) == (subscription.owner_tid, subscription.owner_oid):
        return frozenset(DELEGABLE + (OWNER,))
    return frozenset()


def can(subscription: Subscription, person: Person, permission: str) -> bool:
    return permission in permissions(subscription, person)


def require(subscription: Subscription, person: Person, permission: str) -> None:
    if not can(subscription, person, permission):
        raise Forbidden(f"you do not have the {permission} permission on this subscription")


def permitted_subscription(storage: Storage, subscription_id: str, person: Person, permission: str) -> Subscription | None:
    """The subscription if `person` holds `permission` on it; None for unknown ids and for no access
    alike, so callers answer both with the same 404 and never confirm an id to a stranger."""
    if not subscription_id or len(subscription_id) > 100:
        return None
    subscription = subscription_store.load(storage, subscription_id)
    if subscription is None or not can(subscription, person, permission):
        return None
    return subscription
