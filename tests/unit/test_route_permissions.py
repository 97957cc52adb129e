"""Every route that touches a subscription passes the gate and declares the permission it needs.

The real app's functions are enumerated (`function_app.app.get_functions()`), in a child process
like the cold-start test: importing the app installs process-wide logging, and the Functions
library lets `get_functions()` run only once per app.
"""

from __future__ import annotations

import pytest

from services import access
from tests import app_routes

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def http_functions() -> list[dict]:
    return list(app_routes.http_functions())


def _subscription_routes(functions: list[dict]) -> list[dict]:
    return [f for f in functions if app_routes.is_subscription_route(f["route"])]


def test_the_enumeration_sees_the_subscription_routes(http_functions):
    # Guards this file against passing on an empty list (a renamed attribute, a changed library).
    names = {f["name"] for f in _subscription_routes(http_functions)}
    assert {"subscription_page", "licenses_page", "assign_form", "api_list_licenses", "api_assign_licenses",
            "api_audit", "audit_page"} <= names
    # The e-invoice downloads (billing.manage): the JSON API's and the billing page's links.
    assert {"api_e_invoice", "e_invoice_download"} <= names


def test_every_subscription_route_declares_a_permission_through_the_gate(http_functions):
    undeclared = [f"{f['name']} ({'/'.join(f['methods'])} {f['route']})"
                  for f in _subscription_routes(http_functions) if f["permission"] not in access.PERMISSIONS]
    assert undeclared == [], "subscription routes without a permission; put @gate.api/@gate.page on them"


def test_no_route_takes_a_subscription_id_outside_the_gated_prefixes(http_functions):
    # A route like "reports/{subscription_id}" would escape the check above.
    stray = [f["name"] for f in http_functions if "{subscription_id}" in f["route"]
             and f not in _subscription_routes(http_functions)]
    assert stray == []


def test_api_routes_use_the_bearer_gate_and_pages_the_session_gate(http_functions):
    wrong = []
    for f in _subscription_routes(http_functions):
        expected = "api" if f["route"].strip("/").startswith("v1/") else "page"
        if f["gate"] != expected:
            wrong.append((f["name"], f["gate"], expected))
    assert wrong == []


def test_state_changing_routes_need_more_than_viewing_and_forms_check_csrf(http_functions):
    for f in _subscription_routes(http_functions):
        if STATE_CHANGING & set(f["methods"]):
            assert f["permission"] != access.SUBSCRIPTION_VIEW, f["name"]
            if f["gate"] == "page":
                assert f["csrf"] is True, f"{f['name']}: a state-changing form must check the CSRF token"


def test_finance_settings_need_billing_manage_and_the_form_checks_csrf(http_functions):
    # PRODUCT.md capability 4: billing details belong to `billing.manage` (the owner holds it too).
    by_name = {f["name"]: f for f in http_functions}
    expected = {
        "api_billing_settings": ("GET", "v1/subscriptions/{subscription_id}/billing-settings", "api"),
        "api_change_billing_settings": ("PUT", "v1/subscriptions/{subscription_id}/billing-settings", "api"),
        "billing_settings_form": ("POST", "subscriptions/{subscription_id}/billing/settings", "page"),
    }
    for name, (method, route, gate) in expected.items():
        found = by_name[name]
        assert (found["methods"], found["route"], found["gate"], found["permission"]) == (
            [method], route, gate, access.BILLING_MANAGE), name
    assert by_name["billing_settings_form"]["csrf"] is True


def test_the_billing_interval_needs_billing_manage_and_its_forms_check_csrf(http_functions):
    # PRODUCT.md 2.13 annual billing, switched at the next renewal: part of billing (`billing.manage`).
    by_name = {f["name"]: f for f in http_functions}
    expected = {
        "api_preview_billing_interval": ("POST", "v1/subscriptions/{subscription_id}/billing-interval/preview", "api"),
        "api_schedule_billing_interval": ("PUT", "v1/subscriptions/{subscription_id}/billing-interval", "api"),
        "api_unschedule_billing_interval": ("DELETE", "v1/subscriptions/{subscription_id}/billing-interval", "api"),
        "billing_interval_form": ("POST", "subscriptions/{subscription_id}/billing/interval", "page"),
        "undo_billing_interval_form": ("POST", "subscriptions/{subscription_id}/billing/interval/undo", "page"),
    }
    for name, (method, route, gate) in expected.items():
        found = by_name[name]
        assert (found["methods"], found["route"], found["gate"], found["permission"]) == (
            [method], route, gate, access.BILLING_MANAGE), name
        assert found["csrf"] is (gate == "page"), name
