"""The license list's read side: pages filtered by status and by any part of the address, and the CSV
export.

It reads the seats for display only and never goes through the write model (services/unit_of_work.py).
Searching by a part of the address (a domain such as "@fabrikam.example", a surname) cannot use a key range:
Table Storage has no substring filter, so a search reads the subscription's seats in address order and
keeps the matches (adapters/subscription_repository.py `seat_search`: bounded by MAX_QUANTITY seats per
request). Without a search term the pages come straight from a key-range query.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import TableStore
from services.audit_log import csv_safe
from services.seat import ACTIVE, OVER_QUANTITY, PENDING, STATUSES, Seat, seat_status, subscription_seat_status
from services.subscription import Subscription

# Status filters the table can evaluate itself (stored flags): (bound, over quantity).
_STORED_FLAGS: dict[str, tuple[bool | None, bool]] = {
    PENDING: (False, False),
    ACTIVE: (True, False),
    OVER_QUANTITY: (None, True),
}
CSV_COLUMNS = ("email", "status", "bound", "assigned_at", "assigned_by", "last_seen_on")
CSV_DELIMITERS = (",", ";")


@dataclass(frozen=True)
class SeatView:
    email: str
    status: str
    bound: bool
    assigned_at: datetime | None
    assigned_by: str
    last_seen_on: str

    @classmethod
    def of(cls, seat: Seat, subscription: Subscription, grace_days: int) -> SeatView:
        return cls(seat.email, seat_status(seat, subscription, grace_days), seat.bound, seat.assigned_at,
                   seat.assigned_by, seat.last_seen_on)

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "status": self.status,
            "bound": self.bound,
            "assigned_at": self.assigned_at.isoformat() if self.assigned_at else None,
            "assigned_by": self.assigned_by,
            "last_seen_on": self.last_seen_on or None,
        }


@dataclass(frozen=True)
class SeatPage:
    seats: list[SeatView]
    continuation: str | None


def list_seats(storage: TableStore, subscription: Subscription, grace_days: int, *, status: str | None = None,
               search: str = "", continuation: str | None = None, limit: int = 50) -> SeatPage:
    """One page of seats, in address order, whose address contains `search` (any part, any case);
    `continuation` from the previous page."""
    if status and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    whole = subscription_seat_status(subscription, grace_days)
    bound: bool | None = None
    over: bool | None = None
    if status:
        if whole is not None:
            if status != whole:
                return SeatPage([], None)
        elif status not in _STORED_FLAGS:
            return SeatPage([], None)  # suspended/expired: only ever the whole subscription's status
        else:
            bound, over = _STORED_FLAGS[status]
    repository = SubscriptionRepository(storage)
    term = search.strip().lower()
    if term:
        seats, token = repository.seat_search(subscription.id, term, bound=bound, over_quantity=over, limit=limit,
                                              continuation=decode_token(continuation))
    else:
        seats, token = repository.seat_page(subscription.id, bound=bound, over_quantity=over, limit=limit,
                                            continuation=decode_token(continuation))
    return SeatPage([SeatView.of(s, subscription, grace_days) for s in seats], encode_token(token))


def encode_token(token: dict[str, Any] | None) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid continuation token") from exc
    # The storage's next-key pair, sent back to it as request headers: plain ASCII strings only.
    if not isinstance(value, dict) or not value or not set(value) <= _TOKEN_KEYS or not all(
            v is None or (isinstance(v, str) and len(v) <= 1024 and v.isascii() and v.isprintable())
            for v in value.values()):
        raise ValueError("invalid continuation token")
    return value


_TOKEN_KEYS = {"PartitionKey", "RowKey"}


def export_csv(storage: TableStore, subscription: Subscription, grace_days: int, status: str | None = None,
               delimiter: str = ",") -> str:
    """Every seat (of `status`) as CSV. `delimiter` ";" is what Excel expects where the decimal separator
    is a comma (German regional settings): with "," it puts each whole row into one column."""
    if delimiter not in CSV_DELIMITERS:
        raise ValueError(f"delimiter must be one of {CSV_DELIMITERS}")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for seat in SubscriptionRepository(storage).seats(subscription.id):
        view = SeatView.of(seat, subscription, grace_days)
        if status and view.status != status:
            continue
        row = view.as_json()
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return csv_safe("true" if value is True else "false" if value is False else str(value))
