"""Purchases waiting for a delayed payment (SEPA Direct Debit), so the buyer's dashboard shows them.

A Checkout session paid by a delayed method completes unpaid: no subscription exists until Stripe
confirms the payment (`checkout.session.async_payment_succeeded`, often days later), and the
dashboard, which lists subscriptions, showed nothing. Fulfilment (services/fulfilment.py) records such
a session for its buyer; the row goes when the subscription is created, and turns "failed" when the
payment fails (`async_payment_failed`), which the dashboard shows for FAILED_SHOWN_DAYS.

Written idempotently outside any subscription partition, like the other lookup rows (PRODUCT.md
section 4): a repeated or late event changes nothing, and a late "completed" event never turns a
failed purchase back into a pending one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from adapters.lookup_repository import LookupRepository
from adapters.stripe_gateway import StripeNotFound, as_dict
from adapters.table_storage import TableStore
from services.pending_purchase import FAILED, PENDING, PendingPurchase
from services.subscription import StripeSubscriptionState

FAILED_SHOWN_DAYS = 14


class StripeSubscriptions(Protocol):
    """What recording needs of Stripe (adapters/stripe_gateway.py): a subscription by id."""

    def subscription(self, subscription_id: str) -> Any: ...


def _buyer(session: dict[str, Any]) -> tuple[str, str] | None:
    metadata = session.get("metadata") or {}
    tid, oid = str(metadata.get("buyer_tid") or ""), str(metadata.get("buyer_oid") or "")
    return (tid, oid) if tid and oid else None


def record(storage: TableStore, stripe: StripeSubscriptions, session: dict[str, Any],
           now: datetime | None = None) -> None:
    """The buyer's purchase (a completed, unpaid Checkout session) waits for its payment; one already
    recorded stays as it is, a failed one too."""
    buyer = _buyer(session)
    if buyer is None or not session.get("id"):
        return
    lookups = LookupRepository(storage)
    if lookups.pending_purchase(*buyer, str(session["id"])) is not None:
        return
    metadata = session.get("metadata") or {}
    lookups.add_pending_purchase(PendingPurchase(
        session_id=str(session["id"]), buyer_tid=buyer[0], buyer_oid=buyer[1],
        kind="individual" if metadata.get("kind") == "individual" else "organisation",
        quantity=_quantity(stripe, session), started_at=now or datetime.now(UTC)))


def _quantity(stripe: StripeSubscriptions, session: dict[str, Any]) -> int:
    """How many licenses the session buys: its subscription's quantity (incomplete until paid)."""
    subscription = session.get("subscription")
    try:
        data = as_dict(stripe.subscription(subscription)) if isinstance(subscription, str) else subscription
    except StripeNotFound:
        return 0
    return StripeSubscriptionState.from_stripe(data).quantity if data else 0


def failed(storage: TableStore, session: dict[str, Any], now: datetime | None = None) -> None:
    """The delayed payment failed: no subscription will come."""
    buyer = _buyer(session)
    if buyer is not None and session.get("id"):
        LookupRepository(storage).fail_pending_purchase(*buyer, str(session["id"]), now or datetime.now(UTC))


def settled(storage: TableStore, session: dict[str, Any]) -> None:
    """The payment came and the subscription exists (or is being created): nothing is pending."""
    buyer = _buyer(session)
    if buyer is not None and session.get("id"):
        LookupRepository(storage).delete_pending_purchase(*buyer, str(session["id"]))


def of_person(storage: TableStore, tid: str, oid: str, now: datetime | None = None) -> list[PendingPurchase]:
    """What the dashboard shows: purchases still waiting for their payment, and recently failed ones;
    oldest first. A purchase whose subscription already exists is not pending any more."""
    now = now or datetime.now(UTC)
    lookups = LookupRepository(storage)
    shown = []
    for purchase in lookups.pending_purchases(tid, oid):
        if purchase.state == FAILED and purchase.failed_at and now - purchase.failed_at > timedelta(
                days=FAILED_SHOWN_DAYS):
            continue
        if purchase.state == PENDING and lookups.subscription_of_checkout_session(purchase.session_id):
            continue  # fulfilled; its row goes with the next fulfilment run
        shown.append(purchase)
    return sorted(shown, key=lambda p: p.started_at)
