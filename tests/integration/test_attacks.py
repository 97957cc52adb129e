"""The attack suite (issue 18): what was found by attacking the running stack, kept closed.

Every test goes through real HTTP against the running app: bearer tokens and dashboard sessions of
the local identity provider's users, signed webhooks. Each answer is either what the request asked
for, or a refusal (4xx) that names the field at fault and wrote nothing; never a 500, never a
half-applied change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
import uuid

import pytest
import requests

from adapters.table_storage import OUTBOUND_EMAIL_QUEUE
from services import subscription_store
from tests.builders import purchased_subscription
from tests.conftest import WEBHOOK_SECRET, wait_for
from tests.integration.test_gate import page, session_cookie
from tests.licenses_support import call, idp_person, token_for

OWNER = "admin@contoso.example"
DOMAIN = "contoso.example"

# Generated address corpora: real-world shapes that must work end to end ...
GUEST = "guest_fabrikam.example#EXT#@contoso.onmicrosoft.com"
ACCEPTED = [
    "o'brien@contoso.example",
    "a/b@contoso.example",
    "a#b@contoso.example",
    "a?b@contoso.example",
    "first.last+tag@contoso.example",
    "a!b@contoso.example",
    GUEST,
    ("l" * 64) + "@" + ".".join(["d" * 63, "e" * 63, "f" * 53, "example"]),  # 254 characters
]
# ... and shapes refused up front, with the reason in the answer.
REFUSED = {
    "müller@contoso.example": "non_ascii",
    "a@bücher.example": "non_ascii",
    ("l" * 65) + "@contoso.example": "too_long",
    ("l" * 64) + "@" + ".".join(["d" * 63, "e" * 63, "f" * 54, "example"]): "too_long",  # 255 characters
    '"quoted"@contoso.example': "malformed",
    "a@[192.0.2.1]": "malformed",
    "a..b@contoso.example": "malformed",
    "a\\b@contoso.example": "malformed",
}


@pytest.fixture(scope="module")
def owner(stack):
    return idp_person(stack, OWNER)


@pytest.fixture(scope="module")
def token(stack):
    return token_for(stack, OWNER)


def _seats(stack, token, sid: str) -> list[str]:
    status, listing, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sid}/licenses?limit=1000", token)
    assert status == 200, listing
    assert len(listing["seats"]) == listing["assigned_count"]
    return sorted(s["email"] for s in listing["seats"])


def _quoted(address: str) -> str:
    return urllib.parse.quote(address, safe="@")


def _mails_to(stack, to: str) -> int:
    """Mails sent to `to`, once the app's mail queue is drained."""
    storage = stack.storage()
    wait_for(lambda: storage.queue_depth(OUTBOUND_EMAIL_QUEUE) == 0, timeout=30, message="mail queue drained")
    time.sleep(0.5)  # the last one being written to the outbox
    return sum(1 for m in stack.outbox() if m["to"] == to)


# --- 2: one address grammar, decided before anything is written --------------------------------------


def test_real_world_addresses_are_assigned_listed_revoked_and_reassigned_end_to_end(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=len(ACCEPTED) + 1)
    base = f"/api/v1/subscriptions/{sub.id}/licenses"
    status, answer, _ = call(stack.url, "POST", base, token, {"emails": ACCEPTED})
    assert status == 200, answer
    assert sorted(answer["assigned"]) == sorted(a.lower() for a in ACCEPTED)
    assert _seats(stack, token, sub.id) == sorted(a.lower() for a in ACCEPTED)
    # Search, revoke and reassign by these addresses (route parameters percent-encoded).
    status, found, _ = call(stack.url, "GET", f"{base}?q={urllib.parse.quote(GUEST.lower())}", token)
    assert status == 200 and [s["email"] for s in found["seats"]] == [GUEST.lower()]
    status, answer, _ = call(stack.url, "POST", f"{base}/{_quoted(GUEST.lower())}/reassign", token,
                             {"to": "d'arcy@contoso.example"})
    assert status == 200, answer
    status, answer, _ = call(stack.url, "DELETE", f"{base}/{_quoted('a/b@contoso.example')}", token)
    assert status == 200, answer
    seats = _seats(stack, token, sub.id)
    assert "d'arcy@contoso.example" in seats and GUEST.lower() not in seats and "a/b@contoso.example" not in seats


