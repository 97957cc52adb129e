"""A purchase waiting for its delayed payment (SEPA Direct Debit): the row the buyer's dashboard shows
(services/delayed_payment.py keeps it; adapters/lookup_repository.py stores it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

PENDING: Final = "pending"
FAILED: Final = "failed"
PurchaseState = Literal["pending", "failed"]


@dataclass(frozen=True)
class PendingPurchase:
    session_id: str
    buyer_tid: str
    buyer_oid: str
    kind: str  # "organisation" | "individual"
    quantity: int  # 0 when Stripe did not say
    started_at: datetime
    state: PurchaseState = PENDING
    failed_at: datetime | None = None
