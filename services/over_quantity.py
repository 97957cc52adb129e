"""Seats over the quantity (PRODUCT.md capability 3): when Stripe lowers the quantity below the
number of assigned seats, the most recently assigned seats go `over_quantity`; nothing is deleted.
When the quantity rises again (or seats are revoked) they come back, newest last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from adapters.subscription_repository import PartitionWrites
from services.mail import compose
from services.seat import over_quantity_flags
from services.settings import Settings
from services.subscription import Subscription
from services.unit_of_work import AfterCommit, Plan, UnitOfWork

log = logging.getLogger(__name__)

# Seat updates per transaction: the subscription entity (the ETag guard) takes the 100th place.
_SEATS_PER_BATCH = 99


@dataclass(frozen=True)
class _Batch:
    subscription: Subscription  # as it was before this batch
    over: int
    assigned: int
    newly_over: int
    remaining: int


def apply_quantity(uow: UnitOfWork, settings: Settings, subscription_id: str) -> int:
    """Flag the most recently assigned seats beyond the quantity, unflag the rest; safe any time.

    Called after Stripe changed the quantity and after a revoke of a subscription that is over
    quantity. Mails the owner when seats newly go over quantity. Returns how many are over.
    """

    def decide(subscription: Subscription) -> Plan[_Batch]:
        seats = list(uow.subscriptions.seats(subscription_id))
        flags = over_quantity_flags(seats, subscription.quantity)
        changes = [s.with_over_quantity(flags[s.email]) for s in seats if s.over_quantity != flags[s.email]]
        batch = changes[:_SEATS_PER_BATCH]
        result = _Batch(subscription, sum(flags.values()), len(seats), sum(1 for s in batch if s.over_quantity),
                        len(changes) - len(batch))
        if not batch:
            return Plan(result)
        touched = replace(subscription, updated_at=datetime.now(UTC))
        return Plan(result, PartitionWrites(touched, update=batch),
                    AfterCommit(put_licenses=[s.lookup(subscription) for s in batch]))

    first: Subscription | None = None
    newly_over = 0
    while True:
        batch = uow.change(subscription_id, decide)
        first = first or batch.subscription
        newly_over += batch.newly_over
        if not batch.remaining:
            break
    if newly_over:
        uow.run_after_commit(AfterCommit(mails=[compose.over_quantity(settings, first, batch.over, batch.assigned)]))
        log.warning("subscription %s: %d seats over quantity %d", subscription_id, batch.over, first.quantity)
    return batch.over
