"""The organisation (or individual) subscription: its stored entity and what its state means.

One partition per subscription (PRODUCT.md section 4), keyed by the Stripe subscription id, so the
same checkout fulfilled twice lands on the same row (adapters/subscription_repository.py stores it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.subscription_schedule import current_interval, scheduled_switch

log = logging.getLogger(__name__)

class LicenseState(StrEnum):
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
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    setup_seen_at: datetime | None = None
    # The owner's marks on optional setup steps (services/setup_checklist.py): "" (none), "done" or
    # "not_needed"; admin consent, and delegated administrators.
    setup_consent: str = ""
    setup_delegates: str = ""
    # Highest seat sequence handed out (services/seat_assignment.py): newer seats go over quantity first.
    seat_sequence: int = 0
    # The last change made through this app at Stripe and applied here (services/quantity_change.py,
    # services/cancellation.py): its request is audited once, however often it is applied again.
    last_change_request: str = ""
    # An individual subscription merged into an organisation subscription (services/merge.py): that
    # subscription's id. It runs on until the end of its paid period (cancelled there in Stripe).
    merged_into: str = ""
    # Finance settings (PRODUCT.md 2.13; services/billing_settings.py): the purchase-order number and
    # cost centre Stripe prints on every invoice (its customer's custom fields), and the address that
    # receives every invoice. "" when not set.
    po_number: str = ""
    cost_centre: str = ""
    accounting_email: str = ""
    # Billing interval (PRODUCT.md 2.13), as Stripe has it, copied for the pages: "month" or "year"
    # ("" until read), and a switch to the other one planned at Stripe for the next renewal
    # (services/interval_change.py): the interval and when ("" / None when none is planned).
    billing_interval: str = ""
    scheduled_interval: str = ""
    scheduled_interval_at: datetime | None = None
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
            if ends is not None and (now or datetime.now(UTC)) >= ends:
                return LicenseState.SUSPENDED
        return state

    def license_expires_at(self, grace_days: int) -> datetime | None:
        """End of the paid period, or of the grace period while past due."""
        return self.grace_ends_at(grace_days) or self.current_period_end

    # --- applying Stripe's view ---------------------------------------------------------------

    def with_stripe_state(self, state: StripeSubscriptionState, now: datetime | None = None) -> Subscription:
        """This subscription as Stripe now describes it; past_due_since starts at the first past_due."""
        now = now or datetime.now(UTC)
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
            billing_interval=state.interval or self.billing_interval,
            scheduled_interval=state.scheduled_interval,
            scheduled_interval_at=state.scheduled_interval_at,
            updated_at=now,
        )


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
    interval: str = ""  # the license price's billing interval ("" when not given)
    scheduled_interval: str = ""  # a switch planned in the subscription's schedule
    scheduled_interval_at: datetime | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> StripeSubscriptionState:
        """Read a subscription in the current shape (period on items) or pre-2025 (on the subscription)."""
        from adapters.stripe_gateway import as_dict  # the Stripe adapter: off the license check's import path

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
        switch = scheduled_switch(data)
        return cls(
            id=data["id"],
            status=str(data.get("status") or "incomplete"),
            quantity=quantity,
            customer_id=str(customer or ""),
            current_period_end=_from_unix(period_end),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")) or bool(data.get("cancel_at")),
            trial_end=_from_unix(data.get("trial_end")),
            metadata=dict(data.get("metadata") or {}),
            interval=current_interval(data),
            scheduled_interval=switch.interval if switch else "",
            scheduled_interval_at=_from_unix(switch.at) if switch else None,
        )


def _from_unix(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)
