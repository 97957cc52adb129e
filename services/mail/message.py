"""The queued e-mail message and how it gets on the queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, TableStore
from services.address_list import address_problem

Template = Literal[
    "welcome",
    "subscription_ready",
    "payment_failed",
    "trial_ending",
    "over_quantity",
    "test",
    "invitation",
    "cancellation",
    "quantity_changed",
    "merged",
    "invoice",
    "renewal_reminder",
]
Language = Literal["en", "de"]


@dataclass(frozen=True)
class Attachment:
    """A file sent with a mail (an invoice PDF, an e-invoice XML). Fetched when the mail is sent, never
    queued: a queue message holds at most 64 KiB."""

    filename: str
    content_type: str
    content: bytes


class MailLimit(BaseModel):
    """At most `per_day` mails counted under `key` per UTC day (services/mail/limits.py); a mail over
    any of its limits is not sent."""

    key: str = Field(min_length=1, max_length=400)
    per_day: int = Field(ge=1)


class MailMessage(BaseModel):
    # Idempotency key: the same id is sent at most once, so a retried request that enqueues the same
    # mail again (same id) does not send it twice.
    id: str = Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    template: Template
    to: str
    language: Language = "en"
    params: dict[str, Any] = Field(default_factory=dict)
    # Relay protection: the limits this mail counts against (per recipient, per subscription).
    limits: list[MailLimit] = Field(default_factory=list)
    # A Stripe invoice whose documents (PDF, e-invoice) go with the mail. Only its id is queued: the
    # documents are fetched when the mail is sent (services/invoice_mail.py).
    invoice_id: str = Field(default="", max_length=100, pattern=r"^(in_[A-Za-z0-9]+)?$")
    # Set when the provider first throttled this mail (services/mail/delivery.py): it is queued again
    # with a delay, for at most MAX_DEFERRAL from then.
    deferred_since: datetime | None = None

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        # The same grammar that accepted the address when it was assigned or invited
        # (services/address_list.py): a mail never refuses what a list accepted.
        value = value.strip()
        problem = address_problem(value.lower())
        if problem is not None:
            raise ValueError(f"not an e-mail address this service sends to ({problem})")
        return value


def enqueue(storage: TableStore, message: MailMessage, visible_in: int | None = None) -> None:
    """Queue the mail for the send function; `visible_in` seconds from now if given."""
    storage.send(OUTBOUND_EMAIL_QUEUE, message.model_dump_json().encode("utf-8"), visibility_timeout=visible_in)
