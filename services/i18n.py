"""English and German: choosing the language and looking up page texts.

Texts live in `translations/<language>.json` with the same keys in both; a test fails when a German
text is missing for an English one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "de")
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"


@cache
def catalog(language: str) -> dict[str, str]:
    texts: dict[str, str] = json.loads((TRANSLATIONS_DIR / f"{language}.json").read_text(encoding="utf-8"))
    return texts


def choose_language(accept_language: str | None, chosen: str | None = None, default: str = "en") -> str:
    """An explicit choice wins; else the browser's preference order (q-values); else the default."""
    if chosen in LANGUAGES:
        return chosen
    ranked = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower().split("-")[0]))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
    return default


def plural_key(key: str, count: int) -> str:
    """`key.one` or `key.other`: English and German both use "one" for exactly 1, "other" else."""
    return f"{key}.{'one' if count == 1 else 'other'}"


def has_text(key: str, count: object = None) -> bool:
    """Whether the catalogues hold a text for `key`, or with an int `count` its plural forms (both
    languages have the same keys, tests/unit/test_i18n.py)."""
    texts = catalog("en")
    if key in texts:
        return True
    return isinstance(count, int) and not isinstance(count, bool) and plural_key(key, count) in texts


def translator(language: str) -> Callable[..., str]:
    texts = catalog(language)

    def t(key: str, **values: object) -> str:
        count = values.get("count")
        if key not in texts and isinstance(count, int) and not isinstance(count, bool):
            # Real plurals: a text kept as `key.one` / `key.other` is chosen by `count`.
            key = plural_key(key, count)
        text = texts.get(key) or catalog("en").get(key) or key
        return text.format(**values) if values else text

    return t


_CURRENCY_SYMBOLS = {"eur": "€", "usd": "$", "gbp": "£", "chf": "CHF"}


def format_money(amount_minor: int, currency: str, language: str) -> str:
    """12345, "eur" -> "123.45 €" (en) / "123,45 €" (de); amounts are in the smallest unit."""
    major, minor = divmod(abs(int(amount_minor)), 100)
    grouped = f"{major:,}".replace(",", "." if language == "de" else ",")
    decimal = "," if language == "de" else "."
    sign = "-" if amount_minor < 0 else ""
    symbol = _CURRENCY_SYMBOLS.get(currency.lower(), currency.upper())
    return f"{sign}{grouped}{decimal}{minor:02d} {symbol}"
