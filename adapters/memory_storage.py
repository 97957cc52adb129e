"""An in-memory `Storage` for unit tests: the same contract as `adapters.table_storage.Storage`.

Keeps what the code relies on: ETags that change on every write, all-or-nothing transactions within
one partition, rows in key order, and Azure's limits that Azurite does not enforce (forbidden key
characters, 100 operations per transaction, 64 KiB per string property, 1 MiB per entity). Filters
understand the OData subset the code uses (eq/ne/lt/le/gt/ge, and/or, parentheses, @parameters).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from adapters.table_storage import (
    MAX_TRANSACTION_OPERATIONS,
    ConcurrencyConflict,
    Op,
    Row,
    range_filter,
)

_FORBIDDEN_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
MAX_STRING_CHARS = 32 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024


class InvalidEntity(ValueError):
    """Azure would refuse this entity (the real service answers 400)."""


def _check(entity: dict[str, Any]) -> int:
    """The entity's size as Azure counts it (about: 2 bytes a character); InvalidEntity past a limit."""
    for key in ("PartitionKey", "RowKey"):
        value = entity.get(key)
        if not isinstance(value, str) or len(value) > 1024 or _FORBIDDEN_KEY.search(value):
            raise InvalidEntity(f"{key} {value!r} is not allowed in Azure Table Storage")
    size = 0
    for name, value in entity.items():
        if isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                raise InvalidEntity(f"property {name} holds {len(value)} characters (Azure: at most 32K)")
            size += 2 * len(value)
        else:
            size += 8
        size += 2 * len(name)
    if size > MAX_ENTITY_BYTES:
        raise InvalidEntity(f"entity of about {size} bytes (Azure: at most 1 MiB)")
    return size


