"""The audit log's read side: pages for the API and dashboard, and the CSV export (newest first)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import TableStore

# Actions whose before and after name the same fields ({"po_number": "4500"}): the page lists each
# changed field with its old and new value instead of two JSON objects.
FIELD_CHANGE_ACTIONS = frozenset({"billing.settings_changed"})

AUDIT_CSV_COLUMNS = ("at", "actor_email", "actor_name", "actor_tid", "actor_oid", "action", "target", "before", "after")


def page(storage: TableStore, subscription_id: str, continuation: dict[str, Any] | None = None,
         limit: int = 50) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of the log, newest first, and the continuation token for the next (or None)."""
    entries, token = SubscriptionRepository(storage).audit_page(subscription_id, limit, continuation)
    return [e.as_json() for e in entries], token


def field_changes(entry: dict[str, Any]) -> list[tuple[str, Any, Any]] | None:
    """(field, before, after) for each field an entry of FIELD_CHANGE_ACTIONS changed, in its order;
    None for other entries (shown as they are)."""
    if entry.get("action") not in FIELD_CHANGE_ACTIONS:
        return None
    before, after = entry.get("before") or {}, entry.get("after") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    return [(name, before.get(name), after[name]) for name in after]


def export_csv(storage: TableStore, subscription_id: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AUDIT_CSV_COLUMNS)
    for entry in SubscriptionRepository(storage).audit_entries(subscription_id):
        item = entry.as_json()
        cells = []
        for column in AUDIT_CSV_COLUMNS:
            value = item[column]
            text = "" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
            cells.append(csv_safe(text))
        writer.writerow(cells)
    return out.getvalue()


def csv_safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas (CSV injection): quote them."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
