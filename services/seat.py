"""A license seat: one e-mail address in a subscription, bound to a person on first use.

Seats live in the subscription's partition (row key `seat|<address>`); the user's lookup row in
UserLicenses is what the license check reads (PRODUCT.md sections 3 and 4).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

SEAT_PREFIX = "seat|"


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
    return {
        "PartitionKey": subscription_id,
        "RowKey": SEAT_PREFIX + email,
        "Email": email,
        "Sequence": sequence,
        "AssignedAt": at or datetime.now(timezone.utc),
        "AssignedBy": assigned_by,
        "BoundTid": bound_tid,
        "BoundOid": bound_oid,
    }


def license_lookup_row(subscription_id: str, tenant_id: str, email: str, bound_oid: str = "") -> dict[str, Any]:
    """The user's own lookup row: by object id once bound, by assigned address until then."""
    partition = f"oid|{bound_oid}" if bound_oid else f"email|{normalise_address(email)}"
    return {
        "PartitionKey": partition,
        "RowKey": subscription_id,
        "Email": normalise_address(email),
        "TenantId": tenant_id,
    }
