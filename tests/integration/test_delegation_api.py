"""Delegated administration through real HTTP against the running app (PRODUCT.md capability 4):
the JSON API with identity-provider bearer tokens, the invitation page and its accept button, the
owner's forms on the subscription page. Every test buys its own subscription.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from adapters import keys
from adapters.stripe_gateway import StripeGateway
from adapters.table_storage import INVITATIONS, SUBSCRIPTIONS, USER_SUBSCRIPTIONS
from handlers import invitation_timers
from services import bootstrap, subscription_store
from services.delegate import token_hash
from services.web_session import Person
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.license_fixtures import CONTOSO_ID, FABRIKAM_ID, new_user
from tests.license_fixtures import token_for as token_of
from tests.licenses_support import call, idp_person, token_for
from tests.pages_support import page, signed_in

OWNER = "admin@contoso.example"
IMPOSTOR = "alice.impostor@fabrikam.example"  # fabrikam, with alice's address as its `email` claim
LINK = re.compile(r"https?://[^\s\"<>]+/api/invitations/[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def owner(stack) -> Person:
    return idp_person(stack, OWNER)


@pytest.fixture(scope="module")
def owner_token(stack) -> str:
    return token_for(stack, OWNER)


@pytest.fixture
def subscription(stack, owner):
    return purchased_subscription(stack, owner, quantity=3)


def _user(stack, tenant: str = CONTOSO_ID) -> dict:
    return new_user(stack.identity_provider, tenant)


def _person(user: dict) -> Person:
    names = tuple(sorted({n.lower() for n in (user["preferred_username"], user.get("email")) if n}))
    return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"],
                  email=user.get("email") or user["preferred_username"], sign_in_names=names)


def _delegates(sub_id: str) -> str:
    return f"/api/v1/subscriptions/{sub_id}/delegates"


def _token(link: str) -> str:
    return link.rsplit("/", 1)[-1]


def _snapshot(stack, sub_id: str) -> tuple:
    """Every row that delegation may write for the subscription, with its ETag."""
    storage = stack.storage()
    partition = sorted((r["RowKey"], r.etag) for r in storage.query(SUBSCRIPTIONS, partition_key=sub_id))
    lookups = sorted((r["PartitionKey"], r.etag) for r in storage.query(INVITATIONS, where="SubscriptionId eq @s",
                                                                         parameters={"s": sub_id}))
    people = sorted((r["PartitionKey"], r.etag) for r in storage.query(USER_SUBSCRIPTIONS, where="RowKey eq @s",
                                                                       parameters={"s": sub_id}))
    return partition, lookups, people


def _invite(stack, owner_token: str, sub_id: str, email: str, permissions: list[str]) -> dict:
    status, body, _ = call(stack.url, "POST", _delegates(sub_id), owner_token,
                           {"email": email, "permissions": permissions})
    assert status == 201, body
    return body


def _accept(stack, token: str | None, invitation_token: str | None) -> tuple[int, dict]:
    status, body, _ = call(stack.url, "POST", "/api/v1/invitations/accept", token, {"token": invitation_token})
    return status, body


# --- the whole way: invite, mail, accept, work as a delegate, lose access ----------------------------------


def test_invite_accept_work_as_delegate_then_removed(stack, owner_token, subscription):
    sub = subscription
    it = _user(stack)
    address = it["preferred_username"]
    it_token = token_of(stack, it)

    invited = _invite(stack, owner_token, sub.id, f"  {address.upper()} ", ["licenses.assign", "subscription.view"])
    assert invited["email"] == address and invited["kind"] == "delegate" and invited["state"] == "pending"
    assert invited["permissions"] == ["licenses.assign", "subscription.view"]
    link = invited["link"]
    assert link.startswith(f"{stack.settings.public_base_url}/api/invitations/")

    # The same link is in the invitation mail, which names the permissions and says how to accept.
    mail = wait_for(lambda: next((m for m in stack.outbox() if m["to"] == address), None), timeout=30,
                    message="invitation mail")
    assert LINK.findall(mail["text"]) == [link]
    assert "Microsoft 365" in mail["text"] and "Assign/revoke licenses" in mail["text"]

    # Not yet a delegate: nothing to see.
    status, mine, _ = call(stack.url, "GET", "/api/v1/subscriptions", it_token)
    assert status == 200 and sub.id not in {s["id"] for s in mine["subscriptions"]}
    status, _, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}", it_token)
    assert status == 404

    # The link's page changes nothing (mail scanners open links) and keeps the token to itself.
    before = _snapshot(stack, sub.id)
    status, headers, html = page(stack, "GET", f"/api/invitations/{_token(link)}")
    assert status == 200
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert address in html and "Sign in with Microsoft 365 to accept" in html
    assert _snapshot(stack, sub.id) == before

    status, accepted = _accept(stack, it_token, _token(link))
    assert status == 200, accepted
    assert accepted["accepted"] == "delegate"
    assert (accepted["subscription"]["role"], accepted["subscription"]["permissions"]) == (
        "delegate", ["licenses.assign", "subscription.view"])

    status, mine, _ = call(stack.url, "GET", "/api/v1/subscriptions", it_token)
    listed = {s["id"]: s for s in mine["subscriptions"]}
    assert listed[sub.id] == {"id": sub.id, "kind": "organisation", "status": sub.status, "state": "ACTIVE",
                              "quantity": 3, "assigned": 0, "role": "delegate",
                              "permissions": ["licenses.assign", "subscription.view"]}
    status, one, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}", it_token)
    assert status == 200 and set(one["links"]) == {"licenses", "audit"}

    # The delegate works: assigns and lists licenses; delegate management stays the owner's.
    colleague = f"colleague.{it['oid'][:8]}@contoso.example"
    status, assigned, _ = call(stack.url, "POST", f"/api/v1/subscriptions/{sub.id}/licenses", it_token,
                               {"emails": [colleague]})
    assert status == 200 and assigned["assigned"] == [colleague]
    status, listing, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/licenses", it_token)
    assert status == 200 and [s["email"] for s in listing["seats"]] == [colleague]
    status, refused, _ = call(stack.url, "GET", _delegates(sub.id), it_token)
    assert status == 403 and (refused["error"], refused["permission"]) == ("forbidden", "owner")

    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert [(d["email"], d["state"], d["permissions"]) for d in roster["delegates"]] == [
        (address, "active", ["licenses.assign", "subscription.view"])]

    # A used link stays used.
    status, reused = _accept(stack, it_token, _token(link))
    assert status == 410 and reused["error"] == "invitation_invalid"

    # Narrowed permissions apply on the next request.
    status, changed, _ = call(stack.url, "PATCH", f"{_delegates(sub.id)}/{address}", owner_token,
                              {"permissions": ["subscription.view"]})
    assert status == 200 and changed["permissions"] == ["subscription.view"]
    status, refused, _ = call(stack.url, "POST", f"/api/v1/subscriptions/{sub.id}/licenses", it_token,
                              {"emails": ["another@contoso.example"]})
    assert status == 403 and refused["permission"] == "licenses.assign"

    status, removed, _ = call(stack.url, "DELETE", f"{_delegates(sub.id)}/{address.upper()}", owner_token)
    assert status == 200 and removed == {"removed": address}
    status, gone, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/licenses", it_token)
    assert status == 404 and gone["error"] == "subscription_not_found"
    status, mine, _ = call(stack.url, "GET", "/api/v1/subscriptions", it_token)
    assert sub.id not in {s["id"] for s in mine["subscriptions"]}
    status, again, _ = call(stack.url, "DELETE", f"{_delegates(sub.id)}/{address}", owner_token)
    assert status == 404 and again["error"] == "not_a_delegate"

    status, log, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/audit", owner_token)
    actions = [e["action"] for e in log["entries"]]
    for action in ("delegate.invited", "delegate.accepted", "delegate.permissions_changed", "delegate.removed"):
        assert action in actions


# --- tokens: resend, tampering, other accounts ------------------------------------------------------------------


def test_resend_invalidates_the_old_link_and_tampered_tokens_are_refused(stack, owner_token, subscription):
    sub = subscription
    it = _user(stack)
    address = it["preferred_username"]
    it_token = token_of(stack, it)
    first = _invite(stack, owner_token, sub.id, address, ["licenses.assign"])["link"]

    status, resent, _ = call(stack.url, "POST", f"{_delegates(sub.id)}/{address}/resend", owner_token)
    assert status == 200 and resent["link"] != first and resent["state"] == "pending"
    second = resent["link"]
    wait_for(lambda: len([m for m in stack.outbox() if m["to"] == address]) >= 2, timeout=30, message="resent mail")

    before = _snapshot(stack, sub.id)
    old = _token(first)
    tampered = old[:-1] + ("A" if old[-1] != "A" else "B")
    for bad in (old, tampered, "short", "x" * 200, "not~a~token-" * 3):
        status, body = _accept(stack, it_token, bad)
        assert status == 410 and body["error"] == "invitation_invalid", (bad, body)
        status, headers, html = page(stack, "GET", f"/api/invitations/{urllib.parse.quote(bad)}")
        assert status == 410 and headers["Referrer-Policy"] == "no-referrer"
        assert "Ask the subscription owner to send the invitation again" in html
    status, body = _accept(stack, it_token, None)
    assert status == 400 and body["field"] == "token"
    status, body, _ = call(stack.url, "POST", "/api/v1/invitations/accept", it_token, b"{not json")
    assert status == 400 and body["error"] == "invalid_json"
    status, body, _ = call(stack.url, "POST", "/api/v1/invitations/accept", None, {"token": _token(second)})
    assert status == 401
    assert _snapshot(stack, sub.id) == before

    status, accepted = _accept(stack, it_token, _token(second))
    assert status == 200 and accepted["subscription"]["permissions"] == ["licenses.assign"]
    status, body, _ = call(stack.url, "POST", f"{_delegates(sub.id)}/{address}/resend", owner_token)
    assert status == 404 and body["error"] == "not_a_delegate"  # nothing pending any more


def test_an_expired_link_explains_itself_and_the_timer_deletes_it(stack, owner_token, subscription, monkeypatch):
    sub = subscription
    it = _user(stack)
    address = it["preferred_username"]
    link = _invite(stack, owner_token, sub.id, address, ["licenses.assign"])["link"]
    storage = stack.storage()
    past = datetime.now(UTC) - timedelta(minutes=1)
    storage.merge(SUBSCRIPTIONS, {"PartitionKey": sub.id, "RowKey": keys.invitation_row("delegate", address),
                                  "ExpiresAt": past})
    storage.merge(INVITATIONS, {"PartitionKey": token_hash(_token(link)), "RowKey": keys.INVITATION_LOOKUP_ROW,
                                "ExpiresAt": past})

    status, headers, html = page(stack, "GET", f"/api/invitations/{_token(link)}")
    assert status == 410 and "This invitation has expired" in html and "send the invitation again" in html
    status, body = _accept(stack, token_of(stack, it), _token(link))
    assert status == 410 and body["error"] == "invitation_expired"
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert [(d["email"], d["state"]) for d in roster["delegates"]] == [(address, "expired")]

    # The daily timer, as the host runs it (in this process, with the app's settings).
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    try:
        invitation_timers.purge_expired_invitations(None)
    finally:
        bootstrap.reset()
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert roster["delegates"] == []
    assert storage.get(INVITATIONS, token_hash(_token(link)), keys.INVITATION_LOOKUP_ROW) is None
    status, log, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/audit", owner_token)
    assert log["entries"][0]["action"] == "invitation.expired"


def test_parallel_accepts_of_one_link_exactly_one_wins(stack, owner_token, subscription):
    it = _user(stack)
    link = _invite(stack, owner_token, subscription.id, it["preferred_username"], ["licenses.assign"])["link"]
    it_token = token_of(stack, it)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: _accept(stack, it_token, _token(link)), range(4)))
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [200, 410, 410, 410], outcomes
    status, roster, _ = call(stack.url, "GET", _delegates(subscription.id), owner_token)
    assert [(d["email"], d["state"]) for d in roster["delegates"]] == [(it["preferred_username"], "active")]


def test_another_account_or_tenant_cannot_accept(stack, owner_token, subscription):
    sub = subscription
    link = _invite(stack, owner_token, sub.id, "alice@contoso.example", ["subscription.view"])["link"]
    token = _token(link)
    before = _snapshot(stack, sub.id)

    status, body = _accept(stack, token_for(stack, "bob@contoso.example"), token)
    assert status == 403 and body["error"] == "wrong_account"
    status, body = _accept(stack, token_for(stack, IMPOSTOR), token)  # same address, another tenant
    assert status == 403 and body["error"] == "wrong_tenant"

    # The page: bob sees no accept button, only the way to the invited account; posting anyway explains.
    bob_cookie, bob_csrf = signed_in(stack, idp_person(stack, "bob@contoso.example"))
    status, headers, html = page(stack, "GET", f"/api/invitations/{token}", bob_cookie)
    assert status == 200 and 'id="switch-account"' in html and 'id="accept"' not in html
    assert "login_hint=alice%40contoso.example" in html
    status, headers, html = page(stack, "POST", f"/api/invitations/{token}", bob_cookie, {"csrf_token": bob_csrf})
    assert status == 403 and headers["Referrer-Policy"] == "no-referrer"
    assert "You are signed in with another account" in html and "private" in html
    impostor = idp_person(stack, IMPOSTOR)
    impostor = Person(impostor.tid, impostor.oid, impostor.name, impostor.email,
                      (IMPOSTOR, "alice@contoso.example"))
    cookie, csrf = signed_in(stack, impostor)
    status, _, html = page(stack, "POST", f"/api/invitations/{token}", cookie, {"csrf_token": csrf})
    assert status == 403 and "another organisation" in html
    assert _snapshot(stack, sub.id) == before

    status, body = _accept(stack, token_for(stack, "alice@contoso.example"), token)
    assert status == 200 and body["subscription"]["role"] == "delegate"


def test_a_fabrikam_account_cannot_accept_even_when_invited_by_its_own_address(stack, owner_token, subscription):
    outsider = _user(stack, FABRIKAM_ID)
    link = _invite(stack, owner_token, subscription.id, outsider["preferred_username"], ["licenses.assign"])["link"]
    status, body = _accept(stack, token_of(stack, outsider), _token(link))
    assert status == 403 and body["error"] == "wrong_tenant"


# --- the invitation page and its button ---------------------------------------------------------------------------


def test_accepting_on_the_page_after_sign_in(stack, owner_token, subscription):
    sub = subscription
    it = _user(stack)
    link = _invite(stack, owner_token, sub.id, it["preferred_username"], ["licenses.assign", "subscription.view"])[
        "link"]
    path = f"/api/invitations/{_token(link)}"

    # Without a session the button signs in and comes back here; a POST without one does the same.
    status, _, html = page(stack, "GET", path)
    next_param = urllib.parse.quote(path, safe="")
    assert status == 200 and f"/api/signin?next={next_param}" in html
    status, headers, _ = page(stack, "POST", path)
    assert status == 303 and headers["Location"] == f"/api/signin?next={next_param}"

    cookie, csrf = signed_in(stack, _person(it))
    before = _snapshot(stack, sub.id)
    status, headers, html = page(stack, "GET", path, cookie)
    assert status == 200 and 'id="accept"' in html and "Accept invitation" in html
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    status, _, _ = page(stack, "POST", path, cookie, {"csrf_token": "forged"})
    assert status == 403
    # An opaque origin (a sandboxed frame) is refused even with the token...
    status, _, _ = page(stack, "POST", path, cookie, {"csrf_token": csrf}, {"Origin": "null"})
    assert status == 403
    assert _snapshot(stack, sub.id) == before

    # ...while the page's own form, under its no-referrer policy, arrives as browsers send it: Origin
    # null, Sec-Fetch-Site same-origin.
    status, headers, _ = page(stack, "POST", path, cookie, {"csrf_token": csrf},
                              {"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert status == 303 and headers["Location"] == f"/api/subscriptions/{sub.id}"
    status, _, html = page(stack, "GET", f"/api/subscriptions/{sub.id}", cookie)
    assert status == 200 and "you are now a delegated administrator" in html
    # A delegate sees licenses and the audit log, never the owner's delegate management.
    assert f"/api/subscriptions/{sub.id}/licenses" in html and f"/api/subscriptions/{sub.id}/audit" in html
    assert 'id="delegates"' not in html and "owner-transfer" not in html
    status, _, home = page(stack, "GET", "/api/dashboard", cookie)
    row = re.search(rf'<tr data-subscription="{sub.id}" data-role="delegate">.*?</tr>', home, re.S)
    assert row and "Delegated administrator" in row.group(0) and "#delegates" not in row.group(0)

    status, _, html = page(stack, "GET", path, cookie)  # used: explained, no button
    assert status == 410 and 'id="accept"' not in html


# --- ownership ---------------------------------------------------------------------------------------------------


def test_ownership_transfer_through_the_api(stack, owner, owner_token, subscription):
    sub = subscription
    successor = _user(stack)
    address = successor["preferred_username"]
    path = f"/api/v1/subscriptions/{sub.id}/owner-transfer"

    status, body, _ = call(stack.url, "POST", path, owner_token, {"email": address, "former_owner": "maybe"})
    assert status == 400 and body["field"] == "former_owner"
    status, body, _ = call(stack.url, "POST", path, owner_token,
                           {"email": address, "former_owner": "delegate", "billing_email_follows": "yes"})
    assert status == 400 and body["field"] == "billing_email_follows"
    status, body, _ = call(stack.url, "POST", path, owner_token, {"email": OWNER, "former_owner": "leave"})
    assert status == 409 and body["error"] == "is_owner"

    status, offer, _ = call(stack.url, "POST", path, owner_token,
                            {"email": address, "former_owner": "delegate", "billing_email_follows": True})
    assert status == 201 and offer["kind"] == "owner" and offer["former_owner"] == "delegate"
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert [(d["email"], d["kind"]) for d in roster["delegates"]] == [(address, "owner")]

    status, accepted = _accept(stack, token_of(stack, successor), _token(offer["link"]))
    assert status == 200 and accepted["accepted"] == "owner"
    assert accepted["subscription"]["role"] == "owner" and "owner" in accepted["subscription"]["permissions"]

    stored = subscription_store.load(stack.storage(), sub.id)
    assert (stored.owner_oid, stored.owner_email) == (successor["oid"], address)
    customer = StripeGateway(stack.settings).client().v1.customers.retrieve(stored.stripe_customer_id)
    assert customer.email == address  # the owner chose that billing follows

    # The former owner stays as a delegate with every delegable permission, but no longer manages delegates.
    status, former, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}", owner_token)
    assert status == 200 and former["role"] == "delegate"
    assert former["permissions"] == ["licenses.assign", "subscription.view", "quantity.manage", "billing.manage"]
    status, refused, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert status == 403
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), token_of(stack, successor))
    assert [(d["email"], d["state"]) for d in roster["delegates"]] == [(owner.email, "active")]

    # The new owner hands it back with the old owner leaving: the successor is then gone entirely.
    status, back, _ = call(stack.url, "POST", path, token_of(stack, successor),
                           {"email": OWNER, "former_owner": "leave"})
    assert status == 201
    status, accepted = _accept(stack, owner_token, _token(back["link"]))
    assert status == 200 and accepted["subscription"]["role"] == "owner"
    status, _, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}", token_of(stack, successor))
    assert status == 404
    customer = StripeGateway(stack.settings).client().v1.customers.retrieve(stored.stripe_customer_id)
    assert customer.email == address  # this time billing stayed where it was


def test_withdrawing_an_ownership_offer(stack, owner_token, subscription):
    successor = _user(stack)
    path = f"/api/v1/subscriptions/{subscription.id}/owner-transfer"
    status, offer, _ = call(stack.url, "POST", path, owner_token,
                            {"email": successor["preferred_username"], "former_owner": "leave"})
    assert status == 201
    status, body, _ = call(stack.url, "DELETE", path, owner_token)
    assert status == 200 and body["withdrawn"] == successor["preferred_username"]
    status, body, _ = call(stack.url, "DELETE", path, owner_token)
    assert status == 404 and body["error"] == "no_ownership_offer"
    status, body = _accept(stack, token_of(stack, successor), _token(offer["link"]))
    assert status == 410


# --- validation -------------------------------------------------------------------------------------------------------


def test_invalid_requests_name_the_field_and_write_nothing(stack, owner_token, subscription):
    sub = subscription
    path = _delegates(sub.id)
    before = _snapshot(stack, sub.id)
    cases = [
        ({"email": "not-an-address", "permissions": ["licenses.assign"]}, "invalid_email", "email"),
        ({"email": "a@contoso.example, b@contoso.example", "permissions": ["licenses.assign"]}, "invalid_email",
         "email"),
        ({"permissions": ["licenses.assign"]}, "invalid_email", "email"),
        ({"email": "x@contoso.example", "permissions": ["licenses.assign", "root"]}, "invalid_permissions",
         "permissions"),
        ({"email": "x@contoso.example", "permissions": []}, "invalid_permissions", "permissions"),
        ({"email": "x@contoso.example", "permissions": "licenses.assign"}, "invalid_permissions", "permissions"),
        ({"email": "x@contoso.example", "permissions": ["owner"]}, "invalid_permissions", "permissions"),
    ]
    for body, code, field in cases:
        status, answer, _ = call(stack.url, "POST", path, owner_token, body)
        assert (status, answer["error"], answer.get("field")) == (400, code, field), (body, answer)
    status, answer, _ = call(stack.url, "POST", path, owner_token, b"[1, 2", content_type="application/json")
    assert status == 400 and answer["error"] == "invalid_json"
    status, answer, _ = call(stack.url, "PATCH", f"{path}/nobody@contoso.example", owner_token,
                             {"permissions": ["licenses.assign"]})
    assert status == 404 and answer["error"] == "not_a_delegate"
    status, answer, _ = call(stack.url, "POST", path, owner_token, {"email": OWNER, "permissions": ["licenses.assign"]})
    assert status == 409 and answer["error"] == "is_owner"
    status, answer, _ = call(stack.url, "POST", path, None, {"email": "x@contoso.example",
                                                            "permissions": ["licenses.assign"]})
    assert status == 401
    stranger = token_for(stack, "eve@fabrikam.example")
    status, answer, _ = call(stack.url, "POST", path, stranger, {"email": "x@contoso.example",
                                                                "permissions": ["licenses.assign"]})
    assert status == 404 and answer["error"] == "subscription_not_found"
    assert _snapshot(stack, sub.id) == before

    # An active delegate cannot be invited again (their permissions are changed instead).
    link = _invite(stack, owner_token, sub.id, "bob@contoso.example", ["licenses.assign"])["link"]
    assert _accept(stack, token_for(stack, "bob@contoso.example"), _token(link))[0] == 200
    status, answer, _ = call(stack.url, "POST", path, owner_token,
                             {"email": "bob@contoso.example", "permissions": ["subscription.view"]})
    assert status == 409 and answer["error"] == "already_delegate"


# --- the owner's forms on the subscription page -------------------------------------------------------------


def test_owner_manages_delegates_on_the_subscription_page(stack, owner, owner_token, subscription):
    sub = subscription
    cookie, csrf = signed_in(stack, owner)
    base = f"/api/subscriptions/{sub.id}"

    status, _, html = page(stack, "GET", base, cookie)
    assert status == 200 and 'id="delegates"' in html and "Add delegated administrator" in html
    assert re.search(r'name="perm_billing.manage"(?! checked)', html)  # unchecked by default
    assert "usually not needed for IT staff" in html
    assert re.search(r'id="billing-follows" name="billing_email_follows">', html)  # unchecked by default
    status, _, setup = page(stack, "GET", f"{base}/setup", cookie)
    assert f'{base}#delegates' in setup

    # Errors keep what was entered and write nothing.
    before = _snapshot(stack, sub.id)
    status, _, html = page(stack, "POST", f"{base}/delegates", cookie,
                           {"csrf_token": csrf, "email": "nope", "perm_licenses.assign": "on"})
    assert status == 400 and 'id="invite-error"' in html and 'value="nope"' in html
    status, _, html = page(stack, "POST", f"{base}/delegates", cookie,
                           {"csrf_token": csrf, "email": "x@contoso.example"})
    assert status == 400 and "at least one permission" in html
    status, _, _ = page(stack, "POST", f"{base}/delegates", cookie,
                        {"csrf_token": "forged", "email": "x@contoso.example", "perm_licenses.assign": "on"})
    assert status == 403
    assert _snapshot(stack, sub.id) == before

    it = _user(stack)
    address = it["preferred_username"]
    status, _, html = page(stack, "POST", f"{base}/delegates", cookie,
                           {"csrf_token": csrf, "email": address, "perm_licenses.assign": "on"})
    assert status == 200 and 'id="invitation-link"' in html and "junk" in html
    shown = LINK.findall(html)
    assert len(shown) == 1 and 'src="/api/assets/copy-link.js"' in html
    status, headers, script = page(stack, "GET", "/api/assets/copy-link.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and "clipboard" in script
    # Shown once: the page does not show it again.
    status, _, html = page(stack, "GET", base, cookie)
    assert 'id="invitation-link"' not in html and f'data-email="{address}" data-state="pending"' in html

    status, _, html = page(stack, "POST", f"{base}/delegates/resend", cookie, {"csrf_token": csrf, "email": address})
    assert status == 200 and LINK.findall(html) and LINK.findall(html) != shown
    assert _accept(stack, token_of(stack, it), _token(shown[0]))[0] == 410  # the old link stopped working

    status, headers, _ = page(stack, "POST", f"{base}/delegates/permissions", cookie,
                              {"csrf_token": csrf, "email": address, "perm_subscription.view": "on"})
    assert status == 303
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert roster["delegates"][0]["permissions"] == ["subscription.view"]

    status, _, _ = page(stack, "POST", f"{base}/delegates/remove", cookie, {"csrf_token": csrf, "email": address})
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert status == 200 and roster["delegates"] == []

    status, _, html = page(stack, "POST", f"{base}/owner-transfer", cookie,
                           {"csrf_token": csrf, "email": address, "former_owner": "leave"})
    assert status == 200 and LINK.findall(html) and 'data-kind="owner"' in html
    status, _, _ = page(stack, "POST", f"{base}/owner-transfer/withdraw", cookie, {"csrf_token": csrf})
    status, roster, _ = call(stack.url, "GET", _delegates(sub.id), owner_token)
    assert roster["delegates"] == []

    status, _, home = page(stack, "GET", "/api/dashboard", cookie)
    row = re.search(rf'<tr data-subscription="{sub.id}" data-role="owner">.*?</tr>', home, re.S)
    assert row and f"{base}#delegates" in row.group(0)


def test_openapi_describes_the_delegation_routes(stack):
    status, doc, _ = call(stack.url, "GET", "/api/openapi.json")
    paths = doc["paths"]
    expected = {
        "/v1/subscriptions": {"get"},
        "/v1/subscriptions/{subscription_id}": {"get"},
        "/v1/subscriptions/{subscription_id}/delegates": {"get", "post"},
        "/v1/subscriptions/{subscription_id}/delegates/{email}": {"patch", "delete"},
        "/v1/subscriptions/{subscription_id}/delegates/{email}/resend": {"post"},
        "/v1/subscriptions/{subscription_id}/owner-transfer": {"post", "delete"},
        "/v1/invitations/accept": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    invite = paths["/v1/subscriptions/{subscription_id}/delegates"]["post"]
    assert invite["requestBody"]["content"]["application/json"]["example"]["permissions"]
    assert "link" in invite["responses"]["201"]["content"]["application/json"]["example"]
