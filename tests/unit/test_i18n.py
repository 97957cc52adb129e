import re
from pathlib import Path

import pytest

from services.i18n import catalog, choose_language

PAGES = Path(__file__).resolve().parents[2] / "templates" / "pages"


def test_german_and_english_have_the_same_texts():
    en, de = catalog("en"), catalog("de")
    assert set(en) - set(de) == set(), "German texts missing"
    assert set(de) - set(en) == set(), "English texts missing"
    for key in en:
        assert re.findall(r"\{(\w+)\}", en[key]) == re.findall(r"\{(\w+)\}", de[key]), key


def test_every_text_a_page_uses_exists():
    used = set()
    for page in PAGES.glob("*.html"):
        used |= set(re.findall(r"""t\(\s*["']([\w.]+)["']""", page.read_text()))
    assert used, "pages use no texts?"
    # "state." ~ value: a prefix whose keys are built at render time.
    missing = {key for key in used - set(catalog("en")) if not key.endswith(".")}
    assert missing == set()


@pytest.mark.parametrize(
    "header, chosen, expected",
    [
        ("de-DE,de;q=0.9,en;q=0.8", None, "de"),
        ("en-US,en;q=0.9", None, "en"),
        ("fr-FR, de;q=0.5, en;q=0.4", None, "de"),
        ("en;q=0.2, de;q=0.8", None, "de"),
        ("fr", None, "en"),
        ("", None, "en"),
        ("de", "en", "en"),
        ("en", "de", "de"),
        ("en", "xx", "en"),
        ("garbage;q=abc", None, "en"),
    ],
)
def test_choose_language(header, chosen, expected):
    assert choose_language(header, chosen) == expected
