"""Quantity and billing in the browser (issue 12's acceptance).

IT raises the number of licenses: a delegate with `quantity.manage` (and nothing else) goes from 8 to 12
licenses half-way through the billing period, sees the preview with the volume-tier change in exact
amounts (computed here from the tiers, not asked of the app), confirms, and the subscription shows 12
at once and still after Stripe's webhooks arrive; the same delegate cannot open invoices or the billing
portal. Finance (the owner) finds the invoices, opens the billing portal and comes back, cancels at the
end of the period and undoes it; and is offered to add licenses where the need arises.

The emulator's clock moves here, so this module runs on a stack of its own (tests/billing_support.py).
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from adapters.stripe_gateway import StripeGateway
from services import delegation, subscription_store
from services.audit import Actor
from services.delegate import Acceptor
from services.i18n import format_money
from services.unit_of_work import UnitOfWork
from services.web_session import Person
from tests.billing_support import (
    advance_to_half_way,
    expected_due_now,
    invoices_of,
    own_stack,
    prorated,
    seat_item,
    volume_total,
)
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.license_fixtures import new_user

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(identity_provider, tmp_path_factory):
    with own_stack(identity_provider, tmp_path_factory) as running:
        yield running


def _person(user: dict) -> Person:
    address = user["preferred_username"]
    return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"], email=address,
                  sign_in_names=(address,))


def _delegate(stack, owner: Person, subscription_id: str, user: dict, permissions: set[str]) -> None:
    uow = UnitOfWork(stack.storage())
    who = _person(user)
    issued = delegation.invite(uow, stack.settings, Actor(owner.tid, owner.oid, owner.email, owner.name),
                               subscription_id, who.email, frozenset(permissions))
    delegation.accept(uow, issued.token, Acceptor(who.tid, who.oid, who.name, who.email, frozenset({who.email})))


def _euros(cents: int) -> str:
    return format_money(cents, "eur", "en")


def test_it_delegate_raises_8_to_12_half_way_with_the_tier_change_in_exact_amounts(page, stack, tmp_path):
    owner_user, it_user = new_user(stack.identity_provider), new_user(stack.identity_provider)
    owner = _person(owner_user)
    sub = purchased_subscription(stack, owner, quantity=8)
    _delegate(stack, owner, sub.id, it_user, {"quantity.manage"})
    stack.settle()
    start, end = advance_to_half_way(stack, sub.id)
    subscription_path = f"/api/subscriptions/{sub.id}"

    sign_in(page, stack, it_user["preferred_username"], next_path=subscription_path)
    expect(page.locator("#license-count")).to_have_text("0 of 8 assigned")
    links = page.locator("#subscription-links")
    # Only what this delegate may do: the quantity; no invoices, payment method or cancellation.
    expect(links.get_by_role("link", name="Invoices and billing")).to_have_count(0)
    expect(page.get_by_role("button", name="Update payment method")).to_have_count(0)
    expect(links.get_by_role("link", name="Cancel subscription")).to_have_count(0)
    links.get_by_role("link", name="Change number of licenses").click()
    page.wait_for_url(f"{stack.url}{subscription_path}/quantity")

    page.get_by_label("New number of licenses").fill("12")
    page.get_by_role("button", name="Show price").click()
    preview = page.locator("#quantity-preview")
    expect(preview).to_be_visible()
    page.screenshot(path=str(tmp_path / "quantity-preview.png"), full_page=True)

    # The amounts, computed here: credit for half a period of 8 × 6.00, charge for half of 12 × 4.80.
    proration_date = int(preview.get_attribute("data-proration-date") or 0)
    assert abs(proration_date - (start + (end - start) // 2)) < 120, "half-way through the period"
    remaining, period = end - proration_date, end - start
    credit = -prorated(volume_total(8), remaining, period)
    charge = prorated(volume_total(12), remaining, period)
    due = expected_due_now(8, 12, proration_date, start, end)
    assert (credit, charge, due) == (-2400, 2880, 480)
    expect(preview.get_by_role("heading")).to_have_text("From 8 to 12 licenses")
    expect(page.locator("#tier-change")).to_have_text(
        f"Volume price: with 12 licenses every license costs {_euros(480)} instead of {_euros(600)}.")
    expect(page.locator("#preview-lines tbody td:nth-child(2)")).to_have_text([_euros(credit), _euros(charge)])
    expect(page.locator("#due-now")).to_have_text(_euros(due))  # "4.80 €"
    expect(page.locator("#next-invoice")).to_contain_text(f"{_euros(volume_total(12))} (12 × {_euros(480)})")

    # Confirm with Stripe's webhooks held: the page shows 12 from Stripe's answer alone.
    stack.emulator_control("config", {"delivery": "hold"})
    try:
        page.get_by_role("button", name="Confirm: change to 12 licenses").click()
        page.wait_for_url(f"{stack.url}{subscription_path}")
        expect(page.get_by_role("status").filter(has_text="The subscription now has 12 licenses.")).to_contain_text(
            f"Charged now: {_euros(due)}")
        expect(page.locator("#license-count")).to_have_text("0 of 12 assigned")
        assert stack.emulator_get("events")["held"], "the webhooks had not arrived yet"
    finally:
        stack.emulator_control("config", {"delivery": "normal"})
        stack.emulator_control("webhooks/release")
    stack.settle()
    page.reload()
    expect(page.locator("#license-count")).to_have_text("0 of 12 assigned")
    assert subscription_store.load(stack.storage(), sub.id).quantity == 12 == seat_item(stack, sub.id)["quantity"]
    charged = [i for i in invoices_of(stack, sub.id) if i["billing_reason"] == "subscription_update"]
    assert [i["amount_paid"] for i in charged] == [due], "charged once, what the preview showed"
    page.screenshot(path=str(tmp_path / "after-webhooks.png"), full_page=True)

    # Without billing.manage: no invoices, no billing portal, also when asked directly.
    response = page.goto(f"{stack.url}{subscription_path}/billing")
    assert response is not None and response.status == 403
    expect(page.get_by_text("you do not have the permission", exact=False)).to_be_visible()
    page.goto(f"{stack.url}{subscription_path}")
    with page.expect_navigation() as navigation:
        page.evaluate("""(action) => {
            const form = document.createElement("form");
            form.method = "post"; form.action = action;
            const token = document.querySelector("input[name=csrf_token]").cloneNode();
            form.appendChild(token); document.body.appendChild(form); form.submit();
        }""", f"{subscription_path}/billing/portal")
    refused = navigation.value
    assert refused is not None and refused.status == 403
    assert not [e for e in UnitOfWork(stack.storage()).subscriptions.audit_entries(sub.id)
                if e.action == "billing_portal.opened"]


def test_owner_finds_invoices_opens_the_portal_cancels_and_undoes(page, stack):
    owner_user = new_user(stack.identity_provider)
    owner = _person(owner_user)
    sub = purchased_subscription(stack, owner, quantity=3)
    subscription_path = f"/api/subscriptions/{sub.id}"
    sign_in(page, stack, owner_user["preferred_username"], next_path=subscription_path)

    # Where the need arises: more people than free licenses offers adding the missing ones.
    page.goto(f"{stack.url}{subscription_path}/licenses")
    page.get_by_label("E-mail addresses").fill("\n".join(f"p{i}.{uuid.uuid4().hex[:5]}@contoso.example"
                                                         for i in range(5)))
    page.get_by_role("button", name="Assign licenses").click()
    page.get_by_role("link", name="Add 2 licenses").click()
    expect(page.locator("#quantity-preview h2")).to_have_text("From 3 to 5 licenses")
    page.get_by_role("button", name="Confirm: change to 5 licenses").click()
    page.wait_for_url(f"{stack.url}{subscription_path}")
    expect(page.locator("#license-count")).to_have_text("0 of 5 assigned")

    # The purchase page offers adding licenses instead of a second subscription.
    page.goto(f"{stack.url}/api/purchase")
    offer = page.locator(f'#existing-subscriptions li[data-subscription="{sub.id}"]')
    expect(offer.get_by_role("link", name="Add 10 licenses to this subscription")).to_be_visible()
    expect(page.get_by_role("button", name="Continue to secure payment")).to_have_count(0)
    page.get_by_role("link", name="Buy a separate subscription anyway").click()
    expect(page.get_by_role("button", name="Continue to secure payment")).to_be_visible()

    # Invoices, with Stripe's invoice page and PDF.
    page.goto(f"{stack.url}{subscription_path}")
    page.locator("#subscription-links").get_by_role("link", name="Invoices and billing").click()
    rows = page.locator("#invoices tbody tr")
    stack.settle()
    page.reload()
    expect(rows).to_have_count(2)
    expect(rows.last).to_contain_text(_euros(volume_total(3)))
    expect(rows.first.get_by_role("link", name=re.compile("^View invoice"))).to_have_attribute(
        "href", re.compile(r"/invoice/in_"))
    expect(rows.first.get_by_role("link", name=re.compile("as PDF$"))).to_have_attribute(
        "href", re.compile(r"/invoice/in_\w+/pdf$"))

    # The billing portal: payment method and billing details, no plan change or cancellation; and back.
    page.get_by_role("button", name="Update payment method").click()
    page.wait_for_url(re.compile(r"/billing_portal/bps_"))
    expect(page.locator("#payment-method")).to_be_visible()
    expect(page.locator("#billing-information")).to_be_visible()
    expect(page.locator("#invoice-history")).to_be_visible()
    expect(page.locator(".cancel-plan")).to_have_count(0)
    expect(page.locator("#update-plan")).to_have_count(0)
    page.locator("#return").click()
    page.wait_for_url(f"{stack.url}{subscription_path}")

    # Cancel at the end of the period: the date is on the page and in the mail; then undo.
    ends_on = subscription_store.load(stack.storage(), sub.id).current_period_end.strftime("%Y-%m-%d")
    page.locator("#subscription-links").get_by_role("link", name="Cancel subscription").click()
    expect(page.locator("#licenses-stop")).to_contain_text(f"stop working on {ends_on}")
    page.get_by_role("button", name=f"Cancel at the end of the period ({ends_on})").click()
    page.wait_for_url(f"{stack.url}{subscription_path}")
    expect(page.locator("#cancellation-notice")).to_have_text(f"Cancelled: licenses stop working on {ends_on}")
    mail = wait_for(lambda: [m for m in stack.outbox() if m["to"] == owner.email and ends_on in m["subject"]],
                    timeout=30, message="cancellation mail")
    assert f"Your licenses stop working on {ends_on}" in mail[0]["text"]
    page.locator("#subscription-links").get_by_role("link", name="Undo cancellation").click()
    page.get_by_role("button", name="Undo cancellation").click()
    page.wait_for_url(f"{stack.url}{subscription_path}")
    expect(page.locator("#cancellation-notice")).to_have_count(0)
    assert subscription_store.load(stack.storage(), sub.id).cancel_at_period_end is False


def test_finance_sees_the_billing_details_and_sets_po_number_cost_centre_and_accounting_address_in_german(
        german_page, stack):
    owner_user = new_user(stack.identity_provider)
    owner = _person(owner_user)
    sub = purchased_subscription(stack, owner, quantity=3, language="de")
    stripe_client = StripeGateway(stack.settings).client()
    stripe_client.v1.customers.update(sub.stripe_customer_id, params={
        "name": "Contoso GmbH", "address": {"line1": "Hauptstraße 1", "postal_code": "10115", "city": "Berlin",
                                            "country": "DE"}})
    stripe_client.v1.customers.tax_ids.create(sub.stripe_customer_id, params={"type": "eu_vat",
                                                                             "value": "DE136695976"})
    billing_path = f"/api/subscriptions/{sub.id}/billing"
    page = german_page
    sign_in(page, stack, owner_user["preferred_username"], next_path=billing_path)
    section = page.locator("#billing-settings")
    expect(section.get_by_role("heading", name="Rechnungsdaten")).to_be_visible()
    expect(page.locator("#billing-company")).to_have_text("Contoso GmbH")
    expect(page.locator("#billing-address")).to_contain_text("Hauptstraße 1")
    expect(page.locator("#billing-address")).to_contain_text("10115 Berlin")
    expect(page.locator("#billing-tax-ids")).to_have_text("DE136695976")
    expect(section).to_contain_text("„Zahlungsmethode aktualisieren“")  # where they are changed
    expect(page.locator("#po_number-help")).to_have_text("Steht auf jeder künftigen Rechnung.")

    page.get_by_label("Bestellnummer").fill("  4500012345 ")
    page.get_by_label("Kostenstelle").fill("KST 4711")
    page.get_by_label("E-Mail-Adresse der Buchhaltung").fill("Rechnungen@contoso.example")
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_url(re.compile(re.escape(f"{stack.url}{billing_path}") + r"(#billing-settings)?$"))
    expect(page.get_by_role("status").filter(has_text="Gespeichert.")).to_have_count(1)
    expect(page.get_by_label("Bestellnummer")).to_have_value("4500012345")
    expect(page.get_by_label("Kostenstelle")).to_have_value("KST 4711")
    expect(page.get_by_label("E-Mail-Adresse der Buchhaltung")).to_have_value("rechnungen@contoso.example")
    customer = stripe_client.v1.customers.retrieve(sub.stripe_customer_id)
    assert [(f.name, f.value) for f in customer.invoice_settings.custom_fields] == [
        ("Bestellnummer", "4500012345"), ("Kostenstelle", "KST 4711")]

    # Too long for an invoice (the field's maxlength stops typing; a crafted post is refused).
    page.evaluate("document.getElementById('cost_centre').removeAttribute('maxlength')")
    page.get_by_label("Kostenstelle").fill("K" * 141)
    page.get_by_role("button", name="Speichern").click()
    expect(page.get_by_role("status").filter(has_text="Kostenstelle: höchstens 140 Zeichen")).to_have_count(1)
    expect(page.get_by_label("Kostenstelle")).to_have_value("KST 4711")

    # The audit log says what changed, readably.
    page.goto(f"{stack.url}/api/subscriptions/{sub.id}/audit")
    latest = page.locator("#audit tbody tr").first
    expect(latest).to_contain_text("Bestell- und Buchhaltungsangaben geändert")
    expect(latest).to_contain_text("Bestellnummer: (leer) → 4500012345")
