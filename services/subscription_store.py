"""Subscriptions as the rest of the app asks for them: by id, by buyer's checkout, by person.

Changes to the subscription entity go through the unit of work (services/unit_of_work.py); the
lookup rows are written idempotently after the partition commit (PRODUCT.md section 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from adapters.lookup_repository import LookupRepository
from adapters.subscription_repository import PartitionRow, PartitionWrites, SubscriptionRepository
from adapters.table_storage import ConcurrencyConflict, TableStore
from services.audit import AuditEntry
from services.merge_record import TenantSubscription
from services.seat import normalise_address, same_tenant
from services.subscription import Subscription
from services.unit_of_work import Plan, SubscriptionNotFound, UnitOfWork


def load(storage: TableStore, subscription_id: str) -> Subscription | None:
    return SubscriptionRepository(storage).load(subscription_id)


def create(storage: TableStore, subscription: Subscription, rows: Iterable[PartitionRow] = ()) -> bool:
    """Create the subscription with rows of its partition (seats, audit) in one transaction.

    False when it already exists: fulfilment runs from the redirect and the webhook, in any order.
    """
    try:
        SubscriptionRepository(storage).commit(PartitionWrites(subscription, create=list(rows)))
    except ConcurrencyConflict:
        return False
    return True


Change = Callable[[Subscription], "tuple[Subscription, list[AuditEntry]] | None"]


def update(storage: TableStore, subscription_id: str, change: Change) -> Subscription | None:
    """Apply `change` to fresh state under the ETag (retried on conflict); None if unknown.

    `change` returns the new subscription plus audit entries for the same transaction, or None when
    there is nothing to do."""

    def decide(current: Subscription) -> Plan[None]:
        outcome = change(current)
        if outcome is None:
            return Plan(None)
        changed, entries = outcome
        return Plan(None, PartitionWrites(changed, create=list(entries)))

    uow = UnitOfWork(storage)
    try:
        uow.change(subscription_id, decide)
    except SubscriptionNotFound:
        return None
    return uow.subscriptions.load(subscription_id)


def index(storage: TableStore, subscription: Subscription) -> None:
    """Write the lookup rows for a subscription; idempotent, repeated by reconciliation."""
    lookups = LookupRepository(storage)
    if subscription.checkout_session_id:  # none for a purchase by invoice
        lookups.index_checkout_session(subscription.checkout_session_id, subscription.id)
    if subscription.stripe_customer_id:
        lookups.index_customer(subscription.stripe_customer_id, subscription.id)
    lookups.put_person_subscription(subscription.owner_tid, subscription.owner_oid, subscription.id, "owner")
    lookups.put_tenant_subscription(tenant_entry(storage, subscription))


def tenant_entry(storage: TableStore, subscription: Subscription) -> TenantSubscription:
    """Where the subscription is found by tenant (merge candidates, services/merge.py): an individual
    one under the tenant its seat is bound to, or the buyer's sign-in tenant while it was never used."""
    tid, bound_tid, bound_oid = subscription.tenant_id, "", ""
    if subscription.kind == "individual":
        seat = SubscriptionRepository(storage).seat(subscription.id, normalise_address(subscription.owner_email))
        if seat is not None and seat.bound:
            bound_tid, bound_oid = seat.bound_tid, seat.bound_oid
        tid = bound_tid or subscription.owner_tid
    return TenantSubscription(tenant_id=tid, subscription_id=subscription.id, kind=subscription.kind,
                              status=subscription.status, owner_email=subscription.owner_email,
                              owner_name=subscription.owner_name, bound_tid=bound_tid, bound_oid=bound_oid)


def by_checkout_session(storage: TableStore, session_id: str) -> Subscription | None:
    subscription_id = LookupRepository(storage).subscription_of_checkout_session(session_id)
    return load(storage, subscription_id) if subscription_id else None


def for_user(storage: TableStore, tid: str, oid: str) -> list[tuple[Subscription, str]]:
    """(subscription, role) for every subscription the person owns or administers."""
    repository = SubscriptionRepository(storage)
    out = []
    for subscription_id, role in LookupRepository(storage).person_subscriptions(tid, oid):
        subscription = repository.load(subscription_id)
        if subscription is not None:
            out.append((subscription, role))
    return out


def licensed(storage: TableStore, tid: str, oid: str, email: str) -> list[Subscription]:
    """Subscriptions in which the person holds a license: bound to their oid, or assigned to their
    address and not yet bound (only within their own tenant: an address alone proves nothing)."""
    lookups = LookupRepository(storage)
    rows = lookups.licenses_of_oid(oid)
    if email:
        rows += [r for r in lookups.licenses_of_address(normalise_address(email)) if same_tenant(r.tenant_id, tid)]
    repository = SubscriptionRepository(storage)
    found: dict[str, Subscription] = {}
    for row in rows:
        if row.subscription_id not in found and (subscription := repository.load(row.subscription_id)) is not None:
            found[subscription.id] = subscription
    return list(found.values())


def all_ids(storage: TableStore) -> Iterator[str]:
    return SubscriptionRepository(storage).all_ids()
