"""One way to change a subscription's partition (PRODUCT.md section 4).

`UnitOfWork.change(subscription_id, decide)`:

1. loads the subscription (and `decide` reads whatever other rows of the partition it needs through
   `uow.subscriptions`);
2. lets `decide` work out the whole change as a `Plan`: the rows to write, what to do after the
   commit, and the result. `decide` writes nothing; a domain error it raises means nothing is
   written at all;
3. commits the plan's writes in one entity-group transaction guarded by the subscription entity's
   ETag, so concurrent writers (two admins, two hosts) cannot both succeed on the same state;
4. on a conflict, starts again from fresh state (one retry policy for every change);
5. after the commit, runs the idempotent follow-up work (lookup rows, mails) from one place.

Storage comes in as a `TableStore`: the Azure adapter in production and integration tests, the
in-memory one in unit tests (services/bootstrap.py wires them).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Generic, TypeVar

from adapters.lookup_repository import LookupRepository
from adapters.subscription_repository import PartitionWrites, SubscriptionRepository
from adapters.table_storage import ConcurrencyConflict, TableStore
from services.delegate import InvitationLookup
from services.mail import MailMessage, queue_sends
from services.seat import LicenseLookup
from services.subscription import Subscription

log = logging.getLogger(__name__)

T = TypeVar("T")

# Attempts of one change before giving up (each re-reads fresh state), and the most a retry waits.
MAX_ATTEMPTS = 30
_MAX_BACKOFF_SECONDS = 0.05
# Below this many follow-up items they run one after the other; above, in parallel.
_SEQUENTIAL_UP_TO = 4


class Refused(Exception):
    """A change the rules refuse; nothing was written. `status` is the HTTP answer, `code` the API's."""

    code = "refused"
    status = 400


class SubscriptionNotFound(Refused):
    code, status = "subscription_not_found", 404


@dataclass(frozen=True)
class SeatLookupsGone:
    """Both lookup rows a seat may have (by oid and by address) are deleted after the commit."""

    subscription_id: str
    email: str
    bound_oid: str


@dataclass(frozen=True)
class PersonRole:
    """A person's row naming a subscription they own or administer; `role` None deletes it."""

    tid: str
    oid: str
    subscription_id: str
    role: str | None


@dataclass
class AfterCommit:
    """Follow-up work outside the partition, idempotent, run once the transaction has committed."""

    put_licenses: list[LicenseLookup] = field(default_factory=list)
    delete_licenses: list[SeatLookupsGone] = field(default_factory=list)
    people: list[PersonRole] = field(default_factory=list)
    invitation_lookups: list[InvitationLookup] = field(default_factory=list)
    mails: list[MailMessage] = field(default_factory=list)


@dataclass
class Plan(Generic[T]):
    """What `decide` wants: `writes` None means there is nothing to write (the after-commit work
    still runs: a retried request redoes its idempotent follow-up)."""

    result: T
    writes: PartitionWrites | None = None
    after: AfterCommit = field(default_factory=AfterCommit)


# Writers per subscription within this process, striped over a fixed set of locks (bounded memory;
# two subscriptions sharing a stripe merely wait for each other). Re-entrant: a change may start
# another on the same subscription from the same thread (after its own commit).
_WRITER_LOCKS = tuple(threading.RLock() for _ in range(64))


def _writer_lock(subscription_id: str) -> threading.RLock:
    return _WRITER_LOCKS[zlib.crc32(subscription_id.encode()) % len(_WRITER_LOCKS)]


def with_seat_etags(lookups: list[LicenseLookup], subscription_id: str,
                    seat_etags: dict[str, str]) -> list[LicenseLookup]:
    """The lookup rows with the ETags their seats got from the commit just made (LicenseLookup.seat_etag)."""
    if not seat_etags:
        return lookups
    return [replace(lookup, seat_etag=seat_etags[lookup.email])
            if lookup.subscription_id == subscription_id and lookup.email in seat_etags else lookup
            for lookup in lookups]


class UnitOfWork:
    def __init__(self, store: TableStore) -> None:
        self.store = store
        self.subscriptions = SubscriptionRepository(store)
        self.lookups = LookupRepository(store)

    def load(self, subscription_id: str) -> Subscription:
        subscription = self.subscriptions.load(subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(f"no subscription {subscription_id}")
        return subscription

    def change(self, subscription_id: str, decide: Callable[[Subscription], Plan[T]],
               attempts: int = MAX_ATTEMPTS) -> T:
        # One writer per subscription in this instance at a time: concurrent requests on one host
        # queue here instead of fighting over the ETag (and giving up with 503 after many retries);
        # only writers on other instances can still conflict. The follow-up work runs outside.
        with _writer_lock(subscription_id):
            plan = self._commit(subscription_id, decide, attempts)
        self.run_after_commit(plan.after)
        return plan.result

    def _commit(self, subscription_id: str, decide: Callable[[Subscription], Plan[T]], attempts: int) -> Plan[T]:
        for attempt in range(attempts):
            plan = decide(self.load(subscription_id))
            if plan.writes is None:
                return plan
            try:
                seat_etags = self.subscriptions.commit(plan.writes)
            except ConcurrencyConflict:
                log.info("change of %s lost a race (attempt %d); retrying on fresh state", subscription_id,
                         attempt + 1)
                # A little jitter so that writers that collided do not collide again in lockstep.
                time.sleep(random.uniform(0, min(_MAX_BACKOFF_SECONDS, 0.002 * (attempt + 1))))
                continue
            plan.after.put_licenses = with_seat_etags(plan.after.put_licenses, subscription_id, seat_etags)
            return plan
        raise ConcurrencyConflict(f"subscription {subscription_id} kept changing; gave up after {attempts} attempts")

    def run_after_commit(self, after: AfterCommit) -> None:
        """Lookup rows, then mails; every item is idempotent, so a retry may simply run them again."""
        work: list[Callable[[], None]] = []
        work += [partial(self.lookups.delete_licenses_of_seat, gone.subscription_id, gone.email, gone.bound_oid)
                 for gone in after.delete_licenses]
        work += [partial(self.lookups.put_license, lookup) for lookup in after.put_licenses]
        work += [partial(self.lookups.put_person_subscription, p.tid, p.oid, p.subscription_id, p.role)
                 if p.role else partial(self.lookups.delete_person_subscription, p.tid, p.oid, p.subscription_id)
                 for p in after.people]
        work += [partial(self.lookups.delete_invitation, i.token_hash) if i.gone
                 else partial(self.lookups.put_invitation, i) for i in after.invitation_lookups]
        work += queue_sends(self.store, after.mails)
        if len(work) <= _SEQUENTIAL_UP_TO:
            for item in work:
                item()
            return
        # Independent rows in other partitions and queue messages: in parallel, errors still raised.
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in pool.map(lambda item: item(), work):
                pass

