"""A new owner manages licenses in the browser: paste, see pending, revoke, reassign, export, audit."""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.licenses_support import idp_person

pytestmark = pytest.mark.browser


def test_owner_assigns_revokes_reassigns_exports_and_reads_the_audit_log(page, stack):
    owner = idp_person(stack, "admin@contoso.example")
    sub = purchased_subscription(stack, owner, quantity=10)
    licenses = f"/api/subscriptions/{sub.id}/licenses"
    sign_in(page, stack, "admin@contoso.example", next_path=licenses)
    tag = uuid.uuid4().hex[:6]
    people = [f"{n}.{tag}@contoso.example" for n in ("ada", "bea", "cem", "dov", "eli")]

    page.get_by_label("E-mail addresses").fill("\n".join(people[:3]) + "; " + people[3].upper() + ", " + people[4])
    page.get_by_role("button", name="Assign licenses").click()
    page.wait_for_url(f"{stack.url}{licenses}")
    assert "5 licenses assigned" in page.get_by_role("status").first.inner_text()
    rows = page.locator("#seats tbody tr")
    assert rows.count() == 5
    assert set(page.locator("#seats tbody .badge").all_inner_texts()) == {"Pending"}
    assert "5 of 10 licenses assigned" in page.locator("#seat-count").inner_text()

    page.get_by_role("button", name=f"Revoke the license of {people[0]}").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke license").click()
    page.wait_for_url(f"{stack.url}{licenses}")
    assert f"The license of {people[0]} was revoked." in page.get_by_role("status").first.inner_text()
    assert page.locator(f'#seats tr[data-email="{people[0]}"]').count() == 0

    newcomer = f"fay.{tag}@contoso.example"
    page.get_by_role("button", name=f"Reassign the license of {people[1]}").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("New e-mail address").fill(newcomer)
    dialog.get_by_role("button", name="Reassign license").click()
    page.wait_for_url(f"{stack.url}{licenses}")
    emails = page.locator("#seats tbody th").all_inner_texts()
    assert newcomer in emails and people[1] not in emails and len(emails) == 4

    # Filter and search.
    page.get_by_label("Search by e-mail address").fill("cem")
    page.get_by_role("button", name="Show").click()
    # expect() retries until the new page is there (the click only starts the navigation).
    expect(page.locator("#seats tbody th")).to_have_text([people[2]])

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(open(download_info.value.path(), encoding="utf-8-sig").read())))
    assert sorted(r["email"] for r in exported) == sorted(people[2:] + [newcomer])

    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url(re.compile(r".*/audit$"))
    sentences = page.locator("#audit tbody .sentence").all_inner_texts()
    assert sentences[:3] == [f"admin@contoso.example reassigned the license of {people[1]} to {newcomer}.",
                             f"admin@contoso.example revoked the license of {people[0]}.",
                             "admin@contoso.example assigned licenses to 5 addresses."]

    # Everyone newly assigned got a welcome mail, the newcomer too.
    expected = set(people + [newcomer])
    wait_for(lambda: expected <= {m["to"] for m in stack.outbox() if "license" in m["subject"]}, timeout=30,
             message="welcome mails")


def test_a_bad_list_is_refused_on_the_page_and_nothing_assigned(page, stack):
    owner = idp_person(stack, "admin@contoso.example")
    sub = purchased_subscription(stack, owner, quantity=2)
    licenses = f"/api/subscriptions/{sub.id}/licenses"
    sign_in(page, stack, "admin@contoso.example", next_path=licenses)
    page.get_by_label("E-mail addresses").fill("good@contoso.example, bad-address")
    page.get_by_role("button", name="Assign licenses").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("not valid")
    expect(alert).to_contain_text("bad-address")
    page.get_by_label("E-mail addresses").fill("a@contoso.example, b@contoso.example, c@contoso.example")
    page.get_by_role("button", name="Assign licenses").click()
    expect(page.get_by_role("alert")).to_contain_text("3 new licenses needed, but only 2 free")
    page.get_by_label("Or upload a CSV file").set_input_files(
        files=[{"name": "list.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n\x00\x00"}])
    page.get_by_label("E-mail addresses").fill("")
    page.get_by_role("button", name="Assign licenses").click()
    expect(page.get_by_role("alert")).to_contain_text("not a CSV")
    assert page.locator("#seats").count() == 0


def test_license_forms_refuse_a_post_without_the_csrf_token(page, stack):
    import requests

    from services import seat_assignment
    from tests.licenses_support import context

    owner = idp_person(stack, "admin@contoso.example")
    sub = purchased_subscription(stack, owner, quantity=2)
    seat_assignment.assign(context(stack, person=owner), sub.id, ["kept@contoso.example"])
    sign_in(page, stack, "admin@contoso.example")
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["smm_session"]
    for path, data in (("revoke", {"email": "kept@contoso.example"}), ("", {"emails": "new@contoso.example"})):
        response = requests.post(
            f"{stack.url}/api/subscriptions/{sub.id}/licenses{'/' + path if path else ''}",
            data={**data, "csrf_token": "forged"},
            cookies={"smm_session": cookie},
            timeout=10,
        )
        assert response.status_code == 403
    assert stack.storage().get("Subscriptions", sub.id, "seat|kept@contoso.example") is not None
    assert stack.storage().get("Subscriptions", sub.id, "seat|new@contoso.example") is None
