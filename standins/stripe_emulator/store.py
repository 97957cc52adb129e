"""In-memory state of the emulated Stripe account, optionally persisted to a JSON file.

Every request runs under ``store.lock`` (one account, low traffic), which makes each API
call atomic and keeps idempotency, ordering and event creation simple to reason about.
"""

import json
import os
import secrets
import string
import tempfile
import threading
import time

from .errors import missing

_ALPHABET = string.ascii_letters + string.digits

# Id prefix -> object type, used to expand ids and to name things in "No such ..." errors.
PREFIXES = {
    "prod_": "product",
    "price_": "price",
    "cus_": "customer",
    "cs_test_": "checkout.session",
    "sub_sched_": "subscription_schedule",  # before "sub_", which it starts with
    "sub_": "subscription",
    "si_": "subscription_item",
    "in_": "invoice",
    "evt_": "event",
    "bps_": "billing_portal.session",
    "bpc_": "billing_portal.configuration",
    "txi_": "tax_id",
    "txr_": "tax_rate",
}
_NAMES = {
    "checkout.session": "checkout.session",
    "subscription_item": "subscription item",
    "subscription_schedule": "subscription schedule",
    "billing_portal.configuration": "configuration",
    "tax_id": "tax id",
    "tax_rate": "tax rate",
}


def type_of(object_id):
    for prefix, kind in PREFIXES.items():
        if isinstance(object_id, str) and object_id.startswith(prefix):
            return kind
    return None


class Store:
    def __init__(self, state_file=None):
        self.lock = threading.RLock()
        self.state_file = state_file
        self.reset()
        if state_file and os.path.exists(state_file):
            self._load()

    def reset(self):
        with self.lock:
            self.objects = {}      # type -> {id: record}
            self.idempotency = {}  # key -> {"fingerprint", "status", "body"}
            self.clock_offset = 0  # seconds added by POST /_emulator/clock/advance
            self.sequence = 0      # creation order; `created` has only 1 s resolution

    # -- time and ids ------------------------------------------------------------------

    def now(self):
        """The account's clock: wall time plus whatever tests advanced it by."""
        return int(time.time()) + self.clock_offset

    @staticmethod
    def new_id(prefix, length=24):
        if prefix == "cs_test_":
            length = 58  # checkout session ids are long, as in Stripe
        body = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if length == 24:
            body = "1" + body[1:]  # Stripe's 24-character ids start with "1"
        return prefix + body

    # -- records -----------------------------------------------------------------------

    def add(self, kind, record):
        with self.lock:
            self.sequence += 1
            record["_seq"] = self.sequence
            self.objects.setdefault(kind, {})[record["id"]] = record
            return record

    def get(self, kind, object_id):
        return self.objects.get(kind, {}).get(object_id)

    def require(self, kind, object_id, param=None):
        record = self.get(kind, object_id) if isinstance(object_id, str) else None
        if record is None:
            raise missing(_NAMES.get(kind, kind), object_id, param)
        return record

    def find(self, object_id):
        kind = type_of(object_id)
        return self.get(kind, object_id) if kind else None

    def all(self, kind):
        """Newest first, which is the order of every Stripe list endpoint."""
        return sorted(self.objects.get(kind, {}).values(), key=lambda r: -r["_seq"])

    # -- persistence -------------------------------------------------------------------

    def save(self):
        if not self.state_file:
            return
        with self.lock:
            data = json.dumps({"objects": self.objects, "idempotency": self.idempotency,
                               "clock_offset": self.clock_offset, "sequence": self.sequence})
        directory = os.path.dirname(os.path.abspath(self.state_file))
        os.makedirs(directory, exist_ok=True)
        # Write-then-rename so a crash mid-write never leaves a truncated state file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".stripe-state-")
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
        os.replace(tmp, self.state_file)

    def _load(self):
        with open(self.state_file) as handle:
            data = json.load(handle)
        self.objects = data.get("objects", {})
        self.idempotency = data.get("idempotency", {})
        self.clock_offset = data.get("clock_offset", 0)
        self.sequence = data.get("sequence", 0)
