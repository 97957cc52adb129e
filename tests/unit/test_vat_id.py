"""VAT IDs as buyers type them: real numbers (python-stdnum's documented examples) pass and are
normalised; wrong check digits, unknown prefixes and oversized input are refused with a code."""

import pytest

from services.i18n import catalog
from services.vat_id import EU_COUNTRIES, InvalidVatId, VatId, parse_vat_id


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("DE136695976", VatId("DE136695976", "DE", "eu_vat")),
        ("de 136.695-976", VatId("DE136695976", "DE", "eu_vat")),
        ("  DE 136 695 976 ", VatId("DE136695976", "DE", "eu_vat")),
        ("ATU13585627", VatId("ATU13585627", "AT", "eu_vat")),
        ("atu 57194903", VatId("ATU57194903", "AT", "eu_vat")),
        ("BE697449992", VatId("BE0697449992", "BE", "eu_vat")),
        ("FR 61 954 506 077", VatId("FR61954506077", "FR", "eu_vat")),
        # Greece: ISO code GR, VAT prefix EL; either prefix is accepted, EL is what is stored.
        ("EL094259216", VatId("EL094259216", "GR", "eu_vat")),
        ("GR094259216", VatId("EL094259216", "GR", "eu_vat")),
        # Northern Ireland (goods): an EU VAT number of the United Kingdom.
        ("XI 980 7806 84", VatId("XI980780684", "GB", "eu_vat")),
        ("GB 980 7806 84", VatId("GB980780684", "GB", "gb_vat")),
        ("CHE-107.787.577 IVA", VatId("CHE-107.787.577 IVA", "CH", "ch_vat")),
        ("che107787577mwst", VatId("CHE-107.787.577 MWST", "CH", "ch_vat")),
        ("NO 995 525 828 MVA", VatId("995525828MVA", "NO", "no_vat")),
    ],
)
def test_valid_numbers_are_normalised(raw, expected):
    assert parse_vat_id(raw) == expected


@pytest.mark.parametrize("raw", ["DE136695976", "EL094259216", "GB980780684", "CHE-107.787.577 MWST",
                                 "NO 995 525 828 MVA"])
def test_a_normalised_value_parses_to_itself(raw):
    value = parse_vat_id(raw).value
    assert parse_vat_id(value).value == value


@pytest.mark.parametrize(
    "raw, code",
    [
        ("DE136695977", "vat_id.checksum"),
        ("ATU13585626", "vat_id.checksum"),
        ("GB 802 3117 81", "vat_id.checksum"),
        ("CHE-107.787.578 IVA", "vat_id.checksum"),
        ("NO 995 525 829 MVA", "vat_id.checksum"),
        ("DE13669597", "vat_id.format"),
        ("DE1366959761", "vat_id.format"),
        ("ATX13585627", "vat_id.format"),
        ("NO 995 525 828", "vat_id.format"),
        ("", "vat_id.format"),
        ("   ", "vat_id.format"),
        ("US123456789", "vat_id.country"),
        ("QQ136695976", "vat_id.country"),
        ("136695976", "vat_id.country"),
        ("ÄT13585627", "vat_id.country"),
    ],
)
def test_invalid_numbers_are_refused_with_a_code(raw, code):
    with pytest.raises(InvalidVatId) as refused:
        parse_vat_id(raw)
    assert refused.value.code == code
    assert str(refused.value)  # an English message for people, besides the code for programs


def test_the_message_names_the_unknown_country():
    with pytest.raises(InvalidVatId, match="US"):
        parse_vat_id("US123456789")


def test_more_than_20_characters_are_refused_before_parsing():
    with pytest.raises(InvalidVatId) as refused:
        parse_vat_id("DE 136 695 976 ......")  # 21 characters, a valid number inside
    assert refused.value.code == "vat_id.format"
    assert "20" in str(refused.value)
    with pytest.raises(InvalidVatId):
        parse_vat_id("x" * 100_000)


def test_invalid_vat_id_is_a_value_error():
    assert issubclass(InvalidVatId, ValueError)


def test_eu_countries_are_the_27_member_states_by_iso_code():
    assert len(EU_COUNTRIES) == 27
    assert {"DE", "AT", "GR", "FR", "IE"} <= EU_COUNTRIES
    assert not {"EL", "GB", "XI", "CH", "NO"} & EU_COUNTRIES


def test_every_member_state_has_a_vat_rule():
    # An unknown-prefix answer for a member state would mean a gap between EU_COUNTRIES and stdnum.
    for country in EU_COUNTRIES:
        prefix = "EL" if country == "GR" else country
        with pytest.raises(InvalidVatId) as refused:
            parse_vat_id(prefix + "0")
        assert refused.value.code != "vat_id.country", country


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_code_has_a_text(language):
    texts = catalog(language)
    for code in ("vat_id.country", "vat_id.format", "vat_id.checksum"):
        assert texts[code]
    if language == "de":
        assert texts["vat_id.checksum"].startswith("Die ")


def test_python_stdnum_is_imported_only_when_a_number_is_checked():
    # The purchase handlers import this module; the license check's cold start must not pay for stdnum.
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import sys, services.vat_id as v; print('stdnum' in sys.modules); v.parse_vat_id('DE136695976'); "
             "print('stdnum' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "True"]