@pytest.mark.parametrize("address, reason", list(REFUSED.items()))
def test_refused_addresses_are_refused_up_front_with_the_reason(stack, owner, token, address, reason):
    sub = purchased_subscription(stack, owner, quantity=2)
    base = f"/api/v1/subscriptions/{sub.id}/licenses"
    status, answer, _ = call(stack.url, "POST", base, token, {"emails": [address, "fine@contoso.example"]})
    assert status == 400 and answer["error"] == "invalid_addresses"
    assert answer["invalid"] == [address]
    assert answer["problems"] == [{"address": address, "reason": reason}]
    if reason == "non_ascii":
        assert "ASCII" in answer["message"]
    status, answer, _ = call(stack.url, "POST", base, token, {"emails": ["fine@contoso.example"]})
    assert status == 200
    status, answer, _ = call(stack.url, "POST", f"{base}/fine@contoso.example/reassign", token, {"to": address})
    assert status == 400 and answer["error"] == "invalid_addresses", answer
    assert _seats(stack, token, sub.id) == ["fine@contoso.example"]


def test_the_assign_form_takes_an_apostrophe_and_explains_an_internationalised_address(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=3)
    cookie, csrf = session_cookie(stack, owner)
    path = f"/api/subscriptions/{sub.id}/licenses"
    status, headers, text = page(stack.url, "POST", path, cookie,
                                 {"csrf_token": csrf, "emails": "o'brien@contoso.example"})
    assert status == 303, text[:500]
    status, _, text = page(stack.url, "POST", path, cookie, {"csrf_token": csrf, "emails": "müller@contoso.example"})
    assert status == 400 and "ASCII" in text
    status, headers, _ = page(stack.url, "POST", f"{path}/reassign", cookie,
                              {"csrf_token": csrf, "email": "o'brien@contoso.example", "to": "d'arcy@contoso.example"})
    assert status == 303
    assert _seats(stack, token, sub.id) == ["d'arcy@contoso.example"]


# --- 3: every input checked at the edge ------------------------------------------------------------


@pytest.mark.parametrize("query, field", [
    ("q=" + "a" * 8000, "q"),
    ("q=" + "a" * 255, "q"),
    ("q=%00", "q"),
    ("continuation=" + "x" * 3000, "continuation"),
    ("continuation=%FF%FE", "continuation"),
    ("continuation=not-base64!", "continuation"),
    ("limit=0", "limit"),
    ("limit=abc", "limit"),
    ("limit=" + "9" * 400, "limit"),
    ("status=nonsense", "status"),
])
def test_bad_query_parameters_answer_400_naming_the_field(stack, owner, token, query, field):
    sub = purchased_subscription(stack, owner, quantity=1)
    status, answer, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/licenses?{query}", token)
    assert status == 400, answer
    assert answer["field"] == field


def test_a_long_search_on_the_page_answers_400_not_500(stack, owner):
    sub = purchased_subscription(stack, owner, quantity=1)
    cookie, _ = session_cookie(stack, owner)
    status, _, text = page(stack.url, "GET", f"/api/subscriptions/{sub.id}/licenses?q={'a' * 8000}", cookie)
    assert status == 400 and "254" in text


