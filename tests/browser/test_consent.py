"""Admin consent: the explanation page, Entra's (here: the identity provider's) consent page, the
callback that records it, and the failure paths explained in words an administrator understands."""

import pytest
import requests
from playwright.sync_api import expect

from services import consent
from tests.browser.conftest import sign_in
from tests.licenses_support import idp_person

pytestmark = pytest.mark.browser


def test_admin_grants_consent_and_it_is_recorded_for_their_tenant(page, stack):
    page.goto(f"{stack.url}/api/consent")
    expect(page.get_by_role("heading", name='"Need admin approval" in Outlook')).to_be_visible()
    sign_in(page, stack, "admin@fabrikam.example", next_path="/api/consent")
    page.get_by_role("link", name="Grant admin consent at Microsoft").click()
    # Only the signed-in admin's tenant is offered by the consent endpoint for that tenant.
    page.get_by_role("button", name="Accept as Fabrikam Admin (admin@fabrikam.example)").click()
    page.wait_for_url("**/api/consent/callback*")
    expect(page.get_by_text("admin consent for your organisation is recorded")).to_be_visible()
    admin = idp_person(stack, "admin@fabrikam.example")
    assert consent.granted(stack.storage(), admin.tid) is not None
    page.goto(f"{stack.url}/api/consent")
    expect(page.get_by_text("Admin consent for your organisation was recorded on")).to_be_visible()
def test_declined_consent_is_explained_and_not_recorded(page, stack):
    sign_in(page, stack, "alice@contoso.example", next_path="/api/consent")
    page.get_by_role("link", name="Grant admin consent at Microsoft").click()
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url("**/api/consent/callback*")
    expect(page.get_by_text("Consent was cancelled or declined")).to_be_visible()
    assert page.get_by_text("AADSTS65004").count() >= 1  # the details stay available for IT


def test_callback_with_foreign_state_or_tenant_is_refused(page, stack):
    sign_in(page, stack, "admin@contoso.example", next_path="/api/consent")
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["smm_session"]
    # No consent was started in this session: any state is foreign.
    response = requests.get(
        f"{stack.url}/api/consent/callback",
        params={"admin_consent": "True", "tenant": "33333333-3333-3333-3333-333333333333", "state": "guessed"},
        cookies={"smm_session": cookie},
        timeout=10,
    )
    assert response.status_code == 400 and "does not belong to a consent request" in response.text
    # Not signed in at all.
    response = requests.get(f"{stack.url}/api/consent/callback", params={"state": "x"}, timeout=10)
    assert response.status_code == 400
    assert consent.granted(stack.storage(), "33333333-3333-3333-3333-333333333333") is None


def test_explanations_for_entra_errors():
    assert consent.explain("access_denied",
                           "AADSTS90094: The grant requires admin permission.") == "consent.error.needs_admin"
    assert consent.explain("invalid_request", "AADSTS65001: not consented") == "consent.error.not_granted"
    assert consent.explain("access_denied", "") == "consent.error.declined"
    assert consent.explain("server_error", "something else") == "consent.error.other"
