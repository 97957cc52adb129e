"""The portal's header on a phone (390 px) and a laptop (1280 px), in English and German: nothing is
cut off or scrolls sideways, the navigation keeps to one line on the laptop, and the language choice
reads "English | Deutsch" (not "ENDE") with the current language marked."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from standins.identity_provider import client as idp
from standins.identity_provider.directory import CONTOSO_ID
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}

# Every link and button of the header that lies (partly) outside the viewport, and the page's widths.
_OVERFLOW = """() => {
  const width = window.innerWidth;
  const outside = [];
  for (const el of document.querySelectorAll('header a, header button')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.left < 0 || box.right > width) {
      outside.push(`${el.textContent.trim()} [${Math.round(box.left)}..${Math.round(box.right)}]`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, outside};
}"""
# The top of each item of the main navigation (all equal: one line).
_NAV_TOPS = """(label) => [...document.querySelectorAll(`header nav[aria-label="${label}"] > ul > li`)]
  .map(li => Math.round(li.getBoundingClientRect().top))"""


def _long_named_user(stack) -> str:
    """A person whose display name is long, as real ones are (the header shows it)."""
    handle = uuid.uuid4().hex[:8]
    user = idp.add_user(stack.identity_provider.url, CONTOSO_ID,
                        f"Maximiliane Schwarzenberger-Oberhausen {handle}", f"header-{handle}@contoso.example",
                        verify=str(stack.identity_provider.ca_bundle))
    return user["preferred_username"]


def test_header_fits_phone_and_laptop_in_both_languages(page, stack):
    sign_in(page, stack, _long_named_user(stack))
    for language, nav_label, heading in (("en", "Main", "My subscriptions"),
                                         ("de", "Hauptnavigation", "Meine Abonnements")):
        if language == "de":
            page.get_by_role("link", name="Deutsch").click()
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        for name, size in VIEWPORTS.items():
            page.set_viewport_size(size)
            measured = page.evaluate(_OVERFLOW)
            where = f"{language} {name}"
            assert measured["scrollWidth"] <= measured["innerWidth"], f"{where}: the page scrolls sideways"
            assert measured["outside"] == [], f"{where}: header items cut off"
            if name == "laptop":
                tops = page.evaluate(_NAV_TOPS, nav_label)
                assert len(tops) >= 3 and len(set(tops)) == 1, f"{where}: the navigation wraps: {tops}"


def test_language_choice_names_both_languages_and_marks_the_current_one(page, stack):
    sign_in(page, stack, "alice@contoso.example")
    english, german = page.get_by_role("link", name="English"), page.get_by_role("link", name="Deutsch")
    expect(english).to_have_attribute("aria-current", "true")
    expect(english).to_have_attribute("lang", "en")
    expect(german).to_have_attribute("lang", "de")
    assert german.get_attribute("aria-current") is None
    assert "ENDE" not in page.locator("header").inner_text().replace(" ", "").replace("\n", "")

    german.click()
    expect(page.get_by_role("heading", name="Meine Abonnements")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "de"
    expect(page.get_by_role("link", name="Deutsch")).to_have_attribute("aria-current", "true")
    assert page.get_by_role("link", name="English").get_attribute("aria-current") is None
    expect(page.get_by_role("navigation", name="Sprache")).to_be_visible()
