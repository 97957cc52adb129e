"""The license list's read side against the in-memory storage: search by any part of the address
(paged, bounded), and the CSV export's delimiter; and address lists from two sources at once."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from adapters import keys
from adapters.memory_storage import InMemoryStorage
from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import SUBSCRIPTIONS
from services import seat_assignment, seat_listing, subscription_store
from services.address_list import MAX_ADDRESSES, AddressListError, combine, parse_addresses, parse_csv
from services.audit import Actor
from services.seat_change import Context
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.factories import local_values

ADMIN = Actor("tid-1", "oid-admin", "admin@contoso.example", "Admin")
PEOPLE = ["ada@contoso.example", "bea@fabrikam.example", "cem@contoso.example", "dov@fabrikam.example",
          "eli@northwind.example", "fay@fabrikam.example", "gus.fabrikam@contoso.example"]


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def sub(store: InMemoryStorage) -> Subscription:
    created = Subscription(id="sub_1", kind="organisation", status="active", quantity=20, assigned_count=0,
                           tenant_id="tid-1", owner_tid="tid-1", owner_oid="oid-owner",
                           owner_email="owner@contoso.example", owner_name="Contoso", language="de",
                           stripe_customer_id="cus_1", checkout_session_id="cs_1",
                           current_period_end=datetime.now(UTC) + timedelta(days=30))
    assert subscription_store.create(store, created)
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    seat_assignment.assign(Context(UnitOfWork(store), settings, ADMIN), "sub_1", PEOPLE)
    stored = subscription_store.load(store, "sub_1")
    assert stored is not None
    return stored


def emails(page: seat_listing.SeatPage) -> list[str]:
    return [view.email for view in page.seats]


def test_a_domain_finds_every_address_in_it(store, sub):
    found = seat_listing.list_seats(store, sub, 14, search="@fabrikam.example")
    assert emails(found) == ["bea@fabrikam.example", "dov@fabrikam.example", "fay@fabrikam.example"]
    assert found.continuation is None


def test_any_part_of_the_address_in_any_case(store, sub):
    assert emails(seat_listing.list_seats(store, sub, 14, search="FABRIKAM")) == [
        "bea@fabrikam.example", "dov@fabrikam.example", "fay@fabrikam.example", "gus.fabrikam@contoso.example"]
    assert emails(seat_listing.list_seats(store, sub, 14, search="ev")) == []
    assert emails(seat_listing.list_seats(store, sub, 14, search="cem")) == ["cem@contoso.example"]


def test_search_pages_carry_on_at_the_next_match_and_never_end_on_an_empty_page(store, sub):
    first = seat_listing.list_seats(store, sub, 14, search="fabrikam", limit=2)
    assert emails(first) == ["bea@fabrikam.example", "dov@fabrikam.example"] and first.continuation
    second = seat_listing.list_seats(store, sub, 14, search="fabrikam", limit=2, continuation=first.continuation)
    assert emails(second) == ["fay@fabrikam.example", "gus.fabrikam@contoso.example"]
    assert second.continuation is None  # no "next" link to an empty page


def test_search_combines_with_the_status_filter(store, sub):
    assert emails(seat_listing.list_seats(store, sub, 14, status="pending", search="@fabrikam")) == [
        "bea@fabrikam.example", "dov@fabrikam.example", "fay@fabrikam.example"]
    assert emails(seat_listing.list_seats(store, sub, 14, status="active", search="@fabrikam")) == []


def test_a_search_reads_at_most_its_bound_and_then_says_where_to_go_on(store, sub):
    repository = SubscriptionRepository(store)
    found, token = repository.seat_search(sub.id, "fabrikam", scan_limit=3)
    assert [s.email for s in found] == ["bea@fabrikam.example"]  # ada, bea, cem read
    assert token == {"PartitionKey": sub.id, "RowKey": keys.seat_row("dov@fabrikam.example")}
    rest, end = repository.seat_search(sub.id, "fabrikam", continuation=token)
    assert [s.email for s in rest] == ["dov@fabrikam.example", "fay@fabrikam.example", "gus.fabrikam@contoso.example"]
    assert end is None


def test_a_token_cannot_lead_the_search_out_of_the_seats(store, sub):
    # Rows sorting before the seats ("audit|...", "delegate|...") are never read as seats.
    found, _ = SubscriptionRepository(store).seat_search(sub.id, "@", continuation={"RowKey": "audit|"})
    assert [s.email for s in found] == sorted(PEOPLE)
    assert store.get(SUBSCRIPTIONS, sub.id, keys.seat_row(PEOPLE[0])) is not None


def test_no_search_term_pages_by_key_range_as_before(store, sub):
    first = seat_listing.list_seats(store, sub, 14, limit=4)
    second = seat_listing.list_seats(store, sub, 14, limit=4, continuation=first.continuation)
    assert emails(first) + emails(second) == sorted(PEOPLE) and second.continuation is None


def _rows(text: str, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def test_the_export_for_german_excel_is_separated_by_semicolons(store, sub):
    german = seat_listing.export_csv(store, sub, 14, delimiter=";")
    assert german.splitlines()[0] == ";".join(seat_listing.CSV_COLUMNS)
    rows = _rows(german, ";")
    assert sorted(r["email"] for r in rows) == sorted(PEOPLE)
    assert {r["status"] for r in rows} == {"pending"} and {r["assigned_by"] for r in rows} == {ADMIN.email}
    english = seat_listing.export_csv(store, sub, 14)
    assert english.splitlines()[0] == ",".join(seat_listing.CSV_COLUMNS)
    assert _rows(english, ",") == rows
    with pytest.raises(ValueError):
        seat_listing.export_csv(store, sub, 14, delimiter="|")


def test_a_pasted_list_and_a_file_together_give_each_address_once():
    pasted = parse_addresses("Ada@contoso.example; bea@contoso.example\nbad-address")
    uploaded = parse_csv(b"email\nbea@contoso.example\ncem@contoso.example\ncem@contoso.example\n")
    both = combine(pasted, uploaded)
    assert both.valid == ["ada@contoso.example", "bea@contoso.example", "cem@contoso.example"]
    assert both.duplicates == ["bea@contoso.example", "cem@contoso.example"]
    assert both.invalid == ["bad-address"] and both.problems == {"bad-address": "malformed"}
    assert combine(uploaded).valid == uploaded.valid


def test_two_lists_together_are_held_to_the_limit_of_one_request():
    half = parse_addresses([f"p{n}@contoso.example" for n in range(MAX_ADDRESSES // 2 + 1)])
    other = parse_addresses([f"q{n}@contoso.example" for n in range(MAX_ADDRESSES // 2)])
    with pytest.raises(AddressListError) as refused:
        combine(half, other)
    assert refused.value.code == "too_many_addresses"
