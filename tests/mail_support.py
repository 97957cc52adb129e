"""The mails an in-memory store has queued, batches unpacked (services/mail/message.py)."""

from __future__ import annotations

import json
from typing import Any

from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE


def unpacked(body: bytes) -> list[dict[str, Any]]:
    """The mails one queue message carries: itself, or a batch's mails."""
    data = json.loads(body)
    return data["mails"] if "mails" in data else [data]


def queued_mails(store: InMemoryStorage) -> list[dict[str, Any]]:
    return [mail for body, _ in store.queues.get(OUTBOUND_EMAIL_QUEUE, []) for mail in unpacked(body)]
