"""The queued e-mail message and how it gets on the queue."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, TableStore

Template = Literal[
    "welcome",
    "subscription_ready",
    "payment_failed",
    "trial_ending",
    "over_quantity",
    "test",
    "invitation",
]
Language = Literal["en", "de"]

_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


class MailMessage(BaseModel):
    # Idempotency key: the same id is sent at most once, so a retried request that enqueues the same
    # mail again (same id) does not send it twice.
    id: str = Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    template: Template
    to: str
    language: Language = "en"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if not _ADDRESS.match(value):
            raise ValueError("not an e-mail address")
        return value


def enqueue(storage: TableStore, message: MailMessage) -> None:
    storage.send(OUTBOUND_EMAIL_QUEUE, json.dumps(message.model_dump()).encode("utf-8"))
