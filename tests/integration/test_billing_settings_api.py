"""Finance settings and billing details through real HTTP (PRODUCT.md 2.13): the app under the local host,
Azurite, identity-provider tokens and the real Stripe SDK against the emulator. What Stripe holds is
read back with the SDK, not asked of the app."""

from __future__ import annotations

import stripe

from local_host import launch as launch_host
from services import delegation
from services.audit import Actor
from services.delegate import Acceptor
from services.unit_of_work import UnitOfWork
from tests.builders import purchased_subscription
from tests.conftest import REPO_ROOT, STRIPE_KEY
from tests.license_fixtures import new_user, person_of, token_for
from tests.licenses_support import call


def _client(stack) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stack.stripe_emulator.url},
                               stripe_version=stack.settings.stripe_api_version)


def _custom_fields(stack, customer_id: str) -> list[tuple[str, str]] | None:
    customer = _client(stack).v1.customers.retrieve(customer_id)
    fields = customer.invoice_settings.custom_fields if customer.invoice_settings else None
    return None if fields is None else [(f.name, f.value) for f in fields]


def _owned(stack, language: str = "en"):
    user = new_user(stack.identity_provider)
    sub = purchased_subscription(stack, person_of(user), quantity=3, language=language)
    return sub, user


def _delegate(stack, sub, owner_user, permission: str) -> str:
    """A delegate holding only `permission`; their token."""
    owner, user = person_of(owner_user), new_user(stack.identity_provider)
    who = person_of(user)
    uow = UnitOfWork(stack.storage())
    issued = delegation.invite(uow, stack.settings, Actor(owner.tid, owner.oid, owner.email, owner.name), sub.id,
                               who.email, frozenset({permission}))
    delegation.accept(uow, issued.token, Acceptor(who.tid, who.oid, who.name, who.email,
                                                  frozenset(who.sign_in_names)))
    return token_for(stack, user)


def _stored(stack, sub_id: str) -> tuple[str, str, str]:
    sub = UnitOfWork(stack.storage()).load(sub_id)
    return sub.po_number, sub.cost_centre, sub.accounting_email


def _audited(stack, sub_id: str) -> list[tuple[str, dict, dict]]:
    return [(e.actor.email, e.before, e.after) for e in UnitOfWork(stack.storage()).subscriptions.audit_entries(sub_id)
            if e.action == "billing.settings_changed"]


def _path(sub_id: str) -> str:
    return f"/api/v1/subscriptions/{sub_id}/billing-settings"


def test_a_billing_delegate_sets_the_fields_stripe_prints_on_every_invoice(stack):
    sub, owner_user = _owned(stack, language="de")
    token = _delegate(stack, sub, owner_user, "billing.manage")
    body = {"po_number": " 4500012345 ", "cost_centre": "KST 4711", "accounting_email": "Rechnungen@Contoso.Example"}
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token, body)
    assert status == 200, answer
    assert answer["changed"] == ["po_number", "cost_centre", "accounting_email"]
    assert (answer["po_number"], answer["accounting_email"]) == ("4500012345", "rechnungen@contoso.example")
    # German subscription: German names on the invoice.
    assert _custom_fields(stack, sub.stripe_customer_id) == [("Bestellnummer", "4500012345"),
                                                             ("Kostenstelle", "KST 4711")]
    assert _stored(stack, sub.id) == ("4500012345", "KST 4711", "rechnungen@contoso.example")
    [(who, before, after)] = _audited(stack, sub.id)
    assert before == {"po_number": "", "cost_centre": "", "accounting_email": ""}
    assert after == {"po_number": "4500012345", "cost_centre": "KST 4711",
                     "accounting_email": "rechnungen@contoso.example"}
    assert who.startswith("user-")

    # A key left out keeps its value; "" clears one; the other field stays on the invoice.
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token, {"po_number": ""})
    assert status == 200 and answer["changed"] == ["po_number"], answer
    assert _custom_fields(stack, sub.stripe_customer_id) == [("Kostenstelle", "KST 4711")]
    assert _stored(stack, sub.id) == ("", "KST 4711", "rechnungen@contoso.example")

    # The same values again: nothing changes, nothing more is audited.
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token, {"cost_centre": "KST 4711"})
    assert status == 200 and answer["changed"] == [], answer
    assert len(_audited(stack, sub.id)) == 2

    # Both cleared: Stripe prints no custom fields any more.
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token, {"cost_centre": ""})
    assert status == 200, answer
    assert not _custom_fields(stack, sub.stripe_customer_id)


def test_the_english_names_for_an_english_subscription(stack):
    sub, owner_user = _owned(stack, language="en")
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token_for(stack, owner_user),
                             {"po_number": "PO-77", "cost_centre": "CC-1"})
    assert status == 200, answer
    assert _custom_fields(stack, sub.stripe_customer_id) == [("PO number", "PO-77"), ("Cost centre", "CC-1")]
    assert answer["invoice_custom_fields"] == [{"name": "PO number", "value": "PO-77"},
                                               {"name": "Cost centre", "value": "CC-1"}]


