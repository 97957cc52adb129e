"""Event objects: created for every state change, stored, and handed to webhook delivery.

``data.object`` is a snapshot rendered at the moment of the change, in the shape of the
emulator's webhook API version (current, or legacy with ``--legacy-shapes``), which is how
Stripe renders events: with the account's version, not the triggering request's.
"""

from . import objects
from .render import render

CURRENT_API_VERSION = "2026-10-28.endive"   # what stripe-python 16.1.0 pins
LEGACY_API_VERSION = "2024-06-20"           # last version family before 2025-03-31.basil


class EventBatch:
    """The events one action produced, in order; delivered together after the response."""

    def __init__(self, store, settings, request_id=None, idempotency_key=None):
        self.store = store
        self.settings = settings
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.events = []

    def snapshot(self, record):
        return render(self.store, record, legacy=self.settings.legacy_shapes)

    def emit(self, event_type, record, previous=None, current=None):
        """Record an event for ``record``'s current state.

        ``previous`` is the snapshot taken before the change; the top-level fields that
        differ become ``data.previous_attributes``, as in Stripe's ``*.updated`` events.
        ``current`` replaces the snapshot of ``record`` (an object that is not stored, such
        as the invoice preview in ``invoice.upcoming``).
        """
        current = self.snapshot(record) if current is None else current
        data = {"object": current}
        if previous is not None:
            data["previous_attributes"] = {
                key: previous.get(key) for key in previous if previous.get(key) != current.get(key)
            }
        event = objects.event(
            self.store, event_type=event_type,
            api_version=LEGACY_API_VERSION if self.settings.legacy_shapes else CURRENT_API_VERSION,
            data=data, request_id=self.request_id, idempotency_key=self.idempotency_key,
            pending_webhooks=len(self.settings.endpoints))
        self.store.add("event", event)
        self.events.append(event)
        return event
