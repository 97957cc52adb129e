"""A mail the provider throttles (ACS: 429, the domain's per-minute or per-hour quota) is queued again after
the wait the provider asks for, instead of spending the queue's five attempts and landing in the poison
queue; a failed or throttled send gives its relay-limit count back, so the retry counts once.

Against the in-memory storage, through the real delivery (services/mail/delivery.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.mail_senders import MailThrottled, retry_after_seconds
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, SENT_MAIL
from services.mail import MailMessage, limits
from services.mail.delivery import DEFERRAL_SPREAD, MailThrottledTooLong, _sent_key, deliver
from services.mail.render import RenderedMail
from services.settings import load_settings
from tests.factories import local_values

SETTINGS = load_settings(local_values())
LIMITS = limits.welcome_limits("sub_1", quantity=5)


class Provider:
    """Throttles the first `throttled` sends (asking for `wait` seconds), fails the next `failing`, then sends."""

    def __init__(self, throttled: int = 0, failing: int = 0, wait: float = 7):
        self.throttled, self.failing, self.wait = throttled, failing, wait
        self.sent: list[RenderedMail] = []

    def send(self, mail: RenderedMail) -> str:
        if self.throttled:
            self.throttled -= 1
            raise MailThrottled(self.wait)
        if self.failing:
            self.failing -= 1
            raise RuntimeError("provider unavailable")
        self.sent.append(mail)
        return f"acs-{len(self.sent)}"


def welcome(**fields) -> bytes:
    return MailMessage(id="welcome-sub_1-bob", template="welcome", to="bob@contoso.example",
                       params={"organisation": "Contoso"}, limits=LIMITS, **fields).model_dump_json().encode()


def counted(store: InMemoryStorage) -> int:
    today = datetime.now(UTC).date().isoformat()
    row = store.get(SENT_MAIL, f"limit|{today}", "welcome|sub_1")
    return int(row["Count"]) if row else 0


def test_a_throttled_mail_is_queued_again_after_the_wait_and_then_sent_once():
    store, provider = InMemoryStorage(), Provider(throttled=1, wait=7)
    assert deliver(welcome(), storage=store, sender=provider, settings=SETTINGS) is None
    [(again, delay)] = store.queues.pop(OUTBOUND_EMAIL_QUEUE)
    assert delay is not None and 7 <= delay <= 7 + DEFERRAL_SPREAD
    message = MailMessage.model_validate(json.loads(again))
    assert message.id == "welcome-sub_1-bob" and message.to == "bob@contoso.example"
    assert message.deferred_since is not None
    # Nothing claimed and nothing counted while it waits.
    assert store.get(SENT_MAIL, *_sent_key(message.id)) is None
    assert counted(store) == 0

    assert deliver(again, storage=store, sender=provider, settings=SETTINGS) == "acs-1"
    assert len(provider.sent) == 1 and counted(store) == 1
    # The same message delivered once more (the queue may) sends nothing.
    assert deliver(again, storage=store, sender=provider, settings=SETTINGS) is None
    assert len(provider.sent) == 1 and counted(store) == 1


def test_throttled_again_keeps_the_first_deferral_time():
    store, provider = InMemoryStorage(), Provider(throttled=2)
    deliver(welcome(), storage=store, sender=provider, settings=SETTINGS)
    [(first, _)] = store.queues.pop(OUTBOUND_EMAIL_QUEUE)
    deliver(first, storage=store, sender=provider, settings=SETTINGS)
    [(second, _)] = store.queues.pop(OUTBOUND_EMAIL_QUEUE)
    since = MailMessage.model_validate(json.loads(first)).deferred_since
    assert MailMessage.model_validate(json.loads(second)).deferred_since == since


def test_a_mail_throttled_for_more_than_a_day_fails_like_any_other():
    store, provider = InMemoryStorage(), Provider(throttled=1)
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    with pytest.raises(MailThrottledTooLong):
        deliver(welcome(deferred_since=long_ago), storage=store, sender=provider, settings=SETTINGS)
    assert OUTBOUND_EMAIL_QUEUE not in store.queues  # not queued again: the queue's retries and poison take over
    assert counted(store) == 0


def test_a_failed_send_gives_its_limit_count_back():
    store, provider = InMemoryStorage(), Provider(failing=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            deliver(welcome(), storage=store, sender=provider, settings=SETTINGS)
        assert counted(store) == 0
    assert deliver(welcome(), storage=store, sender=provider, settings=SETTINGS) == "acs-1"
    assert counted(store) == 1


@pytest.mark.parametrize("headers, seconds", [
    ({"Retry-After": "30"}, 30.0),
    ({"retry-after-ms": "1500", "Retry-After": "2"}, 1.5),
    ({"x-ms-retry-after-ms": "250"}, 0.25),
    ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 60.0),
    ({}, 60.0),
    (None, 60.0),
])
def test_the_wait_is_read_from_the_throttled_response(headers, seconds):
    assert retry_after_seconds(headers) == seconds
