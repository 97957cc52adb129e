"""The organisation (or individual) subscription: its stored entity and what its state means.

One partition per subscription (PRODUCT.md section 4); the subscription entity's row key is
`subscription`. The partition key is the Stripe subscription id, so the same checkout fulfilled twice
lands on the same row.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from services.stripe_gateway import as_dict

log = logging.getLogger(__name__)

SUBSCRIPTION_ROW = "subscription"


class LicenseState(str, Enum):
    """What a subscription's Stripe status means for its licenses."""

    ACTIVE = "ACTIVE"
    PAST_DUE_GRACE = "PAST_DUE_GRACE"
    PENDING_PAYMENT = "PENDING_PAYMENT"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"

    @property
    def valid(self) -> bool:
        return self in (LicenseState.ACTIVE, LicenseState.PAST_DUE_GRACE)


# Stripe subscription statuses we know. Others (Stripe adds enum values) are kept as they come and
# treated as suspended until someone looks: never as active, never as an error.
_STATE_OF_STATUS = {
    "active": LicenseState.ACTIVE,
    "trialing": LicenseState.ACTIVE,
    "past_due": LicenseState.PAST_DUE_GRACE,  # until the grace period runs out
    "incomplete": LicenseState.PENDING_PAYMENT,
    "unpaid": LicenseState.SUSPENDED,
    "paused": LicenseState.SUSPENDED,
    "canceled": LicenseState.EXPIRED,
    "incomplete_expired": LicenseState.EXPIRED,
}


@dataclass(frozen=True)
class Subscription:
    id: str
    kind: str  # "organisation" | "individual"
    status: str  # Stripe's subscription status, as Stripe said it
    quantity: int
    assigned_count: int
    tenant_id: str
    owner_tid: str
    owner_oid: str
    owner_email: str
    owner_name: str
    language: str
    stripe_customer_id: str
    checkout_session_id: str
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    trial_end: datetime | None = None
    past_due_since: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    updated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    setup_seen_at: datetime | None = None
    # Highest seat Sequence handed out (services.seats): newer seats go over quantity first.
    seat_sequence: int = 0
    etag: str | None = field(default=None, compare=False)

    # --- meaning ------------------------------------------------------------------------------

    def grace_ends_at(self, grace_days: int) -> datetime | None:
        if self.status != "past_due" or self.past_due_since is None:
            return None
        return self.past_due_since + timedelta(days=grace_days)

    def license_state(self, grace_days: int, now: datetime | None = None) -> LicenseState:
        state = _STATE_OF_STATUS.get(self.status)
        if state is None:
            log.warning("subscription %s has unknown Stripe status %r; treating it as suspended", self.id, self.status)
            return LicenseState.SUSPENDED
        if state is LicenseState.PAST_DUE_GRACE:
            ends = self.grace_ends_at(grace_days)
            if ends is not None and (now or datetime.now(timezone.utc)) >= ends:
                return LicenseState.SUSPENDED
        return state

    def license_expires_at(self, grace_days: int) -> datetime | None:
        """End of the paid period, or of the grace period while past due."""
        return self.grace_ends_at(grace_days) or self.current_period_end

    # --- applying Stripe's view ---------------------------------------------------------------

    def with_stripe_state(self, state: "StripeSubscriptionState", now: datetime | None = None) -> "Subscription":
        """This subscription as Stripe now describes it; past_due_since starts at the first past_due."""
        now = now or datetime.now(timezone.utc)
        past_due_since = self.past_due_since
        if state.status == "past_due":
            past_due_since = past_due_since or now
        elif state.status in ("active", "trialing"):
            past_due_since = None
        return replace(
            self,
            status=state.status,
            quantity=state.quantity,
            current_period_end=state.current_period_end,
            cancel_at_period_end=state.cancel_at_period_end,
            trial_end=state.trial_end,
            past_due_since=past_due_since,
            updated_at=now,
        )

    # --- storage ----------------------------------------------------------------------------------

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": self.id, "RowKey": SUBSCRIPTION_ROW}
        for name, value in asdict(self).items():
            if name in ("id", "etag") or value is None:
                continue
            entity[_column(name)] = value
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> "Subscription":
        values: dict[str, Any] = {"id": entity["PartitionKey"]}
        for f in fields(cls):
            column = _column(f.name)
            if column in entity:
                value = entity[column]
                # Azure Tables returns datetimes as its own TablesEntityDatetime subclass.
                if isinstance(value, datetime):
                    value = datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)
                values[f.name] = value
        values["etag"] = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        return cls(**values)


def _column(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass(frozen=True)
class StripeSubscriptionState:
    """What we take from a Stripe subscription object, whichever API version shaped it."""

    id: str
    status: str
    quantity: int
    customer_id: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    trial_end: datetime | None
    metadata: dict[str, str]

    @classmethod
    def from_stripe(cls, obj: Any) -> "StripeSubscriptionState":
        """Read a subscription in the current shape (period on items) or pre-2025 (on the subscription)."""
        data = as_dict(obj)
        items = ((data.get("items") or {}).get("data")) or []
        quantity = sum(int(item.get("quantity") or 0) for item in items) if items else int(data.get("quantity") or 0)
        period_end = data.get("current_period_end")
        if period_end is None and items:
            ends = [item.get("current_period_end") for item in items if item.get("current_period_end")]
            period_end = max(ends) if ends else None
        customer = data.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        return cls(
            id=data["id"],
            status=str(data.get("status") or "incomplete"),
            quantity=quantity,
            customer_id=str(customer or ""),
            current_period_end=_from_unix(period_end),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")) or bool(data.get("cancel_at")),
            trial_end=_from_unix(data.get("trial_end")),
            metadata=dict(data.get("metadata") or {}),
        )


def _from_unix(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=timezone.utc)
