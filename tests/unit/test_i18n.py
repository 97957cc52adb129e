import re
from pathlib import Path

import pytest

from services.i18n import catalog, choose_language, translator

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
    texts = set(catalog("en"))
    # "state." ~ value: a prefix whose keys are built at render time; a plural is `key.one` + `key.other`.
    missing = {key for key in used - texts
               if not key.endswith(".") and not {f"{key}.one", f"{key}.other"} <= texts}
    assert missing == set()


def test_a_page_gives_every_plural_its_count():
    texts = set(catalog("en"))
    without = []
    for page in PAGES.glob("*.html"):
        for key, arguments in re.findall(r"""t\(\s*["']([\w.]+)["']([^)]*)\)""", page.read_text()):
            if f"{key}.one" in texts and not re.search(r"\bcount\s*=", arguments):
                without.append(f"{page.name}: {key}")
    assert without == [], "a plural text needs count=N to choose its form"


def test_plurals_come_in_pairs():
    for language in ("en", "de"):
        texts = catalog(language)
        for key in texts:
            base, _, form = key.rpartition(".")
            if form == "one":  # ("other" alone may mean "anything else", e.g. consent.error.other)
                assert f"{base}.other" in texts, f"{language}: {key} without {base}.other"
                assert base not in texts, f"{language}: {base} is both a text and a plural"


@pytest.mark.parametrize("language, one, other", [("en", "1 license", "2 licenses"), ("de", "1 Lizenz", "2 Lizenzen")])
def test_a_count_chooses_the_plural_form(language, one, other):
    t = translator(language)
    assert t("home.pending.quantity", count=1) == one
    assert t("home.pending.quantity", count=2) == other
    assert t("licenses.flash.assigned", count=0).startswith(f"0 {other.split()[1]} ")


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
