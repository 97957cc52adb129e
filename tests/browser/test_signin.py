"""Dashboard sign-in through the real MSAL flow, language switch, sign-out, and failure paths."""

import re
import urllib.parse

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def test_sign_in_see_my_subscriptions_switch_to_german_and_sign_out(page, stack):
    page.goto(f"{stack.url}/api/dashboard")
    expect(page.get_by_role("heading", name="Licenses for SecureMailMerge")).to_be_visible()
    sign_in(page, stack, "alice@contoso.example")
    expect(page.get_by_role("heading", name="My subscriptions")).to_be_visible()
    expect(page.get_by_text("Alice", exact=False).first).to_be_visible()
    # Empty state links to the purchase page.
    expect(page.get_by_role("link", name="Buy licenses").first).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["smm_session"]  # http://localhost: no __Host- prefix, no Secure
    assert session["httpOnly"] and session["sameSite"] == "Lax" and not session["secure"]

    page.get_by_role("link", name="Deutsch").click()
    expect(page.get_by_role("heading", name="Meine Abonnements")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "de"

    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_role("heading", name="Du bist abgemeldet")).to_be_visible()
    page.goto(f"{stack.url}/api/dashboard")
    expect(page.get_by_role("link", name="Mit Microsoft 365 anmelden").first).to_be_visible()
def test_session_id_is_rotated_at_sign_in(page, stack):
    page.goto(f"{stack.url}/api/purchase")  # starts a pre-sign-in session for the flow
    before = {c["name"]: c["value"] for c in page.context.cookies()}.get("smm_session")
    page.locator("button[name=select_user]", has_text="bob@contoso.example").first.click()
    page.wait_for_url(f"{stack.url}/api/purchase*")
    after = {c["name"]: c["value"] for c in page.context.cookies()}["smm_session"]
    assert before and after and before != after
    # The pre-sign-in session id is dead.
    response = requests.get(f"{stack.url}/api/dashboard", cookies={"smm_session": before}, timeout=10)
    assert "Sign in with Microsoft 365" in response.text


def _callback_url(page, stack, username):
    """Run the flow up to the identity provider's redirect back, without following it."""
    captured = {}

    def on_request(request):
        if "/api/auth/callback" in request.url:
            captured["url"] = request.url

    page.on("request", on_request)
    page.goto(f"{stack.url}/api/signin?next=/api/dashboard")
    page.locator("button[name=select_user]", has_text=username).first.click()
    page.wait_for_url(f"{stack.url}/api/dashboard*")
    return captured["url"]


def test_tampered_state_fails_cleanly(page, stack):
    page.goto(f"{stack.url}/api/signin?next=/api/dashboard")
    picker_url = page.url
    # Change the state the app sent; the identity provider will echo the tampered value back.
    tampered = re.sub(r"state=[^&]+", "state=tampered", picker_url)
    page.goto(tampered)
    page.locator("button[name=select_user]", has_text="alice@contoso.example").first.click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Sign-in did not complete")).to_be_visible()
    assert "/api/auth/callback" in page.url
    # ...and no one is signed in.
    page.goto(f"{stack.url}/api/dashboard")
    expect(page.get_by_role("link", name="Sign in with Microsoft 365").first).to_be_visible()
def test_replayed_code_fails_cleanly(page, stack):
    callback = _callback_url(page, stack, "alice@contoso.example")
    # Replay the same callback in the same browser (the flow was consumed) ...
    response = page.goto(callback)
    assert response.status == 400
    expect(page.get_by_role("heading", name="Sign-in did not complete")).to_be_visible()
    # ... and in another browser session (no flow at all).
    other = requests.get(callback, timeout=10, allow_redirects=False)
    assert other.status_code == 400 and "Sign-in did not complete" in other.text


def test_signout_needs_a_csrf_token(page, stack):
    sign_in(page, stack, "alice@contoso.example")
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["smm_session"]
    refused = requests.post(f"{stack.url}/api/signout", cookies={"smm_session": cookie}, data={"csrf_token": "wrong"},
                            timeout=10)
    assert refused.status_code == 403
    cross_site = requests.post(
        f"{stack.url}/api/signout",
        cookies={"smm_session": cookie},
        data={"csrf_token": "wrong"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )
    assert cross_site.status_code == 403
    # Still signed in.
    page.goto(f"{stack.url}/api/dashboard")
    expect(page.get_by_role("heading", name="My subscriptions")).to_be_visible()
@pytest.mark.parametrize("target", ["https://evil.example", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_external_next_is_ignored(page, stack, target):
    page.goto(f"{stack.url}/api/signin?next={urllib.parse.quote(target, safe='')}")
    page.locator("button[name=select_user]", has_text="alice@contoso.example").first.click()
    page.wait_for_url(f"{stack.url}/api/dashboard*")


def test_my_subscriptions_lists_my_own_license(page, stack):
    from services import seat_assignment
    from tests.builders import purchased_subscription
    from tests.licenses_support import context, idp_person

    owner = idp_person(stack, "admin@contoso.example")
    subscription = purchased_subscription(stack, owner, quantity=3)
    seat_assignment.assign(context(stack, person=owner), subscription.id, ["bob@contoso.example"])
    sign_in(page, stack, "bob@contoso.example")
    row = page.get_by_role("row").filter(has_text="License holder").filter(has_text="admin@contoso.example")
    assert row.count() >= 1
    expect(row.first.get_by_role("cell", name="Your own license")).to_be_visible()
