"""The queued e-mail message and how it gets on the queue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
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


# Mails queued together (a bulk assignment's welcome mails) share queue messages: one message per mail
# would double a bulk change's storage writes. A batch holds at most MAX_BATCH mails, so it is sent well
# within the function timeout, and at most MAX_BATCH_BYTES of JSON: a queue message holds 64 KiB of
# base64, 48 KiB before encoding.
MAX_BATCH = 50
MAX_BATCH_BYTES = 45_000


class MailBatch(BaseModel):
    """Several mails in one queue message. Each is still sent once by its own id, and one that fails is
    queued again on its own (services/mail/delivery.py), so a batch never shares one mail's retries."""

    mails: list[MailMessage] = Field(min_length=1, max_length=MAX_BATCH)


def queue_bodies(messages: Sequence[MailMessage]) -> list[bytes]:
    """The queue messages that carry these mails: a single mail as itself, more in batches."""
    if len(messages) == 1:
        return [messages[0].model_dump_json().encode("utf-8")]
    bodies: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for message in messages:
        mail = message.model_dump_json().encode("utf-8")
        if batch and (len(batch) == MAX_BATCH or size + len(mail) + 1 > MAX_BATCH_BYTES):
            bodies.append(_batch(batch))
            batch, size = [], 0
        batch.append(mail)
        size += len(mail) + 1
    if batch:
        bodies.append(_batch(batch))
    return bodies


def _batch(mails: list[bytes]) -> bytes:
    return b'{"mails":[' + b",".join(mails) + b"]}"


def queue_sends(storage: TableStore, messages: Sequence[MailMessage],
                visible_in: int | None = None) -> list[Callable[[], None]]:
    """One call per queue message that carries these mails, to run in turn or in a pool; their messages
    become visible `visible_in` seconds from now if given."""
    return [partial(storage.send, OUTBOUND_EMAIL_QUEUE, body, visibility_timeout=visible_in)
            for body in queue_bodies(messages)]


def enqueue(storage: TableStore, message: MailMessage, visible_in: int | None = None) -> None:
    """Queue the mail for the send function; `visible_in` seconds from now if given."""
    enqueue_all(storage, [message], visible_in)


def enqueue_all(storage: TableStore, messages: Sequence[MailMessage], visible_in: int | None = None) -> None:
    """Queue the mails in turn, in as few queue messages as the batch limits allow."""
    for send in queue_sends(storage, messages, visible_in):
        send()
