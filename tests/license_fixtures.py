"""Seats and people for license-check tests, written through the storage contract of services/seat.py.

License management (assign/revoke) is built separately; these helpers write exactly the rows it writes:
the seat and the subscription's AssignedCount in one ETag-guarded transaction, then the lookup row.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests

from services import subscription_store
from services.seat import SEAT_PREFIX, license_lookup_row, normalise_address, seat_entity
from services.storage import SUBSCRIPTIONS, USER_LICENSES, ConcurrencyConflict, Storage, update_if_match
from standins.identity_provider import client as idp
from standins.identity_provider.directory import CONTOSO_ID, FABRIKAM_ID

__all__ = ["CONTOSO_ID", "FABRIKAM_ID", "assign", "revoke", "set_over_quantity", "new_user", "token_for", "check"]


def assign(storage: Storage, subscription_id: str, email: str, assigned_by: str = "admin@contoso.example") -> None:
    for _ in range(20):
        subscription = subscription_store.load(storage, subscription_id)
        assert subscription is not None
        entity = subscription.to_entity()
        entity["AssignedCount"] = subscription.assigned_count + 1
        seat = seat_entity(subscription_id, email, sequence=subscription.assigned_count + 1, assigned_by=assigned_by)
        try:
            storage.transact(SUBSCRIPTIONS, [update_if_match(entity, subscription.etag), ("create", seat)])
        except ConcurrencyConflict:
            continue
        storage.upsert(USER_LICENSES, license_lookup_row(subscription_id, subscription.tenant_id, email))
        return
    raise AssertionError("could not assign")


def revoke(storage: Storage, subscription_id: str, email: str) -> None:
    email = normalise_address(email)
    seat = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + email)
    assert seat is not None
    subscription = subscription_store.load(storage, subscription_id)
    entity = subscription.to_entity()
    entity["AssignedCount"] = subscription.assigned_count - 1
    storage.transact(SUBSCRIPTIONS, [update_if_match(entity, subscription.etag),
                                     ("delete", {"PartitionKey": subscription_id, "RowKey": seat["RowKey"]})])
    if seat.get("BoundOid"):
        storage.delete(USER_LICENSES, f"oid|{seat['BoundOid']}", subscription_id)
    storage.delete(USER_LICENSES, f"email|{email}", subscription_id)


def set_over_quantity(storage: Storage, subscription_id: str, email: str, value: bool = True) -> None:
    from azure.data.tables import UpdateMode

    email = normalise_address(email)
    seat = storage.get(SUBSCRIPTIONS, subscription_id, SEAT_PREFIX + email)
    storage.table(SUBSCRIPTIONS).update_entity(
        {"PartitionKey": subscription_id, "RowKey": seat["RowKey"], "OverQuantity": value}, mode=UpdateMode.MERGE)
    partition = f"oid|{seat['BoundOid']}" if seat.get("BoundOid") else f"email|{email}"
    storage.table(USER_LICENSES).update_entity(
        {"PartitionKey": partition, "RowKey": subscription_id, "OverQuantity": value}, mode=UpdateMode.MERGE)


def new_user(provider: Any, tenant: str = CONTOSO_ID, *, email: str | None = None,
             preferred_username: str | None = None) -> dict:
    """A fresh person in the identity provider, so tests never share one."""
    handle = uuid.uuid4().hex[:10]
    domain = "contoso.example" if tenant == CONTOSO_ID else "fabrikam.example"
    preferred_username = preferred_username or f"user-{handle}@{domain}"
    return idp.add_user(provider.url, tenant, f"User {handle}", preferred_username, email=email,
                        verify=str(provider.ca_bundle))


def token_for(stack: Any, user: dict | str, **claims: Any) -> str:
    name = user if isinstance(user, str) else user["oid"]
    return idp.issue_token(stack.identity_provider.url, name, audience=stack.settings.api_audiences[0],
                           scope="access_as_user", verify=str(stack.identity_provider.ca_bundle), **claims)


def check(url: str, token: str | None, **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(f"{url}/api/license", headers=headers, timeout=15)
