"""The permission matrix (issue 11's acceptance): every subscription route, every kind of caller.

The routes come from the real app (`function_app.app.get_functions()`, enumerated in a child process
as in tests/unit/test_route_permissions.py): every HTTP route under `subscriptions/` and
`v1/subscriptions/`, with its methods and the permission it declares through the gate. A route added
tomorrow (the delegation pages and API, say) is in the matrix without touching this file.

Each route is called over real HTTP against the running stack as: the owner; four delegates holding
one permission each (invited and accepted through services.delegation, as real identity-provider
users of the subscription's tenant); a removed delegate; a signed-in stranger of the same tenant; a
member of another tenant; and anonymous. What each caller should get follows from the route's
declared permission and the table `HOLDS` below (written out here, not asked of services/access.py):

- holds the permission: the gate lets the call through (whatever the view then answers);
- holds nothing on the subscription: 404, the same answer as for an unknown id;
- holds something, but not this: 403;
- not signed in: 401 with a Bearer challenge (API) or a redirect to sign-in (pages).

Pages are called with a fresh session of the caller and, on forms, its valid CSRF token and our own
Origin, so a refusal is the permission's, never CSRF's. After every refusal the subscription's
partition and the lookup tables must be exactly as before (rows and ETags).
"""

from __future__ import annotations

import functools
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.table_storage import INVITATIONS, STRIPE_INDEX, SUBSCRIPTIONS, USER_LICENSES, USER_SUBSCRIPTIONS
from services import delegation
from services.audit import Actor
from services.delegate import Acceptor
from services.unit_of_work import UnitOfWork
from services.web_session import Person, SessionStore, cookie_name
from tests.app_routes import http_functions, is_subscription_route
from tests.builders import purchased_subscription
from tests.license_fixtures import CONTOSO_ID, FABRIKAM_ID, new_user, token_for
from tests.licenses_support import call

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = json.loads((ROOT / "translations" / "en.json").read_text(encoding="utf-8"))

# --- the routes, from the real app ------------------------------------------------------------------




@dataclass(frozen=True)
class Route:
    name: str
    method: str
    route: str  # as declared, without the host's "api/" prefix
    permission: str | None
    gate: str | None  # "api" | "page"
    csrf: bool

    @property
    def api(self) -> bool:
        return self.route.strip("/").startswith("v1/")

    def __str__(self) -> str:
        return f"{self.name} ({self.method} /api/{self.route.strip('/')}, needs {self.permission})"


@functools.lru_cache(maxsize=1)
def subscription_routes() -> tuple[Route, ...]:
    """Every (function, method) under the subscription prefixes; read once per test session."""
    routes = []
    for f in http_functions():
        if not is_subscription_route(f["route"]):
            continue
        for method in f["methods"] or ["GET"]:
            routes.append(Route(f["name"], method.upper(), f["route"], f["permission"], f["gate"], bool(f["csrf"])))
    return tuple(sorted(routes, key=lambda r: (r.route, r.method)))


# --- the callers and what they hold ----------------------------------------------------------------------

ASSIGN, VIEW, QUANTITY, BILLING = "licenses.assign", "subscription.view", "quantity.manage", "billing.manage"
OWNER_ONLY, LICENSES_READ, SUBSCRIPTION_READ = "owner", "licenses.read", "subscription.read"
KNOWN_PERMISSIONS = {ASSIGN, VIEW, QUANTITY, BILLING, OWNER_ONLY, LICENSES_READ, SUBSCRIPTION_READ}

# The single permission each of the four delegates was given.
DELEGATE_GRANTS = {"delegate_assign": ASSIGN, "delegate_view": VIEW, "delegate_quantity": QUANTITY,
                   "delegate_billing": BILLING}

