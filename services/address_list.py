"""Lists of e-mail addresses as owners hand them over: pasted text or an uploaded CSV file.

Addresses are normalised (whitespace, case) and validated; duplicates within the list are reported
once, not counted twice. What happens to each valid address (assigned, already licensed) is decided
by license assignment, not here.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from services.seat import normalise_address

# A subscription holds at most 10,000 seats, so no list needs more rows than that.
MAX_ADDRESSES = 10_000

# Deliberately plain: a dot-atom local part and a host name with at least one dot. Addresses the
# license check could never match (quoted local parts, IP literals) are refused up front.
_ADDRESS = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_SEPARATORS = re.compile(r"[,;\r\n\t]+")
# "Claire Dupont <claire.dupont@contoso.example>", as copied from Outlook.
_DISPLAY_NAME = re.compile(r"^[^<>]*<([^<>]+)>$")
_HEADER_NAMES = {"email", "e-mail", "mail", "address", "emailaddress", "e-mail address", "email address", "upn"}


class AddressListError(ValueError):
    """The list as a whole cannot be used (answer 400); `code` names the reason for programs."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class AddressList:
    valid: list[str] = field(default_factory=list)  # normalised, first occurrence order, unique
    invalid: list[str] = field(default_factory=list)  # as given (trimmed)
    duplicates: list[str] = field(default_factory=list)  # normalised, each listed once

    def add(self, raw: str) -> None:
        text = raw.strip()
        if not text:
            return
        named = _DISPLAY_NAME.match(text)
        address = normalise_address(named.group(1) if named else text)
        if len(address) > 254 or not is_address(address):
            self.invalid.append(text)
        elif address in self._seen:
            if address not in self.duplicates:
                self.duplicates.append(address)
        else:
            self._seen.add(address)
            self.valid.append(address)
        if len(self.valid) + len(self.invalid) > MAX_ADDRESSES:
            raise AddressListError("too_many_addresses", f"at most {MAX_ADDRESSES:,} addresses per request")

    def __post_init__(self) -> None:
        self._seen: set[str] = set(self.valid)


def is_address(address: str) -> bool:
    return bool(_ADDRESS.match(address))


def parse_addresses(items: list[str] | str) -> AddressList:
    """Addresses from a JSON list or pasted text (comma, semicolon, tab or newline separated)."""
    parts = _SEPARATORS.split(items) if isinstance(items, str) else [str(i) for i in items]
    if len(parts) > MAX_ADDRESSES * 2:
        raise AddressListError("too_many_addresses", f"at most {MAX_ADDRESSES:,} addresses per request")
    result = AddressList()
    for part in parts:
        for piece in _SEPARATORS.split(part):
            result.add(piece)
    _require_some(result)
    return result


def parse_csv(data: bytes) -> AddressList:
    """Addresses from a CSV file, with or without a header row, at most 10,000 rows.

    With a header, the column named like "email" is used; otherwise the first column holding an
    address in the first row.
    """
    if b"\x00" in data[:4096]:
        raise AddressListError("not_csv", "the file is not a CSV text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")  # Excel's "CSV" on Western European Windows
        except UnicodeDecodeError:
            raise AddressListError("not_csv", "the file is not a CSV text file (UTF-8 expected)") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    if not rows:
        raise AddressListError("empty", "the list holds no e-mail addresses")
    column, data_rows = _address_column(rows)
    if len(data_rows) > MAX_ADDRESSES:
        raise AddressListError(
            "too_many_rows", f"the file has {len(data_rows):,} rows; at most {MAX_ADDRESSES:,} are allowed per upload"
        )
    if column is None:
        raise AddressListError("not_csv", "no column of e-mail addresses found in the file")
    result = AddressList()
    for row in data_rows:
        result.add(row[column] if column < len(row) else "")
    _require_some(result)
    return result


def _address_column(rows: list[list[str]]) -> tuple[int | None, list[list[str]]]:
    header = [cell.strip().lower() for cell in rows[0]]
    for index, name in enumerate(header):
        if name in _HEADER_NAMES:
            return index, rows[1:]
    for index, cell in enumerate(rows[0]):
        if "@" in cell:
            return index, rows
    # A header we do not know: the first column with an address in the next row.
    if len(rows) > 1:
        for index, cell in enumerate(rows[1]):
            if "@" in cell:
                return index, rows[1:]
    return None, rows[1:]


def _require_some(result: AddressList) -> None:
    if not result.valid and not result.invalid:
        raise AddressListError("empty", "the list holds no e-mail addresses")