def test_a_141_character_po_number_is_refused_naming_the_field_and_nothing_changes(stack):
    sub, owner_user = _owned(stack)
    token = token_for(stack, owner_user)
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token,
                             {"po_number": "4" * 141, "accounting_email": "ap@contoso.example"})
    assert status == 400, answer
    assert (answer["error"], answer["field"], answer["maximum"]) == ("too_long", "po_number", 140)
    assert _stored(stack, sub.id) == ("", "", "")  # the valid address was not stored either
    assert not _custom_fields(stack, sub.stripe_customer_id)
    assert _audited(stack, sub.id) == []


def test_bad_input_is_a_400_naming_the_field(stack):
    sub, owner_user = _owned(stack)
    token = token_for(stack, owner_user)
    cases = [
        ({"po_number": "1", "vat_id": "DE136695976"}, "unknown_field", "vat_id"),
        ({"cost_centre": 4711}, "invalid_type", "cost_centre"),
        ({"cost_centre": "KST\n4711"}, "invalid_characters", "cost_centre"),
        ({"accounting_email": "rechnungen@contoso"}, "invalid_email", "accounting_email"),
    ]
    for body, code, field in cases:
        status, answer, _ = call(stack.url, "PUT", _path(sub.id), token, body)
        assert (status, answer["error"], answer["field"]) == (400, code, field), (body, answer)
    status, answer, _ = call(stack.url, "PUT", _path(sub.id), token, b"[1, 2]")
    assert status == 400 and answer["error"] == "invalid_body", answer
    assert _stored(stack, sub.id) == ("", "", "")


def test_a_delegate_without_billing_manage_is_refused(stack):
    sub, owner_user = _owned(stack)
    token = _delegate(stack, sub, owner_user, "quantity.manage")
    for method, body in (("GET", None), ("PUT", {"po_number": "PO-1"})):
        status, answer, _ = call(stack.url, method, _path(sub.id), token, body)
        assert (status, answer["error"], answer["permission"]) == (403, "forbidden", "billing.manage"), answer
    assert _stored(stack, sub.id) == ("", "", "")
    stranger = token_for(stack, new_user(stack.identity_provider))
    status, answer, _ = call(stack.url, "GET", _path(sub.id), stranger)
    assert status == 404, answer


def test_the_settings_come_with_the_customers_billing_details(stack):
    sub, owner_user = _owned(stack)
    client = _client(stack)
    client.v1.customers.update(sub.stripe_customer_id, params={
        "name": "Contoso GmbH",
        "address": {"line1": "Hauptstraße 1", "postal_code": "10115", "city": "Berlin", "country": "DE"}})
    client.v1.customers.tax_ids.create(sub.stripe_customer_id, params={"type": "eu_vat", "value": "DE136695976"})
    token = token_for(stack, owner_user)
    call(stack.url, "PUT", _path(sub.id), token, {"accounting_email": "ap@contoso.example"})

    status, answer, _ = call(stack.url, "GET", _path(sub.id), token)
    assert status == 200, answer
    assert (answer["po_number"], answer["cost_centre"], answer["accounting_email"]) == ("", "", "ap@contoso.example")
    details = answer["billing_details"]
    assert details["name"] == "Contoso GmbH"
    assert (details["address"]["line1"], details["address"]["postal_code"], details["address"]["city"],
            details["address"]["country"]) == ("Hauptstraße 1", "10115", "Berlin", "DE")
    assert [(t["type"], t["value"]) for t in details["tax_ids"]] == [("eu_vat", "DE136695976")]


def test_stripe_down_answers_503_and_stores_nothing(stack):
    sub, owner_user = _owned(stack)
    token = token_for(stack, owner_user)
    stack.settle()  # no Stripe events queued for the second host to take while it runs
    # A second host on the same storage whose Stripe does not answer (nothing listens on port 9).
    host = launch_host(REPO_ROOT, env={**stack.env, "STRIPE_API_BASE": "http://127.0.0.1:9"})
    try:
        status, answer, headers = call(host.url, "PUT", _path(sub.id), token,
                                       {"po_number": "PO-1", "accounting_email": "ap@contoso.example"})
        assert status == 503 and answer["error"] == "stripe_unavailable", answer
        assert int(headers["Retry-After"]) > 0
        status, answer, _ = call(host.url, "GET", _path(sub.id), token)
        assert status == 503 and answer["error"] == "stripe_unavailable", answer
    finally:
        host.stop()
    assert _stored(stack, sub.id) == ("", "", "")
    assert _audited(stack, sub.id) == []
    assert not _custom_fields(stack, sub.stripe_customer_id)