# What each signed-in caller holds on the subscription, derived permissions included (PRODUCT.md
# capability 4): the owner everything; licenses.read follows from assign or view; subscription.read
# from holding anything at all. Nothing for the removed delegate, the stranger and the other tenant.
HOLDS: dict[str, frozenset[str]] = {
    "owner": frozenset(KNOWN_PERMISSIONS),
    "delegate_assign": frozenset({ASSIGN, LICENSES_READ, SUBSCRIPTION_READ}),
    "delegate_view": frozenset({VIEW, LICENSES_READ, SUBSCRIPTION_READ}),
    "delegate_quantity": frozenset({QUANTITY, SUBSCRIPTION_READ}),
    "delegate_billing": frozenset({BILLING, SUBSCRIPTION_READ}),
    "removed_delegate": frozenset(),
    "stranger": frozenset(),
    "other_tenant": frozenset(),
}
ANONYMOUS = "anonymous"
# Refusals first within each route, so the state-changing calls that go through come last.
CALLERS = (ANONYMOUS, "stranger", "other_tenant", "removed_delegate", "delegate_view", "delegate_assign",
           "delegate_quantity", "delegate_billing", "owner")

THROUGH, UNAUTHENTICATED, NOT_FOUND, FORBIDDEN = "let through", "unauthenticated", "not found", "forbidden"


# What each kind of route needs, as the product describes it (issue 11, PRODUCT.md capability 4),
# written down here independently of what the route declares: a route that declares something else
# shows up in the matrix as callers let through or refused against these rules. By the part of the
# path after `subscriptions/{subscription_id}` (API and pages alike), first match wins; a route no
# rule covers is held to what it declares. OVERRIDES (function name -> permission) for exceptions.
PRODUCT_RULES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (r"(/setup)?", frozenset({"GET"}), SUBSCRIPTION_READ),  # the subscription itself, its checklist
    (r"/setup/steps", None, OWNER_ONLY),  # marking optional setup steps done or not needed
    (r"/(delegates|owner-transfer|cancel|cancellation)(/.*)?", None, OWNER_ONLY),  # the owner's alone
    (r"/(merge|merges|merge-candidates)(/.*)?", None, OWNER_ONLY),  # merging individual subscriptions
    (r"/licenses([./].*)?", frozenset({"GET"}), LICENSES_READ),  # the list and its exports
    (r"/licenses([./].*)?", None, ASSIGN),  # assign, revoke, reassign
    (r"/jobs/[^/]+(/progress)?", frozenset({"GET"}), LICENSES_READ),  # a bulk assignment's progress
    (r"/audit([./].*)?", frozenset({"GET"}), VIEW),
    (r"/quantity(/.*)?", None, QUANTITY),
    (r"/(billing|billing-portal|billing-settings|billing-interval|invoices|payment-method|payment)(/.*)?", None,
     BILLING),
)
# The confirmation pages of revoke and reassign (GET, no side effects) hold the action's form: for
# those who may act, unlike the list's other GET routes.
OVERRIDES: dict[str, str] = {"revoke_page": ASSIGN, "reassign_page": ASSIGN}


def product_permission(route: Route) -> str | None:
    if route.name in OVERRIDES:
        return OVERRIDES[route.name]
    tail = re.sub(r"^(v1/)?subscriptions/\{subscription_id[^}]*\}", "", route.route.strip("/"))
    for pattern, methods, permission in PRODUCT_RULES:
        if re.fullmatch(pattern, tail) and (methods is None or route.method in methods):
            return permission
    return None


def expected(caller: str, permission: str) -> str:
    if caller == ANONYMOUS:
        return UNAUTHENTICATED
    held = HOLDS[caller]
    if not held:
        return NOT_FOUND
    return THROUGH if permission in held else FORBIDDEN


def pytest_generate_tests(metafunc):
    if {"route", "caller"} <= set(metafunc.fixturenames):
        cases = [(r, c) for r in subscription_routes() for c in CALLERS]
        metafunc.parametrize("route, caller", cases,
                             ids=[f"{r.name}-{r.method}-{c}" for r, c in cases])


# --- requests and bodies ------------------------------------------------------------------------------

UNKNOWN_ID = "sub_0000000000000000000000000"  # shaped like ours, never minted


def _fresh(label: str = "new") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@contoso.example"


