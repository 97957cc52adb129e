"""Seats and people for license-check tests, written through the repositories (adapters/).

License management (assign/revoke) is built separately; these helpers write exactly the rows it writes:
the seat and the subscription's AssignedCount in one ETag-guarded transaction, then the lookup row.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import requests

from adapters import keys
from adapters.lookup_repository import LookupRepository
from adapters.subscription_repository import PartitionWrites, SubscriptionRepository
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES, ConcurrencyConflict, TableStore
from services.seat import Seat, normalise_address
from services.web_session import Person
from standins.identity_provider import client as idp
from standins.identity_provider.directory import CONTOSO_ID, FABRIKAM_ID

__all__ = ["CONTOSO_ID", "FABRIKAM_ID", "assign", "revoke", "set_over_quantity", "new_user", "token_for", "check"]


def assign(storage: TableStore, subscription_id: str, email: str, assigned_by: str = "admin@contoso.example") -> None:
    repository = SubscriptionRepository(storage)
    for _ in range(20):
        subscription = repository.load(subscription_id)
        assert subscription is not None
        seat = Seat.new(email, sequence=subscription.assigned_count + 1, assigned_by=assigned_by)
        try:
            added = replace(subscription, assigned_count=subscription.assigned_count + 1)
            etags = repository.commit(PartitionWrites(added, create=[seat]))
        except ConcurrencyConflict:
            continue
        LookupRepository(storage).put_license(replace(seat, etag=etags.get(seat.email)).lookup(subscription))
        return
    raise AssertionError("could not assign")


def revoke(storage: TableStore, subscription_id: str, email: str) -> None:
    repository = SubscriptionRepository(storage)
    seat = repository.seat(subscription_id, normalise_address(email))
    subscription = repository.load(subscription_id)
    assert seat is not None and subscription is not None
    repository.commit(PartitionWrites(replace(subscription, assigned_count=subscription.assigned_count - 1),
                                      delete=[seat]))
    LookupRepository(storage).delete_licenses_of_seat(subscription_id, seat.email, seat.bound_oid)


def set_over_quantity(storage: TableStore, subscription_id: str, email: str, value: bool = True) -> None:
    email = normalise_address(email)
    seat = SubscriptionRepository(storage).seat(subscription_id, email)
    assert seat is not None
    storage.merge(SUBSCRIPTIONS, {"PartitionKey": subscription_id, "RowKey": keys.seat_row(email),
                                  "OverQuantity": value})
    partition = keys.licenses_of_oid(seat.bound_oid) if seat.bound else keys.licenses_of_address(email)
    storage.merge(USER_LICENSES, {"PartitionKey": partition, "RowKey": subscription_id, "OverQuantity": value})


def new_user(provider: Any, tenant: str = CONTOSO_ID, *, email: str | None = None,
             preferred_username: str | None = None) -> dict:
    """A fresh person in the identity provider, so tests never share one."""
    handle = uuid.uuid4().hex[:10]
    domain = "contoso.example" if tenant == CONTOSO_ID else "fabrikam.example"
    preferred_username = preferred_username or f"user-{handle}@{domain}"
    return idp.add_user(provider.url, tenant, f"User {handle}", preferred_username, email=email,
                        verify=str(provider.ca_bundle))


def person_of(user: dict) -> Person:
    """The dashboard's person for a user of the identity provider (new_user)."""
    address = user["preferred_username"]
    return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"], email=user.get("email") or address,
                  sign_in_names=(address,))


def token_for(stack: Any, user: dict | str, **claims: Any) -> str:
    name = user if isinstance(user, str) else user["oid"]
    return idp.issue_token(stack.identity_provider.url, name, audience=stack.settings.api_audiences[0],
                           scope="access_as_user", verify=str(stack.identity_provider.ca_bundle), **claims)


def check(url: str, token: str | None, **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(f"{url}/api/license", headers=headers, timeout=15)
