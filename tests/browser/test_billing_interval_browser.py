"""Switching to annual billing at the next renewal, in the browser in German (PRODUCT.md 2.13, 2.5).

Finance (the owner) of a German business opens the billing page, asks for the annual price, sees from which
date and what a year costs with VAT (computed here from the tiers: a year is ten months' price), confirms, and
the billing page and the subscription page say when it switches; Stripe (the emulator) has it planned in a
subscription schedule. Finance then withdraws it, and nothing is planned any more. The switch itself at the
renewal is tested through HTTP with the emulator's clock (tests/integration/test_billing_interval_api.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from adapters.stripe_gateway import StripeGateway, as_dict
from services import subscription_store
from services.i18n import format_money
from tests.browser.conftest import sign_in
from tests.builders import purchased_subscription
from tests.license_fixtures import new_user, person_of

pytestmark = pytest.mark.browser


def _euro(cents: int) -> str:
    return format_money(cents, "eur", "de")


def _schedule(stack, subscription_id: str) -> dict[str, Any] | None:
    found = as_dict(StripeGateway(stack.settings).subscription(subscription_id)).get("schedule")
    return found if isinstance(found, dict) else None


def test_finance_switches_to_annual_billing_at_the_renewal_and_takes_it_back(german_page, stack):
    owner_user = new_user(stack.identity_provider)
    sub = purchased_subscription(stack, person_of(owner_user), quantity=12, language="de")
    StripeGateway(stack.settings).client().v1.customers.update(sub.stripe_customer_id, params={
        "name": "Contoso GmbH", "address": {"line1": "Hauptstraße 1", "postal_code": "10115", "city": "Berlin",
                                            "country": "DE"}})
    stack.settle()
    stored = subscription_store.load(stack.storage(), sub.id)
    assert stored is not None and stored.current_period_end is not None
    renewal = stored.current_period_end.strftime("%Y-%m-%d")
    # 12 licenses: 4,80 € a month each, 48,00 € a year (ten months); 19 % German VAT on the year.
    year, vat = 12 * 4800, round(12 * 4800 * 0.19)
    billing_path = f"/api/subscriptions/{sub.id}/billing"

    page = german_page
    sign_in(page, stack, owner_user["preferred_username"], next_path=billing_path)
    section = page.locator("#billing-interval")
    expect(section.get_by_role("heading", name="Abrechnungszeitraum")).to_be_visible()
    expect(page.locator("#interval-now")).to_have_text("Dein Abonnement wird monatlich abgerechnet.")
    section.get_by_role("button", name=re.compile("^Zur jährlichen Abrechnung wechseln")).click()

    expect(page.locator("#interval-preview-heading")).to_have_text(f"Jährliche Abrechnung ab dem {renewal}")
    expect(page.locator("#interval-unit")).to_have_text(_euro(4800))
    expect(page.locator("#interval-total")).to_contain_text(_euro(year + vat))
    expect(page.locator("#interval-total")).to_contain_text(f"12 × {_euro(4800)}, inklusive {_euro(vat)} Steuern")
    expect(page.locator("#interval-current")).to_contain_text(_euro(12 * 480))
    saving = 12 * 12 * 480 - year  # two months
    expect(page.locator("#interval-saving")).to_have_text(f"Du sparst {_euro(saving)} im Jahr (netto).")
    assert _schedule(stack, sub.id) is None  # a preview changes nothing

    page.get_by_role("button", name=f"Ab dem {renewal} jährlich abrechnen").click()
    page.wait_for_url(re.compile(re.escape(f"{stack.url}{billing_path}") + r"(#billing-interval)?$"))
    expect(page.get_by_role("status").filter(
        has_text=f"Dein Abonnement wechselt am {renewal} zur jährlichen Abrechnung.")).to_have_count(1)
    expect(page.locator("#interval-scheduled")).to_have_text(
        f"Wechselt am {renewal} zur jährlichen Abrechnung.")
    schedule = _schedule(stack, sub.id)
    assert schedule is not None
    assert [(p["items"][0]["price"]["recurring"]["interval"], p["items"][0]["quantity"])
            for p in schedule["phases"]] == [("month", 12), ("year", 12)]

    page.goto(f"{stack.url}/api/subscriptions/{sub.id}")
    expect(page.locator("#interval-switch-notice")).to_have_text(
        f"Wechselt am {renewal} zur jährlichen Abrechnung")

    page.goto(f"{stack.url}{billing_path}")
    page.get_by_role("button", name="Rückgängig machen: monatlich weiter abrechnen").click()
    expect(page.get_by_role("status").filter(has_text="Der Wechsel ist zurückgenommen")).to_have_count(1)
    expect(page.locator("#interval-scheduled")).to_have_count(0)
    expect(section.get_by_role("button", name=re.compile("^Zur jährlichen Abrechnung wechseln"))).to_be_visible()
    assert _schedule(stack, sub.id) is None
