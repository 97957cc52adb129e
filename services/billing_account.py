"""Invoices and the payment method (PRODUCT.md capability 5; owner or `billing.manage`).

Invoices are read from Stripe page by page (Stripe's own cursor, `starting_after`), newest first, with
the links to Stripe's hosted invoice page and PDF. The payment method, billing address and tax ids are
changed in Stripe's billing portal: a session for the subscription's customer under a configuration
that allows only those and the invoice history (never a plan change or a cancellation, which go
through this app's rules); opening it is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from services import subscription_store
from services.audit import Actor, AuditEntry
from services.billing_changes import stripe_refusals
from services.billing_events import Billing
from services.links import subscription_url
from services.subscription import Subscription
from services.unit_of_work import Refused

MAX_PAGE = 100
# A Stripe invoice id, as a cursor; anything else is not sent to Stripe.
_INVOICE_ID = re.compile(r"in_[A-Za-z0-9_]{1,100}")


class InvalidCursor(Refused):
    code, status = "invalid_cursor", 400

    def __init__(self) -> None:
        super().__init__("starting_after: the id of an invoice from the previous page (in_...)")


class NoCustomer(Refused):
    code, status = "no_billing_account", 409

    def __init__(self) -> None:
        super().__init__("the subscription has no customer at the payment provider yet")


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str | None
    created: datetime
    currency: str
    total: int
    amount_due: int
    amount_paid: int
    amount_remaining: int
    status: str  # draft, open, paid, uncollectible, void
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    period_start: datetime | None
    period_end: datetime | None

    @classmethod
    def from_stripe(cls, data: dict[str, Any]) -> Invoice:
        return cls(id=str(data["id"]), number=data.get("number"), created=_at(data.get("created")) or datetime.now(UTC),
                   currency=str(data.get("currency") or ""), total=int(data.get("total") or 0),
                   amount_due=int(data.get("amount_due") or 0), amount_paid=int(data.get("amount_paid") or 0),
                   amount_remaining=int(data.get("amount_remaining") or 0), status=str(data.get("status") or ""),
                   hosted_invoice_url=data.get("hosted_invoice_url"), invoice_pdf=data.get("invoice_pdf"),
                   period_start=_at(data.get("period_start")), period_end=_at(data.get("period_end")))


@dataclass(frozen=True)
class InvoicePage:
    invoices: list[Invoice]
    next_cursor: str | None  # the last invoice's id when there are more


def invoices(billing: Billing, subscription: Subscription, limit: int = 10,
             starting_after: str | None = None) -> InvoicePage:
    if starting_after and not _INVOICE_ID.fullmatch(starting_after):
        raise InvalidCursor()
    with stripe_refusals():
        found, more = billing.stripe.invoices(subscription.id, max(1, min(limit, MAX_PAGE)), starting_after or None)
    page = [Invoice.from_stripe(data) for data in found]
    return InvoicePage(page, page[-1].id if more and page else None)


def billing_portal(billing: Billing, actor: Actor, subscription: Subscription, language: str) -> str:
    """A billing-portal session's URL (payment method, billing address, tax ids, invoice history) that
    returns to the subscription page; audited as opened by `actor`."""
    if not subscription.stripe_customer_id:
        raise NoCustomer()
    with stripe_refusals():
        url = billing.stripe.billing_portal_url(subscription.stripe_customer_id,
                                                subscription_url(billing.settings, subscription.id), language)
    now = datetime.now(UTC)
    subscription_store.update(billing.storage, subscription.id, lambda current: (
        replace(current, updated_at=now), [AuditEntry(actor, "billing_portal.opened", at=now)]))
    return url


def _at(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None