@pytest.mark.parametrize("bad", ["x" * 300 + "@contoso.example", "a%00b@contoso.example", "%C3%BC@contoso.example"])
def test_bad_addresses_in_the_path_answer_400_naming_the_field(stack, owner, token, bad):
    sub = purchased_subscription(stack, owner, quantity=1)
    base = f"/api/v1/subscriptions/{sub.id}"
    for method, path, body in [("DELETE", f"{base}/licenses/{bad}", None),
                               ("POST", f"{base}/licenses/{bad}/reassign", {"to": "ok@contoso.example"}),
                               ("PATCH", f"{base}/delegates/{bad}", {"permissions": ["subscription.view"]}),
                               ("DELETE", f"{base}/delegates/{bad}", None),
                               ("POST", f"{base}/delegates/{bad}/resend", None)]:
        status, answer, _ = call(stack.url, method, path, token, body)
        assert status == 400, (method, path[:80], answer)
        assert answer["field"] == "email"


@pytest.mark.parametrize("token_value", ["x" * 5000, "ab\u00fc", "a/b"])
def test_a_bad_invitation_token_is_refused_without_a_lookup(stack, token_value):
    status, answer, _ = call(stack.url, "POST", "/api/v1/invitations/accept", token_for(stack, "bob@contoso.example"),
                             {"token": token_value})
    assert status == 410 and answer["error"] == "invitation_invalid"
    response = requests.get(f"{stack.url}/api/invitations/{urllib.parse.quote(token_value)}", timeout=10)
    assert response.status_code in (404, 410)


@pytest.mark.parametrize("csrf", ["t\u00f6ken", "\u202e" * 50, "x" * 5000, "\U0001f600"])
def test_an_odd_csrf_token_is_refused_with_403_not_500(stack, owner, csrf):
    sub = purchased_subscription(stack, owner, quantity=1)
    cookie, _ = session_cookie(stack, owner)
    status, _, _ = page(stack.url, "POST", f"/api/subscriptions/{sub.id}/licenses", cookie,
                        {"csrf_token": csrf, "emails": "ann@contoso.example"})
    assert status == 403
    assert subscription_store.load(stack.storage(), sub.id).assigned_count == 0


# --- every key-building path: hostile values in every route parameter never reach storage raw ----------

HOSTILE = ["a/b", "a#b", "a?b", "a\\b", "a\x00b", "a\x7fb", "\u00fc\u00f1\u00ee", "%", "..", "x" * 2000,
           "guest_f.example#EXT#@contoso.onmicrosoft.com", "a@b/c#d?e", " "]


def _routes_with_parameters() -> list[tuple[str, str]]:
    from tests.integration.test_storage_outage import _routes

    return [(method, route) for method, route in _routes() if "{" in route]


def test_hostile_route_parameters_are_refused_or_not_found_never_a_server_error(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=3)
    cookie, csrf = session_cookie(stack, owner)
    routes = _routes_with_parameters()
    assert len(routes) > 15
    failures = []
    for method, route in routes:
        names = [part[1:-1].split(":")[0] for part in route.split("/") if part.startswith("{")]
        for name in names:
            for value in HOSTILE:
                path = "/api/" + route
                for other in names:
                    filled = value if other == name else (sub.id if other == "subscription_id" else "ann@" + DOMAIN)
                    path = path.replace("{" + other + "}", urllib.parse.quote(filled, safe=""))
                if path.startswith("/api/v1/"):
                    status, _, _ = call(stack.url, method, path, token, {} if method in ("POST", "PUT", "PATCH")
                                        else None)
                else:
                    status, _, _ = page(stack.url, method, path, cookie,
                                        {"csrf_token": csrf} if method == "POST" else None)
                if status >= 500:
                    failures.append(f"{method} {route} with {name}={value[:30]!r}: {status}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("action", ["licenses/revoke", "licenses/reassign", "delegates/remove", "delegates/resend",
                                    "delegates/permissions"])
def test_hostile_addresses_in_page_forms_are_refused_with_a_message(stack, owner, action):
    sub = purchased_subscription(stack, owner, quantity=1)
    cookie, csrf = session_cookie(stack, owner)
    for value in ("x" * 5000 + "@contoso.example", "a\x00b@contoso.example", "\u00fc@contoso.example"):
        status, headers, _ = page(stack.url, "POST", f"/api/subscriptions/{sub.id}/{action}", cookie,
                                  {"csrf_token": csrf, "email": value, "to": "ok@contoso.example",
                                   "perm_subscription.view": "on"})
        assert status == 303, (action, status)
        status, _, text = page(stack.url, "GET", headers["Location"], cookie)
        assert status == 200 and 'class="flash error"' in text


