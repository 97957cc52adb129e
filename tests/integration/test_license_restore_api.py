"""Undoing a revoke through the JSON API of the running app (the page's "Undo" as a script can call it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from adapters import keys
from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import SUBSCRIPTIONS
from tests.builders import purchased_subscription
from tests.licenses_support import call, idp_person, token_for

OWNER = "admin@contoso.example"


def test_a_revoke_is_undone_within_its_window_and_refused_when_the_license_is_taken(stack):
    owner = idp_person(stack, OWNER)
    token = token_for(stack, OWNER)
    sub = purchased_subscription(stack, owner, quantity=1)
    licenses = f"/api/v1/subscriptions/{sub.id}/licenses"
    tag = uuid.uuid4().hex[:6]
    gone, other = f"gone.{tag}@contoso.example", f"other.{tag}@contoso.example"
    status, _, _ = call(stack.url, "POST", licenses, token, {"emails": [gone]})
    assert status == 200

    status, revoked, _ = call(stack.url, "DELETE", f"{licenses}/{gone}", token)
    assert status == 200 and revoked["assigned_count"] == 0
    undo_until = datetime.fromisoformat(revoked["undo_until"])
    assert timedelta(minutes=9) < undo_until - datetime.now(UTC) <= timedelta(minutes=10)

    status, restored, _ = call(stack.url, "POST", f"{licenses}/{gone}/restore", token, {"request_id": f"undo-{tag}"})
    assert status == 200, restored
    assert (restored["restored"], restored["status"], restored["assigned_count"]) == (gone, "pending", 1)
    assert stack.storage().get(SUBSCRIPTIONS, sub.id, keys.seat_row(gone)) is not None
    latest = next(SubscriptionRepository(stack.storage()).audit_entries(sub.id))
    assert (latest.action, latest.target) == ("license.restored", gone)
    # The same request again answers the same; another one finds the address licensed again.
    status, again, _ = call(stack.url, "POST", f"{licenses}/{gone}/restore", token, {"request_id": f"undo-{tag}"})
    assert status == 200 and again["assigned_count"] == 1
    status, twice, _ = call(stack.url, "POST", f"{licenses}/{gone}/restore", token)
    assert (status, twice["error"], twice["email"]) == (409, "already_assigned", gone)

    # Revoked again, and the only license goes to someone else: the undo says why it cannot be done.
    call(stack.url, "DELETE", f"{licenses}/{gone}", token)
    call(stack.url, "POST", licenses, token, {"emails": [other]})
    status, taken, _ = call(stack.url, "POST", f"{licenses}/{gone}/restore", token)
    assert (status, taken["error"], taken["email"]) == (409, "seat_taken", gone)
    assert stack.storage().get(SUBSCRIPTIONS, sub.id, keys.seat_row(gone)) is None

    # An address never revoked here, and one that is no address.
    status, never, _ = call(stack.url, "POST", f"{licenses}/never.{tag}@contoso.example/restore", token)
    assert (status, never["error"]) == (409, "undo_expired")
    status, bad, _ = call(stack.url, "POST", f"{licenses}/not-an-address/restore", token)
    assert (status, bad["field"]) == (400, "email")
