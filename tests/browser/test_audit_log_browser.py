"""The audit log reads as sentences in the page's language (issue 15, defect 2): one per entry, the
details (action code, addresses, before/after) folded away, the CSV export still machine-readable."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from adapters.subscription_repository import SubscriptionRepository
from services import seat_assignment, seat_revocation
from services.audit import Actor, AuditEntry
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.license_fixtures import new_user
from tests.licenses_support import context, idp_person

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def logged(stack) -> dict:
    """A subscription whose log holds a bulk assignment of 8, a revoke, a reassignment, Stripe's
    change of status and an action this version has no sentence for."""
    user = new_user(stack.identity_provider)
    owner = idp_person(stack, user["preferred_username"])
    sub = purchased_subscription(stack, owner, quantity=10)
    tag = uuid.uuid4().hex[:6]
    people = [f"p{n}.{tag}@contoso.example" for n in range(8)]
    successor = f"nachfolger.{tag}@contoso.example"
    ctx = context(stack, person=owner)
    seat_assignment.assign(ctx, sub.id, people)
    seat_revocation.revoke(ctx, sub.id, people[1])
    seat_revocation.reassign(ctx, sub.id, people[0], successor)
    now = datetime.now(UTC)
    SubscriptionRepository(stack.storage()).create_rows(sub.id, [
        AuditEntry(Actor.system("Stripe"), "subscription.updated", target="customer.subscription.updated",
                   before={"status": "active", "quantity": 10}, after={"status": "past_due", "quantity": 10}, at=now),
        AuditEntry(Actor(owner.tid, owner.oid, owner.email, owner.name), "future.thing", target="x",
                   after={"a": 1}, at=now + timedelta(milliseconds=1)),
    ])
    return {"owner": user["preferred_username"], "sub": sub.id, "people": people, "successor": successor}


def _open(browser, stack, logged: dict, locale: str):
    ctx = browser.new_context(ignore_https_errors=True, locale=locale)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, stack, logged["owner"], next_path=f"/api/subscriptions/{logged['sub']}/audit")
    return ctx, page


def test_the_german_audit_log_reads_as_german_sentences_with_details_folded_away(browser, stack, logged):
    owner, people, successor = logged["owner"], logged["people"], logged["successor"]
    ctx, page = _open(browser, stack, logged, "de-DE")
    try:
        expect(page.locator("#audit tbody .sentence")).to_have_text([
            f"{owner} hat eine Änderung vorgenommen (future.thing).",
            "Stripe hat den Status des Abonnements von „aktiv“ auf „Zahlung überfällig“ geändert.",
            f"{owner} hat die Lizenz von {people[0]} an {successor} übertragen.",
            f"{owner} hat {people[1]} die Lizenz entzogen.",
            f"{owner} hat 8 Adressen Lizenzen zugewiesen.",
            f"{owner} hat das Abonnement mit 10 Lizenzen gekauft.",
        ])
        shown = page.locator("main").inner_text()
        assert "addresses" not in shown and "license.reassigned" not in shown and '"email"' not in shown

        # The details are one click away, in German, the action code among them.
        reassigned = page.locator("#audit tbody tr").nth(2)
        details = reassigned.locator("details")
        expect(details.locator("dl")).to_be_hidden()
        details.get_by_text("Details").click()
        expect(details.locator("dl")).to_be_visible()
        expect(details).to_contain_text("Aktionscode: license.reassigned")
        bulk = page.locator("#audit tbody tr").nth(4)
        bulk.get_by_text("Details").click()
        expect(bulk.locator("dl")).to_contain_text(f"Adressen: {', '.join(people)}")
        unknown = page.locator("#audit tbody tr").first
        unknown.get_by_text("Details").click()
        expect(unknown.locator("dl")).to_contain_text('Nachher: {"a": 1}')
    finally:
        ctx.close()


def test_the_english_audit_log_and_the_csv_export_keep_their_own_forms(browser, stack, logged):
    owner, people, successor = logged["owner"], logged["people"], logged["successor"]
    ctx, page = _open(browser, stack, logged, "en-US")
    try:
        expect(page.locator("#audit tbody .sentence").nth(2)).to_have_text(
            f"{owner} reassigned the license of {people[0]} to {successor}.")
        expect(page.locator("#audit tbody .sentence").nth(4)).to_have_text(f"{owner} assigned licenses to 8 addresses.")

        # The export stays machine-readable: action codes and before/after as JSON.
        answer = page.request.get(f"{stack.url}/api/subscriptions/{logged['sub']}/audit/export.csv")
        exported = list(csv.DictReader(io.StringIO(answer.text())))
        reassigned = next(r for r in exported if r["action"] == "license.reassigned")
        assert json.loads(reassigned["before"]) == {"email": people[0]}
        assert json.loads(reassigned["after"]) == {"email": successor}
        assert {r["action"] for r in exported} >= {"licenses.assigned", "license.revoked", "future.thing"}
    finally:
        ctx.close()
