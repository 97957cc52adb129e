"""The audit log: who did what and when, stored in the subscription's own partition.

Rows are written in the same entity-group transaction as the change they describe, so the log can
never disagree with the data. Row keys sort newest first.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

AUDIT_PREFIX = "audit|"
# Ticks counted down from this bound sort newer rows first in the table's ascending order.
_MAX_MICROS = 10**17


@dataclass(frozen=True)
class Actor:
    tid: str
    oid: str
    email: str
    name: str = ""

    @classmethod
    def system(cls, what: str) -> "Actor":
        """Stripe, the reconciliation timer, ...: changes nobody signed in made."""
        return cls(tid="", oid="", email="", name=what)


def audit_entity(
    subscription_id: str,
    actor: Actor,
    action: str,
    target: str = "",
    before: Any = None,
    after: Any = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    at = at or datetime.now(timezone.utc)
    micros = int(at.timestamp() * 1_000_000)
    return {
        "PartitionKey": subscription_id,
        "RowKey": f"{AUDIT_PREFIX}{_MAX_MICROS - micros:017d}|{uuid.uuid4().hex[:12]}",
        "At": at,
        "ActorTid": actor.tid,
        "ActorOid": actor.oid,
        "ActorEmail": actor.email,
        "ActorName": actor.name,
        "Action": action,
        "Target": target,
        "Before": json.dumps(before, default=str) if before is not None else "",
        "After": json.dumps(after, default=str) if after is not None else "",
    }
