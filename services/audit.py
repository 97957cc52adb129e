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


# --- reading ------------------------------------------------------------------------------------

AUDIT_RANGE_END = "audit}"  # '}' sorts right after '|'
AUDIT_CSV_COLUMNS = ("at", "actor_email", "actor_name", "actor_tid", "actor_oid", "action", "target", "before", "after")


def entry(row: dict[str, Any]) -> dict[str, Any]:
    """An audit row as the API and pages show it."""
    at = row.get("At")
    return {
        "at": at.isoformat() if isinstance(at, datetime) else str(at or ""),
        "actor_email": row.get("ActorEmail", ""),
        "actor_name": row.get("ActorName", ""),
        "actor_tid": row.get("ActorTid", ""),
        "actor_oid": row.get("ActorOid", ""),
        "action": row.get("Action", ""),
        "target": row.get("Target", ""),
        "before": json.loads(row["Before"]) if row.get("Before") else None,
        "after": json.loads(row["After"]) if row.get("After") else None,
    }


def _query(storage: Any, subscription_id: str, results_per_page: int) -> Any:
    from services.storage import SUBSCRIPTIONS

    return storage.table(SUBSCRIPTIONS).query_entities(
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        parameters={"pk": subscription_id, "lo": AUDIT_PREFIX, "hi": AUDIT_RANGE_END},
        results_per_page=results_per_page,
    )


def page(storage: Any, subscription_id: str, continuation: Any = None, limit: int = 50) -> tuple[list[dict[str, Any]], Any]:
    """One page of the log, newest first, and the raw continuation token for the next (or None)."""
    pages = _query(storage, subscription_id, max(1, min(limit, 1000))).by_page(continuation_token=continuation)
    rows = next(pages, [])
    return [entry(r) for r in rows], pages.continuation_token


def export_csv(storage: Any, subscription_id: str) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AUDIT_CSV_COLUMNS)
    for row in _query(storage, subscription_id, 1000):
        item = entry(row)
        cells = []
        for column in AUDIT_CSV_COLUMNS:
            value = item[column]
            text = "" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
            # Spreadsheets run cells starting with = + - @ as formulas (CSV injection).
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@") else text)
        writer.writerow(cells)
    return out.getvalue()
