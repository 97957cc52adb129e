"""The request id of an assignment becomes part of a Table Storage RowKey: every branch that accepts
one (JSON body, CSV/text body with Idempotency-Key, the page form) refuses a bad one with 400
`invalid_request_id` before anything is written."""

from __future__ import annotations

import pytest

from tests.builders import purchased_subscription
from tests.integration.test_gate import page, session_cookie
from tests.licenses_support import call, idp_person, token_for

OWNER = "admin@contoso.example"
BAD_IDS = ["a/b", "x" * 1100, "two words", "#1"]


@pytest.fixture(scope="module")
def owner(stack):
    return idp_person(stack, OWNER)


@pytest.fixture(scope="module")
def token(stack):
    return token_for(stack, OWNER)


def _assigned(stack, token, subscription_id: str) -> int:
    status, listing, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{subscription_id}/licenses", token)
    assert status == 200
    assert len(listing["seats"]) == listing["assigned_count"]
    return listing["assigned_count"]


def _nothing_written(stack, token, subscription_id: str) -> None:
    """No seat, no count, no audit entry: the refusal came before any write."""
    assert _assigned(stack, token, subscription_id) == 0
    status, log, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{subscription_id}/audit", token)
    assert status == 200
    assert not [e["action"] for e in log["entries"] if e["action"].startswith("license")]


@pytest.mark.parametrize("content_type, body", [
    ("text/csv", "email\nann@contoso.example\n"),
    ("text/plain", "ann@contoso.example"),
])
def test_csv_and_text_bodies_refuse_a_bad_idempotency_key(stack, owner, token, content_type, body):
    sub = purchased_subscription(stack, owner, quantity=3)
    path = f"/api/v1/subscriptions/{sub.id}/licenses"
    for bad in BAD_IDS:
        status, answer, _ = call(stack.url, "POST", path, token, body, content_type=content_type,
                                 headers={"Idempotency-Key": bad})
        assert status == 400, (bad[:20], answer)
        assert answer["error"] == "invalid_request_id" and answer["field"] == "Idempotency-Key"
    _nothing_written(stack, token, sub.id)
    # A good key still works, and a retry with it assigns nothing twice.
    for _ in range(2):
        status, answer, _ = call(stack.url, "POST", path, token, body, content_type=content_type,
                                 headers={"Idempotency-Key": "upload-2024.01_a"})
        assert status == 200 and answer["request_id"] == "upload-2024.01_a"
    assert _assigned(stack, token, sub.id) == 1


def test_json_body_and_query_parameter_name_the_field(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=3)
    path = f"/api/v1/subscriptions/{sub.id}/licenses"
    status, answer, _ = call(stack.url, "POST", path, token, {"emails": ["ann@contoso.example"], "request_id": "a/b"})
    assert status == 400 and (answer["error"], answer["field"]) == ("invalid_request_id", "request_id")
    status, answer, _ = call(stack.url, "POST", path, token, {"emails": ["ann@contoso.example"], "request_id": 5})
    assert status == 400 and answer["error"] == "invalid_request_id"
    status, answer, _ = call(stack.url, "POST", path + "?request_id=a%2Fb", token, "ann@contoso.example",
                             content_type="text/plain")
    assert status == 400 and (answer["error"], answer["field"]) == ("invalid_request_id", "request_id")
    status, answer, _ = call(stack.url, "POST", path + "/ann@contoso.example/reassign", token,
                             {"to": "ben@contoso.example", "request_id": "x" * 101})
    assert status == 400 and answer["error"] == "invalid_request_id"
    _nothing_written(stack, token, sub.id)


def test_the_assign_form_refuses_a_bad_request_id(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=3)
    cookie, csrf = session_cookie(stack, owner)
    path = f"/api/subscriptions/{sub.id}/licenses"
    for bad in BAD_IDS:
        status, _, text = page(stack.url, "POST", path, cookie,
                               {"csrf_token": csrf, "emails": "ann@contoso.example", "request_id": bad})
        assert status == 400, bad[:20]
        assert "Reload the page and try again" in text or "Lade die Seite neu" in text
    _nothing_written(stack, token, sub.id)
    status, headers, _ = page(stack.url, "POST", path, cookie,
                              {"csrf_token": csrf, "emails": "ann@contoso.example", "request_id": "form-1"})
    assert status == 303 and headers["Location"] == path
    assert _assigned(stack, token, sub.id) == 1
