"""The license page's tools as an owner uses them: search by a domain, a pasted list and a CSV file in
one go, and an export German Excel opens in columns."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from playwright.sync_api import expect

from services import seat_assignment
from services.seat_listing import CSV_COLUMNS
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.licenses_support import context, idp_person

pytestmark = pytest.mark.browser

OWNER = "admin@contoso.example"


def test_search_finds_every_address_of_a_domain(page, stack):
    owner = idp_person(stack, OWNER)
    sub = purchased_subscription(stack, owner, quantity=10)
    tag = uuid.uuid4().hex[:6]
    fabrikam = [f"{n}.{tag}@fabrikam.example" for n in ("ana", "ben")]
    seat_assignment.assign(context(stack, person=owner), sub.id,
                           [f"carl.{tag}@contoso.example", *fabrikam, f"fabrikam-fan.{tag}@contoso.example"])
    sign_in(page, stack, OWNER, next_path=f"/api/subscriptions/{sub.id}/licenses")

    page.get_by_label("Search by e-mail address").fill("@FABRIKAM.example")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#seats tbody th")).to_have_text(fabrikam)
    page.get_by_label("Search by e-mail address").fill("fan")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#seats tbody th")).to_have_text([f"fabrikam-fan.{tag}@contoso.example"])


def test_a_pasted_list_and_a_csv_file_are_assigned_together(page, stack):
    owner = idp_person(stack, OWNER)
    sub = purchased_subscription(stack, owner, quantity=10)
    licenses = f"/api/subscriptions/{sub.id}/licenses"
    tag = uuid.uuid4().hex[:6]
    pasted = [f"{n}.{tag}@contoso.example" for n in ("ida", "jan")]
    uploaded = [f"{n}.{tag}@contoso.example" for n in ("kim", "lea", "jan")]  # jan in both: counted once
    sign_in(page, stack, OWNER, next_path=licenses)

    page.get_by_label("E-mail addresses").fill("\n".join(pasted))
    page.get_by_label("Or upload a CSV file").set_input_files(files=[{
        "name": "new-staff.csv", "mimeType": "text/csv",
        "buffer": ("email\r\n" + "\r\n".join(uploaded) + "\r\n").encode()}])
    page.get_by_role("button", name="Assign licenses").click()
    page.wait_for_url(f"{stack.url}{licenses}")

    expect(page.get_by_role("status").first).to_contain_text(
        "4 licenses assigned from the pasted addresses (2) and the file new-staff.csv (3) together")
    expect(page.locator("#seats tbody th")).to_have_text(sorted(set(pasted + uploaded)))
    assert "4 of 10 licenses assigned" in page.locator("#seat-count").inner_text()


def test_the_german_export_opens_in_columns_in_excel(page, stack):
    owner = idp_person(stack, OWNER)
    sub = purchased_subscription(stack, owner, quantity=5)
    tag = uuid.uuid4().hex[:6]
    people = [f"{n}.{tag}@contoso.example" for n in ("otto", "paula")]
    seat_assignment.assign(context(stack, person=owner), sub.id, people)
    sign_in(page, stack, OWNER, next_path=f"/api/subscriptions/{sub.id}/licenses")

    page.get_by_role("link", name="Deutsch").click()
    expect(page.get_by_text("Durch Semikolons getrennt, für Excel")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV exportieren").click()
    raw = open(download.value.path(), "rb").read()
    assert raw.startswith(b"\xef\xbb\xbf")  # the byte order mark: Excel reads UTF-8
    # Excel with German regional settings splits at ";" (what this reader does).
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sorted(row[0] for row in rows[1:]) == people
    assert all(len(row) == len(CSV_COLUMNS) and row[1] == "pending" for row in rows[1:])

    page.get_by_role("link", name="English").click()
    expect(page.get_by_text("Comma-separated, UTF-8.")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    raw = open(download.value.path(), "rb").read()
    assert not raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS and sorted(row[0] for row in rows[1:]) == people
