"""Every HTTP route reaches its own function in the order Azure tries them.

Azure sorts the functions by name (case-insensitive) and serves a request with the first route whose
template and methods match; there is no precedence by specificity (local_host/routing.py). With a
catch-all route (handlers/not_found.py) that order decides whether a page is served or answered "not
found", so for every route a request is built from its template and must land on its own function.
"""

from __future__ import annotations

import re

import pytest

from handlers.not_found import FUNCTION_NAME
from local_host.routing import RouteMatch, RouteTable
from tests import app_routes

# Values for route parameters by name; anything else gets "x1".
SAMPLES = {"subscription_id": "sub_1MowQVLkdIwHu7ixeRlqHVzs", "email": "ada@contoso.example",
           "token": "k3Jd9", "merge_id": "m_1", "path": "no/such/page"}
ANY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def functions() -> list[dict]:
    return list(app_routes.http_functions())


@pytest.fixture(scope="module")
def table(functions) -> RouteTable:
    routes = RouteTable("api")
    for f in functions:
        routes.add(f["route"] or f["name"], f["methods"] or None, f["name"], f["name"])
    return routes


def _path(route: str) -> str:
    """A request path for `route`: each parameter replaced by a sample value."""
    return "/api/" + re.sub(r"\{\*?\*?(\w+)[^}]*\}", lambda m: SAMPLES.get(m.group(1), "x1"), route)


def test_every_route_is_served_by_its_own_function(functions, table):
    assert len(functions) > 50  # the enumeration works
    wrong = []
    for f in functions:
        for method in f["methods"] or ANY_METHODS:
            found = table.match(method, _path(f["route"] or f["name"]))
            if not (isinstance(found, RouteMatch) and found.target == f["name"]):
                wrong.append(f"{method} {_path(f['route'])}: {getattr(found, 'target', found)} instead of {f['name']}")
    assert wrong == []


def test_the_catch_all_is_named_last_and_takes_what_nothing_else_serves(functions, table):
    names = sorted((f["name"] for f in functions), key=str.upper)
    assert names[-1] == FUNCTION_NAME
    for method, path in (("GET", "/api/no/such/page"), ("POST", "/api/dashboard"), ("GET", "/api"),
                         ("DELETE", "/api/v1/nothing-here")):
        found = table.match(method, path)
        assert isinstance(found, RouteMatch) and found.target == FUNCTION_NAME, (method, path)
