"""The license check: which license a signed-in person holds, and binding a seat on first use.

Rules (PRODUCT.md sections 3 and 4; storage contract in services/seat.py):

- A person is (`tid`, `oid`) from a validated token. Steady state is ONE query on the person's lookup
  partition `oid|<oid>` plus the subscriptions it names (cached per instance for at most 60 s).
- Only when that yields nothing valid are the `email|<address>` partitions of the token's sign-in
  addresses (`preferred_username`, `upn`, `email`, `unique_name`) queried: first use. A seat found there
  is bound to (`tid`, `oid`) only when the token's `tid` is the subscription's tenant; a token from
  another tenant claiming the address gets NO_LICENSE and a log line naming ids only.
- Binding is two writes (a first check is at most four storage calls): the seat row, under the ETag its
  lookup row carries, so of two people checking at once only the first binds (a stale ETag costs one
  read of the seat); then the person's `oid|` row, which is only ever created, never written over: a
  revoke that comes between the two leaves a tombstone there, and the check answers NO_LICENSE. The
  `email|` row stays until the next daily last-seen write removes it (LicenseLookup.address_row).
- A person with seats in several subscriptions gets the best, ranked by `RANK`.
- The only other write: the seat's LastSeenOn, at most once a day (also kept on the lookup row, so the
  steady state need not read the seat row to know it is due).

Storage errors are not caught here: the handler answers 503, never a wrong NO_LICENSE.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from adapters.lookup_repository import LookupRepository
from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import ConcurrencyConflict, TableStore
from services.identity import Principal
from services.seat import LicenseLookup, same_tenant, status_of
from services.subscription import LicenseState, Subscription
from services.subscription_cache import SubscriptionCache

log = logging.getLogger(__name__)


class Code(StrEnum):
    """What the add-in is told. `valid` is separate: it keeps working in grace."""

    VALID = "VALID"
    PAST_DUE_GRACE = "PAST_DUE_GRACE"
    OVER_QUANTITY = "OVER_QUANTITY"
    PENDING_PAYMENT = "PENDING_PAYMENT"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    NO_LICENSE = "NO_LICENSE"

    @property
    def valid(self) -> bool:
        return self in (Code.VALID, Code.PAST_DUE_GRACE)


# Best first. Valid beats invalid; among invalid ones, the code that a person can most easily fix
# (an admin lowering assignments, a payment) beats the ones that need a new purchase.
RANK = (
    Code.VALID,
    Code.PAST_DUE_GRACE,
    Code.OVER_QUANTITY,
    Code.PENDING_PAYMENT,
    Code.SUSPENDED,
    Code.EXPIRED,
    Code.NO_LICENSE,
)
_RANK_OF = {code: index for index, code in enumerate(RANK)}
# A tombstone (LicenseLookup.revoked) only has to outlive the checks that were binding its seat when it
# was revoked (seconds); the person's next check after this long removes it.
TOMBSTONE_KEPT = timedelta(days=1)

@dataclass(frozen=True)
class Decision:
    code: Code
    subscription: Subscription | None = None
    email: str | None = None
    expires_at: datetime | None = None
    lease_not_after: datetime | None = None
    # The seat's status as the license list shows it (services/seat.py: one rule for both).
    seat_status: str | None = None

    @property
    def valid(self) -> bool:
        return self.code.valid

    def better_than(self, other: Decision) -> bool:
        """A better code wins; between equal codes an organisation's license beats an individual one
        (a person whose individual subscription was merged holds both until it ends: PRODUCT.md 6)."""
        if self.code is not other.code:
            return _RANK_OF[self.code] < _RANK_OF[other.code]
        return _kind_rank(self) < _kind_rank(other)


def _kind_rank(decision: Decision) -> int:
    return 0 if decision.subscription is not None and decision.subscription.kind == "organisation" else 1


NO_LICENSE = Decision(Code.NO_LICENSE)


def decide(subscription: Subscription, email: str, over_quantity: bool, grace_days: int,
           now: datetime) -> Decision:
    """The code of one bound seat in `subscription`."""
    state = subscription.license_state(grace_days, now)
    if state is LicenseState.EXPIRED:
        code = Code.EXPIRED
    elif state is LicenseState.SUSPENDED:
        code = Code.SUSPENDED
    elif state is LicenseState.PENDING_PAYMENT:
        code = Code.PENDING_PAYMENT
    elif over_quantity:
        code = Code.OVER_QUANTITY
    elif state is LicenseState.PAST_DUE_GRACE:
        code = Code.PAST_DUE_GRACE
    else:
        code = Code.VALID
    return Decision(code, subscription, email, subscription.license_expires_at(grace_days),
                    lease_not_after(subscription, grace_days),
                    status_of(subscription, bound=True, over_quantity=over_quantity, grace_days=grace_days, now=now))


def lease_not_after(subscription: Subscription, grace_days: int) -> datetime | None:
    """A lease never outlives the paid period plus grace (or the grace already running)."""
    grace_end = subscription.grace_ends_at(grace_days)
    if grace_end is not None:
        return grace_end
    if subscription.current_period_end is not None:
        return subscription.current_period_end + timedelta(days=grace_days)
    return None


class LicenseChecker:
    """One per process: holds the subscription cache and the last-seen memo."""

    def __init__(self, cache: SubscriptionCache, grace_days: int):
        self.cache = cache
        self.grace_days = grace_days
        # (oid, subscription id) -> day last written, so a failed lookup-row write cannot cause a
        # seat write on every check of the day.
        self._seen: dict[tuple[str, str], str] = {}
        self._seen_lock = threading.Lock()

    def check(self, storage: TableStore, principal: Principal, now: datetime | None = None) -> Decision:
        now = now or datetime.now(UTC)
        lookups = LookupRepository(storage)
        best = NO_LICENSE
        bound_ids = set()
        tombstones: dict[str, LicenseLookup] = {}
        for row in lookups.oid_partition(principal.oid):
            if row.revoked:
                tombstones[row.subscription_id] = row
                continue
            bound_ids.add(row.subscription_id)
            decision = self._bound(storage, principal, row, now)
            if decision.better_than(best):
                best = decision
        if not best.valid:
            # First use (or a new assignment to an address of someone already bound elsewhere). The
            # address rows of seats this person holds already are left over from binding: skipped.
            for address in sorted(principal.sign_in_addresses()):
                for row in lookups.licenses_of_address(address):
                    if row.subscription_id in bound_ids:
                        continue
                    decision = self._bind(storage, principal, row, tombstones.pop(row.subscription_id, None), now)
                    if decision.better_than(best):
                        best = decision
        for tombstone in tombstones.values():
            if tombstone.revoked_at is not None and now - tombstone.revoked_at > TOMBSTONE_KEPT:
                lookups.delete_tombstone(tombstone)
        return best

    # --- steady state -----------------------------------------------------------------------------

    def _bound(self, storage: TableStore, principal: Principal, row: LicenseLookup, now: datetime) -> Decision:
        subscription = self.cache.get(storage, row.subscription_id)
        if subscription is None:
            return NO_LICENSE
        if not same_tenant(subscription.tenant_id, principal.tid):
            # Bound rows are only written for the subscription's tenant; this one was not.
            log.warning("license check: oid lookup row of subscription %s names another tenant than "
                        "token tenant %s (oid %s); ignored", subscription.id, principal.tid, principal.oid)
            return NO_LICENSE
        decision = decide(subscription, row.email, row.over_quantity, self.grace_days, now)
        self._touch(storage, principal, row, now)
        return decision

    def _touch(self, storage: TableStore, principal: Principal, row: LicenseLookup, now: datetime) -> None:
        """Write LastSeenOn at most once a day: seat row first (what the license list shows)."""
        today = now.date().isoformat()
        memo_key = (principal.oid, row.subscription_id)
        if row.last_seen_on == today or self._seen.get(memo_key) == today:
            return
        with self._seen_lock:
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen[memo_key] = today
        # A seat revoked meanwhile has nothing to record (False), and then neither has its lookup row.
        if SubscriptionRepository(storage).touch_seat(row.subscription_id, row.email, today):
            LookupRepository(storage).touch_license(principal.oid, row.subscription_id, today,
                                                    address=row.email if row.address_row else "")

    # --- first use ---------------------------------------------------------------------------------

    def _bind(self, storage: TableStore, principal: Principal, row: LicenseLookup, tombstone: LicenseLookup | None,
              now: datetime) -> Decision:
        subscription = self.cache.get(storage, row.subscription_id)
        if subscription is None:
            return NO_LICENSE
        if not same_tenant(subscription.tenant_id, principal.tid):
            # Someone from another tenant claims an assigned address: never bound, never revealed.
            log.warning("license check: token tenant %s (oid %s) matches an address assigned in subscription "
                        "%s of another tenant; not bound", principal.tid, principal.oid, subscription.id)
            return NO_LICENSE
        over_quantity = self._claim_seat(SubscriptionRepository(storage), principal, subscription.id, row, now)
        if over_quantity is None:
            return NO_LICENSE
        bound = LicenseLookup(subscription.id, row.email, subscription.tenant_id, principal.oid, over_quantity,
                              now.date().isoformat(), address_row=True)
        if not LookupRepository(storage).bind_license(bound, replacing=tombstone):
            log.info("license check: seat in subscription %s was revoked while oid %s bound it",
                     subscription.id, principal.oid)
            return NO_LICENSE
        log.info("license check: seat in subscription %s bound to oid %s (tenant %s)",
                 subscription.id, principal.oid, principal.tid)
        return decide(subscription, row.email, over_quantity, self.grace_days, now)

    def _claim_seat(self, seats: SubscriptionRepository, principal: Principal, subscription_id: str,
                    row: LicenseLookup, now: datetime) -> bool | None:
        """Bind the seat of `row` to this person (if it is free or theirs already); its over-quantity
        flag, or None when it is gone or someone else's."""
        etag, over_quantity = row.seat_etag, row.over_quantity
        for _ in range(3):
            if etag:
                try:
                    seats.bind_seat_at(subscription_id, row.email, etag, principal.tid, principal.oid, now)
                    return over_quantity
                except ConcurrencyConflict:
                    pass  # the seat changed since that ETag was seen, or went: look at it
            seat = seats.seat(subscription_id, row.email)
            if seat is None:
                return None  # revoked; its lookup row is going or gone
            if seat.bound_to(principal.tid, principal.oid):
                return seat.over_quantity  # bound by an earlier check (that may have stopped before the oid row)
            if seat.bound:
                log.warning("license check: seat in subscription %s is bound to another person; oid %s "
                            "(tenant %s) not bound", subscription_id, principal.oid, principal.tid)
                return None
            etag, over_quantity = seat.etag or "", seat.over_quantity
        return None
