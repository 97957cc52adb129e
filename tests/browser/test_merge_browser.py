"""The owner's merge page in the browser (issue 13): individual subscriptions of the tenant listed with
checkboxes, the price preview when more licenses are needed, confirm, and the progress afterwards."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.license_fixtures import CONTOSO_ID, FABRIKAM_ID, check, new_user, token_for
from tests.licenses_support import idp_person

pytestmark = pytest.mark.browser


def test_owner_merges_individual_subscriptions_on_the_page(page, stack):
    provider = stack.identity_provider
    owner_user = new_user(provider, CONTOSO_ID)
    owner = idp_person(stack, owner_user["preferred_username"])
    organisation = purchased_subscription(stack, owner, quantity=1)
    people = [new_user(provider, CONTOSO_ID) for _ in range(2)]
    individuals = [purchased_subscription(stack, idp_person(stack, u["preferred_username"]), quantity=1,
                                          kind="individual") for u in people]
    foreign_user = new_user(provider, FABRIKAM_ID)
    foreign = purchased_subscription(stack, idp_person(stack, foreign_user["preferred_username"]), quantity=1,
                                     kind="individual")

    sign_in(page, stack, owner_user["preferred_username"], next_path=f"/api/subscriptions/{organisation.id}")
    page.locator("#merge-link").click()
    expect(page.get_by_role("heading", name="Merge individual subscriptions", level=1)).to_be_visible()
    table = page.locator("#merge-candidates")
    for sub in individuals:
        expect(table.locator(f"tr[data-subscription='{sub.id}']")).to_be_visible()
    expect(table.locator(f"tr[data-subscription='{foreign.id}']")).to_have_count(0)

    for sub in individuals:
        table.locator(f"tr[data-subscription='{sub.id}'] input[type=checkbox]").check()
    page.locator("#merge-submit").click()

    # One license free, two needed: the price of raising to 2 first.
    preview = page.locator("#merge-preview")
    expect(preview).to_be_visible()
    expect(preview.locator("#due-now")).to_be_visible()
    page.locator("#confirm-merge").click()

    progress = page.locator("#merge-progress")
    expect(progress).to_have_attribute("data-status", "completed")
    expect(progress.locator("tr[data-done='true']")).to_have_count(2)
    for sub in individuals:  # merged: no longer offered
        expect(page.locator(f"#merge-candidates tr[data-subscription='{sub.id}']")).to_have_count(0)
    for user in people:
        body = check(stack.url, token_for(stack, user)).json()
        assert body["valid"] and body["subscription"]["id"] == organisation.id

    # The former buyer's own page says what happened; their invoices stay theirs.
    page.context.clear_cookies()
    sign_in(page, stack, people[0]["preferred_username"], next_path=f"/api/subscriptions/{individuals[0].id}")
    expect(page.locator("#merged-notice")).to_be_visible()
    expect(page.locator("#billing-link")).to_be_visible()
