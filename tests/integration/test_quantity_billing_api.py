"""Quantity, invoices, billing portal and cancellation through real HTTP (PRODUCT.md capability 5): the
app under the local host, the real Stripe SDK against the emulator, identity-provider tokens.

These tests move the emulator's clock (half-way through a period), so they run on a stack of their own
(tests/billing_support.py). Expected amounts are computed here from the price tiers, not asked of the
app or the emulator.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from adapters.stripe_gateway import PORTAL_METADATA_KEY, StripeGateway
from adapters.table_storage import SUBSCRIPTIONS
from services import delegation, subscription_store
from services.audit import Actor
from services.delegate import Acceptor
from services.unit_of_work import UnitOfWork
from services.web_session import Person
from tests.billing_support import (
    advance_to_half_way,
    expected_due_now,
    invoices_of,
    own_stack,
    seat_item,
    stripe_subscription,
    volume_total,
)
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.license_fixtures import new_user, token_for
from tests.licenses_support import call
from tests.pages_support import page, signed_in


@pytest.fixture(scope="module")
def stack(identity_provider, tmp_path_factory):
    with own_stack(identity_provider, tmp_path_factory) as running:
        yield running


@dataclass
class Who:
    person: Person
    token: str


@dataclass
class Team:
    subscription_id: str
    owner: Who
    quantity: Who  # a delegate with quantity.manage only
    billing: Who  # a delegate with billing.manage only
    assign: Who  # a delegate with licenses.assign only


def _person(user: dict) -> Person:
    address = user["preferred_username"]
    return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"], email=user.get("email") or address,
                  sign_in_names=(address,))


def _team(stack, quantity: int = 8) -> Team:
    users = {name: new_user(stack.identity_provider) for name in ("owner", "quantity", "billing", "assign")}
    people = {name: _person(user) for name, user in users.items()}
    owner = people["owner"]
    sub = purchased_subscription(stack, owner, quantity=quantity)
    uow = UnitOfWork(stack.storage())
    inviter = Actor(owner.tid, owner.oid, owner.email, owner.name)
    for name, permission in (("quantity", "quantity.manage"), ("billing", "billing.manage"),
                             ("assign", "licenses.assign")):
        who = people[name]
        issued = delegation.invite(uow, stack.settings, inviter, sub.id, who.email, frozenset({permission}))
        delegation.accept(uow, issued.token, Acceptor(who.tid, who.oid, who.name, who.email,
                                                      frozenset(who.sign_in_names)))
    stack.settle()
    return Team(sub.id, *(Who(people[n], token_for(stack, users[n])) for n in ("owner", "quantity", "billing",
                                                                                "assign")))


def _base(sub_id: str) -> str:
    return f"/api/v1/subscriptions/{sub_id}"


def _put_quantity(stack, who: Who, sub_id: str, body: dict, key: str | None):
    return call(stack.url, "PUT", f"{_base(sub_id)}/quantity", who.token, body,
                headers={"Idempotency-Key": key} if key else None)


def _audit(stack, sub_id: str) -> list[tuple[str, str]]:
    entries = UnitOfWork(stack.storage()).subscriptions.audit_entries(sub_id)
    return [(e.action, e.actor.email or e.actor.name) for e in entries]


def _quantity_updates(stack, sub_id: str) -> list[dict]:
    return [i for i in invoices_of(stack, sub_id) if i["billing_reason"] == "subscription_update"]


def _partition(stack, sub_id: str) -> list[tuple[str, str]]:
    return sorted((r["RowKey"], r.etag) for r in stack.storage().query(SUBSCRIPTIONS, partition_key=sub_id))


# --- preview and confirm -------------------------------------------------------------------------------------


def test_preview_then_confirm_8_to_12_half_way_charges_exactly_the_previewed_cents(stack):
    team = _team(stack)
    sid = team.subscription_id
    start, end = advance_to_half_way(stack, sid)

    status, preview, _ = call(stack.url, "POST", f"{_base(sid)}/quantity/preview", team.quantity.token,
                              {"quantity": 12})
    assert status == 200, preview
    proration_date = preview["proration_date"]
    assert abs(proration_date - (start + (end - start) // 2)) < 120
    due = expected_due_now(8, 12, proration_date, start, end)
    assert due == 480  # half of 12 × 4.80 minus half of 8 × 6.00 (the volume tier changes at 10)
    assert preview["currency"] == "eur" and preview["quantity"] == {"current": 8, "new": 12}
    assert preview["due_now"]["amount"] == preview["due_now"]["total"] == due
    assert sorted(line["amount"] for line in preview["due_now"]["lines"]) == [-2400, 2880]
    assert preview["next_invoice"]["amount"] == volume_total(12) == 5760
    assert preview["unit_amount"] == {"current": 600, "new": 480} and preview["tier_changed"] is True
    assert _audit(stack, sid)[0][0] != "quantity.changed"  # a preview is not audited
    assert seat_item(stack, sid)["quantity"] == 8

    # Webhooks held: the stored state follows from Stripe's answer alone.
    stack.emulator_control("config", {"delivery": "hold"})
    try:
        status, changed, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 12,
                                                                       "proration_date": proration_date}, "raise-12")
        assert status == 200, changed
        assert changed["changed"] is True and changed["quantity"] == {"before": 8, "after": 12}
        assert changed["invoice"]["amount_due"] == changed["invoice"]["amount_paid"] == due
        assert changed["invoice"]["status"] == "paid" and changed["invoice"]["hosted_invoice_url"]
        assert changed["subscription"]["quantity"] == 12
        assert subscription_store.load(stack.storage(), sid).quantity == 12
    finally:
        stack.emulator_control("config", {"delivery": "normal"})
        stack.emulator_control("webhooks/release")
    stack.settle()

    # After the webhooks: still 12, one change, one charge.
    assert subscription_store.load(stack.storage(), sid).quantity == 12
    assert seat_item(stack, sid)["quantity"] == 12
    charged = _quantity_updates(stack, sid)
    assert [(i["amount_paid"], i["status"]) for i in charged] == [(due, "paid")]
    changes = [entry for entry in _audit(stack, sid) if entry[0] in ("quantity.changed", "subscription.updated")]
    assert changes == [("quantity.changed", team.quantity.person.email)]


def test_the_same_change_sent_twice_changes_stripe_once(stack):
    team = _team(stack)
    sid = team.subscription_id
    body = {"quantity": 9}
    first = _put_quantity(stack, team.quantity, sid, body, "retry-me")
    again = _put_quantity(stack, team.quantity, sid, body, "retry-me")  # a retried request
    assert first[0] == again[0] == 200, (first[1], again[1])
    assert first[1]["changed"] is True and again[1]["changed"] is False
    assert again[1]["subscription"]["quantity"] == 9

    # A double click: two identical requests at the same moment.
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: _put_quantity(stack, team.quantity, sid, {"quantity": 11}, "double-click"),
                                range(2)))
    assert [a[0] for a in answers] == [200, 200], answers
    stack.settle()
    assert [i["lines"]["data"][-1]["quantity"] for i in reversed(_quantity_updates(stack, sid))] == [9, 11]
    assert seat_item(stack, sid)["quantity"] == 11
    assert subscription_store.load(stack.storage(), sid).quantity == 11
    assert [e for e in _audit(stack, sid) if e[0] == "quantity.changed"] == [
        ("quantity.changed", team.quantity.person.email)] * 2

    # The same key for a different change is refused; a new key is a new change.
    status, body_, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 15}, "double-click")
    assert status == 409 and body_["error"] == "idempotency_conflict"
    assert seat_item(stack, sid)["quantity"] == 11


def test_the_confirmation_form_posted_twice_changes_stripe_once(stack):
    team = _team(stack)
    sid = team.subscription_id
    cookie, csrf = signed_in(stack, team.owner.person)
    status, _, html = page(stack, "GET", f"/api/subscriptions/{sid}/quantity?quantity=10", cookie)
    assert status == 200
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html.split('id="confirm-form"')[1]))
    assert form["quantity"] == "10" and form["request_id"] and form["proration_date"].isdigit()
    for _ in range(2):
        status, headers, _ = page(stack, "POST", f"/api/subscriptions/{sid}/quantity", cookie, form)
        assert status == 303 and headers["Location"] == f"/api/subscriptions/{sid}"
    stack.settle()
    assert len(_quantity_updates(stack, sid)) == 1
    status, _, html = page(stack, "GET", f"/api/subscriptions/{sid}", cookie)
    assert "The subscription now has 10 licenses." in html
    assert re.search(r'id="license-count">0 of 10 assigned', html)


def test_bounds_and_a_decrease_below_the_assigned_are_refused_before_stripe(stack):
    team = _team(stack)
    sid = team.subscription_id
    emails = [f"u{i}-{uuid.uuid4().hex[:6]}@contoso.example" for i in range(6)]
    status, _, _ = call(stack.url, "POST", f"{_base(sid)}/licenses", team.assign.token, {"emails": emails})
    assert status == 200
    before = _partition(stack, sid)
    status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 4}, "too-low")
    assert status == 409 and body["error"] == "below_assigned" and (body["assigned"], body["revoke"]) == (6, 2)
    assert "revoke 2 licenses first" in body["message"]
    status, body, _ = call(stack.url, "POST", f"{_base(sid)}/quantity/preview", team.quantity.token, {"quantity": 4})
    assert status == 409 and body["revoke"] == 2
    for bad in (0, 10001, "12", True, None):
        status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": bad}, "bad")
        assert status == 400 and body["error"] == "invalid_quantity", bad
    status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 12}, None)
    assert status == 400 and body["error"] == "idempotency_key_required"
    status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 12}, "not/allowed")
    assert status == 400 and body["error"] == "invalid_request_id" and body["field"] == "Idempotency-Key"
    status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 12, "proration_date": 1}, "old-preview")
    assert status == 409 and body["error"] == "preview_expired"
    assert _partition(stack, sid) == before
    assert seat_item(stack, sid)["quantity"] == 8 and _quantity_updates(stack, sid) == []


def test_a_declined_card_leaves_everything_unchanged(stack):
    team = _team(stack)
    sid = team.subscription_id
    customer = stripe_subscription(stack, sid)["customer"]
    invoices_before = invoices_of(stack, sid)
    stack.emulator_control(f"customers/{customer}/card", {"decline": True, "decline_code": "insufficient_funds"})
    try:
        stack.settle()
        before = _partition(stack, sid)
        status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 12}, "declined")
        assert status == 402, body
        assert body["error"] == "card_declined" and body["decline_code"] == "insufficient_funds"
        assert "insufficient funds" in body["message"]
        stack.settle()
        assert _partition(stack, sid) == before  # nothing stored, no audit entry
        assert seat_item(stack, sid)["quantity"] == 8
        assert invoices_of(stack, sid) == invoices_before
        assert stripe_subscription(stack, sid)["status"] == "active"
        # The page says what to do, in the caller's terms (who can update the payment method).
        cookie, csrf = signed_in(stack, team.quantity.person)
        status, _, html = page(stack, "POST", f"/api/subscriptions/{sid}/quantity", cookie,
                                {"csrf_token": csrf, "quantity": "12", "request_id": "declined-page"})
        assert status == 402 and 'id="quantity-error"' in html
        assert "Ask the subscription&#39;s owner" in html  # the quantity delegate cannot change the card
    finally:
        stack.emulator_control(f"customers/{customer}/card", {"decline": False})
    # With the card fixed, the change goes through (a new key: the declined one stays declined at Stripe).
    status, body, _ = _put_quantity(stack, team.quantity, sid, {"quantity": 12}, "declined-then-fixed")
    assert status == 200 and body["quantity"]["after"] == 12


def test_a_quantity_changed_at_stripe_directly_follows_by_webhook_and_the_owner_is_told(stack):
    team = _team(stack)
    sid = team.subscription_id
    item = seat_item(stack, sid)
    StripeGateway(stack.settings).client().v1.subscription_items.update(item["id"], params={"quantity": 14})
    stack.settle()
    assert subscription_store.load(stack.storage(), sid).quantity == 14
    assert _audit(stack, sid)[0] == ("subscription.updated", "Stripe")
    mail = wait_for(lambda: [m for m in stack.outbox() if m["to"] == team.owner.person.email
                             and "now has 14 licenses" in m["subject"]], timeout=30, message="quantity mail")
    assert "from 8 to 14" in mail[0]["text"]


# --- invoices and the billing portal ---------------------------------------------------------------------------


def test_invoices_list_with_links_and_pages(stack):
    team = _team(stack, quantity=3)
    sid = team.subscription_id
    for n, key in ((4, "one"), (5, "two")):
        assert _put_quantity(stack, team.owner, sid, {"quantity": n}, key)[0] == 200
    status, body, _ = call(stack.url, "GET", f"{_base(sid)}/invoices", team.billing.token)
    assert status == 200, body
    assert [i["total"] for i in body["invoices"]][-1] == volume_total(3)  # the first invoice, oldest last
    assert len(body["invoices"]) == 3 and body["has_more"] is False
    first = body["invoices"][0]
    assert first["number"] and first["status"] == "paid" and first["currency"] == "eur" and first["created"]
    with urllib.request.urlopen(first["invoice_pdf"], timeout=10) as pdf:
        assert pdf.read(5) == b"%PDF-"
    with urllib.request.urlopen(first["hosted_invoice_url"], timeout=10) as page:
        assert first["number"] in page.read().decode()
    status, one, _ = call(stack.url, "GET", f"{_base(sid)}/invoices?limit=2", team.billing.token)
    assert one["has_more"] is True and len(one["invoices"]) == 2
    status, rest, _ = call(stack.url, "GET", f"{_base(sid)}/invoices?limit=2&starting_after="
                           f"{one['next_starting_after']}", team.billing.token)
    assert [i["id"] for i in one["invoices"] + rest["invoices"]] == [i["id"] for i in body["invoices"]]
    assert rest["has_more"] is False and rest["next_starting_after"] is None
    status, bad, _ = call(stack.url, "GET", f"{_base(sid)}/invoices?starting_after=../x", team.billing.token)
    assert status == 400 and bad["error"] == "invalid_cursor"
    # Without billing.manage: refused.
    for who in (team.quantity, team.assign):
        status, refused, _ = call(stack.url, "GET", f"{_base(sid)}/invoices", who.token)
        assert status == 403 and refused["permission"] == "billing.manage"


def test_billing_portal_session_limited_to_billing_details_and_returning_to_the_subscription(stack):
    team = _team(stack)
    sid = team.subscription_id
    status, body, _ = call(stack.url, "POST", f"{_base(sid)}/billing-portal", team.billing.token)
    assert status == 200, body
    with urllib.request.urlopen(body["url"], timeout=10) as portal:
        html = portal.read().decode()
    assert f"{stack.url}/api/subscriptions/{sid}" in html  # the way back
    again = call(stack.url, "POST", f"{_base(sid)}/billing-portal", team.owner.token)[1]["url"]
    assert again != body["url"]
    client = StripeGateway(stack.settings).client()
    configurations = [c.to_dict() for c in client.v1.billing_portal.configurations.list(params={"limit": 100}).data]
    ours = [c for c in configurations if (c.get("metadata") or {}).get(PORTAL_METADATA_KEY)]
    assert len(ours) == 1, "created once, reused"
    features = ours[0]["features"]
    assert features["payment_method_update"]["enabled"] and features["invoice_history"]["enabled"]
    assert features["customer_update"]["enabled"] and set(features["customer_update"]["allowed_updates"]) == {
        "address", "tax_id"}
    assert not features["subscription_update"]["enabled"] and not features["subscription_cancel"]["enabled"]
    sessions = [urllib.parse.urlsplit(u).path.rsplit("/", 1)[-1] for u in (body["url"], again)]
    assert all(s.startswith("bps_") for s in sessions)
    assert [e for e in _audit(stack, sid) if e[0] == "billing_portal.opened"] == [
        ("billing_portal.opened", team.owner.person.email), ("billing_portal.opened", team.billing.person.email)]
    status, refused, _ = call(stack.url, "POST", f"{_base(sid)}/billing-portal", team.quantity.token)
    assert status == 403 and refused["permission"] == "billing.manage"


# --- cancellation -----------------------------------------------------------------------------------------------


def test_cancel_at_period_end_with_the_date_mailed_then_undo(stack):
    team = _team(stack)
    sid = team.subscription_id
    period_end = seat_item(stack, sid)["current_period_end"]
    for who in (team.quantity, team.billing):
        status, refused, _ = call(stack.url, "POST", f"{_base(sid)}/cancellation", who.token)
        assert status == 403 and refused["permission"] == "owner"
    status, body, _ = call(stack.url, "POST", f"{_base(sid)}/cancellation", team.owner.token)
    assert status == 200, body
    assert body["cancel_at_period_end"] is True and body["changed"] is True
    ends_on = body["ends_at"][:10]
    assert int(subscription_store.load(stack.storage(), sid).current_period_end.timestamp()) == period_end
    assert stripe_subscription(stack, sid)["cancel_at_period_end"] is True
    mail = wait_for(lambda: [m for m in stack.outbox() if m["to"] == team.owner.person.email
                             and ends_on in m["subject"]], timeout=30, message="cancellation mail")
    assert f"Your licenses stop working on {ends_on}" in mail[0]["text"]
    stack.settle()
    assert len([m for m in stack.outbox() if m["to"] == team.owner.person.email and ends_on in m["subject"]]) == 1
    status, body, _ = call(stack.url, "POST", f"{_base(sid)}/cancellation", team.owner.token)  # again
    assert status == 200 and body["changed"] is False

    status, body, _ = call(stack.url, "DELETE", f"{_base(sid)}/cancellation", team.owner.token)
    assert status == 200 and body["cancel_at_period_end"] is False and body["ends_at"] is None
    assert stripe_subscription(stack, sid)["cancel_at_period_end"] is False
    assert subscription_store.load(stack.storage(), sid).cancel_at_period_end is False
    wait_for(lambda: [m for m in stack.outbox() if m["to"] == team.owner.person.email
                      and "continues" in m["subject"]], timeout=30, message="undo mail")
    status, body, _ = call(stack.url, "DELETE", f"{_base(sid)}/cancellation", team.owner.token)
    assert status == 409 and body["error"] == "not_scheduled"
    stack.settle()
    assert [a for a, _ in _audit(stack, sid) if a.startswith("cancellation.")] == [
        "cancellation.undone", "cancellation.scheduled"]


# --- buying more where the need arises --------------------------------------------------------------------------


def test_no_licenses_free_offers_adding_the_missing_ones_or_says_who_can(stack):
    team = _team(stack, quantity=2)
    sid = team.subscription_id
    path = f"/api/subscriptions/{sid}/licenses"
    addresses = "\n".join(f"n{i}-{uuid.uuid4().hex[:6]}@contoso.example" for i in range(5))
    cookie, csrf = signed_in(stack, team.owner.person)
    status, _, html = page(stack, "POST", path, cookie, {"csrf_token": csrf, "emails": addresses})
    assert status == 409
    assert f'href="/api/subscriptions/{sid}/quantity?add=3"' in html and "Add 3 licenses" in html
    cookie, csrf = signed_in(stack, team.assign.person)
    status, _, html = page(stack, "POST", path, cookie, {"csrf_token": csrf, "emails": addresses})
    assert status == 409 and "/quantity" not in html
    assert "ask the subscription&#39;s owner" in html and team.owner.person.email in html
    # The link leads straight to the preview of the missing number.
    cookie, _ = signed_in(stack, team.owner.person)
    status, _, html = page(stack, "GET", f"/api/subscriptions/{sid}/quantity?add=3", cookie)
    assert status == 200 and "From 2 to 5 licenses" in html and 'id="confirm-form"' in html


def test_the_purchase_page_offers_adding_licenses_and_buys_separately_only_when_chosen(stack):
    team = _team(stack)
    sid = team.subscription_id
    for who in (team.owner, team.quantity):
        cookie, csrf = signed_in(stack, who.person)
        status, _, html = page(stack, "GET", "/api/purchase?quantity=5", cookie)
        assert status == 200
        assert f'href="/api/subscriptions/{sid}/quantity?add=5"' in html and 'id="checkout"' not in html
        status, _, html = page(stack, "POST", "/api/purchase", cookie,
                                {"csrf_token": csrf, "kind": "organisation", "quantity": "5", "attempt": "a1"})
        assert status == 409 and 'id="existing-subscriptions"' in html  # no silent second subscription
    cookie, csrf = signed_in(stack, team.owner.person)
    status, _, html = page(stack, "GET", "/api/purchase?separate=1&quantity=5", cookie)
    assert 'id="checkout"' in html and 'name="separate" value="1"' in html
    status, headers, _ = page(stack, "POST", "/api/purchase", cookie, {
        "csrf_token": csrf, "kind": "organisation", "quantity": "5", "attempt": "a2", "separate": "1",
        "company": "Contoso GmbH", "line1": "Hauptstraße 1", "postal_code": "80331", "city": "München",
        "country": "DE"})
    assert status == 303 and "/checkout/" in headers["Location"]
    # Someone who may not change the quantity buys as before.
    cookie, _ = signed_in(stack, team.billing.person)
    status, _, html = page(stack, "GET", "/api/purchase?quantity=5", cookie)
    assert 'id="checkout"' in html and 'id="existing-subscriptions"' not in html


def test_openapi_describes_the_billing_routes_with_examples(stack):
    status, doc, _ = call(stack.url, "GET", "/api/openapi.json")
    paths = doc["paths"]
    expected = {
        "/v1/subscriptions/{subscription_id}/quantity/preview": {"post"},
        "/v1/subscriptions/{subscription_id}/quantity": {"put"},
        "/v1/subscriptions/{subscription_id}/invoices": {"get"},
        "/v1/subscriptions/{subscription_id}/billing-portal": {"post"},
        "/v1/subscriptions/{subscription_id}/cancellation": {"post", "delete"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        for operation in paths[path].values():
            assert operation["responses"]["200"]["content"]["application/json"]["example"]
    put = paths["/v1/subscriptions/{subscription_id}/quantity"]["put"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in put["parameters"])
    assert put["requestBody"]["content"]["application/json"]["example"]["proration_date"]


# --- pages -------------------------------------------------------------------------------------------------


