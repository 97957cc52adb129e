"""The composition root: one emulated Stripe account = store + settings + webhook dispatcher."""

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from .events import EventBatch
from .store import Store
from .webhooks import Dispatcher


@dataclass
class Settings:
    public_url: str = "http://127.0.0.1:12111"
    endpoints: list = field(default_factory=list)   # [(url, secret)]
    legacy_shapes: bool = False        # render events (and default responses) pre-2025-03-31
    delivery: str = "normal"           # normal | duplicate | reverse | hold
    delay_seconds: float = 0.0
    drop_next: list = field(default_factory=list)   # event types whose next event is dropped
    retry_attempts: int = 4
    retry_backoff_seconds: float = 0.5
    # Delayed (SEPA-like) checkout payments settle on their own after this long unless a
    # test resolves them first through POST /_emulator/checkout/{id}/async.
    async_payment_delay_seconds: float = 10.0
    async_payment_result: str = "succeeded"
    api_key: str | None = None         # if set, only this secret key is accepted
    # The emulated account: a German company, so Stripe Tax charges German VAT at home, the
    # other EU countries' VAT (OSS) or reverse charge, and nothing outside the EU (tax.py).
    account_name: str = "SecureMailMerge GmbH"
    seller_country: str = "DE"
    account_address: dict = field(default_factory=lambda: {
        "line1": "Musterstraße 1", "line2": None, "postal_code": "10115", "city": "Berlin",
        "state": None, "country": "DE"})
    account_vat_id: str = "DE123456789"
    # invoice.upcoming goes out this many days before a yearly subscription renews.
    upcoming_invoice_days: int = 30


@dataclass
class Context:
    """What an operation needs: the account, the events it emits, and its public URL."""
    store: Store
    settings: Settings
    events: EventBatch
    base_url: str
    emulator: "Emulator"


class Emulator:
    def __init__(self, settings=None, state_file=None):
        self.settings = settings or Settings()
        self.store = Store(state_file)
        self.dispatcher = Dispatcher(self.store, self.settings)
        self._timers = []

    @contextmanager
    def action(self, base_url=None, request_id=None, idempotency_key=None, deliver=True):
        """Run one atomic state change; its events are delivered afterwards.

        With ``deliver=False`` the caller submits ``ctx.events.events`` itself (the HTTP
        server does so after writing the response, as Stripe delivers after answering).
        """
        with self.store.lock:
            batch = EventBatch(self.store, self.settings, request_id, idempotency_key)
            ctx = Context(self.store, self.settings, batch, base_url or self.settings.public_url,
                          self)
            yield ctx
            self.store.save()
        if deliver:
            self.dispatcher.submit(batch.events)

    def later(self, seconds, function, *args):
        """Schedule a background state change (delayed payment settling)."""
        timer = threading.Timer(seconds, function, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def reset(self):
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.dispatcher.wait_idle(2)
        self.store.reset()
        self.dispatcher.clear()
        self.settings.drop_next.clear()
        self.settings.delivery = "normal"
        self.settings.delay_seconds = 0.0
        self.store.save()

    def shutdown(self):
        for timer in self._timers:
            timer.cancel()
        self.dispatcher.stop()
        self.store.save()
