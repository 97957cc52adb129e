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
# RFC 5321 section 4.5.3.1: a path holds at most 256 octets, so an address at most 254; a local part 64.
MAX_ADDRESS_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64

# The one address grammar: the lists, the delegation forms, the mail model and the seat services all
# decide with it, before anything is written. A dot-atom local part (RFC 5321: letters, digits and
# ! # $ % & ' * + / = ? ^ _ ` { | } ~ -, dots between atoms) and a host name of LDH labels with at
# least one dot whose last label holds a letter. Quoted local parts and IP literals are refused (no
# Microsoft 365 sign-in name has them, so the license check could never match them), and so are
# internationalised addresses: Entra ID sign-in names (UPNs) are ASCII, and an internationalised
# domain works in its ASCII form (xn--...). Addresses are compared lower-cased.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TOP_LABEL = r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_TOP_LABEL}", re.IGNORECASE)

# Why an address is refused (`address_problem`); the lists report it per address.
EMPTY, TOO_LONG, NON_ASCII, MALFORMED = "empty", "too_long", "non_ascii", "malformed"
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
    problems: dict[str, str] = field(default_factory=dict)  # invalid entry -> why (`address_problem`)

    def add(self, raw: str) -> None:
        text = raw.strip()
        if not text:
            return
        named = _DISPLAY_NAME.match(text)
        address = normalise_address(named.group(1) if named else text)
        problem = address_problem(address)
        if problem is not None:
            self.invalid.append(text)
            self.problems[text] = problem
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

    def explanation(self) -> str:
        """What is wrong with the invalid entries, in one sentence per kind of problem."""
        found = set(self.problems.values())
        count = len(self.invalid)
        parts = [f"{count} {'address' if count == 1 else 'addresses'} cannot be used; nothing was assigned."]
        if NON_ASCII in found:
            parts.append("Internationalised addresses (with characters such as ü or é) are not supported: use the "
                         "person's Microsoft 365 sign-in name, which is ASCII.")
        if TOO_LONG in found:
            parts.append(f"An address holds at most {MAX_ADDRESS_LENGTH} characters, the part before the @ at most "
                         f"{MAX_LOCAL_PART_LENGTH}.")
        if MALFORMED in found:
            parts.append("Malformed addresses: check for typos, spaces, quotes or a missing domain.")
        return " ".join(parts)


def address_problem(address: str) -> str | None:
    """None when `address` (trimmed; case does not matter) is usable; otherwise why not: `empty`,
    `too_long`, `non_ascii` (an internationalised address) or `malformed`."""
    if not address:
        return EMPTY
    local, _, _domain = address.rpartition("@")
    if len(address) > MAX_ADDRESS_LENGTH or len(local) > MAX_LOCAL_PART_LENGTH:
        return TOO_LONG
    if not address.isascii():
        return NON_ASCII
    return None if _ADDRESS.fullmatch(address) else MALFORMED


def is_address(address: str) -> bool:
    """Whether `address` (normalised) passes the one grammar."""
    return address_problem(address) is None


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
    rows, column, data_rows = _read_rows(text)
    if not rows:
        raise AddressListError("empty", "the list holds no e-mail addresses")
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


_DELIMITERS = (",", ";", "\t")


def _read_rows(text: str) -> tuple[list[list[str]], int | None, list[list[str]]]:
    """(non-empty rows, the address column, the data rows) under the delimiter (`,` `;` or tab, in that
    order on a tie) that reads the most addresses from the file's start. (csv.Sniffer guesses wrong on a
    short file whose cells hold another delimiter, "Sales; Marketing" say, and on quotes in addresses.)"""
    # Spreadsheets quote with '"' only: a sniffed dialect could take the "'" of an address such as
    # 'o'brien'@... for a quote character and change the address, so only the delimiter varies.
    candidates: list[type[csv.Dialect]] = [type("Delimited", (csv.excel,), {"delimiter": d}) for d in _DELIMITERS]
    best: tuple[int, list[list[str]], int | None, list[list[str]]] | None = None
    for dialect in candidates:
        try:
            rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
        except csv.Error:
            continue
        column, data_rows = _address_column(rows) if rows else (None, rows)
        sample = data_rows[:200]
        score = sum(1 for row in sample if column is not None and column < len(row) and _usable_cell(row[column]))
        if best is None or score > best[0]:
            best = (score, rows, column, data_rows)
    if best is None:
        raise AddressListError("not_csv", "the file is not a CSV text file")
    return best[1], best[2], best[3]


def _usable_cell(cell: str) -> bool:
    text = cell.strip()
    named = _DISPLAY_NAME.match(text)
    return is_address(normalise_address(named.group(1) if named else text))


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


def combine(*lists: AddressList) -> AddressList:
    """One list of several (a pasted list and an uploaded file, say): each address once, in order of
    first occurrence; an address in more than one list is a duplicate like one listed twice."""
    result = AddressList()
    for part in lists:
        for address in part.valid:
            result.add(address)
        for text in part.invalid:
            if text not in result.problems:
                result.invalid.append(text)
                result.problems[text] = part.problems[text]
        result.duplicates += [address for address in part.duplicates if address not in result.duplicates]
    if len(result.valid) + len(result.invalid) > MAX_ADDRESSES:
        raise AddressListError("too_many_addresses", f"at most {MAX_ADDRESSES:,} addresses per request")
    return result


def _require_some(result: AddressList) -> None:
    if not result.valid and not result.invalid:
        raise AddressListError("empty", "the list holds no e-mail addresses")