# --- 9: what schemathesis found on the billing routes ---------------------------------------------------


def test_billing_inputs_schemathesis_found(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=3)
    base = f"/api/v1/subscriptions/{sub.id}"
    # A subscription id that cannot be a storage key is not a candidate: 409, never a storage error.
    status, answer, _ = call(stack.url, "POST", f"{base}/merges", token, {"subscriptions": ["1/0", "a#b"]},
                             headers={"Idempotency-Key": f"merge-{uuid.uuid4().hex[:8]}"})
    assert status == 409 and answer["error"] == "not_a_candidate", answer
    # JSON Schema's integer: 4.0 is one.
    status, answer, _ = call(stack.url, "POST", f"{base}/quantity/preview", token, {"quantity": 4.0})
    assert status == 200, answer
    # A well-formed invoice id Stripe does not know: documented, not a surprise status.
    status, answer, _ = call(stack.url, "GET", f"{base}/invoices?starting_after=in_1Q2w3E4r5T6y", token)
    document = requests.get(f"{stack.url}/api/openapi.json", timeout=10).json()
    assert str(status) in document["paths"]["/v1/subscriptions/{subscription_id}/invoices"]["get"]["responses"]


# --- 10: webhook signatures dated ahead ---------------------------------------------------------------


def _signed(body: bytes, at: int) -> dict[str, str]:
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={signature}", "Content-Type": "application/json"}


@pytest.mark.parametrize("ahead", [301, 3600, 365 * 24 * 3600])
def test_a_webhook_signed_in_the_future_is_refused(stack, ahead):
    event_id = f"evt_future_{uuid.uuid4().hex[:10]}"
    body = json.dumps({"id": event_id, "object": "event", "type": "ping", "data": {"object": {}}}).encode()
    response = requests.post(f"{stack.url}/api/stripe/webhook", data=body,
                             headers=_signed(body, int(time.time()) + ahead), timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "invalid_webhook"


# --- 5: mail relay by churn -------------------------------------------------------------------------------


def test_assigning_and_revoking_an_outside_address_five_times_mails_it_once(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=2)
    outsider = f"churn-{uuid.uuid4().hex[:8]}@elsewhere.example"
    base = f"/api/v1/subscriptions/{sub.id}/licenses"
    for _ in range(5):
        assert call(stack.url, "POST", base, token, {"emails": [outsider]})[0] == 200
        assert call(stack.url, "DELETE", f"{base}/{outsider}", token)[0] == 200
    assert _mails_to(stack, outsider) == 1


def test_many_unfamiliar_domains_need_confirmation(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=10)
    base = f"/api/v1/subscriptions/{sub.id}/licenses"
    spread = [f"someone@org{i}.example" for i in range(4)]
    status, answer, _ = call(stack.url, "POST", base, token, {"emails": spread})
    assert status == 409 and answer["error"] == "confirm_domains"
    assert answer["domains"] == [f"org{i}.example" for i in range(4)]
    assert _seats(stack, token, sub.id) == []
    status, answer, _ = call(stack.url, "POST", base, token, {"emails": spread, "confirm_domains": True})
    assert status == 200 and len(answer["assigned"]) == 4
    cookie, csrf = session_cookie(stack, owner)
    form = {"csrf_token": csrf, "emails": ", ".join(f"b@new{i}.example" for i in range(4))}
    status, _, text = page(stack.url, "POST", f"/api/subscriptions/{sub.id}/licenses", cookie, form)
    assert status == 409 and 'name="confirm_domains"' in text
    status, _, _ = page(stack.url, "POST", f"/api/subscriptions/{sub.id}/licenses", cookie,
                        {**form, "confirm_domains": "true"})
    assert status == 303 and len(_seats(stack, token, sub.id)) == 8
