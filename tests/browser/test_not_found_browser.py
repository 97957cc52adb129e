"""Addresses the portal does not have: its own "not found" page in the person's language (not the
browser's bare 404), a JSON 404 for the API, and /api leading to the dashboard."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def test_an_unknown_page_answers_the_portals_own_404_in_german(page, stack):
    sign_in(page, stack, "alice@contoso.example")
    page.get_by_role("link", name="Deutsch").click()
    expect(page.get_by_role("heading", name="Meine Abonnements")).to_be_visible()

    response = page.goto(f"{stack.url}/api/subscription/typo")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="Seite nicht gefunden")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "de"
    expect(page.get_by_role("button", name="Abmelden")).to_be_visible()  # the portal's header, signed in
    page.locator("#not-found-links").get_by_role("link", name="Meine Abonnements").click()
    expect(page.get_by_role("heading", name="Meine Abonnements")).to_be_visible()


def test_an_unknown_page_is_in_the_browsers_language_before_sign_in(browser, stack):
    german_browser = browser.new_context(locale="de-DE")
    try:
        page = german_browser.new_page()
        response = page.goto(f"{stack.url}/api/nirgendwo")
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", name="Seite nicht gefunden")).to_be_visible()
        page.get_by_role("link", name="English").click()
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    finally:
        german_browser.close()


def test_api_leads_to_the_dashboard(page, stack):
    response = page.goto(f"{stack.url}/api")
    assert response is not None and response.status == 200
    assert page.url == f"{stack.url}/api/dashboard"


def test_unknown_api_paths_answer_json_and_known_pages_still_work(stack):
    for method in ("GET", "POST", "DELETE"):
        response = requests.request(method, f"{stack.url}/api/v1/no-such-thing", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    # Another method on a page's route is "not found" too (Azure answers 404 for it as well).
    assert requests.post(f"{stack.url}/api/dashboard", timeout=10).status_code == 404
    # The pages and the API's own routes are still theirs (a sign-in redirect is theirs too).
    for path in ("/api/dashboard", "/api/purchase", "/api/consent", "/api/health", "/api/openapi.json",
                 "/api/v1/subscriptions"):
        response = requests.get(f"{stack.url}{path}", timeout=10, allow_redirects=False)
        assert response.status_code != 404, path
