"""Assign, revoke, reassign, list and export licenses through the JSON API of the running app."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from adapters import keys
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES
from services import subscription_store
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.licenses_support import call, idp_person, token_for


@pytest.fixture(scope="module")
def owner(stack):
    return idp_person(stack, "admin@contoso.example")


@pytest.fixture(scope="module")
def token(stack):
    return token_for(stack, "admin@contoso.example")


def _licenses(stack, sub_id):
    return f"/api/v1/subscriptions/{sub_id}/licenses"


def test_assign_list_revoke_reassign_and_export(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=5)
    tag = uuid.uuid4().hex[:6]
    a, b, c = (f"{n}.{tag}@contoso.example" for n in ("ann", "ben", "cid"))
    status, body, _ = call(stack.url, "POST", _licenses(stack, sub.id), token,
                           {"emails": f" {a.upper()} ;{b}\n{c}, {a}", "request_id": f"req-{tag}"})
    assert status == 200, body
    assert sorted(body["assigned"]) == sorted([a, b, c])
    assert body["duplicates"] == [a]
    assert (body["assigned_count"], body["quantity"], body["free"]) == (3, 5, 2)

    # The same request again: nothing new, nothing double-counted.
    status, again, _ = call(stack.url, "POST", _licenses(stack, sub.id), token,
                            {"emails": [a, b, c], "request_id": f"req-{tag}"})
    assert status == 200 and again["assigned_count"] == 3
    # Another request naming a licensed address reports it.
    status, other, _ = call(stack.url, "POST", _licenses(stack, sub.id), token, {"emails": [a]})
    assert other["already_assigned"] == [a] and other["assigned"] == []

    storage = stack.storage()
    assert storage.get(USER_LICENSES, keys.licenses_of_address(a), sub.id) is not None

    status, listing, _ = call(stack.url, "GET", _licenses(stack, sub.id) + "?limit=2", token)
    assert status == 200
    assert [s["email"] for s in listing["seats"]] == sorted([a, b, c])[:2]
    assert {s["status"] for s in listing["seats"]} == {"pending"} and listing["continuation"]
    status, rest, _ = call(stack.url, "GET",
                           _licenses(stack, sub.id) + f"?limit=2&continuation={listing['continuation']}", token)
    assert [s["email"] for s in rest["seats"]] == sorted([a, b, c])[2:] and rest["continuation"] is None
    status, found, _ = call(stack.url, "GET", _licenses(stack, sub.id) + "?q=BEN", token)
    assert [s["email"] for s in found["seats"]] == [b]

    status, revoked, _ = call(stack.url, "DELETE", _licenses(stack, sub.id) + f"/{a}", token)
    assert status == 200 and revoked["assigned_count"] == 2
    assert storage.get(USER_LICENSES, keys.licenses_of_address(a), sub.id) is None  # unlicensed at once
    assert storage.get(SUBSCRIPTIONS, sub.id, keys.seat_row(a)) is None
    status, missing, _ = call(stack.url, "DELETE", _licenses(stack, sub.id) + f"/{a}", token)
    assert status == 404 and missing["error"] == "not_assigned"

    d = f"dan.{tag}@contoso.example"
    status, moved, _ = call(stack.url, "POST", _licenses(stack, sub.id) + f"/{b}/reassign", token, {"to": d.upper()})
    assert status == 200 and moved["to"] == d and moved["assigned_count"] == 2
    assert storage.get(USER_LICENSES, keys.licenses_of_address(b), sub.id) is None
    assert storage.get(USER_LICENSES, keys.licenses_of_address(d), sub.id) is not None
    status, clash, _ = call(stack.url, "POST", _licenses(stack, sub.id) + f"/{c}/reassign", token, {"to": d})
    assert status == 409 and clash["error"] == "already_assigned"

    status, text, headers = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/licenses.csv", token)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert sorted(r["email"] for r in rows) == sorted([c, d]) and {r["status"] for r in rows} == {"pending"}

    status, log, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{sub.id}/audit", token)
    actions = [e["action"] for e in log["entries"]]
    assert actions[:3] == ["license.reassigned", "license.revoked", "licenses.assigned"]
    assert log["entries"][0]["actor_email"] == owner.email and log["entries"][0]["before"] == {"email": b}

    # Welcome mails: one per newly assigned address (a, b, c, then d), none for the retried request.
    def welcomed():
        sent = [m for m in stack.outbox() if tag in m["to"] and "license" in m["subject"]]
        return sent if len(sent) >= 4 else None

    sent = wait_for(welcomed, timeout=30, message="welcome mails")
    assert sorted(m["to"] for m in sent) == sorted([a, b, c, d])
    assert subscription_store.load(storage, sub.id).assigned_count == 2


def test_clear_errors_and_nothing_written(stack, owner, token):
    sub = purchased_subscription(stack, owner, quantity=3)
    path = _licenses(stack, sub.id)
    status, body, _ = call(stack.url, "POST", path, token, {"emails": ["ok@contoso.example", "not-an-address", "x@y"]})
    assert status == 400 and body["error"] == "invalid_addresses" and body["invalid"] == ["not-an-address", "x@y"]
    status, body, _ = call(stack.url, "POST", path, token, {"emails": "  ,; \n"})
    assert status == 400 and body["error"] == "empty"
    rows = "email\n" + "".join(f"u{i}@contoso.example\n" for i in range(10_001))
    status, body, _ = call(stack.url, "POST", path, token, rows, content_type="text/csv")
    assert status == 400 and body["error"] == "too_many_rows"
    status, body, _ = call(stack.url, "POST", path, token, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
                           content_type="text/csv")
    assert status == 400 and body["error"] == "not_csv"
    status, body, _ = call(stack.url, "POST", path, token, b"\x00\x01", content_type="application/octet-stream")
    assert status == 415
    status, body, _ = call(stack.url, "POST", path, token, {"emails": [f"n{i}@contoso.example" for i in range(4)]})
    assert status == 409 and body["error"] == "no_seats_free" and (body["needed"], body["free"]) == (4, 3)
    status, body, _ = call(stack.url, "GET", "/api/v1/subscriptions/sub_doesnotexist/licenses", token)
    assert status == 404 and body["error"] == "subscription_not_found"
    status, body, _ = call(stack.url, "GET", path + "?status=bogus", token)
    assert status == 400
    # Someone else's subscription looks exactly like an unknown one.
    status, body, _ = call(stack.url, "GET", path, token_for(stack, "eve@fabrikam.example"))
    assert status == 404
    status, body, headers = call(stack.url, "GET", path)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    # CSV with a header in another column, and without a header.
    status, body, _ = call(stack.url, "POST", path, token, "name;mail\nA;a1@contoso.example\nB;B1@Contoso.example\n",
                           content_type="text/csv")
    assert status == 200 and body["assigned"] == ["a1@contoso.example", "b1@contoso.example"]
    assert subscription_store.load(stack.storage(), sub.id).assigned_count == 2


def test_openapi_documents_the_license_routes(stack):
    status, doc, _ = call(stack.url, "GET", "/api/openapi.json")
    paths = doc["paths"]
    for path in ("/v1/subscriptions/{subscription_id}/licenses", "/v1/subscriptions/{subscription_id}/licenses/{email}",
                 "/v1/subscriptions/{subscription_id}/licenses/{email}/reassign",
                 "/v1/subscriptions/{subscription_id}/licenses.csv", "/v1/subscriptions/{subscription_id}/audit"):
        assert path in paths, path
    assert set(paths["/v1/subscriptions/{subscription_id}/licenses"]) == {"get", "post"}
