"""A license seat: one e-mail address in a subscription, bound to a person on first use.

Storage contract (PRODUCT.md sections 3 and 4), shared by license management and the license check:

- Seat row, table Subscriptions, partition = subscription id, row key `seat|<normalised address>`:
  Email, Sequence (int; higher = assigned later; the highest go over quantity first), AssignedAt,
  AssignedBy, BoundTid/BoundOid ('' until the first matching license check binds it), BoundAt,
  LastSeenOn ('YYYY-MM-DD', written at most once a day by the license check), OverQuantity (bool).
  The subscription entity's AssignedCount counts the seat rows; both change in one transaction.
- Lookup row, table UserLicenses (what the license check reads; one query on the user's partition):
  partition `oid|<oid>` once bound, `email|<normalised address>` until then; row key = subscription
  id; Email, TenantId, OverQuantity, LastSeenOn (optional; the license check keeps the seat's date here
  too, so it knows without reading the seat row that the daily write is due). Written idempotently
  after the partition commit; revoking deletes it in the same request, so a revoked user is unlicensed
  at once.
- Binding (services/license_check.py): the first matching check sets BoundTid/BoundOid/BoundAt on the
  seat row under the seat's ETag, then writes the `oid|` lookup row and deletes the `email|` one. A
  revoke therefore deletes the seat row under the ETag it read (or deletes both the `oid|<BoundOid>` and
  the `email|` lookup rows), so a binding racing with it cannot leave a lookup row behind.
- Seats written by license management also carry RequestId (the assigning request, so a retried
  request is recognised) and, for bulk changes, ReservationId.
- Status is derived, never stored (`seat_status`): the subscription's license state first
  (expired, suspended), then the seat's OverQuantity flag, then bound (active) or not (pending).
- Reservation row (bulk changes over one transaction, PRODUCT.md section 4), same partition, row key
  `reservation|<request id>`: Count, SequenceStart, Emails_NN (newline-joined chunks), CreatedAt,
  Actor*; deleted when the bulk change is complete.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.subscription import Subscription

SEAT_PREFIX = "seat|"
# The row-key range of all seats: '}' sorts right after '|'.
SEAT_RANGE_END = "seat}"

PENDING = "pending"
ACTIVE = "active"
SUSPENDED = "suspended"
EXPIRED = "expired"
OVER_QUANTITY = "over_quantity"
STATUSES = (PENDING, ACTIVE, SUSPENDED, EXPIRED, OVER_QUANTITY)


def normalise_address(address: str) -> str:
    return address.strip().lower()


def seat_entity(
    subscription_id: str,
    email: str,
    *,
    sequence: int,
    assigned_by: str,
    bound_tid: str = "",
    bound_oid: str = "",
    at: datetime | None = None,
) -> dict[str, Any]:
    """A new seat. `sequence` orders assignments: the newest seats go over quantity first."""
    email = normalise_address(email)
    at = at or datetime.now(timezone.utc)
    entity = {
        "PartitionKey": subscription_id,
        "RowKey": SEAT_PREFIX + email,
        "Email": email,
        "Sequence": sequence,
        "AssignedAt": at,
        "AssignedBy": assigned_by,
        "BoundTid": bound_tid,
        "BoundOid": bound_oid,
        "LastSeenOn": "",
        "OverQuantity": False,
    }
    if bound_oid:
        entity["BoundAt"] = at
    return entity


def license_lookup_row(
    subscription_id: str, tenant_id: str, email: str, bound_oid: str = "", over_quantity: bool = False
) -> dict[str, Any]:
    """The user's own lookup row: by object id once bound, by assigned address until then."""
    partition = f"oid|{bound_oid}" if bound_oid else f"email|{normalise_address(email)}"
    return {
        "PartitionKey": partition,
        "RowKey": subscription_id,
        "Email": normalise_address(email),
        "TenantId": tenant_id,
        "OverQuantity": over_quantity,
    }


def subscription_seat_status(subscription: "Subscription", grace_days: int) -> str | None:
    """The status every seat has because of the subscription (expired, suspended), else None."""
    from services.subscription import LicenseState

    state = subscription.license_state(grace_days)
    if state is LicenseState.EXPIRED:
        return EXPIRED
    if state is LicenseState.SUSPENDED:
        return SUSPENDED
    return None  # ACTIVE, PAST_DUE_GRACE and PENDING_PAYMENT keep seats active/pending


def seat_status(seat: dict[str, Any], subscription: "Subscription", grace_days: int) -> str:
    """pending | active | suspended | expired | over_quantity (PRODUCT.md capability 3)."""
    return subscription_seat_status(subscription, grace_days) or (
        OVER_QUANTITY if seat.get("OverQuantity") else ACTIVE if seat.get("BoundOid") else PENDING
    )
