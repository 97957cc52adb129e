"""Sending one queued message: render, send once per message id, record it."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone

from pydantic import ValidationError

from services.mail.message import MailMessage
from services.mail.render import render
from services.mail.senders import MailSender
from services.settings import Settings
from services.storage import SENT_MAIL, Storage

log = logging.getLogger(__name__)


class UndeliverableMessage(ValueError):
    """The message itself is malformed: retrying cannot help (it ends in the poison queue)."""


def parse(body: bytes) -> MailMessage:
    try:
        return MailMessage.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise UndeliverableMessage(f"malformed mail message: {exc}") from exc


def _sent_key(message_id: str) -> tuple[str, str]:
    # Spread ids over partitions; the row key is the id itself.
    return hashlib.sha256(message_id.encode()).hexdigest()[:2], message_id


def deliver(body: bytes, *, storage: Storage, sender: MailSender, settings: Settings) -> str | None:
    """Send the message unless its id was sent before; return the provider id, None if skipped."""
    message = parse(body)
    partition, row = _sent_key(message.id)
    if storage.get(SENT_MAIL, partition, row) is not None:
        log.info("mail %s already sent; skipping duplicate", message.id)
        return None
    mail = render(message, support_email=settings.support_email, base_url=settings.public_base_url)
    provider_id = sender.send(mail)
    # Recorded after sending: a crash in between may send twice, never zero times.
    storage.upsert(
        SENT_MAIL,
        {
            "PartitionKey": partition,
            "RowKey": row,
            "Template": message.template,
            "ProviderId": provider_id,
            "SentAt": datetime.now(timezone.utc),
        },
    )
    # Never log the address or the body: just what was sent.
    log.info("mail %s (%s, %s) sent as %s", message.id, message.template, message.language, provider_id)
    return provider_id
