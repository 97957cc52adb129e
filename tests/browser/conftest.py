"""A real browser (Debian's Chromium driven by Playwright) against the running stack.

Sign-in goes through the real MSAL auth-code flow: the app redirects to the local identity
provider, whose account picker the test clicks like a person would.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The identity provider's certificate is self-signed: the browser is told to accept it,
        # the app itself verifies it through REQUESTS_CA_BUNDLE.
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _page_in(browser, locale: str):
    context = browser.new_context(ignore_https_errors=True, locale=locale)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def page(browser):
    yield from _page_in(browser, "en-US")


@pytest.fixture
def german_page(browser):
    """A page in a browser whose language is German (de-DE)."""
    yield from _page_in(browser, "de-DE")


def sign_in(page, stack, username: str, next_path: str = "/api/dashboard") -> None:
    """Sign in as `username` (its preferred_username at the identity provider) and land on next_path."""
    page.goto(f"{stack.url}/api/signin?next={next_path}")
    page.locator("button[name=select_user]", has_text=username).first.click()
    page.wait_for_url(f"{stack.url}{next_path}*")
