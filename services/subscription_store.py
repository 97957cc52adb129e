"""Reading and writing subscriptions and their lookup rows.

The subscription entity changes only under its ETag (seat changes guard the same entity), and the
lookup rows are written idempotently after the partition commit (PRODUCT.md section 4).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from services.storage import (
    STRIPE_INDEX,
    SUBSCRIPTIONS,
    USER_SUBSCRIPTIONS,
    ConcurrencyConflict,
    Storage,
    update_if_match,
)
from services.subscription import SUBSCRIPTION_ROW, Subscription

# Attempts of an ETag-guarded read-modify-write before giving up (each re-reads fresh state).
MAX_ATTEMPTS = 20


def load(storage: Storage, subscription_id: str) -> Subscription | None:
    entity = storage.get(SUBSCRIPTIONS, subscription_id, SUBSCRIPTION_ROW)
    return Subscription.from_entity(entity) if entity else None


def create(storage: Storage, subscription: Subscription, extra_rows: Iterable[dict[str, Any]] = ()) -> bool:
    """Create the subscription with rows of its partition (seats, audit) in one transaction.

    False when it already exists: fulfilment runs from the redirect and the webhook, in any order.
    """
    operations = [("create", subscription.to_entity())] + [("create", row) for row in extra_rows]
    try:
        storage.transact(SUBSCRIPTIONS, operations)
    except ConcurrencyConflict:
        return False
    return True


def update(
    storage: Storage,
    subscription_id: str,
    change: Callable[[Subscription], tuple[Subscription, list[dict[str, Any]]] | None],
) -> Subscription | None:
    """Apply `change` to fresh state under the ETag; retry on conflict.

    `change` returns the new subscription plus rows to create in the same transaction (audit), or
    None when there is nothing to do. Returns the stored result (None if the subscription is unknown).
    """
    for _ in range(MAX_ATTEMPTS):
        current = load(storage, subscription_id)
        if current is None:
            return None
        outcome = change(current)
        if outcome is None:
            return current
        changed, rows = outcome
        try:
            storage.transact(
                SUBSCRIPTIONS,
                [update_if_match(changed.to_entity(), current.etag)] + [("create", row) for row in rows],
            )
        except ConcurrencyConflict:
            continue
        return load(storage, subscription_id)
    raise ConcurrencyConflict(f"subscription {subscription_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def index(storage: Storage, subscription: Subscription) -> None:
    """Write the lookup rows for a subscription; idempotent, repeated by reconciliation."""
    storage.upsert(
        STRIPE_INDEX,
        {"PartitionKey": "session", "RowKey": subscription.checkout_session_id, "SubscriptionId": subscription.id},
    )
    if subscription.stripe_customer_id:
        storage.upsert(
            STRIPE_INDEX,
            {"PartitionKey": "customer", "RowKey": subscription.stripe_customer_id, "SubscriptionId": subscription.id},
        )
    storage.upsert(
        USER_SUBSCRIPTIONS,
        {
            "PartitionKey": user_key(subscription.owner_tid, subscription.owner_oid),
            "RowKey": subscription.id,
            "Role": "owner",
        },
    )


def by_checkout_session(storage: Storage, session_id: str) -> Subscription | None:
    row = storage.get(STRIPE_INDEX, "session", session_id)
    return load(storage, row["SubscriptionId"]) if row else None


def user_key(tid: str, oid: str) -> str:
    return f"{tid}|{oid}"


def for_user(storage: Storage, tid: str, oid: str) -> list[tuple[Subscription, str]]:
    """(subscription, role) for every subscription the person owns or administers."""
    out = []
    rows = storage.table(USER_SUBSCRIPTIONS).query_entities(
        "PartitionKey eq @pk", parameters={"pk": user_key(tid, oid)}
    )
    for row in rows:
        subscription = load(storage, row["RowKey"])
        if subscription is not None:
            out.append((subscription, row.get("Role", "owner")))
    return out


def licensed(storage: Storage, tid: str, oid: str, email: str) -> list[Subscription]:
    """Subscriptions in which the person holds a license: bound to their oid, or assigned to their
    address and not yet bound (only within their own tenant: an address alone proves nothing)."""
    from services.seat import normalise_address
    from services.storage import USER_LICENSES

    partitions = [f"oid|{oid}"] + ([f"email|{normalise_address(email)}"] if email else [])
    found: dict[str, Subscription] = {}
    for partition in partitions:
        for row in storage.table(USER_LICENSES).query_entities("PartitionKey eq @pk", parameters={"pk": partition}):
            if row["RowKey"] in found or (partition.startswith("email|") and row.get("TenantId") != tid):
                continue
            subscription = load(storage, row["RowKey"])
            if subscription is not None:
                found[subscription.id] = subscription
    return list(found.values())


def all_ids(storage: Storage) -> Iterable[str]:
    rows = storage.table(SUBSCRIPTIONS).query_entities(
        "RowKey eq @rk", parameters={"rk": SUBSCRIPTION_ROW}, select=["PartitionKey"]
    )
    for row in rows:
        yield row["PartitionKey"]