# Route parameters other than subscription_id: a plausible value that names nobody on the subscription
# (so the owner's DELETE of `{email}` cannot remove one of the matrix's own delegates).
PLACEHOLDER_EMAIL = "nobody-in-the-matrix@contoso.example"
PARAMETERS: dict[str, Callable[[], str]] = {"email": lambda: PLACEHOLDER_EMAIL}

# Bodies for routes where a minimal one would say little; keyed by function name, the rest get the
# fallback (an empty JSON object, or a form with only the CSRF token). A 400 from the view is fine:
# it still shows the gate let the call through.
API_BODIES: dict[str, Callable[[], Any]] = {
    "api_assign_licenses": lambda: {"emails": [_fresh("api")]},
    "api_reassign_license": lambda: {"to": _fresh("to")},
    "api_invite_delegate": lambda: {"email": _fresh("invited"), "permissions": [ASSIGN]},
}
FORMS: dict[str, Callable[[], dict[str, str]]] = {
    "assign_form": lambda: {"emails": _fresh("form")},
    "invite_delegate_form": lambda: {"email": _fresh("invited"), "perm_" + VIEW: "on"},
    "revoke_form": lambda: {"email": PLACEHOLDER_EMAIL, "confirmed": "yes"},
    "restore_form": lambda: {"email": PLACEHOLDER_EMAIL},
    "reassign_form": lambda: {"email": PLACEHOLDER_EMAIL, "to": _fresh("to")},
}
BODY_METHODS = {"POST", "PUT", "PATCH"}


