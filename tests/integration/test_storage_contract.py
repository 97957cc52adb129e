"""The storage contract, run against Azurite and against the in-memory storage the unit tests use.

What passes here for both is what the unit tests may rely on; the in-memory store additionally
refuses what Azure refuses and Azurite accepts (tested at the end).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory_storage import InMemoryStorage, InvalidEntity
from adapters.table_storage import SESSIONS, ConcurrencyConflict, Op


@pytest.fixture(params=["azurite", "memory"])
def store(request):
    if request.param == "memory":
        return InMemoryStorage()
    return request.getfixturevalue("stack").storage()


def _pk() -> str:
    return "contract-" + uuid.uuid4().hex


def test_rows_carry_etags_that_guard_writes(store):
    pk = _pk()
    assert store.insert(SESSIONS, {"PartitionKey": pk, "RowKey": "r", "N": 1})
    assert not store.insert(SESSIONS, {"PartitionKey": pk, "RowKey": "r", "N": 2})
    row = store.get(SESSIONS, pk, "r")
    assert row is not None and row["N"] == 1 and row.etag
    store.replace_if_match(SESSIONS, {"PartitionKey": pk, "RowKey": "r", "N": 3}, row.etag)
    with pytest.raises(ConcurrencyConflict):
        store.replace_if_match(SESSIONS, {"PartitionKey": pk, "RowKey": "r", "N": 4}, row.etag)
    with pytest.raises(ConcurrencyConflict):
        store.merge(SESSIONS, {"PartitionKey": pk, "RowKey": "r", "N": 5}, etag=row.etag)
    assert store.get(SESSIONS, pk, "r")["N"] == 3
    assert store.merge(SESSIONS, {"PartitionKey": pk, "RowKey": "r", "M": "x"})
    assert store.get(SESSIONS, pk, "r") == {"PartitionKey": pk, "RowKey": "r", "N": 3, "M": "x"}
    assert not store.merge(SESSIONS, {"PartitionKey": pk, "RowKey": "missing", "M": "x"})
    store.delete(SESSIONS, pk, "missing")  # idempotent
    with pytest.raises(ConcurrencyConflict):
        store.delete(SESSIONS, pk, "r", etag=row.etag)
    store.delete(SESSIONS, pk, "r")
    assert store.get(SESSIONS, pk, "r") is None


def test_a_transaction_is_all_or_nothing(store):
    pk = _pk()
    store.insert(SESSIONS, {"PartitionKey": pk, "RowKey": "guard", "V": 1})
    guard = store.get(SESSIONS, pk, "guard")
    store.insert(SESSIONS, {"PartitionKey": pk, "RowKey": "taken"})
    with pytest.raises(ConcurrencyConflict):
        store.transact(SESSIONS, [Op("update", {"PartitionKey": pk, "RowKey": "guard", "V": 2}, guard.etag),
                                  Op("create", {"PartitionKey": pk, "RowKey": "new"}),
                                  Op("create", {"PartitionKey": pk, "RowKey": "taken"})])
    assert store.get(SESSIONS, pk, "guard")["V"] == 1 and store.get(SESSIONS, pk, "new") is None
    store.transact(SESSIONS, [Op("update", {"PartitionKey": pk, "RowKey": "guard", "V": 2}, guard.etag),
                              Op("create", {"PartitionKey": pk, "RowKey": "new"}),
                              Op("delete", {"PartitionKey": pk, "RowKey": "taken"},
                                 store.get(SESSIONS, pk, "taken").etag)])
    assert store.get(SESSIONS, pk, "guard")["V"] == 2 and store.get(SESSIONS, pk, "taken") is None
    with pytest.raises(ConcurrencyConflict):  # the guard's ETag has changed
        store.transact(SESSIONS, [Op("update", {"PartitionKey": pk, "RowKey": "guard", "V": 3}, guard.etag)])
    with pytest.raises(ValueError):
        store.transact(SESSIONS, [Op("create", {"PartitionKey": pk, "RowKey": f"x{i}"}) for i in range(101)])


def test_queries_ranges_filters_and_pages(store):
    pk = _pk()
    now = datetime.now(UTC)
    for i in range(7):
        store.insert(SESSIONS, {"PartitionKey": pk, "RowKey": f"seat|{i}", "Flag": i % 2 == 0,
                                "Owner": "" if i < 3 else "x", "At": now - timedelta(days=i)})
    store.insert(SESSIONS, {"PartitionKey": pk, "RowKey": "seau", "Flag": True})
    rows = list(store.query(SESSIONS, partition_key=pk, row_from="seat|", row_below="seat}"))
    assert [r["RowKey"] for r in rows] == [f"seat|{i}" for i in range(7)]
    flagged = store.query(SESSIONS, partition_key=pk, row_from="seat|", row_below="seat}",
                          where="Flag eq true and Owner ne ''")
    assert [r["RowKey"] for r in flagged] == ["seat|4", "seat|6"]
    old = store.query(SESSIONS, partition_key=pk, where="At lt @cut or RowKey eq @rk",
                      parameters={"cut": now - timedelta(days=4, hours=12), "rk": "seau"})
    assert [r["RowKey"] for r in old] == ["seat|5", "seat|6", "seau"]
    selected = store.query(SESSIONS, partition_key=pk, row_from="seau", select=["RowKey"])
    assert [r.get("Flag") for r in selected] == [None]
    seen, token = [], None
    while True:
        page, token = store.query_page(SESSIONS, partition_key=pk, row_from="seat|", row_below="seat}", limit=3,
                                       continuation=token)
        seen += [r["RowKey"] for r in page]
        if token is None:
            break
    assert seen == [f"seat|{i}" for i in range(7)]


def test_queues_count_what_was_sent(store):
    name = "outbound-email-poison"
    before = store.queue_depth(name)
    store.send(name, b'{"contract": true}')
    assert store.queue_depth(name) == before + 1
    if not isinstance(store, InMemoryStorage):
        from azure.storage.queue import QueueClient

        client = QueueClient.from_connection_string(
            store.settings.storage_connection_string, name)
        client.clear_messages()


@pytest.mark.parametrize("key", ["a/b", "a#b", "a?b", "a\\b", "a\x07b"])
def test_the_fake_refuses_keys_azure_refuses(key):
    with pytest.raises(InvalidEntity):
        InMemoryStorage().insert(SESSIONS, {"PartitionKey": key, "RowKey": "r"})


def test_the_fake_refuses_properties_over_azure_limits():
    with pytest.raises(InvalidEntity):
        InMemoryStorage().insert(SESSIONS, {"PartitionKey": "p", "RowKey": "r", "Big": "x" * 33_000})
