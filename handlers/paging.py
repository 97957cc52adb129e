"""Paging of lists (licenses, audit log) in the JSON API and on the pages."""

from __future__ import annotations

PAGE_SIZE = 50
MAX_LIMIT = 1000


def limit(raw: str | None, default: int = PAGE_SIZE) -> int:
    """The `limit` query parameter; ValueError (answered 400) when it is not 1 to MAX_LIMIT."""
    if raw is None or raw == "":
        return default
    value = int(raw)
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    return value
