"""VAT identification numbers as buyers type them (PRODUCT.md 2.13: business details and VAT ID for
EU reverse charge): checked and normalised before anything is sent to Stripe.

The country-specific rules (length, check digit) come from python-stdnum; this module decides which
countries are accepted, how a number is written when it is stored or sent, and which Stripe tax id
type it becomes. EU member states give `eu_vat` (Greece is written "EL...", as VIES and Stripe write
it; Northern Ireland's "XI..." is `eu_vat` too, for goods under the Windsor Framework), the United
Kingdom `gb_vat`, Switzerland `ch_vat`, Norway `no_vat`. Values follow Stripe's documented examples for
each type: "DE136695976", "GB980780684", "CHE-107.787.577 MWST", "995525828MVA".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# The longest accepted form as typed, "CHE-107.787.577 MWST", has 20 characters. Anything longer is
# refused before any parsing, so the number rules never see a pasted paragraph.
MAX_LENGTH = 20

# EU member states by ISO 3166-1 alpha-2 (Greece as GR, although its VAT numbers start with EL).
EU_COUNTRIES: frozenset[str] = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT",
    "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})

COUNTRY, FORMAT, CHECKSUM = "vat_id.country", "vat_id.format", "vat_id.checksum"

# What a buyer may type between the parts: "DE 136.695-976", "CHE-107.787.577 MWST".
_SEPARATORS = re.compile(r"[\s.\-/]+")
# A country's rule (python-stdnum's validate): the number in its normal form, or a ValidationError.
_Rule = Callable[[str], object]
# Stripe's own no_vat form has no country prefix ("995525828MVA"); accept it back as Norway.
_NORWAY_WITHOUT_PREFIX = re.compile(r"\d{9}MVA")


class InvalidVatId(ValueError):
    """The text is not a usable VAT ID; `code` says why (`vat_id.country`, `vat_id.format`,
    `vat_id.checksum`) for programs and translations, the message says it in English."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VatId:
    value: str  # normalised, as stored and sent to Stripe: "DE136695976", "EL094259216"
    country: str  # ISO 3166-1 alpha-2: "DE", "GR" for an EL number, "GB" for XI
    stripe_type: str  # Stripe tax id type: "eu_vat", "gb_vat", "ch_vat", "no_vat"


def parse_vat_id(raw: str) -> VatId:
    """The VAT ID in `raw` (spaces, dots, dashes and case do not matter), or InvalidVatId."""
    text = raw.strip()
    if len(text) > MAX_LENGTH:
        raise InvalidVatId(FORMAT, f"A VAT ID has at most {MAX_LENGTH} characters.")
    compact = _SEPARATORS.sub("", text).upper()
    if not compact:
        raise InvalidVatId(FORMAT, "The VAT ID is empty.")
    if _NORWAY_WITHOUT_PREFIX.fullmatch(compact):
        compact = "NO" + compact
    prefix = compact[:2]
    if not (prefix.isascii() and prefix.isalpha()):
        raise InvalidVatId(COUNTRY, "A VAT ID starts with its country code, for example DE or ATU.")
    if prefix == "GR":
        compact = "EL" + compact[2:]
        prefix = "EL"
    if prefix == "EL" or prefix == "XI" or prefix in EU_COUNTRIES:
        return _eu(compact)
    if prefix == "GB":
        return _checked(_gb, compact, "GB", "gb_vat")
    if prefix == "CH":
        return _checked(_ch, compact, "CH", "ch_vat")
    if prefix == "NO":
        return _checked(_no, compact, "NO", "no_vat")
    raise InvalidVatId(
        COUNTRY,
        f"VAT IDs from {prefix} are not accepted; use one from an EU member state, the United Kingdom, "
        "Switzerland or Norway.",
    )


def _eu(compact: str) -> VatId:
    from stdnum.eu import vat  # a cold start of the license check does not need python-stdnum

    value = _checked_value(vat.validate, compact)
    prefix = value[:2]
    country = {"EL": "GR", "XI": "GB"}.get(prefix, prefix)
    return VatId(value=value, country=country, stripe_type="eu_vat")


def _gb(compact: str) -> str:
    from stdnum.gb import vat

    return "GB" + str(vat.validate(compact))


def _ch(compact: str) -> str:
    from stdnum.ch import vat

    return str(vat.format(vat.validate(compact)))


def _no(compact: str) -> str:
    from stdnum.no import mva

    if not compact.endswith("MVA"):
        # stdnum reports a missing suffix as a bad format; say what is missing.
        raise InvalidVatId(FORMAT, "A Norwegian VAT ID ends with MVA, for example NO 995 525 828 MVA.")
    return str(mva.validate(compact))


def _checked(rule: _Rule, compact: str, country: str, stripe_type: str) -> VatId:
    return VatId(value=_checked_value(rule, compact), country=country, stripe_type=stripe_type)


def _checked_value(rule: _Rule, compact: str) -> str:
    from stdnum.exceptions import InvalidChecksum, ValidationError

    # The prefix was checked before, so every other ValidationError (length, format, a part such as
    # a region code) is about the number's format.
    try:
        return str(rule(compact))
    except InvalidChecksum:
        raise InvalidVatId(CHECKSUM, "The VAT ID's check digit is wrong: check it for a typo.") from None
    except ValidationError:
        raise InvalidVatId(
            FORMAT, f"The VAT ID does not have the format of a {compact[:2]} VAT ID (number of digits or letters)."
        ) from None

