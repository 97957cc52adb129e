"""A license seat: one e-mail address in a subscription, bound to a person on first use.

The rules shared by license management and the license check (PRODUCT.md sections 3 and 4); where
the rows live is `adapters/keys.py`, how they are stored `adapters/subscription_repository.py`.

- A seat belongs to the subscription's partition. `sequence` orders assignments (higher = later; the
  highest go over quantity first). The subscription's `assigned_count` counts the seats; both change
  in one transaction under the subscription's ETag.
- `bound_tid`/`bound_oid` are empty until the first matching license check binds the seat (under the
  seat's ETag); `last_seen_on` ('YYYY-MM-DD') is written at most once a day by the license check.
- The user's own lookup row (`LicenseLookup`) is what the license check reads: keyed by object id
  once bound, by assigned address until then. Written idempotently after the partition commit;
  revoking deletes it in the same request (both possible rows: a binding may race the revoke), so a
  revoked user is unlicensed at once.
- Status is derived, never stored (`seat_status`): the subscription's license state first (expired,
  suspended), then the seat's over-quantity flag, then bound (active) or not (pending).
- A reservation (bulk changes over one transaction) holds the addresses of one request, their first
  sequence number and who asked; it is deleted when the bulk change is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from services.audit import Actor
from services.subscription import LicenseState, Subscription

PENDING = "pending"
ACTIVE = "active"
SUSPENDED = "suspended"
EXPIRED = "expired"
OVER_QUANTITY = "over_quantity"
STATUSES = (PENDING, ACTIVE, SUSPENDED, EXPIRED, OVER_QUANTITY)


def normalise_address(address: str) -> str:
    return address.strip().lower()


def same_tenant(a: str, b: str) -> bool:
    """Tenant ids are GUIDs: compared case-insensitively, and never equal when either is empty."""
    return bool(a) and bool(b) and a.lower() == b.lower()


@dataclass(frozen=True)
class Seat:
    email: str  # normalised
    sequence: int
    assigned_at: datetime | None = None
    assigned_by: str = ""
    bound_tid: str = ""
    bound_oid: str = ""
    bound_at: datetime | None = None
    last_seen_on: str = ""
    over_quantity: bool = False
    request_id: str = ""  # the assigning request, so a retried request is recognised
    reservation_id: str = ""  # set for seats written by a bulk change
    etag: str | None = None

    @classmethod
    def new(cls, email: str, *, sequence: int, assigned_by: str, request_id: str = "", reservation_id: str = "",
            bound_tid: str = "", bound_oid: str = "", at: datetime | None = None) -> Seat:
        at = at or datetime.now(UTC)
        return cls(email=normalise_address(email), sequence=sequence, assigned_at=at, assigned_by=assigned_by,
                   bound_tid=bound_tid, bound_oid=bound_oid, bound_at=at if bound_oid else None,
                   request_id=request_id, reservation_id=reservation_id)

    @property
    def bound(self) -> bool:
        return bool(self.bound_oid)

    def bound_to(self, tid: str, oid: str) -> bool:
        return self.bound_oid == oid and same_tenant(self.bound_tid, tid)

    def lookup(self, subscription: Subscription) -> LicenseLookup:
        """The seat holder's lookup row (with the seat's ETag as read: the unit of work replaces it with
        the one its commit produced)."""
        return LicenseLookup(subscription.id, self.email, subscription.tenant_id, self.bound_oid,
                             self.over_quantity, self.last_seen_on, seat_etag=self.etag or "")

    def with_over_quantity(self, over: bool) -> Seat:
        return replace(self, over_quantity=over)


@dataclass(frozen=True)
class LicenseLookup:
    """A user's own lookup row naming one subscription they hold a seat in.

    - `seat_etag`: on a row of an unbound seat, the seat's ETag when the row was written, so the first
      license check binds the seat with one conditional write instead of reading it first (a stale
      ETag only costs that read).
    - `address_row`: on a bound row, the `email|` row it was bound from may still exist (the first
      check leaves it: one write fewer); the next daily last-seen write removes it.
    - `revoked`: a tombstone in the person's partition. Revoking a bound seat replaces its row with one
      instead of deleting it, so a license check that bound the seat a moment before the revoke cannot
      write the row back afterwards (it only ever creates the row, never overwrites one).
    - `etag`: the lookup row's own, as read.
    """

    subscription_id: str
    email: str
    tenant_id: str
    bound_oid: str = ""
    over_quantity: bool = False
    last_seen_on: str = ""
    seat_etag: str = ""
    address_row: bool = False
    revoked: bool = False
    revoked_at: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def bound(self) -> bool:
        return bool(self.bound_oid)


@dataclass(frozen=True)
class Reservation:
    """An open bulk assignment: its addresses get sequences `sequence_start`, `sequence_start + 1`, ..."""

    request_id: str
    addresses: tuple[str, ...]
    sequence_start: int
    created_at: datetime
    actor: Actor
    etag: str | None = None

    def sequence_of(self, address: str) -> int:
        return self.sequence_start + self.addresses.index(address)


def subscription_seat_status(subscription: Subscription, grace_days: int, now: datetime | None = None) -> str | None:
    """The status every seat has because of the subscription (expired, suspended), else None."""
    state = subscription.license_state(grace_days, now)
    if state is LicenseState.EXPIRED:
        return EXPIRED
    if state is LicenseState.SUSPENDED:
        return SUSPENDED
    return None  # ACTIVE, PAST_DUE_GRACE and PENDING_PAYMENT keep seats active/pending


def status_of(subscription: Subscription, *, bound: bool, over_quantity: bool, grace_days: int,
              now: datetime | None = None) -> str:
    """pending | active | suspended | expired | over_quantity (PRODUCT.md capability 3): the license
    list and the license check's answer use this one rule."""
    return subscription_seat_status(subscription, grace_days, now) or (
        OVER_QUANTITY if over_quantity else ACTIVE if bound else PENDING
    )


def seat_status(seat: Seat, subscription: Subscription, grace_days: int, now: datetime | None = None) -> str:
    return status_of(subscription, bound=seat.bound, over_quantity=seat.over_quantity, grace_days=grace_days, now=now)


def over_quantity_flags(seats: list[Seat], quantity: int) -> dict[str, bool]:
    """Which seats are over `quantity`: the most recently assigned ones (highest sequence) first.

    Returns address -> over quantity, for every seat."""
    newest_first = sorted(seats, key=lambda s: (s.sequence, s.email), reverse=True)
    over = max(len(seats) - quantity, 0)
    return {seat.email: index < over for index, seat in enumerate(newest_first)}
