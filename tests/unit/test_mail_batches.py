"""Mails queued together share queue messages (services/mail/message.py): a bulk assignment's welcome mails
go on the queue in batches instead of one message each, and every mail is still sent once by its id, with
its own retries when it fails. Against the in-memory storage (which refuses messages over Azure's 64 KiB),
through the real queueing and delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.mail_senders import MailThrottled
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, SENT_MAIL
from services.mail import MailMessage, delivery, limits
from services.mail.delivery import DEFERRAL_SPREAD, MailThrottledTooLong, _sent_key, deliver
from services.mail.message import MAX_BATCH, MAX_BATCH_BYTES, queue_bodies, queue_sends
from services.mail.render import RenderedMail
from services.seat_assignment import assign
from tests.assignment_jobs_support import drain
from tests.mail_support import queued_mails, unpacked
from tests.unit.test_assignment_job import SUB, context, subscribe
from tests.unit.test_mail_throttling import SETTINGS, Provider

LIMITS = limits.welcome_limits("sub_1", quantity=1000)


def welcomes(n: int, **params) -> list[MailMessage]:
    return [MailMessage(id=f"welcome-sub_1-{i:04d}", template="welcome", to=f"user{i:04d}@contoso.example",
                        params={"organisation": "Contoso", **params}, limits=LIMITS) for i in range(n)]


def queue(store: InMemoryStorage, mails: list[MailMessage]) -> list[bytes]:
    for send in queue_sends(store, mails):
        send()
    return [body for body, _ in store.queues.pop(OUTBOUND_EMAIL_QUEUE)]


class FailsFor(Provider):
    """Sends every mail except those to `failing` addresses."""

    def __init__(self, *failing: str):
        super().__init__()
        self.failing_to = set(failing)

    def send(self, mail: RenderedMail) -> str:
        if mail.to in self.failing_to:
            raise RuntimeError("provider refused this recipient")
        return super().send(mail)


# --- queueing ----------------------------------------------------------------------------------------------


def test_one_mail_is_queued_as_itself():
    [body] = queue_bodies(welcomes(1))
    assert json.loads(body)["id"] == "welcome-sub_1-0000"


def test_many_mails_share_few_messages_each_mail_once_in_order():
    mails = welcomes(2 * MAX_BATCH + 20)
    bodies = queue_bodies(mails)
    assert [len(unpacked(b)) for b in bodies] == [MAX_BATCH, MAX_BATCH, 20]
    assert [m["id"] for b in bodies for m in unpacked(b)] == [m.id for m in mails]


def test_large_mails_are_packed_by_size_within_the_queue_limit():
    # ~4 KB of parameters each: the byte limit, not the count, splits them; every message fits Azure's
    # 64 KiB of base64 (the in-memory queue refuses larger ones, as Azure does).
    mails = welcomes(40, note="x" * 4000)
    store = InMemoryStorage()
    bodies = queue(store, mails)
    assert len(bodies) > 1 and all(len(b) <= MAX_BATCH_BYTES for b in bodies)
    assert all(len(b) * 4 / 3 <= 64 * 1024 for b in bodies)
    assert [m["id"] for b in bodies for m in unpacked(b)] == [m.id for m in mails]


# --- delivering a batch ------------------------------------------------------------------------------------


def test_a_batch_sends_every_mail_once_and_again_sends_none():
    store, provider = InMemoryStorage(), Provider()
    [body] = queue(store, welcomes(30))
    deliver(body, storage=store, sender=provider, settings=SETTINGS)
    assert sorted(m.to for m in provider.sent) == sorted(m.to for m in welcomes(30))
    # The queue may deliver the same batch again (a crash after sending): nothing goes out twice.
    deliver(body, storage=store, sender=provider, settings=SETTINGS)
    assert len(provider.sent) == 30
    rows = [store.get(SENT_MAIL, *_sent_key(m.id)) for m in welcomes(30)]
    assert all(row is not None and row["Status"] == "sent" for row in rows)


def test_a_mail_that_fails_in_a_batch_is_queued_on_its_own_and_the_rest_is_sent():
    store, provider = InMemoryStorage(), FailsFor("user0003@contoso.example")
    [body] = queue(store, welcomes(10))
    deliver(body, storage=store, sender=provider, settings=SETTINGS)  # the batch itself completes
    assert len(provider.sent) == 9
    [(alone, delay)] = store.queues.pop(OUTBOUND_EMAIL_QUEUE)
    assert delay is None and json.loads(alone)["id"] == "welcome-sub_1-0003"  # a single mail: its own attempts
    assert store.get(SENT_MAIL, *_sent_key("welcome-sub_1-0003")) is None  # claim given back
    provider.failing_to.clear()
    assert deliver(alone, storage=store, sender=provider, settings=SETTINGS) == "acs-10"
    with pytest.raises(RuntimeError):  # alone, a failure is the queue's to retry, as for any mail
        deliver(alone, storage=InMemoryStorage(), sender=FailsFor("user0003@contoso.example"), settings=SETTINGS)


def test_when_the_failed_mail_cannot_be_queued_the_whole_batch_is_retried_without_resending():
    store, provider = InMemoryStorage(), FailsFor("user0005@contoso.example")
    [body] = queue(store, welcomes(10))

    def storage_down(*args, **kwargs):
        raise ConnectionError("queue unavailable")

    store.send = storage_down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        deliver(body, storage=store, sender=provider, settings=SETTINGS)
    assert len(provider.sent) == 5  # the mails before it went out
    del store.send
    provider.failing_to.clear()
    deliver(body, storage=store, sender=provider, settings=SETTINGS)  # the queue's retry of the batch
    assert sorted(m.to for m in provider.sent) == sorted(m.to for m in welcomes(10))


def test_a_batch_that_takes_too_long_queues_the_rest_again(monkeypatch):
    # ACS answers slowly: past the time budget the invocation ends, well within the function timeout.
    monkeypatch.setattr(delivery, "BATCH_TIME_BUDGET_SECONDS", 0)
    store, provider = InMemoryStorage(), Provider()
    [body] = queue(store, welcomes(10))
    deliver(body, storage=store, sender=provider, settings=SETTINGS)
    assert len(provider.sent) == 1
    [(rest, delay)] = store.queues.pop(OUTBOUND_EMAIL_QUEUE)
    assert delay is None and [m["id"] for m in unpacked(rest)] == [m.id for m in welcomes(10)[1:]]


def test_throttled_in_a_batch_the_rest_waits_together():
    store = InMemoryStorage()
    [body] = queue(store, welcomes(10))

    class ThrottlesOnceAfterFour(Provider):
        throttled_once = False

        def send(self, mail: RenderedMail) -> str:
            if len(self.sent) == 4 and not self.throttled_once:
                self.throttled_once = True
                raise MailThrottled(30)
            return super().send(mail)

    provider = ThrottlesOnceAfterFour()
    assert deliver(body, storage=store, sender=provider, settings=SETTINGS) is None
    assert len(provider.sent) == 4
    [(rest, delay)] = store.queues.pop(OUTBOUND_EMAIL_QUEUE)
    assert delay is not None and 30 <= delay <= 30 + DEFERRAL_SPREAD
    waiting = unpacked(rest)
    assert [m["id"] for m in waiting] == [m.id for m in welcomes(10)[4:]]
    assert all(m["deferred_since"] for m in waiting)
    deliver(rest, storage=store, sender=provider, settings=SETTINGS)
    assert sorted(m.to for m in provider.sent) == sorted(m.to for m in welcomes(10))


def test_a_batch_whose_mail_was_throttled_for_a_day_fails_for_the_queue_to_poison():
    store = InMemoryStorage()
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    mails = [m.model_copy(update={"deferred_since": long_ago}) for m in welcomes(3)]
    [body] = queue(store, mails)
    with pytest.raises(MailThrottledTooLong):
        deliver(body, storage=store, sender=Provider(throttled=1), settings=SETTINGS)
    assert OUTBOUND_EMAIL_QUEUE not in store.queues


# --- where batches come from -------------------------------------------------------------------------------


def test_assigning_80_addresses_queues_their_welcome_mails_in_two_messages():
    store = InMemoryStorage()
    subscribe(store)
    addresses = [f"person{i:03d}@contoso.example" for i in range(80)]
    assign(context(store), SUB, addresses, request_id="req-batches")  # one transaction, in the request
    assert len(store.queues[OUTBOUND_EMAIL_QUEUE]) == 2
    assert sorted(m["to"] for m in queued_mails(store)) == addresses


def test_a_bulk_job_queues_each_chunks_welcome_mails_in_batches():
    store = InMemoryStorage()
    subscribe(store)
    addresses = [f"person{i:03d}@contoso.example" for i in range(250)]
    ctx = context(store, threshold=100)
    assert assign(ctx, SUB, addresses, request_id="req-job").background
    drain(ctx, store)
    # Chunks of 99, 99 and 52 seats: two messages each.
    assert len(store.queues[OUTBOUND_EMAIL_QUEUE]) == 6
    assert sorted(m["to"] for m in queued_mails(store)) == addresses