class InMemoryStorage:
    """Tables and queues in dicts; thread-safe, so concurrency tests can run against it too."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[tuple[str, str], Row]] = {}
        self.queues: dict[str, list[tuple[bytes, int | None]]] = {}
        self._etags = itertools.count(1)
        self._lock = threading.RLock()
        self.calls = 0  # storage round trips, for tests that count them

    # --- helpers ---------------------------------------------------------------------------------

    def _rows(self, table: str) -> dict[tuple[str, str], Row]:
        return self._tables.setdefault(table, {})

    def _stored(self, entity: dict[str, Any]) -> Row:
        _check(entity)
        return Row.of({k: v for k, v in entity.items()}, f'W/"{next(self._etags)}"')

    @staticmethod
    def _copy(row: Row) -> Row:
        return Row.of(dict(row), row.etag)

    # --- reads -----------------------------------------------------------------------------------

    def get(self, table: str, partition_key: str, row_key: str) -> Row | None:
        with self._lock:
            self.calls += 1
            row = self._rows(table).get((partition_key, row_key))
            return self._copy(row) if row is not None else None

    def query(self, table: str, *, partition_key: str | None = None, row_from: str | None = None,
              row_below: str | None = None, where: str = "", parameters: dict[str, Any] | None = None,
              select: list[str] | None = None) -> Iterator[Row]:
        query, params = range_filter(partition_key, row_from, row_below, where)
        predicate = _parse(query, {**params, **(parameters or {})})
        with self._lock:
            self.calls += 1
            rows = [self._copy(r) for _, r in sorted(self._rows(table).items()) if predicate(r)]
        for row in rows:
            if select:
                yield Row.of({k: row[k] for k in select if k in row}, row.etag)
            else:
                yield row

    def query_page(self, table: str, *, partition_key: str, row_from: str, row_below: str, where: str = "",
                   parameters: dict[str, Any] | None = None, limit: int = 50,
                   continuation: dict[str, Any] | None = None) -> tuple[list[Row], dict[str, Any] | None]:
        start = str((continuation or {}).get("RowKey", row_from))
        rows = list(itertools.islice(
            self.query(table, partition_key=partition_key, row_from=start, row_below=row_below, where=where,
                       parameters=parameters), limit + 1))
        if len(rows) > limit:
            return rows[:limit], {"PartitionKey": partition_key, "RowKey": rows[limit]["RowKey"]}
        return rows, None

    # --- single writes ---------------------------------------------------------------------------

    def insert(self, table: str, entity: dict[str, Any]) -> bool:
        try:
            self.transact(table, [Op("create", entity)])
            return True
        except ConcurrencyConflict:
            return False

    def upsert(self, table: str, entity: dict[str, Any]) -> None:
        self.transact(table, [Op("upsert", entity)])

    def merge(self, table: str, entity: dict[str, Any], etag: str | None = None) -> bool:
        key = (entity["PartitionKey"], entity["RowKey"])
        with self._lock:
            if etag is None and key not in self._rows(table):
                self.calls += 1
                return False
            self.transact(table, [Op("merge", entity, etag)])
            return True

    def replace_if_match(self, table: str, entity: dict[str, Any], etag: str) -> None:
        self.transact(table, [Op("update", entity, etag)])

    def delete(self, table: str, partition_key: str, row_key: str, etag: str | None = None) -> None:
        with self._lock:
            if etag is None and (partition_key, row_key) not in self._rows(table):
                self.calls += 1
                return
            self.transact(table, [Op("delete", {"PartitionKey": partition_key, "RowKey": row_key}, etag)])

    # --- transactions ----------------------------------------------------------------------------

    def transact(self, table: str, operations: Iterable[Op]) -> list[str | None]:
        ops = list(operations)
        if not ops:
            return []
        if len(ops) > MAX_TRANSACTION_OPERATIONS:
            raise ValueError(f"an entity-group transaction holds at most {MAX_TRANSACTION_OPERATIONS} operations")
        if len({op.entity["PartitionKey"] for op in ops}) > 1:
            raise InvalidEntity("an entity-group transaction spans one partition")
        if sum(_check(op.entity) for op in ops) > MAX_BATCH_BYTES:
            raise InvalidEntity("an entity-group transaction holds at most 4 MiB")
        keys = [(op.entity["PartitionKey"], op.entity["RowKey"]) for op in ops]
        if len(set(keys)) != len(keys):
            raise InvalidEntity("an entity-group transaction names each row once")
        with self._lock:
            self.calls += 1
            rows = self._rows(table)
            staged: dict[tuple[str, str], Row | None] = {}
            for op, key in zip(ops, keys, strict=True):
                current = rows.get(key)
                if op.kind == "create" and current is not None:
                    raise ConcurrencyConflict(f"{key} exists")
                if op.kind in ("update", "merge", "delete") and current is None:
                    if op.kind == "delete" and op.etag is None:
                        staged[key] = None
                        continue
                    raise ConcurrencyConflict(f"{key} does not exist")
                if op.etag is not None and current is not None and current.etag != op.etag:
                    raise ConcurrencyConflict(f"{key} changed")
                if op.kind == "delete":
                    staged[key] = None
                elif op.kind == "merge":
                    assert current is not None
                    staged[key] = self._stored({**current, **op.entity})
                else:
                    staged[key] = self._stored(op.entity)
            for key, row in staged.items():  # all preconditions held: apply all
                if row is None:
                    rows.pop(key, None)
                else:
                    rows[key] = row
            etags: list[str | None] = []
            for key in keys:
                written = staged[key]
                etags.append(written.etag if written is not None else None)
            return etags

    # --- queues ----------------------------------------------------------------------------------

    def send(self, queue: str, body: bytes, visibility_timeout: int | None = None) -> None:
        if len(body) * 4 / 3 > 64 * 1024:
            raise InvalidEntity("a queue message holds at most 64 KiB (base64)")
        with self._lock:
            self.calls += 1
            self.queues.setdefault(queue, []).append((body, visibility_timeout))

    def queue_depth(self, queue: str) -> int:
        with self._lock:
            return len(self.queues.get(queue, []))

    def ping(self) -> dict[str, str]:
        return {"tables": "ok", "queues": "ok"}

    def ensure_created(self) -> None:
        return None


# --- the OData filter subset -------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|(@\w+)|(\w+))")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
}


def _tokens(text: str, parameters: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot parse filter at {text[position:]!r}")
        position = match.end()
        opening, closing, string, parameter, word = match.groups()
        if opening:
            out.append(("(", None))
        elif closing:
            out.append((")", None))
        elif string is not None:
            out.append(("value", string.replace("''", "'")))
        elif parameter:
            out.append(("value", parameters[parameter[1:]]))
        elif word in ("true", "false"):
            out.append(("value", word == "true"))
        elif word in _COMPARE or word in ("and", "or"):
            out.append((word, None))
        elif word.isdigit():
            out.append(("value", int(word)))
        else:
            out.append(("name", word))
    return out


def _parse(text: str, parameters: dict[str, Any]) -> Any:
    """A predicate over rows for `text` (no filter: every row)."""
    if not text.strip():
        return lambda row: True
    tokens = _tokens(text, parameters)
    position = 0

    def peek() -> str | None:
        return tokens[position][0] if position < len(tokens) else None

    def take() -> tuple[str, Any]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def expression() -> Any:
        left = conjunction()
        while peek() == "or":
            take()
            right = conjunction()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def conjunction() -> Any:
        left = comparison()
        while peek() == "and":
            take()
            right = comparison()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def comparison() -> Any:
        if peek() == "(":
            take()
            inner = expression()
            if take()[0] != ")":
                raise ValueError(f"unbalanced parentheses in {text!r}")
            return inner
        kind, name = take()
        operator, _ = take()
        value_kind, value = take()
        if kind != "name" or operator not in _COMPARE or value_kind != "value":
            raise ValueError(f"cannot parse filter {text!r}")
        compare = _COMPARE[operator]

        def test(row: Row) -> bool:
            stored = row.get(name)
            if isinstance(value, datetime) and not isinstance(stored, datetime):
                return False
            try:
                return bool(compare(stored, value))
            except TypeError:
                return False

        return test

    predicate = expression()
    if position != len(tokens):
        raise ValueError(f"cannot parse filter {text!r}")
    return predicate
