"""Sending one queued message (one mail or a batch): render, send once per mail id, record it."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from adapters.mail_senders import MailSender, MailThrottled
from adapters.table_storage import SENT_MAIL, ConcurrencyConflict, Row, TableStore
from services.mail import limits
from services.mail.message import Attachment, MailBatch, MailMessage, enqueue, enqueue_all
from services.mail.render import render
from services.settings import Settings

log = logging.getLogger(__name__)


class UndeliverableMessage(ValueError):
    """The message itself is malformed: retrying cannot help (it ends in the poison queue)."""


def parse(body: bytes) -> MailMessage | MailBatch:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "mails" in data:
            return MailBatch.model_validate(data)
        return MailMessage.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise UndeliverableMessage(f"malformed mail message: {exc}") from exc


def _sent_key(message_id: str) -> tuple[str, str]:
    # Spread ids over partitions; the row key is the id itself.
    return hashlib.sha256(message_id.encode()).hexdigest()[:2], message_id


# A claim older than this belongs to a sender that died mid-send; another may take over.
STALE_CLAIM = timedelta(minutes=10)


# A mail the provider keeps throttling is queued again for this long at most (then it fails and, after
# the queue's attempts, lands in the poison queue), each time after the provider's wait, at most
# MAX_DEFERRAL_STEP, plus up to DEFERRAL_SPREAD seconds.
MAX_DEFERRAL = timedelta(hours=24)
MAX_DEFERRAL_STEP = timedelta(hours=1)
DEFERRAL_SPREAD = 60


# A batch sends its mails one after the other, each waiting for the provider's result; after this long it
# queues the rest again, so an invocation stays well within host.json's functionTimeout (5 minutes).
BATCH_TIME_BUDGET_SECONDS = 120


class MailThrottledTooLong(RuntimeError):
    """The provider has throttled this mail for longer than MAX_DEFERRAL."""


class SendInProgress(RuntimeError):
    """Another invocation is sending this message right now; retry later (then it is skipped)."""


# The files that go with a message, fetched when it is sent (a queued message names them, e.g. by its
# `invoice_id`; it cannot carry them). Raises when they cannot be fetched now, so the queue retries.
Attachments = Callable[[MailMessage], tuple[Attachment, ...]]


def deliver(body: bytes, *, storage: TableStore, sender: MailSender, settings: Settings,
            attachments: Attachments | None = None) -> str | None:
    """Send the queued mail unless its id was sent before; return the provider id, None if skipped
    (for a batch, which sends each of its mails so: the last mail's)."""
    parsed = parse(body)
    mails = parsed.mails if isinstance(parsed, MailBatch) else [parsed]
    provider_id = None
    started = time.monotonic()
    for position, message in enumerate(mails):
        if position and time.monotonic() - started > BATCH_TIME_BUDGET_SECONDS:
            # Well before the function timeout (an ACS send waits for its result): the rest goes on in a
            # message of its own.
            enqueue_all(storage, mails[position:])
            log.info("mail batch: %d of %d mails done in %.0f s; the rest queued again", position, len(mails),
                     time.monotonic() - started)
            return provider_id
        try:
            provider_id = send_once(message, storage=storage, sender=sender, settings=settings,
                                    attachments=attachments)
        except MailThrottled as exc:
            # The provider's quota holds for the mails after this one too: they wait together.
            _defer(storage, mails[position:], exc.retry_after)
            return None
        except Exception:
            if len(mails) == 1:
                raise
            # One mail of a batch failed: it is retried on its own (its own attempts, its own poison
            # message), the others go on. Should queueing it fail, the whole batch is retried, and the
            # mails sent meanwhile are skipped by their ids.
            log.warning("mail %s (%s) of a batch failed; queued again on its own", message.id, message.template,
                        exc_info=True)
            enqueue(storage, message)
    return provider_id


def send_once(message: MailMessage, *, storage: TableStore, sender: MailSender, settings: Settings,
              attachments: Attachments | None = None) -> str | None:
    """Send one mail unless its id was sent before; the provider id, or None if skipped.

    The same id can be queued twice and processed concurrently, so the sender first claims the id
    with an insert that only one can win, then sends, then marks it sent. Raises MailThrottled (with
    the claim and the counted limits given back) when the provider throttles.
    """
    if message.invoice_id and attachments is None:
        # A programming error, not a mail to send without its documents.
        raise ValueError(f"mail {message.id} names invoice {message.invoice_id} but no attachments were wired")
    partition, row = _sent_key(message.id)
    if not _claim(storage, partition, row, message.template):
        log.info("mail %s already sent; skipping duplicate", message.id)
        return None
    taken_at = datetime.now(UTC)
    try:
        reached = limits.take(storage, message.limits, taken_at)
    except Exception:
        storage.delete(SENT_MAIL, partition, row)
        raise
    if reached is not None:
        # Relay protection: recorded as done (a retry of this message sends nothing either).
        storage.upsert(SENT_MAIL, {"PartitionKey": partition, "RowKey": row, "Template": message.template,
                                   "Status": "suppressed", "Limit": reached.key, "SentAt": datetime.now(UTC)})
        log.warning("mail %s (%s) not sent: daily limit %s of %d reached", message.id, message.template,
                    reached.key.split("|")[0], reached.per_day)
        return None
    try:
        files = attachments(message) if attachments is not None else ()
        mail = render(message, support_email=settings.support_email, base_url=settings.public_base_url,
                      attachments=files)
        provider_id = sender.send(mail)
    except Exception:
        # Release the claim and the counted limits, so the retry can send it (and counts it once).
        storage.delete(SENT_MAIL, partition, row)
        limits.give_back(storage, message.limits, taken_at)
        raise
    storage.upsert(
        SENT_MAIL,
        {
            "PartitionKey": partition,
            "RowKey": row,
            "Template": message.template,
            "Status": "sent",
            "ProviderId": provider_id,
            "SentAt": datetime.now(UTC),
        },
    )
    # Never log the address or the body: just what was sent.
    log.info("mail %s (%s, %s) sent as %s", message.id, message.template, message.language, provider_id)
    return provider_id


def _defer(storage: TableStore, mails: list[MailMessage], retry_after: float) -> None:
    """The provider throttles: queue the same mails again, visible after its wait plus a spread (mails
    throttled together must not all come back at once), and let this message complete. Deferrals do not
    use up the queue's five attempts; once a mail has been deferred for MAX_DEFERRAL it fails like any
    other (a batch with it: its attempts and poison message keep the rest too)."""
    now = datetime.now(UTC)
    since = min(m.deferred_since or now for m in mails)
    if now - since > MAX_DEFERRAL:
        raise MailThrottledTooLong(f"mail {mails[0].id} throttled by the provider since {since:%Y-%m-%d %H:%M}Z")
    delay = int(min(max(retry_after, 1.0), MAX_DEFERRAL_STEP.total_seconds())) + random.randint(0, DEFERRAL_SPREAD)
    deferred = [m.model_copy(update={"deferred_since": m.deferred_since or now}) for m in mails]
    enqueue_all(storage, deferred, visible_in=delay)
    log.warning("%d mail(s) from %s (%s) throttled by the provider; queued again, visible in %d s", len(mails),
                mails[0].id, mails[0].template, delay)


def _wait_while_sending(storage: TableStore, partition: str, row: str, seconds: float = 10) -> Row | None:
    """A duplicate usually runs beside the original: give that one a moment to finish."""
    deadline = time.monotonic() + seconds
    while True:
        existing = storage.get(SENT_MAIL, partition, row)
        if existing is None or existing.get("Status") in ("sent", "suppressed") or time.monotonic() > deadline:
            return existing
        time.sleep(0.2)


def _claim(storage: TableStore, partition: str, row: str, template: str) -> bool:
    """True if this invocation may send; False if the mail was sent already."""
    now = datetime.now(UTC)
    claim = {"PartitionKey": partition, "RowKey": row, "Template": template, "Status": "sending", "ClaimedAt": now}
    if storage.insert(SENT_MAIL, claim):
        return True
    existing = _wait_while_sending(storage, partition, row)
    if existing is None:
        return storage.insert(SENT_MAIL, claim)
    if existing.get("Status") in ("sent", "suppressed"):
        return False
    if now - existing["ClaimedAt"] < STALE_CLAIM:
        raise SendInProgress("mail is being sent by another invocation")
    try:
        storage.replace_if_match(SENT_MAIL, claim, existing.etag or "")
    except ConcurrencyConflict:
        raise SendInProgress("mail is being sent by another invocation") from None
    return True
