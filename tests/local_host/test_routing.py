"""Route templates without a server: the Functions host's matching rules and route order."""
import pytest

from local_host.routing import MethodNotAllowed, RouteMatch, RouteTable, RouteTemplateError

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture
def table() -> RouteTable:
    table = RouteTable("api")
    for template, methods in [
        ("items/{id:int}", ["GET"]), ("items/latest", ["GET"]), ("items/{name:alpha}", ["GET", "put"]),
        ("things/{id:guid}/{part?}", None), ("files/{*path}", ["GET"]), ("docs/{name}.{ext}", None),
        ("pages/{page:int:range(1,5)=1}", None), ("codes/{code:regex(^\\d{{3}}$)}", None),
    ]:
        table.add(template, methods, template)
    return table


@pytest.mark.parametrize("method, path, target, params", [
    ("GET", "/api/items/42", "items/{id:int}", {"id": "42"}),
    ("GET", "/api/items/latest", "items/latest", {}),           # literal beats {name:alpha}
    ("GET", "/API/Items/LATEST/", "items/latest", {}),         # case-insensitive, trailing slash
    ("PUT", "/api/items/abc", "items/{name:alpha}", {"name": "abc"}),
    ("GET", f"/api/things/{GUID}", "things/{id:guid}/{part?}", {"id": GUID}),
    ("DELETE", f"/api/things/{GUID}/x", "things/{id:guid}/{part?}", {"id": GUID, "part": "x"}),
    ("GET", "/api/files", "files/{*path}", {}),
    ("GET", "/api/files/a/b%20c/d", "files/{*path}", {"path": "a/b c/d"}),
    ("GET", "/api/files/a%2Fb", "files/{*path}", {"path": "a%2Fb"}),  # %2F stays encoded, like ASP.NET
    ("GET", "/api/docs/readme.md", "docs/{name}.{ext}", {"name": "readme", "ext": "md"}),
    ("GET", "/api/pages", "pages/{page:int:range(1,5)=1}", {"page": "1"}),
    ("GET", "/api/pages/5", "pages/{page:int:range(1,5)=1}", {"page": "5"}),
    ("GET", "/api/codes/123", "codes/{code:regex(^\\d{{3}}$)}", {"code": "123"}),
])
def test_matches(table, method, path, target, params):
    assert table.match(method, path) == RouteMatch(target, params)


@pytest.mark.parametrize("path", [
    "/api/items/a1", "/api/items/99999999999", f"/api/things/{GUID}/x/y", "/api/things/not-a-guid",
    "/api/pages/6", "/api/codes/1234", "/items/42", "/api", "/other/items/42",
])
def test_no_match(table, path):
    assert table.match("GET", path) is None


def test_wrong_method_lists_allowed_methods(table):
    assert table.match("POST", "/api/items/abc") == MethodNotAllowed(["GET", "PUT"])


def test_the_function_named_first_wins_not_the_most_specific_template():
    """Azure sorts functions by name (case-insensitive) and takes the first route that matches."""
    table = RouteTable("api")
    table.add("items/latest", ["GET"], "latest", name="Item_Latest")
    table.add("items/{name}", ["GET"], "by name", name="item_by_name")
    table.add("{*path}", None, "catch-all", name="zz_not_found")
    assert table.match("GET", "/api/items/latest") == RouteMatch("by name", {"name": "latest"})
    # Named last, a catch-all gets only what no other route takes ...
    assert table.match("GET", "/api/other/page") == RouteMatch("catch-all", {"path": "other/page"})
    assert table.match("GET", "/api") == RouteMatch("catch-all", {})
    # ... including another method on a route (the method is a constraint of the route).
    assert table.match("DELETE", "/api/items/latest") == RouteMatch("catch-all", {"path": "items/latest"})
    named_first = RouteTable("api")
    named_first.add("{*path}", None, "catch-all", name="catch_all")
    named_first.add("items/latest", ["GET"], "latest", name="item_latest")
    assert named_first.match("GET", "/api/items/latest") == RouteMatch("catch-all", {"path": "items/latest"})


def test_empty_prefix():
    table = RouteTable("")
    table.add("hello", None, "hello")
    assert table.match("GET", "/hello") == RouteMatch("hello", {})


def test_invalid_templates():
    with pytest.raises(RouteTemplateError):
        RouteTable("api").add("a/{*rest}/b", None, None)
    with pytest.raises(RouteTemplateError):
        RouteTable("api").add("a/{id:nosuch}", None, None)
