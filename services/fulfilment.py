"""Turning a completed Stripe Checkout session into an organisation subscription.

`fulfil(session_id)` runs from the purchase-completion redirect and from the
`checkout.session.completed` / `async_payment_succeeded` webhooks, in either order, any number of
times, concurrently: the subscription's partition key is the Stripe subscription id and the first
transaction that creates it wins; everyone else finds it and repairs the lookups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from adapters.lookup_repository import LookupRepository
from adapters.stripe_gateway import StripeGateway, StripeNotFound, as_dict
from adapters.subscription_repository import PartitionRow
from adapters.table_storage import TableStore
from services import delayed_payment, subscription_store
from services.audit import Actor, AuditEntry
from services.seat import Seat
from services.subscription import StripeSubscriptionState, Subscription

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    FULFILLED = "fulfilled"
    PENDING_PAYMENT = "pending_payment"  # delayed method (SEPA...): wait for async_payment_succeeded
    NOT_COMPLETE = "not_complete"  # open or expired: the buyer did not pay
    UNKNOWN = "unknown"  # no such session
    FOREIGN = "foreign"  # completed by someone else than the signed-in person
    NOT_OURS = "not_ours"  # not a subscription checkout of this product


@dataclass(frozen=True)
class Fulfilment:
    outcome: Outcome
    subscription: Subscription | None = None
    created: bool = False


# Marks a subscription bought by invoice (services/invoice_purchase.py) in its Stripe metadata, so a
# webhook or reconciliation can fulfil it without a Checkout session.
PURCHASE_BY_INVOICE = "invoice"


def buyer_reference(tid: str, oid: str) -> str:
    """`client_reference_id` of a checkout session: ties it to the signed-in buyer."""
    return f"{tid}_{oid}"


def fulfil(
    session_id: str,
    *,
    storage: TableStore,
    stripe: StripeGateway,
    buyer: tuple[str, str] | None = None,
) -> Fulfilment:
    """Create (or find) the subscription a checkout session paid for.

    `buyer` is the signed-in person's (tid, oid) on the redirect path: a session that belongs to
    someone else is refused there. The webhook path passes None (Stripe's signature vouches for it).
    """
    if not session_id.startswith("cs_"):
        return Fulfilment(Outcome.UNKNOWN)
    try:
        session = as_dict(stripe.checkout_session(session_id))
    except StripeNotFound:
        return Fulfilment(Outcome.UNKNOWN)

    metadata = session.get("metadata") or {}
    if session.get("mode") != "subscription" or "buyer_oid" not in metadata:
        return Fulfilment(Outcome.NOT_OURS)
    if buyer is not None and session.get("client_reference_id") != buyer_reference(*buyer):
        log.warning("checkout session %s opened by a person who did not buy it", session_id)
        return Fulfilment(Outcome.FOREIGN)
    if session.get("status") != "complete":
        return Fulfilment(Outcome.NOT_COMPLETE)
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        # A delayed method (SEPA debit): the buyer's dashboard shows the purchase until Stripe decides.
        delayed_payment.record(storage, stripe, session)
        return Fulfilment(Outcome.PENDING_PAYMENT)
    delayed_payment.settled(storage, session)

    existing = subscription_store.by_checkout_session(storage, session_id)
    if existing is not None:
        return Fulfilment(Outcome.FULFILLED, existing)

    stripe_sub = session.get("subscription")
    if isinstance(stripe_sub, str):
        stripe_sub = as_dict(stripe.subscription(stripe_sub))
    state = StripeSubscriptionState.from_stripe(stripe_sub)
    subscription = _new_subscription(session_id, session, metadata, state)
    return _create(storage, subscription, state, f"checkout session {session_id}")


def fulfil_invoice_purchase(stripe_subscription: dict[str, Any], *, storage: TableStore,
                            buyer: tuple[str, str] | None = None) -> Fulfilment:
    """Create (or find) the subscription bought by invoice (services/invoice_purchase.py): there is no
    Checkout session, the Stripe subscription's metadata names the buyer. Runs from the purchase request
    (`buyer` is the signed-in person), the `customer.subscription.created` webhook and reconciliation."""
    metadata = stripe_subscription.get("metadata") or {}
    if metadata.get("purchase") != PURCHASE_BY_INVOICE or "buyer_oid" not in metadata:
        return Fulfilment(Outcome.NOT_OURS)
    if buyer is not None and (metadata.get("buyer_tid"), metadata.get("buyer_oid")) != buyer:
        return Fulfilment(Outcome.FOREIGN)
    state = StripeSubscriptionState.from_stripe(stripe_subscription)
    return _create(storage, _new_subscription("", {}, metadata, state), state, "an invoice purchase")


def _create(storage: TableStore, subscription: Subscription, state: StripeSubscriptionState,
            source: str) -> Fulfilment:
    existing = subscription_store.load(storage, subscription.id)
    if existing is not None:
        subscription_store.index(storage, existing)
        return Fulfilment(Outcome.FULFILLED, existing)
    actor = Actor(tid=subscription.owner_tid, oid=subscription.owner_oid, email=subscription.owner_email,
                  name=subscription.owner_name)
    rows: list[PartitionRow] = [
        AuditEntry(actor, "subscription.purchased", after={"quantity": state.quantity, "kind": subscription.kind})
    ]
    own_seat = None
    if subscription.kind == "individual":
        # The buyer's own license: assigned and bound at once, they signed in to buy it.
        own_seat = Seat.new(subscription.owner_email, sequence=1, assigned_by=subscription.owner_email,
                            bound_tid=subscription.owner_tid, bound_oid=subscription.owner_oid)
        rows += [own_seat, AuditEntry(actor, "license.assigned", target=subscription.owner_email)]

    created = subscription_store.create(storage, subscription, rows)
    stored = subscription_store.load(storage, subscription.id)
    assert stored is not None  # created now, or by the concurrent fulfilment that won
    subscription_store.index(storage, stored)
    if own_seat is not None:
        LookupRepository(storage).put_license(own_seat.lookup(stored))
    if created:
        log.info("subscription %s created from %s", stored.id, source)
    return Fulfilment(Outcome.FULFILLED, stored, created=created)


def _new_subscription(session_id: str, session: dict[str, Any], metadata: dict[str, str],
                      state: StripeSubscriptionState) -> Subscription:
    kind = "individual" if metadata.get("kind") == "individual" else "organisation"
    now = datetime.now(UTC)
    individual = kind == "individual"
    return Subscription(
        id=state.id,
        kind=kind,
        status=state.status,
        quantity=state.quantity,
        assigned_count=1 if individual else 0,
        tenant_id=metadata["buyer_tid"],
        owner_tid=metadata["buyer_tid"],
        owner_oid=metadata["buyer_oid"],
        owner_email=metadata.get("buyer_email", ""),
        owner_name=metadata.get("buyer_name", ""),
        language=metadata.get("language", "en") if metadata.get("language") in ("en", "de") else "en",
        stripe_customer_id=state.customer_id or str(session.get("customer") or ""),
        checkout_session_id=session_id,
        current_period_end=state.current_period_end,
        cancel_at_period_end=state.cancel_at_period_end,
        trial_end=state.trial_end,
        past_due_since=now if state.status == "past_due" else None,
        created_at=now,
        updated_at=now,
        # The finance settings given with the purchase (services/business_details.py).
        po_number=metadata.get("po_number", ""),
        cost_centre=metadata.get("cost_centre", ""),
        accounting_email=metadata.get("accounting_email", ""),
        billing_interval=state.interval,  # monthly or annual, as bought (services/interval_change.py)
    )
