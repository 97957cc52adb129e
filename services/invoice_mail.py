"""Invoices by e-mail (PRODUCT.md 2.13): every invoice to the subscription's accounting address with its
documents attached, and a reminder before an annual subscription renews.

- `invoice.finalized` (every invoice, whatever its collection method): one mail to the accounting
  address, if the subscription has one, in the subscription's language. Stripe mails the customer's own
  e-mail itself; this copy is for the bookkeeping inbox. A subscription bought by invoice may not be
  stored yet when its first invoice is finalized (the purchase request is still fulfilling it): then the
  finance settings come from the subscription's metadata that Stripe copies onto the invoice.
- The queued mail names the invoice only (a queue message holds at most 64 KiB); its documents are
  fetched when it is sent (services/invoice_attachments.py).
- `invoice.upcoming` (Stripe sends it some days before a renewal, configured in Stripe): for a yearly
  price, the owner and every delegate holding `billing.manage` get a reminder with the renewal date and
  the expected amount, once per subscription, period and recipient. Monthly subscriptions: nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.stripe_gateway import StripeGateway, StripeNotFound, as_dict
from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import TableStore
from services import subscription_store
from services.delegate import BILLING_MANAGE
from services.mail import compose, enqueue
from services.settings import Settings
from services.subscription import Subscription

log = logging.getLogger(__name__)

# Subscriptions that renew: the others are ending, ended, or not started.
RENEWING_STATUSES = ("active", "trialing", "past_due")


# --- the accounting mail ------------------------------------------------------------------------------


def mail_accounting(storage: TableStore, settings: Settings, subscription_id: str,
                    invoice: Mapping[str, Any]) -> str:
    """Queue the finalized invoice for the subscription's accounting address; what was done."""
    subscription = subscription_store.load(storage, subscription_id)
    if subscription is not None:
        address, language, po_number = (subscription.accounting_email, subscription.language,
                                        subscription.po_number)
    else:
        metadata = _subscription_metadata(invoice)
        address, language, po_number = (str(metadata.get("accounting_email") or ""),
                                        str(metadata.get("language") or "en"), str(metadata.get("po_number") or ""))
    if not address:
        return "no accounting address"
    if not invoice.get("id"):
        return "invoice without id"
    enqueue(storage, compose.invoice(settings, invoice, to=address, language=language, po_number=po_number))
    return "invoice mailed to the accounting address"


def _subscription_metadata(invoice: Mapping[str, Any]) -> Mapping[str, Any]:
    """The subscription's metadata as Stripe copied it onto the invoice (current and pre-2025 shapes)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or invoice.get("subscription_details") or {}
    metadata: Mapping[str, Any] = details.get("metadata") or {}
    return metadata


# --- the renewal reminder -----------------------------------------------------------------------------


def remind_renewal(storage: TableStore, stripe: StripeGateway, settings: Settings, subscription_id: str,
                   upcoming: Mapping[str, Any]) -> str:
    """Queue the reminders for an upcoming renewal of an annual subscription; what was done."""
    subscription = subscription_store.load(storage, subscription_id)
    if subscription is None:
        return "no such subscription"
    if subscription.status not in RENEWING_STATUSES or subscription.cancel_at_period_end \
            or subscription.merged_into:
        return "does not renew"
    interval = _interval(upcoming) or _interval_at_stripe(stripe, subscription_id)
    if interval != "year":
        return f"billed per {interval or 'unknown interval'}: no reminder"
    renews_at = _renewal(upcoming, subscription)
    if renews_at is None:
        log.warning("upcoming invoice of subscription %s names no renewal date; no reminder", subscription_id)
        return "no renewal date"
    amount = int(upcoming.get("total") or 0)
    currency = str(upcoming.get("currency") or "eur")
    recipients = _billing_people(storage, subscription)
    for address in recipients:
        enqueue(storage, compose.renewal_reminder(settings, subscription, address, renews_at=renews_at,
                                                  amount_minor=amount, currency=currency))
    return f"renewal reminder to {len(recipients)} recipient(s)"


def _billing_people(storage: TableStore, subscription: Subscription) -> list[str]:
    """The owner, then every delegate holding billing.manage; each address once."""
    found: dict[str, str] = {}
    delegates = sorted(SubscriptionRepository(storage).delegates(subscription.id), key=lambda d: d.email)
    for address in [subscription.owner_email] + [d.email for d in delegates if BILLING_MANAGE in d.permissions]:
        if address:
            found.setdefault(address.lower(), address)
    return list(found.values())


def _interval(upcoming: Mapping[str, Any]) -> str | None:
    """The billing interval from the invoice's lines: `price.recurring.interval` (or the older `plan`).
    Current API versions name only the price's id on a line (`pricing.price_details.price`): None then."""
    for line in (upcoming.get("lines") or {}).get("data") or []:
        price = line.get("price") if isinstance(line.get("price"), dict) else None
        interval = ((price or {}).get("recurring") or {}).get("interval") or (line.get("plan") or {}).get("interval")
        if interval:
            return str(interval)
    return None


def _interval_at_stripe(stripe: StripeGateway, subscription_id: str) -> str | None:
    """The interval of the subscription's price as Stripe has it now (StripeUnavailable raises: retried)."""
    try:
        stripe_subscription = as_dict(stripe.subscription(subscription_id))
    except StripeNotFound:
        return None
    for item in (stripe_subscription.get("items") or {}).get("data") or []:
        interval = ((item.get("price") or {}).get("recurring") or {}).get("interval") \
            or (item.get("plan") or {}).get("interval")
        if interval:
            return str(interval)
    return None


def _renewal(upcoming: Mapping[str, Any], subscription: Subscription) -> int | None:
    """When the subscription renews: the end of the period the upcoming invoice closes (Stripe's
    `period_end` of a renewal invoice), else when Stripe will charge it, else the stored period end."""
    for value in (upcoming.get("period_end"), upcoming.get("next_payment_attempt")):
        if value:
            return int(value)
    if subscription.current_period_end is not None:
        return int(subscription.current_period_end.timestamp())
    return None
