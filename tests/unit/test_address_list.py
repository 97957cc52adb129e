"""Parsing pasted address lists and CSV uploads."""

import pytest

from services.address_list import AddressListError, parse_addresses, parse_csv


def test_pasted_text_is_split_normalised_and_deduplicated():
    parsed = parse_addresses(
        " Ann@Contoso.example; ben@contoso.example\n\nann@contoso.example,\tClaire Dupont <C.Dupont@Contoso.example>")
    assert parsed.valid == ["ann@contoso.example", "ben@contoso.example", "c.dupont@contoso.example"]
    assert parsed.duplicates == ["ann@contoso.example"]
    assert parsed.invalid == []


@pytest.mark.parametrize("bad", ["plain", "a@b", "a@@b.example", "a b@c.example", "@c.example", "a@-c.example",
                                 "a@c..example"])
def test_malformed_addresses_are_reported(bad):
    assert parse_addresses([bad, "ok@contoso.example"]).invalid == [bad]


def test_an_empty_list_is_refused():
    with pytest.raises(AddressListError) as err:
        parse_addresses(" ,;\n")
    assert err.value.code == "empty"


def test_csv_with_and_without_header():
    assert parse_csv(b"Name,E-Mail\nAnn,ann@contoso.example\nBen,BEN@contoso.example\n").valid == [
        "ann@contoso.example", "ben@contoso.example"]
    assert parse_csv(b"ann@contoso.example\r\nben@contoso.example\r\n").valid == [
        "ann@contoso.example", "ben@contoso.example"]
    assert parse_csv("\ufeffvorname;mail\nJürgen;j@contoso.example\n".encode("utf-8")).valid == ["j@contoso.example"]


def test_csv_limits_and_non_csv():
    rows = b"email\n" + b"".join(b"u%d@contoso.example\n" % i for i in range(10_000))
    assert len(parse_csv(rows).valid) == 10_000
    with pytest.raises(AddressListError) as err:
        parse_csv(rows + b"one.more@contoso.example\n")
    assert err.value.code == "too_many_rows"
    for data in (b"\x89PNG\r\n\x1a\n\x00\x00\x00", b"PK\x03\x04\x14\x00\x06\x00"):
        with pytest.raises(AddressListError) as err:
            parse_csv(data)
        assert err.value.code in ("not_csv", "empty")
    with pytest.raises(AddressListError) as err:
        parse_csv(b"just,some,words\nno,addresses,here\n")
    assert err.value.code == "not_csv"
