"""When Stripe lowers the quantity below the assigned count: nothing deleted, newest seats over quantity."""

from __future__ import annotations

from adapters import keys
from adapters.stripe_gateway import StripeGateway
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES
from services import seat_assignment, seat_listing, seat_revocation, subscription_store
from services.billing_events import Billing, refresh
from tests.builders import person, purchased_subscription
from tests.conftest import wait_for
from tests.licenses_support import context


def _set_quantity(stack, gateway: StripeGateway, subscription_id: str, quantity: int) -> None:
    item = gateway.subscription(subscription_id)["items"]["data"][0]
    gateway.client().v1.subscription_items.update(item["id"], params={"quantity": quantity})


def _statuses(stack, sub_id):
    sub = subscription_store.load(stack.storage(), sub_id)
    assert sub is not None
    page = seat_listing.list_seats(stack.storage(), sub, 14, limit=100)
    return {s.email: s.status for s in page.seats}


def test_lowered_quantity_puts_newest_seats_over_quantity_and_raising_restores_them(stack):
    owner = person("shrinking@contoso.example")
    sub = purchased_subscription(stack, owner, quantity=5)
    ctx = context(stack)
    for i in range(5):  # one by one: a1 is the oldest, a5 the newest
        seat_assignment.assign(ctx, sub.id, [f"a{i + 1}@shrink.example"])
    gateway = StripeGateway(stack.settings)
    billing = Billing(storage=stack.storage(), stripe=gateway, settings=stack.settings)

    _set_quantity(stack, gateway, sub.id, 3)
    before, after = refresh(sub.id, billing, "test")
    assert after is not None
    assert (after.quantity, after.assigned_count) == (3, 5)
    statuses = _statuses(stack, sub.id)
    assert len(statuses) == 5  # nothing deleted
    assert {e for e, s in statuses.items() if s == "over_quantity"} == {"a4@shrink.example", "a5@shrink.example"}
    lookup = stack.storage().get(USER_LICENSES, keys.licenses_of_address("a5@shrink.example"), sub.id)
    assert lookup["OverQuantity"] is True
    mails = wait_for(lambda: [m for m in stack.outbox() if m["to"] == owner.email and "exceed" in m["subject"]],
                     timeout=30, message="over-quantity mail")
    assert "2 licenses exceed" in mails[0]["subject"]
    # Filter by status is answered by the table.
    over = seat_listing.list_seats(stack.storage(), after, 14, status="over_quantity").seats
    assert [s.email for s in over] == ["a4@shrink.example", "a5@shrink.example"]

    # Revoking an older seat brings the oldest over-quantity seat back.
    seat_revocation.revoke(ctx, sub.id, "a1@shrink.example")
    statuses = _statuses(stack, sub.id)
    assert statuses["a4@shrink.example"] == "pending" and statuses["a5@shrink.example"] == "over_quantity"
    # No new seat while over quantity.
    assert subscription_store.load(stack.storage(), sub.id).assigned_count == 4

    _set_quantity(stack, gateway, sub.id, 10)
    refresh(sub.id, billing, "test")
    assert set(_statuses(stack, sub.id).values()) == {"pending"}
    assert stack.storage().get(SUBSCRIPTIONS, sub.id, keys.seat_row("a5@shrink.example"))["OverQuantity"] is False
