"""The mails the rules send, composed in one place: ids that make them idempotent, and their language.

A mail's id is its idempotency key (services/mail/delivery.py sends an id once), so each id here
says what makes the mail happen once: the same seat welcomed once, one mail per failed invoice event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.delegate import Invitation, ordered
from services.i18n import format_money, translator
from services.links import setup_url, subscription_url
from services.mail import limits
from services.mail.message import Language, MailMessage
from services.seat import Seat
from services.settings import Settings
from services.subscription import Subscription


def _language(subscription: Subscription) -> Language:
    return _language_of(subscription.language)


def _language_of(language: str) -> Language:
    return "de" if language == "de" else "en"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def welcome(settings: Settings, subscription: Subscription, seat: Seat) -> MailMessage:
    # One welcome per address and subscription per UTC day of assignment (the id): assigning, revoking
    # and assigning an address again the same day mails once; a retried request has the same seat.
    # Per subscription, at most 2 x quantity + 10 a day (services/mail/limits.py).
    day = (seat.assigned_at or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    return MailMessage(
        id="welcome-" + _digest(f"{subscription.id}|{seat.email}|{day}"),
        template="welcome",
        to=seat.email,
        language=_language(subscription),
        params={"organisation": subscription.owner_name or subscription.owner_email,
                "base_url": settings.public_base_url},
        limits=limits.welcome_limits(subscription.id, subscription.quantity),
    )


def over_quantity(settings: Settings, subscription: Subscription, over: int, assigned: int) -> MailMessage:
    # Once per quantity change that left seats over the quantity.
    return MailMessage(
        id="over-quantity-" + _digest(f"{subscription.id}|{subscription.quantity}|{assigned}|{subscription.etag}"),
        template="over_quantity",
        to=subscription.owner_email,
        language=_language(subscription),
        params={"over": over, "quantity": subscription.quantity, "assigned": assigned,
                "subscription_url": subscription_url(settings, subscription.id)},
    )


def to_owner(settings: Settings, subscription: Subscription, template: str, mail_id: str,
             **params: Any) -> MailMessage:
    """Billing news for the owner (payment failed, trial ending)."""
    return MailMessage.model_validate({
        "id": mail_id,
        "template": template,
        "to": subscription.owner_email,
        "language": _language(subscription),
        "params": {"quantity": subscription.quantity,
                   "subscription_url": subscription_url(settings, subscription.id), **params},
    })


def cancellation(settings: Settings, subscription: Subscription) -> MailMessage:
    """The subscription ends at the end of the paid period (the date licenses stop), or no longer does.
    Once per change of the stored subscription (its ETag after the change)."""
    scheduled = subscription.cancel_at_period_end
    ends = subscription.current_period_end
    return MailMessage(
        id="cancellation-" + _digest(f"{subscription.id}|{scheduled}|{subscription.etag}"),
        template="cancellation",
        to=subscription.owner_email,
        language=_language(subscription),
        params={"scheduled": scheduled, "ends_on": ends.strftime("%Y-%m-%d") if ends else "",
                "quantity": subscription.quantity, "subscription_url": subscription_url(settings, subscription.id)},
    )


def quantity_changed(settings: Settings, subscription: Subscription, before: int) -> MailMessage:
    """The number of licenses changed at Stripe directly (dashboard, support); once per stored change."""
    return MailMessage(
        id="quantity-changed-" + _digest(f"{subscription.id}|{before}|{subscription.quantity}|{subscription.etag}"),
        template="quantity_changed",
        to=subscription.owner_email,
        language=_language(subscription),
        params={"before": before, "quantity": subscription.quantity, "assigned": subscription.assigned_count,
                "subscription_url": subscription_url(settings, subscription.id)},
    )


def invitation(settings: Settings, subscription: Subscription, invitation: Invitation, link: str) -> MailMessage:
    """The one-time link for a delegated administrator or a new owner. Language: the subscription's (a
    person we do not know yet has told us no language of their own)."""
    language = _language(subscription)
    t = translator(language)
    inviter = invitation.invited_by.name or invitation.invited_by.email or subscription.owner_name
    return MailMessage(
        # One mail per token: a resend (new token) mails again, a retried request does not.
        id="invitation-" + _digest(invitation.token_hash),
        template="invitation",
        to=invitation.email,
        language=language,
        # A few a day per address and subscription; beyond, the owner still sees the link.
        limits=limits.invitation_limits(subscription.id, invitation.email),
        params={"inviter": inviter, "organisation": subscription.owner_name or subscription.owner_email,
                "kind": invitation.kind, "link": link,
                "permissions": [t(f"permission.{p}") for p in ordered(invitation.permissions)],
                "expires": invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")},
    )


def subscription_ready(settings: Settings, subscription: Subscription) -> MailMessage:
    return MailMessage(
        id=f"ready-{subscription.id}",
        template="subscription_ready",
        to=subscription.owner_email,
        language=_language(subscription),
        params={"quantity": subscription.quantity, "setup_url": setup_url(settings, subscription.id)},
    )


def invoice(settings: Settings, stripe_invoice: Mapping[str, Any], *, to: str, language: str,
            po_number: str) -> MailMessage:
    """A finalized invoice for the subscription's accounting address, its documents attached when it
    is sent (the message names the invoice). Once per invoice and address (the id): a redelivered
    event mails once; an address changed in between gets its own copy."""
    invoice_id = str(stripe_invoice["id"])
    lang = _language_of(language)
    due = stripe_invoice.get("due_date")
    by_transfer = stripe_invoice.get("collection_method") == "send_invoice"
    return MailMessage(
        id="invoice-" + _digest(f"{invoice_id}|{to.lower()}"),
        template="invoice",
        to=to,
        language=lang,
        invoice_id=invoice_id,
        params={
            "number": str(stripe_invoice.get("number") or invoice_id),
            "organisation": str(stripe_invoice.get("customer_name") or ""),
            "total": format_money(int(stripe_invoice.get("total") or 0), str(stripe_invoice.get("currency") or "eur"),
                                  lang),
            # Paid by bank transfer: the date it is due; charged automatically: no date to watch.
            "due_date": _day(due) if by_transfer and due else "",
            "by_transfer": by_transfer,
            "hosted_invoice_url": str(stripe_invoice.get("hosted_invoice_url") or ""),
            "invoice_pdf": str(stripe_invoice.get("invoice_pdf") or ""),
            "po_number": po_number,
        },
    )


def renewal_reminder(settings: Settings, subscription: Subscription, to: str, *, renews_at: int,
                     amount_minor: int, currency: str) -> MailMessage:
    """An annual subscription renews soon: once per subscription, period and recipient (the id)."""
    language = _language(subscription)
    return MailMessage(
        id="renewal-" + _digest(f"{subscription.id}|{renews_at}|{to.lower()}"),
        template="renewal_reminder",
        to=to,
        language=language,
        params={"renews_on": _day(renews_at), "amount": format_money(amount_minor, currency, language),
                "quantity": subscription.quantity, "subscription_url": subscription_url(settings, subscription.id)},
    )


def _day(timestamp: int) -> str:
    """A Stripe timestamp as the UTC date mails show (YYYY-MM-DD, as the other mails)."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).date().isoformat()
