"""Storage outage (issue 18, item 8): with storage unreachable, every route answers 503 with
Retry-After within its storage time budget; routes that need no storage keep working; nothing answers
500. An own Azurite and app host, so stopping and freezing storage disturbs no other test.

Budgets: the license check about 2 s (STORAGE_HOT_PATH_BUDGET_SECONDS), the health probe's ping about
1 s, every other request about 6 s per storage call (adapters/table_storage.py).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests

from adapters.table_storage import Storage
from local_host import launch as launch_host
from local_host.azurite import Azurite, start_azurite
from services import subscription_store
from services.settings import Settings, load_settings
from services.subscription import Subscription
from services.web_session import SessionStore, cookie_name
from tests.app_routes import http_functions
from tests.conftest import REPO_ROOT, app_values
from tests.licenses_support import idp_person, token_for

HEALTH_BUDGET = 3.0  # the ping's short timeout, plus the host's own overhead
REQUEST_BUDGET = 9.0  # one storage call of an ordinary request (about 6 s), plus overhead
REFUSED_BUDGET = 3.0  # connection refused fails fast: a retry and its back-off at most


@dataclass
class Outage:
    url: str
    azurite: Azurite
    settings: Settings
    subscription_id: str
    token: str
    cookie: str
    csrf: str


@pytest.fixture(scope="module")
def outage(stack, identity_provider, stripe_emulator, tmp_path_factory) -> Iterator[Outage]:
    azurite = start_azurite(location=tmp_path_factory.mktemp("outage-azurite"))  # data survives a restart
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://localhost:{port}"
    env = app_values(azurite, identity_provider, stripe_emulator, tmp_path_factory.mktemp("outage-outbox"), url)
    settings = load_settings(env)
    host = launch_host(REPO_ROOT, env=env, port=port)
    try:
        storage = Storage(settings)
        storage.ensure_created()
        owner = idp_person(stack, "admin@contoso.example")
        sid = f"sub_outage_{int(time.time() * 1000)}"
        subscription_store.create(storage, Subscription(
            id=sid, kind="organisation", status="active", quantity=5, assigned_count=0, tenant_id=owner.tid,
            owner_tid=owner.tid, owner_oid=owner.oid, owner_email=owner.email, owner_name=owner.name, language="en",
            stripe_customer_id="", checkout_session_id=f"cs_{sid}",
            current_period_end=datetime.now(UTC) + timedelta(days=20)))
        session = SessionStore(storage, settings).new(person=owner)
        yield Outage(url, azurite, settings, sid, token_for(stack, "admin@contoso.example"),
                     f"{cookie_name(settings)}={session.id}", session.csrf_token)
    finally:
        host.stop()
        azurite.stop()


def _request(outage: Outage, method: str, route: str) -> tuple[int, dict[str, str], float]:
    """Call `route` as the signed-in owner (bearer token and session alike) and time it."""
    path = route.replace("{subscription_id}", outage.subscription_id).replace("{email}", "ann@contoso.example")
    path = path.replace("{token}", "x" * 43)
    path = "/api/" + path.strip("/")
    headers = {"Authorization": f"Bearer {outage.token}", "Cookie": outage.cookie, "Origin": outage.url,
               "Sec-Fetch-Site": "same-origin"}
    data = None
    if method in ("POST", "PATCH", "PUT"):
        if path.startswith("/api/v1/"):
            headers["Content-Type"] = "application/json"
            data = json.dumps({"emails": ["ann@contoso.example"], "email": "ann@contoso.example",
                               "to": "ben@contoso.example", "permissions": ["subscription.view"],
                               "token": "x" * 43}).encode()
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode({"csrf_token": outage.csrf, "emails": "ann@contoso.example",
                                           "email": "ann@contoso.example", "quantity": "3"}).encode()
    started = time.monotonic()
    response = requests.request(method, outage.url + path, data=data, headers=headers, timeout=120,
                                allow_redirects=False)
    return response.status_code, dict(response.headers), time.monotonic() - started


def _routes() -> list[tuple[str, str]]:
    found = []
    for function in http_functions():
        for method in function["methods"] or ["GET"]:
            if method.upper() != "OPTIONS":
                found.append((method.upper(), function["route"]))
    return sorted(set(found))


# Routes whose answer needs storage: with storage gone they must say 503, not "all fine".
NEEDS_STORAGE = [("GET", "health"), ("GET", "v1/subscriptions/{subscription_id}/licenses"),
                 ("GET", "subscriptions/{subscription_id}/licenses"), ("GET", "dashboard"),
                 ("GET", "license"), ("GET", "v1/subscriptions")]


def _assert_unavailable(status: int, headers: dict[str, str], what: str) -> None:
    assert status == 503, f"{what}: {status}"
    assert int(headers.get("Retry-After", "0")) > 0, f"{what}: no Retry-After"


def test_storage_frozen_answers_503_within_each_budget(outage):
    for method, route in NEEDS_STORAGE:  # warm: clients and connections exist before the outage
        assert _request(outage, method, route)[0] < 500, route
    outage.azurite.pause()
    try:
        status, headers, took = _request(outage, "GET", "health")
        _assert_unavailable(status, headers, "health")
        assert took < HEALTH_BUDGET, f"health took {took:.1f} s"
        for method, route in NEEDS_STORAGE[1:3]:
            status, headers, took = _request(outage, method, route)
            _assert_unavailable(status, headers, route)
            assert took < REQUEST_BUDGET, f"{route} took {took:.1f} s"
    finally:
        outage.azurite.resume()
    assert _request(outage, "GET", "health")[0] == 200


def test_storage_gone_every_route_answers_503_with_retry_after_or_works_without_it(outage):
    routes = _routes()
    assert len(routes) > 20
    outage.azurite.stop()
    try:
        failures = []
        for method, route in routes:
            status, headers, took = _request(outage, method, route)
            if status >= 500 and (status != 503 or int(headers.get("Retry-After", "0")) <= 0):
                failures.append(f"{method} {route}: {status} without Retry-After")
            if (method, route) in NEEDS_STORAGE and status != 503:
                failures.append(f"{method} {route}: {status}, expected 503")
            if took > REFUSED_BUDGET:
                failures.append(f"{method} {route}: took {took:.1f} s")
        assert not failures, "\n".join(failures)
    finally:
        outage.azurite.restart()
    assert _request(outage, "GET", "health")[0] == 200
