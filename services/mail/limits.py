"""Relay protection for the mails the service sends to addresses an owner typed in: welcome and
invitation mails are limited per recipient and per subscription (README "Mail limits").

The composer (services/mail/compose.py) decides which limits a mail counts against; the sender
(services/mail/delivery.py) takes them when it is about to send and gives them back when the send fails
or is throttled, so a mail that never goes out counts nothing, and a retried message (same id) is not
counted twice. Counters are rows of the SentMail table,
one per limit key and UTC day, raised under their ETag so concurrent senders count exactly.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from adapters import keys
from adapters.table_storage import SENT_MAIL, ConcurrencyConflict, TableStore
from services.mail.message import MailLimit

log = logging.getLogger(__name__)

# A welcome mail: at most once a day per address and subscription (by its id), and per subscription
# at most twice its quantity plus a margin, so assign/revoke churn cannot mail the world.
WELCOME_PER_SUBSCRIPTION_MARGIN = 10
# An invitation or ownership-offer mail: a few a day per address (first mail and resends), and a
# subscription-wide ceiling; beyond it the link is still shown to the owner, only not mailed.
INVITATIONS_PER_RECIPIENT = 3
INVITATIONS_PER_SUBSCRIPTION = 20

_COUNTER_PREFIX = "limit|"
_ATTEMPTS = 20


def welcome_limits(subscription_id: str, quantity: int) -> list[MailLimit]:
    return [MailLimit(key=f"welcome|{subscription_id}",
                      per_day=2 * max(quantity, 1) + WELCOME_PER_SUBSCRIPTION_MARGIN)]


def invitation_limits(subscription_id: str, recipient: str) -> list[MailLimit]:
    return [MailLimit(key=f"invitation|{subscription_id}|{recipient.lower()}", per_day=INVITATIONS_PER_RECIPIENT),
            MailLimit(key=f"invitation|{subscription_id}", per_day=INVITATIONS_PER_SUBSCRIPTION)]


def take(storage: TableStore, limits: list[MailLimit], now: datetime | None = None) -> MailLimit | None:
    """Count one mail against each limit, in order; the first limit already reached (nothing more is
    counted then), or None when the mail may go."""
    day = (now or datetime.now(UTC)).date().isoformat()
    for limit in limits:
        if not _take_one(storage, day, limit):
            return limit
    return None


def give_back(storage: TableStore, limits: list[MailLimit], now: datetime) -> None:
    """Undo `take(storage, limits, now)` for a mail that did not go out after all (the send failed or
    was throttled): its retry counts it again, so it must not count twice."""
    day = now.date().isoformat()
    for limit in limits:
        partition, row = _COUNTER_PREFIX + day, keys.encode(limit.key)
        for _ in range(_ATTEMPTS):
            current = storage.get(SENT_MAIL, partition, row)
            count = int(current.get("Count", 0)) if current is not None else 0
            if current is None or count <= 0:
                break
            try:
                storage.merge(SENT_MAIL, {"PartitionKey": partition, "RowKey": row, "Count": count - 1},
                              etag=current.etag)
                break
            except ConcurrencyConflict:
                continue


def _take_one(storage: TableStore, day: str, limit: MailLimit) -> bool:
    partition, row = _COUNTER_PREFIX + day, keys.encode(limit.key)
    for _ in range(_ATTEMPTS):
        current = storage.get(SENT_MAIL, partition, row)
        if current is None:
            if storage.insert(SENT_MAIL, {"PartitionKey": partition, "RowKey": row, "Count": 1}):
                return True
            continue  # another sender counted first: read again
        count = int(current.get("Count", 0))
        if count >= limit.per_day:
            return False
        try:
            storage.merge(SENT_MAIL, {"PartitionKey": partition, "RowKey": row, "Count": count + 1},
                          etag=current.etag)
            return True
        except ConcurrencyConflict:
            continue
    raise ConcurrencyConflict(f"mail limit {limit.key} kept changing")
