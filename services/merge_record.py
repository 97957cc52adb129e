"""What a merge of individual subscriptions into an organisation subscription stores (PRODUCT.md
capability 6); the rules are in services/merge.py, the rows in adapters/subscription_repository.py
(`merge|<id>` in the organisation subscription's partition) and adapters/lookup_repository.py (table
TenantSubscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from services.audit import Actor

RUNNING = "running"
COMPLETED = "completed"


@dataclass(frozen=True)
class TenantSubscription:
    """A subscription indexed under the tenant of the person it licenses (an individual one: the
    tenant its seat is bound to, else the buyer's sign-in tenant), so an organisation finds the
    individual subscriptions of its people without a scan."""

    tenant_id: str
    subscription_id: str
    kind: str
    status: str
    owner_email: str
    owner_name: str
    bound_tid: str = ""
    bound_oid: str = ""


@dataclass(frozen=True)
class MergePerson:
    """One individual subscription of a merge and how far it got; every step is idempotent."""

    subscription_id: str
    email: str  # the individual seat's address
    name: str
    language: str
    bound_tid: str = ""
    bound_oid: str = ""
    seat: bool = False  # (1) seat in the organisation subscription written
    cancelled: bool = False  # (2) the individual subscription cancels at period end in Stripe
    ends_at: datetime | None = None  # when the individual subscription (and its seat) stops
    mailed: bool = False  # (3) the person's mail queued; (4) audit entries go with (1) and (2)

    @property
    def done(self) -> bool:
        return self.seat and self.cancelled and self.mailed

    def as_json(self) -> dict[str, object]:
        return {"subscription_id": self.subscription_id, "email": self.email, "name": self.name,
                "seat": self.seat, "cancelled": self.cancelled, "mailed": self.mailed, "done": self.done,
                "ends_at": self.ends_at.isoformat() if self.ends_at else None}


@dataclass(frozen=True)
class Merge:
    """A merge: its id is the request's Idempotency-Key; `quantity` the organisation's number of
    licenses it needs (raised first, as the owner confirmed); `proration_date` of that preview."""

    id: str
    actor: Actor
    people: tuple[MergePerson, ...]
    quantity: int
    proration_date: int | None = None
    status: str = RUNNING
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str = ""  # the last step that failed (a retry or the timer resumes)
    etag: str | None = field(default=None, compare=False)

    @property
    def subscription_ids(self) -> tuple[str, ...]:
        return tuple(p.subscription_id for p in self.people)

    def person(self, subscription_id: str) -> MergePerson:
        return next(p for p in self.people if p.subscription_id == subscription_id)

    def with_person(self, person: MergePerson, error: str = "") -> Merge:
        """With one person's progress; the merge is completed (and audited) by services/merge.py."""
        people = tuple(person if p.subscription_id == person.subscription_id else p for p in self.people)
        return replace(self, people=people, error=error, updated_at=datetime.now(UTC))
