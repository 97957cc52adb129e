"""The gate in front of every subscription route (handlers/gate.py): the same answers on the JSON API
and the pages. Through real HTTP against the running app, except the 403 case, which needs someone
who may see a subscription without a permission: only the owner holds permissions until delegation,
so those tests call the decorated functions in this process, with real requests, and give one person
subscription.view through services.access's list of permission holders (what delegation will add).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import azure.functions as func
import pytest

from handlers import licenses_api, licenses_pages
from services import access, bootstrap, delegation, subscription_store
from services.audit import Actor
from services.delegate import Acceptor
from services.unit_of_work import UnitOfWork
from services.web_session import Person, SessionStore, cookie_name
from tests.builders import purchased_subscription
from tests.licenses_support import call, idp_person, token_for
from tests.pages_support import page

OWNER = "admin@contoso.example"
STRANGER = "eve@fabrikam.example"
VIEWER = "bob@contoso.example"  # a delegate with subscription.view only (the 403 tests)

API_ROUTES = [
    ("GET", "/api/v1/subscriptions/{id}/licenses", None),
    ("POST", "/api/v1/subscriptions/{id}/licenses", {"emails": ["x@contoso.example"]}),
    ("DELETE", "/api/v1/subscriptions/{id}/licenses/x@contoso.example", None),
    ("POST", "/api/v1/subscriptions/{id}/licenses/x@contoso.example/reassign", {"to": "y@contoso.example"}),
    ("POST", "/api/v1/subscriptions/{id}/licenses/x@contoso.example/restore", {}),
    ("GET", "/api/v1/subscriptions/{id}/licenses.csv", None),
    ("GET", "/api/v1/subscriptions/{id}/audit", None),
    ("GET", "/api/v1/subscriptions/{id}/audit.csv", None),
]
PAGE_ROUTES = [
    ("GET", "/api/subscriptions/{id}"),
    ("GET", "/api/subscriptions/{id}/setup"),
    ("GET", "/api/subscriptions/{id}/licenses"),
    ("POST", "/api/subscriptions/{id}/licenses"),
    ("GET", "/api/subscriptions/{id}/licenses/revoke?email=x@contoso.example"),
    ("POST", "/api/subscriptions/{id}/licenses/revoke"),
    ("GET", "/api/subscriptions/{id}/licenses/reassign?email=x@contoso.example"),
    ("POST", "/api/subscriptions/{id}/licenses/reassign"),
    ("POST", "/api/subscriptions/{id}/licenses/restore"),
    ("GET", "/api/subscriptions/{id}/licenses/export.csv"),
    ("GET", "/api/subscriptions/{id}/audit"),
    ("GET", "/api/subscriptions/{id}/audit/export.csv"),
]


@pytest.fixture(scope="module")
def owner(stack) -> Person:
    return idp_person(stack, OWNER)


@pytest.fixture(scope="module")
def subscription(stack, owner):
    return purchased_subscription(stack, owner, quantity=3)


def session_cookie(stack, person: Person) -> tuple[str, str]:
    """(Cookie header, CSRF token) of a dashboard session for `person`, as sign-in leaves it."""
    session = SessionStore(stack.storage(), stack.settings).new(person=person)
    return f"{cookie_name(stack.settings)}={session.id}", session.csrf_token


# --- 401 / sign-in --------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body", API_ROUTES)
def test_api_without_a_token_is_401(stack, subscription, method, path, body):
    status, answer, headers = call(stack.url, method, path.format(id=subscription.id), None, body)
    assert status == 401 and answer["error"] == "invalid_token"
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method, path", PAGE_ROUTES)
def test_page_without_a_session_goes_to_sign_in(stack, subscription, method, path):
    status, headers, _ = page(stack.url, method, path.format(id=subscription.id))
    assert status == 303
    assert headers["Location"].startswith("/api/signin?next=")


# --- 404: unknown and someone else's look the same --------------------------------------------------


@pytest.mark.parametrize("method, path, body", API_ROUTES)
def test_api_answers_404_for_someone_elses_subscription_as_for_an_unknown_one(stack, subscription, method, path, body):
    stranger = token_for(stack, STRANGER)
    status, theirs, _ = call(stack.url, method, path.format(id=subscription.id), stranger, body)
    assert status == 404 and theirs["error"] == "subscription_not_found"
    status, unknown, _ = call(stack.url, method, path.format(id="sub_doesnotexist"), stranger, body)
    assert status == 404 and unknown["error"] == "subscription_not_found"
    assert subscription_store.load(stack.storage(), subscription.id).assigned_count == 0


@pytest.mark.parametrize("method, path", PAGE_ROUTES)
def test_page_answers_404_for_someone_elses_subscription_as_for_an_unknown_one(stack, subscription, method, path):
    cookie, csrf = session_cookie(stack, idp_person(stack, STRANGER))
    form = {"csrf_token": csrf, "emails": "x@contoso.example", "email": "x@contoso.example", "to": "y@contoso.example"}
    sent = form if method == "POST" else None
    status, _, theirs = page(stack.url, method, path.format(id=subscription.id), cookie, sent)
    assert status == 404
    status, _, unknown = page(stack.url, method, path.format(id="sub_doesnotexist"), cookie, sent)
    assert status == 404
    # Nothing tells the two apart (the page names its own address, hence the replace).
    assert theirs.replace(subscription.id, "ID") == unknown.replace("sub_doesnotexist", "ID")
    assert subscription_store.load(stack.storage(), subscription.id).assigned_count == 0


# --- 503: invalid settings, pages and JSON alike ---------------------------------------------------------


def test_invalid_settings_answer_503_on_pages_and_the_api_alike(stack, owner, subscription):
    from local_host import launch
    from tests.conftest import REPO_ROOT

    token = token_for(stack, OWNER)
    cookie, _ = session_cookie(stack, owner)
    host = launch(REPO_ROOT, env={**stack.env, "SESSION_SECRET": "", "PUBLIC_BASE_URL": "not a url"})
    try:
        for method, path, body in API_ROUTES[:2]:
            for credentials in (token, None):
                status, answer, headers = call(host.url, method, path.format(id=subscription.id), credentials, body)
                assert status == 503, (method, path, status, answer)
                assert answer["error"] == "misconfigured" and headers["Retry-After"]
        for method, path in (PAGE_ROUTES[2], PAGE_ROUTES[3]):
            status, headers, text = page(host.url, method, path.format(id=subscription.id), cookie)
            assert status == 503 and json.loads(text)["error"] == "misconfigured"
        assert "Traceback" not in host.logs()
    finally:
        host.stop()


# --- 403: may see, may not change (in this process) ---------------------------------------------------


@pytest.fixture
def app_settings(stack, monkeypatch):
    """This process reads the same settings as the running app (the handlers ask bootstrap)."""
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.fixture
def viewed(stack, owner):
    """A subscription of its own on which STRANGER is a real delegate holding subscription.view only."""
    return purchased_subscription(stack, owner, quantity=3)


@pytest.fixture
def viewer(stack, owner, viewed) -> Person:
    """The delegate with subscription.view on `viewed`: invited by the owner, accepted as themselves."""
    person = idp_person(stack, VIEWER)
    uow = UnitOfWork(stack.storage())
    inviter = Actor(owner.tid, owner.oid, owner.email, owner.name)
    issued = delegation.invite(uow, stack.settings, inviter, viewed.id, VIEWER, frozenset({access.SUBSCRIPTION_VIEW}))
    delegation.accept(uow, issued.token, Acceptor(person.tid, person.oid, person.name, person.email,
                                                  frozenset({VIEWER})))
    return person


def _request(stack, method: str, path: str, subscription_id: str, headers: dict, body: bytes = b"") -> func.HttpRequest:
    return func.HttpRequest(method=method, url=stack.url + path, headers=headers, params={},
                            route_params={"subscription_id": subscription_id}, body=body)


def test_api_answers_403_to_someone_who_may_see_but_not_assign(stack, viewed, app_settings, viewer):
    subscription = viewed
    headers = {"Authorization": f"Bearer {token_for(stack, VIEWER)}", "Content-Type": "application/json"}
    path = f"/api/v1/subscriptions/{subscription.id}/licenses"
    listed = licenses_api.api_list_licenses(_request(stack, "GET", path, subscription.id, headers))
    assert listed.status_code == 200
    refused = licenses_api.api_assign_licenses(
        _request(stack, "POST", path, subscription.id, headers, json.dumps({"emails": ["x@contoso.example"]}).encode()))
    assert refused.status_code == 403
    answer = json.loads(refused.get_body())
    assert (answer["error"], answer["permission"]) == ("forbidden", access.LICENSES_ASSIGN)
    # Unknown ids stay 404 for them.
    unknown = licenses_api.api_list_licenses(_request(stack, "GET", path, "sub_doesnotexist", headers))
    assert unknown.status_code == 404
    assert subscription_store.load(stack.storage(), subscription.id).assigned_count == 0


def test_page_answers_403_to_someone_who_may_see_but_not_assign(stack, viewed, app_settings, viewer):
    subscription = viewed
    cookie, csrf = session_cookie(stack, viewer)
    path = f"/api/subscriptions/{subscription.id}/licenses"
    shown = licenses_pages.licenses_page(_request(stack, "GET", path, subscription.id, {"Cookie": cookie}))
    assert shown.status_code == 200
    assert 'name="emails"' not in shown.get_body().decode()  # no assign form for a viewer
    form = urllib.parse.urlencode({"csrf_token": csrf, "emails": "x@contoso.example"}).encode()
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    refused = licenses_pages.assign_form(_request(stack, "POST", path, subscription.id, headers, form))
    assert refused.status_code == 403
    assert "Not allowed" in refused.get_body().decode()
    assert subscription_store.load(stack.storage(), subscription.id).assigned_count == 0
