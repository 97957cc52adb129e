"""Changing the number of licenses (PRODUCT.md capability 5; owner or `quantity.manage`).

Preview, then confirm:

- `preview` asks Stripe (`Invoice.create_preview`) what the change costs: the prorated amount due now
  (the invoice the change bills at once) and the next regular invoice, and returns the `proration_date`
  Stripe used. Nothing is stored and nothing is audited.
- `change` sets the quantity of the subscription's seat item with that same `proration_date` (so the
  charge is what the preview showed), `proration_behavior=always_invoice` (billed and charged now) and
  `payment_behavior=error_if_incomplete` (a declined card refuses the change: nothing changes), under an
  idempotency key made from the caller's request id: a double click or a retried request changes
  Stripe once. Stripe's new state is then stored at once through the webhooks' own code
  (services/billing_changes.py), so the webhook finds nothing left to change.

Rules, checked before anything changes at Stripe: 1 to MAX_QUANTITY licenses; a decrease (from the
number Stripe has now) below the number of assigned licenses is refused with the number to revoke
first; individual subscriptions keep their one license; a subscription that ended cannot change.
Seats assigned while a decrease is under way are caught by the over-quantity rule like any lowered
quantity (services/over_quantity.py). A `proration_date` must come from a recent
preview (at most `PREVIEW_VALID_SECONDS` old by Stripe's clock, never in the future, within the
current period): otherwise anyone could pick the moment that makes the change cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.stripe_gateway import SeatPrice
from adapters.table_storage import TableStore
from services import access, billing_changes, interval_change, subscription_store
from services.audit import Actor
from services.billing_changes import CHANGEABLE, StripeSeats, changeable, stripe_refusals, stripe_seats
from services.billing_events import Attribution, Billing, refresh
from services.seat import same_tenant
from services.settings import Settings
from services.subscription import Subscription
from services.unit_of_work import Refused
from services.web_session import Person

# How long a preview's proration date may be confirmed, by Stripe's clock; and how far ahead of it.
PREVIEW_VALID_SECONDS = 3600
CLOCK_SKEW_SECONDS = 300


# --- refusals -----------------------------------------------------------------------------------------


class InvalidQuantity(Refused):
    code, status = "invalid_quantity", 400

    def __init__(self, maximum: int):
        super().__init__(f"the number of licenses must be a whole number from 1 to {maximum}")
        self.maximum = maximum


class BelowAssigned(Refused):
    """A decrease below the assigned licenses: revoke `revoke` licenses first."""

    code, status = "below_assigned", 409

    def __init__(self, quantity: int, assigned: int):
        self.revoke = assigned - quantity
        licenses = "license" if self.revoke == 1 else "licenses"
        super().__init__(f"{assigned} licenses are assigned: revoke {self.revoke} {licenses} first, then lower the "
                         f"number to {quantity}")
        self.assigned = assigned


class QuantityUnchanged(Refused):
    code, status = "quantity_unchanged", 409

    def __init__(self, quantity: int):
        super().__init__(f"the subscription already has {quantity} license{'' if quantity == 1 else 's'}")
        self.quantity = quantity


class IndividualSubscription(Refused):
    code, status = "individual_subscription", 409

    def __init__(self) -> None:
        super().__init__("an individual subscription has one license; buy an organisation subscription for more")


class PreviewExpired(Refused):
    code, status = "preview_expired", 409

    def __init__(self) -> None:
        super().__init__(f"the preview is older than {PREVIEW_VALID_SECONDS // 60} minutes or from another billing "
                         "period: preview the change again and confirm its proration_date")


# --- rules ------------------------------------------------------------------------------------------------


def check_quantity(subscription: Subscription, quantity: int, settings: Settings, current: int | None = None) -> None:
    """Refuse what the rules refuse before anything changes at Stripe: the bounds, an individual
    subscription, and (knowing the `current` number, Stripe's) a decrease below the assigned licenses.
    An increase is never refused for being below them (a subscription over quantity gets better)."""
    if subscription.kind == "individual":
        raise IndividualSubscription()
    if not 1 <= quantity <= settings.max_quantity:
        raise InvalidQuantity(settings.max_quantity)
    if current is not None and quantity < current and quantity < subscription.assigned_count:
        raise BelowAssigned(quantity, subscription.assigned_count)


def parse_quantity(value: object, settings: Settings) -> int:
    """A quantity from JSON (an integer) or a form (digits); InvalidQuantity otherwise."""
    if isinstance(value, bool):
        raise InvalidQuantity(settings.max_quantity)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= settings.max_quantity:
        raise InvalidQuantity(settings.max_quantity)
    return value


def expandable(storage: TableStore, person: Person) -> list[Subscription]:
    """Organisation subscriptions of the person's own tenant that they may add licenses to (owner or
    `quantity.manage`) and that still run: where buying more should go instead of a second purchase."""
    out = []
    for subscription, _ in subscription_store.for_user(storage, person.tid, person.oid):
        if (subscription.kind == "organisation" and subscription.status in CHANGEABLE
                and same_tenant(subscription.tenant_id, person.tid)
                and access.caller_on(storage, subscription, person).can(access.QUANTITY_MANAGE)):
            out.append(subscription)
    return out


# --- preview ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    amount: int  # minor units; negative for a credit
    quantity: int | None
    proration: bool
    period_start: datetime | None
    period_end: datetime | None


@dataclass(frozen=True)
class QuantityPreview:
    subscription_id: str
    current: int
    quantity: int
    currency: str
    interval: str
    proration_date: int  # unix seconds; confirm with the same
    due_now: int  # what is charged at once (after any credit balance)
    due_now_total: int  # the prorations' sum: negative for a decrease (credit for the next invoices)
    lines: tuple[InvoiceLine, ...]
    next_invoice_total: int  # the next regular invoice at the new quantity
    next_invoice_on: datetime
    unit_amount_current: int  # per license and interval, by the volume tier of the quantity
    unit_amount_new: int
    # A switch of the billing interval planned for the renewal (services/interval_change.py): the next
    # invoice bills that interval's price ("" and None: the same interval as now).
    next_interval: str = ""
    next_unit_amount: int | None = None

    @property
    def next_invoice_interval(self) -> str:
        return self.next_interval or self.interval

    @property
    def next_invoice_unit_amount(self) -> int:
        return self.unit_amount_new if self.next_unit_amount is None else self.next_unit_amount

    @property
    def tier_changed(self) -> bool:
        return self.unit_amount_current != self.unit_amount_new

    @property
    def credit(self) -> int:
        return max(-self.due_now_total, 0)


def preview(billing: Billing, subscription: Subscription, quantity: int) -> QuantityPreview:
    check_quantity(subscription, quantity, billing.settings)
    seats = stripe_seats(billing, subscription.id)
    changeable(seats)
    check_quantity(subscription, quantity, billing.settings, current=seats.quantity)
    if quantity == seats.quantity:
        raise QuantityUnchanged(quantity)
    with stripe_refusals():
        now = billing.stripe.preview_quantity(subscription.id, seats.customer_id, seats.item_id, quantity,
                                              proration_behavior="always_invoice")
        proration_date = _proration_date(now)
        price = billing.stripe.seat_price(seats.interval)
        switch = seats.switch if seats.switch is not None and seats.switch.at == seats.period_end else None
        next_price = billing.stripe.seat_price(switch.interval) if switch is not None else price
        if switch is not None:
            # The renewal bills the new interval for the new number (the phases follow it).
            following = billing.stripe.preview_first_invoice(seats.customer_id, next_price.id, quantity,
                                                             start=seats.period_end, interval=switch.interval,
                                                             automatic_tax=seats.automatic_tax)
        else:
            following = billing.stripe.preview_quantity(subscription.id, seats.customer_id, seats.item_id, quantity,
                                                        proration_behavior="none")
    return QuantityPreview(
        subscription_id=subscription.id, current=seats.quantity, quantity=quantity,
        currency=str(now.get("currency") or price.currency), interval=price.interval,
        proration_date=proration_date, due_now=int(now.get("amount_due") or 0),
        due_now_total=int(now.get("total") or 0),
        lines=tuple(_lines(now)), next_invoice_total=int(following.get("total") or 0),
        next_invoice_on=seats.period_ends_at, unit_amount_current=_unit(price, seats.quantity),
        unit_amount_new=_unit(price, quantity), next_interval=switch.interval if switch is not None else "",
        next_unit_amount=_unit(next_price, quantity) if switch is not None else None)


def _proration_date(invoice: dict[str, Any]) -> int:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return int(details.get("subscription_proration_date") or invoice.get("created") or 0)


def _unit(price: SeatPrice, quantity: int) -> int:
    try:
        return price.unit_amount_for(quantity)
    except ValueError:
        return 0


def _lines(invoice: dict[str, Any]) -> list[InvoiceLine]:
    out = []
    for line in ((invoice.get("lines") or {}).get("data")) or []:
        parent = line.get("parent") or {}
        details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
        period = line.get("period") or {}
        out.append(InvoiceLine(description=str(line.get("description") or ""), amount=int(line.get("amount") or 0),
                               quantity=line.get("quantity"),
                               proration=bool(details.get("proration", line.get("proration", False))),
                               period_start=_at(period.get("start")), period_end=_at(period.get("end"))))
    return out


def _at(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


# --- change ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargedInvoice:
    id: str
    number: str | None
    currency: str
    total: int
    amount_due: int
    amount_paid: int
    status: str
    hosted_invoice_url: str | None
    invoice_pdf: str | None


@dataclass(frozen=True)
class QuantityChange:
    subscription: Subscription  # as stored now
    before: int  # Stripe's quantity before
    quantity: int  # Stripe's quantity now
    changed: bool  # False: Stripe had this quantity already (a repeated confirmation)
    invoice: ChargedInvoice | None  # the invoice the change billed at once


def change(billing: Billing, actor: Actor, subscription: Subscription, quantity: int, request: str,
           proration_date: int | None = None) -> QuantityChange:
    """Set the quantity at Stripe (once per `request`, the caller's idempotency key) and store Stripe's
    state at once. Refused (nothing changed) by the rules, by a declined card, by a key used before for
    another change; StripeUnavailable when Stripe cannot be reached (retry with the same `request`)."""
    check_quantity(subscription, quantity, billing.settings)
    seats = stripe_seats(billing, subscription.id)
    changeable(seats)
    check_quantity(subscription, quantity, billing.settings, current=seats.quantity)
    key = billing_changes.request_key("quantity", subscription.id, actor, request)
    if quantity == seats.quantity:
        # Stripe has it already (the first of a double click got there): nothing to charge; the
        # stored state catches up if it has not yet.
        _, after = refresh(subscription.id, billing, "quantity change", attribution(actor, key, seats.quantity))
        return QuantityChange(after or subscription, seats.quantity, quantity, changed=False, invoice=None)
    if proration_date is not None:
        _check_proration_date(billing, subscription, seats, quantity, proration_date)
    with stripe_refusals():
        answer = billing.stripe.change_quantity(subscription.id, seats.item_id, quantity, idempotency_key=key,
                                                proration_date=proration_date)
    # A switch of the billing interval planned for the renewal bills the new number too.
    interval_change.follow_quantity(billing, seats, key)
    _, after = refresh(subscription.id, billing, "quantity change", attribution(actor, key, seats.quantity))
    stored = after or subscription
    return QuantityChange(stored, seats.quantity, stored.quantity, changed=True,
                          invoice=_charged(answer.get("latest_invoice"), seats.latest_invoice))


def _check_proration_date(billing: Billing, subscription: Subscription, seats: StripeSeats, quantity: int,
                          proration_date: int) -> None:
    """The proration date of a recent preview, by Stripe's clock (asked through a preview: Stripe's
    clock is the one that counts, and a test clock or the emulator's may differ from ours)."""
    if not seats.period_start <= proration_date <= seats.period_end:
        raise PreviewExpired()
    with stripe_refusals():
        check = billing.stripe.preview_quantity(subscription.id, seats.customer_id, seats.item_id, quantity,
                                                proration_behavior="always_invoice", proration_date=proration_date)
    stripe_now = int(check.get("created") or 0)
    if not stripe_now - PREVIEW_VALID_SECONDS <= proration_date <= stripe_now + CLOCK_SKEW_SECONDS:
        raise PreviewExpired()


def attribution(actor: Actor, key: str, stripe_before: int) -> Attribution:
    """Apply Stripe's state after `actor`'s change from `stripe_before` licenses (request `key`)."""
    return billing_changes.attributed(
        actor, key, "quantity.changed", "quantity change",
        made_by_us=lambda updated: updated.quantity != stripe_before,
        describe=lambda current, updated: ({"quantity": stripe_before}, {"quantity": updated.quantity}))


def _charged(latest: Any, before: str | None) -> ChargedInvoice | None:
    """The invoice the change billed at once: the subscription's latest, if the change made it."""
    if not isinstance(latest, dict) or latest.get("id") == before or latest.get("billing_reason") != (
            "subscription_update"):
        return None
    return ChargedInvoice(id=str(latest["id"]), number=latest.get("number"), currency=str(latest.get("currency") or ""),
                          total=int(latest.get("total") or 0), amount_due=int(latest.get("amount_due") or 0),
                          amount_paid=int(latest.get("amount_paid") or 0), status=str(latest.get("status") or ""),
                          hosted_invoice_url=latest.get("hosted_invoice_url"), invoice_pdf=latest.get("invoice_pdf"))
