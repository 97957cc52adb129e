"""Signed webhook delivery on a background thread, with the failure modes tests need.

Signature: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` exactly
as Stripe computes it, so ``stripe.Webhook.construct_event`` accepts it. ``t`` is wall time,
not the emulator's advanceable clock, because receivers enforce a 5-minute tolerance.
"""

import hashlib
import hmac
import json
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
DELIVERY_MODES = ("normal", "duplicate", "reverse", "hold")


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def encode(event) -> bytes:
    # Stripe sends pretty-printed JSON; receivers must verify the raw bytes, not re-serialise.
    # The stored event carries the emulator's own bookkeeping ("_seq"), which never leaves.
    public = {key: value for key, value in event.items() if not key.startswith("_")}
    return json.dumps(public, indent=2).encode()


class Dispatcher:
    """Queues events per endpoint and POSTs them in order, retrying non-2xx answers."""

    def __init__(self, store, settings):
        self.store = store
        self.settings = settings
        self.log = []           # delivery records, oldest first (GET /_emulator/events)
        self.held = []          # events waiting for POST /_emulator/webhooks/release
        self._queue: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="webhook-delivery", daemon=True)
        self._thread.start()

    # -- intake ------------------------------------------------------------------------

    @contextmanager
    def announced(self):
        """Count as busy from before the API response is written until its events are queued, so
        that `wait_idle()` called right after the response cannot miss them."""
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    def submit(self, events):
        """Called after the API response was written, with the events of one action."""
        events = [e for e in events if not self._consume_drop(e)]
        mode = self.settings.delivery
        if mode == "hold":
            with self._lock:
                self.held.extend(events)
                for event in events:
                    self._record(event, None, "held")
            return
        if mode == "reverse":
            events = list(reversed(events))
        for event in events:
            self._enqueue(event)
            if mode == "duplicate":
                self._enqueue(event)

    def release(self, order=None):
        with self._lock:
            events, self.held = self.held, []
        if order == "reverse":
            events.reverse()
        elif order == "shuffle":
            random.shuffle(events)
        for event in events:
            self._enqueue(event)
        return len(events)

    def resend(self, event):
        self._enqueue(event)

    def _consume_drop(self, event):
        with self._lock:
            if event["type"] in self.settings.drop_next:
                self.settings.drop_next.remove(event["type"])
                self._record(event, None, "dropped")
                return True
        return False

    def _enqueue(self, event):
        due = time.time() + self.settings.delay_seconds
        with self._lock:
            self._busy += 1
        self._queue.put((due, event))

    # -- delivery ----------------------------------------------------------------------

    def _run(self):
        while not self._stopping.is_set():
            try:
                due, event = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                wait = due - time.time()
                if wait > 0:
                    self._stopping.wait(wait)
                for url, secret in list(self.settings.endpoints):
                    self._deliver(event, url, secret)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, event, url, secret):
        payload = encode(event)
        attempts = max(1, self.settings.retry_attempts)
        for attempt in range(1, attempts + 1):
            timestamp = int(time.time())
            request = urllib.request.Request(url, data=payload, method="POST", headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Stripe-Signature": sign(payload, secret or "", timestamp),
            })
            status, error = None, None
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError) as exc:
                error = str(exc)
            ok = status is not None and 200 <= status < 300
            with self._lock:
                self._record(event, url, "delivered" if ok else "failed", status, error, attempt)
            if ok:
                self._mark_delivered(event)
                return
            if attempt < attempts and not self._stopping.is_set():
                # Stripe backs off exponentially over days; locally we keep it to seconds.
                self._stopping.wait(self.settings.retry_backoff_seconds * 2 ** (attempt - 1))

    def _mark_delivered(self, event):
        with self.store.lock:
            stored = self.store.get("event", event["id"])
            if stored and stored["pending_webhooks"] > 0:
                stored["pending_webhooks"] -= 1

    def _record(self, event, url, status, http_status=None, error=None, attempt=None):
        self.log.append({"event": event["id"], "type": event["type"], "url": url,
                         "status": status, "http_status": http_status, "error": error,
                         "attempt": attempt, "at": time.time()})

    # -- lifecycle ---------------------------------------------------------------------

    def wait_idle(self, timeout=10.0):
        """Block until everything queued so far was attempted (used by tests and shutdown)."""
        deadline = time.time() + timeout
        with self._lock:
            while self._busy:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def clear(self):
        with self._lock:
            self.held.clear()
            self.log.clear()

    def stop(self, drain_seconds=2.0):
        self.wait_idle(drain_seconds)
        self._stopping.set()
        self._thread.join(timeout=5)