def concrete_path(route: Route, subscription_id: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "subscription_id":
            return subscription_id
        return urllib.parse.quote(PARAMETERS.get(name, lambda: "x")(), safe="@")

    return "/api/" + re.sub(r"\{(\w+)(?::[^}]*)?\??\}", value, route.route.strip("/"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def page_call(base_url: str, method: str, path: str, cookie: str | None, form: dict | None):
    """(status, headers, text) of a page request; redirects are returned, not followed."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Accept-Language": "en"})
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("Origin", base_url)  # a browser's same-origin form post
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=60) as response:
            return response.status, _lower(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers), exc.read().decode("utf-8", "replace")


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


# --- the subscription and its people, once per module --------------------------------------------------


@dataclass
class Caller:
    person: Person
    token: str


@dataclass
class Matrix:
    subscription_id: str
    callers: dict[str, Caller]


def _person(user: dict) -> Person:
    address = user["preferred_username"]
    return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"], email=user.get("email") or address,
                  sign_in_names=(address,))


@pytest.fixture(scope="module")
def matrix(stack) -> Matrix:
    provider = stack.identity_provider
    users = {name: new_user(provider) for name in
             ("owner", *DELEGATE_GRANTS, "removed_delegate", "stranger")}
    users["other_tenant"] = new_user(provider, FABRIKAM_ID)
    assert users["owner"]["tenant_id"] == CONTOSO_ID
    people = {name: _person(user) for name, user in users.items()}
    owner = people["owner"]
    subscription = purchased_subscription(stack, owner, quantity=20)
    assert subscription.tenant_id == CONTOSO_ID

    uow = UnitOfWork(stack.storage())
    inviter = Actor(owner.tid, owner.oid, owner.email, owner.name)
    grants = {**{name: frozenset({p}) for name, p in DELEGATE_GRANTS.items()},
              "removed_delegate": frozenset({ASSIGN, VIEW, QUANTITY, BILLING})}
    for name, permissions in grants.items():
        who = people[name]
        issued = delegation.invite(uow, stack.settings, inviter, subscription.id, who.email, permissions)
        delegation.accept(uow, issued.token, Acceptor(who.tid, who.oid, who.name, who.email,
                                                      frozenset(who.sign_in_names)))
    delegation.remove(uow, inviter, subscription.id, people["removed_delegate"].email)
    stack.settle()
    return Matrix(subscription.id, {name: Caller(people[name], token_for(stack, users[name])) for name in users})


# --- snapshots ---------------------------------------------------------------------------------------

LOOKUP_TABLES = (USER_LICENSES, USER_SUBSCRIPTIONS, INVITATIONS, STRIPE_INDEX)


def snapshot(storage, subscription_id: str) -> dict[str, dict[tuple[str, str], tuple[str | None, dict]]]:
    """Every row (with its ETag) of the subscription's partition and of the lookup tables."""
    def rows(table: str, partition_key: str | None = None) -> dict[tuple[str, str], tuple[str | None, dict]]:
        return {(r["PartitionKey"], r["RowKey"]): (r.etag, dict(r))
                for r in storage.query(table, partition_key=partition_key)}

    taken = {SUBSCRIPTIONS: rows(SUBSCRIPTIONS, subscription_id)}
    taken.update({table: rows(table) for table in LOOKUP_TABLES})
    return taken


def differences(before: dict, after: dict) -> list[str]:
    found = []
    for table in before:
        old, new = before[table], after[table]
        found += [f"{table}: added {key}" for key in new.keys() - old.keys()]
        found += [f"{table}: deleted {key}" for key in old.keys() - new.keys()]
        found += [f"{table}: changed {key}: {old[key][1]} -> {new[key][1]}"
                  for key in old.keys() & new.keys() if old[key] != new[key]]
    return sorted(found)


# --- the matrix ----------------------------------------------------------------------------------------

FORBIDDEN_PAGE = TRANSLATIONS["error.forbidden.permission"]
CSRF_PAGE = TRANSLATIONS["error.csrf.title"]


def _normalised(text: str, subscription_id: str) -> str:
    return text.replace(subscription_id, "ID").replace(UNKNOWN_ID, "ID")


@dataclass
class Prepared:
    """One call, ready to send: credentials, body, and for pages the gate's own not-found page."""

    token: str | None = None
    cookie: str | None = None
    body: Any = None
    form: dict[str, str] | None = None
    not_found_page: tuple[int, dict, str] | None = None


def prepare(stack, matrix: Matrix, route: Route, caller: str) -> Prepared:
    who = matrix.callers.get(caller)
    if route.api:
        return Prepared(token=who.token if who else None,
                        body=API_BODIES.get(route.name, dict)() if route.method in BODY_METHODS else None)
    prepared = Prepared()
    csrf = None
    if who is not None:  # a fresh session per call: no flash message of an earlier call on the page
        session = SessionStore(stack.storage(), stack.settings).new(person=who.person)
        prepared.cookie, csrf = f"{cookie_name(stack.settings)}={session.id}", session.csrf_token
    if route.method in BODY_METHODS:
        prepared.form = {**FORMS.get(route.name, dict)(), **({"csrf_token": csrf} if csrf else {})}
    # The gate's not-found page as this caller sees it, for an id that does not exist: a refusal
    # must look exactly like it (asked before the snapshot, so the call under test is alone in it).
    prepared.not_found_page = page_call(stack.url, route.method, concrete_path(route, UNKNOWN_ID), prepared.cookie,
                                        prepared.form)
    return prepared


def call_route(stack, matrix: Matrix, route: Route, caller: str, prepared: Prepared) -> tuple[str, str]:
    """Call `route` as `caller`: (what the gate did, a description of the answer)."""
    path = concrete_path(route, matrix.subscription_id)
    if route.api:
        status, answer, headers = call(stack.url, route.method, path, prepared.token, prepared.body)
        code = answer.get("error") if isinstance(answer, dict) else None
        seen = f"{status} {json.dumps(answer)[:300] if isinstance(answer, dict) else str(answer)[:120]!r}"
        challenge = {k.lower(): v for k, v in headers.items()}.get("www-authenticate", "")
        if status == 401 and challenge.startswith("Bearer"):
            return UNAUTHENTICATED, seen
        if status == 404 and code == "subscription_not_found":
            return NOT_FOUND, seen
        if status == 403 and code == "forbidden":
            assert answer.get("permission") == route.permission, f"{route}: 403 names {answer.get('permission')}"
            return FORBIDDEN, seen
        assert status != 500, f"{route} as {caller}: the view answered 500: {seen}"
        return THROUGH, seen

    status, headers, text = page_call(stack.url, route.method, path, prepared.cookie, prepared.form)
    words = re.sub(r"<[^>]+>|\s+", " ", text).strip()
    seen = f"{status} {headers.get('location', '')} {words[:300]!r}"
    if status in (302, 303) and headers.get("location", "").startswith("/api/signin?next="):
        return UNAUTHENTICATED, seen
    reference = prepared.not_found_page
    if status == 404 and reference is not None and reference[0] == 404 and (
            _normalised(text, matrix.subscription_id) == _normalised(reference[2], matrix.subscription_id)):
        return NOT_FOUND, seen
    if status == 403 and FORBIDDEN_PAGE in text:
        return FORBIDDEN, seen
    assert not (status == 403 and CSRF_PAGE in text), f"{route} as {caller}: refused for CSRF, not permission: {seen}"
    assert status != 500, f"{route} as {caller}: the view answered 500: {seen}"
    return THROUGH, seen


def test_the_matrix_sees_the_subscription_routes():
    # Guards against a matrix that passes on an empty or shrunken list (a renamed attribute, a
    # changed library): the routes known today must be in it, on both gates.
    routes = subscription_routes()
    names = {r.name for r in routes}
    assert {"subscription_page", "setup_page", "licenses_page", "assign_form", "revoke_form", "reassign_form",
            "api_list_licenses", "api_assign_licenses", "api_revoke_license", "api_audit", "audit_page"} <= names
    assert {"quantity_page", "quantity_form", "billing_page", "billing_portal_form", "cancellation_page",
            "cancellation_form", "undo_cancellation_form", "api_preview_quantity", "api_change_quantity",
            "api_list_invoices", "api_billing_portal", "api_schedule_cancellation", "api_undo_cancellation"} <= names
    assert {"api_e_invoice", "e_invoice_download"} <= names  # under the /invoices rule: billing.manage
    assert {"api_preview_billing_interval", "api_schedule_billing_interval", "api_unschedule_billing_interval",
            "billing_interval_form", "undo_billing_interval_form"} <= names  # billing.manage too
    assert {"merge_page", "merge_form", "api_merge_candidates", "api_start_merge", "api_merge_progress"} <= names
    assert {"api_assignment_job", "assignment_job_page", "assignment_job_progress"} <= names
    assert {r.gate for r in routes} == {"api", "page"}
    undeclared = [str(r) for r in routes if r.permission not in KNOWN_PERMISSIONS]
    assert undeclared == [], "routes whose permission the matrix does not know; extend HOLDS"


def test_every_subscription_route_falls_under_a_rule_of_the_product():
    # Otherwise the matrix could only hold the route to its own declaration: say what it needs.
    uncovered = [str(r) for r in subscription_routes() if product_permission(r) is None]
    assert uncovered == [], "add a rule to PRODUCT_RULES (or an entry to OVERRIDES) for these routes"


def test_the_caller_table_covers_every_permission_of_the_app():
    from services import access

    assert set(access.PERMISSIONS) == KNOWN_PERMISSIONS, "a new permission: add it to HOLDS and KNOWN_PERMISSIONS"


def test_route_as_caller(stack, matrix, route, caller):
    assert route.permission in KNOWN_PERMISSIONS, f"{route}: undeclared or unknown permission"
    needed = product_permission(route) or route.permission
    want = expected(caller, needed)
    storage = stack.storage()
    prepared = prepare(stack, matrix, route, caller)
    before = None
    if want != THROUGH:
        stack.settle()  # webhooks of earlier calls that went through land before the snapshot
        before = snapshot(storage, matrix.subscription_id)
    got, seen = call_route(stack, matrix, route, caller, prepared)
    assert got == want, (f"{route} as {caller}: expected {want} (the product's rule for this route: {needed}), "
                         f"got {got}: {seen}")
    if before is not None:
        changed = differences(before, snapshot(storage, matrix.subscription_id))
        assert changed == [], f"{route} as {caller} was refused ({got}) but storage changed: {changed}"
