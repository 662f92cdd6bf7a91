"""Read the client list spreadsheet (.xlsx or .csv) that the firm uploads."""

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import PurePath

from bot.domain.rut import RutError, RutProblem, parse_rut

# Rejection reasons (Rejected.reason) and error reasons (ClientListError.reason).
BAD_RUT = "bad_rut"
WRONG_CHECK_DIGIT = "wrong_check_digit"
DUPLICATE = "duplicate"
EMPTY = "empty"
TOO_BIG = "too_big"
UNREADABLE = "unreadable"
NO_RUT_COLUMN = "no_rut_column"
# Note kinds (Note.kind): a value that was dropped from an accepted row.
BAD_PHONE = "bad_phone"
BAD_EMAIL = "bad_email"

# How many non-empty rows may come before the header (a title, a date, a logo's caption).
_HEADER_SEARCH_ROWS = 10
# An .xlsx is a zip: refuse one whose parts unpack to more than this many times the upload
# limit (zipfile never inflates past the sizes the archive declares).
_UNPACKED_FACTOR = 25
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls and password-protected .xlsx: not readable here
_XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv", ""})
_DELIMITERS = (";", ",", "\t")
_REJECTED_VALUE_LIMIT = 80

_FIELDS: dict[str, frozenset[str]] = {
    "rut": frozenset(
        {
            "rut",
            "rutempresa",
            "rutdelaempresa",
            "rutcliente",
            "rutdelcliente",
            "rutcontribuyente",
            "rolunicotributario",
        }
    ),
    "name": frozenset(
        {
            "razonsocial",
            "nombre",
            "nombrecliente",
            "nombredelcliente",
            "cliente",
            "empresa",
            "nombreempresa",
            "nombredelaempresa",
        }
    ),
    "phone": frozenset(
        {
            "telefono",
            "telefonomovil",
            "telefonocelular",
            "telefonocontacto",
            "celular",
            "movil",
            "fono",
            "fonocontacto",
            "whatsapp",
        }
    ),
    "email": frozenset(
        {
            "correo",
            "correoelectronico",
            "correocontacto",
            "email",
            "emailcontacto",
            "mail",
        }
    ),
}

_PHONE_SEPARATORS = re.compile(r"[\s\-().]+")
_CHILEAN_MOBILE = re.compile(r"(?:\+56|0056|56)?(9\d{8})")
# One @, no spaces, nothing that would break a mailto: link, and a dot inside the domain.
_EMAIL = re.compile(r"[^@\s<>()\[\]\\,;:\"?&#%/]+@[^@\s<>()\[\]\\,;:\"?&#%/]+\.[a-z]{2,}", re.I)


@dataclass(frozen=True)
class ClientRow:
    """One accepted client: its spreadsheet line, compact RUT and optional contact data."""

    line: int
    rut: str
    name: str | None
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class Rejected:
    """A row that was not accepted, with why (a reason code) and the value at fault."""

    line: int
    reason: str
    value: str


@dataclass(frozen=True)
class Note:
    """A value dropped from an accepted row (kind 'bad_phone' or 'bad_email')."""

    line: int
    kind: str
    value: str


@dataclass(frozen=True)
class ClientList:
    """What a client list contained: accepted rows, rejected rows and notes."""

    rows: tuple[ClientRow, ...]
    rejected: tuple[Rejected, ...]
    notes: tuple[Note, ...]


class ClientListError(Exception):
    """A client list that cannot be read at all ('too_big', 'unreadable', 'no_rut_column')."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_client_list(
    data: bytes, filename: str, *, max_rows: int = 5000, max_bytes: int = 2_000_000
) -> ClientList:
    """Read an uploaded .xlsx or .csv client list, or raise ClientListError."""
    if len(data) > max_bytes:
        raise ClientListError(TOO_BIG)
    suffix = PurePath(filename).suffix.lower()
    if data.startswith(_OLE_MAGIC):
        raise ClientListError(UNREADABLE)
    if data.startswith(_XLSX_MAGIC):
        _check_unpacked_size(data, max_bytes * _UNPACKED_FACTOR)
        with closing(_xlsx_rows(data)) as rows:
            return _read_rows(rows, max_rows)
    if suffix in _XLSX_SUFFIXES or suffix not in _CSV_SUFFIXES:
        raise ClientListError(UNREADABLE)
    return _read_rows(_csv_rows(_decode(data)), max_rows)


def normalize_phone(text: str) -> str | None:
    """Return a Chilean mobile number as E.164 ('+56912345678'), or None if it is not one."""
    compact = _PHONE_SEPARATORS.sub("", text)
    match = _CHILEAN_MOBILE.fullmatch(compact)
    return f"+56{match.group(1)}" if match else None


def normalize_email(text: str) -> str | None:
    """Return a plausible email address (trimmed), or None if it does not look like one."""
    candidate = text.strip()
    if candidate.lower().startswith("mailto:"):
        candidate = candidate[len("mailto:") :]
    if len(candidate) > 254 or not _EMAIL.fullmatch(candidate):
        return None
    domain = candidate.rsplit("@", 1)[1]
    if domain.startswith(".") or ".." in domain:
        return None
    return candidate


def normalize_header(text: str) -> str:
    """Return a header reduced to lowercase letters and digits, without accents."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def _check_unpacked_size(data: bytes, limit: int) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ClientListError(UNREADABLE) from None
    if unpacked > limit:
        raise ClientListError(TOO_BIG)


def _xlsx_rows(data: bytes) -> Generator[list[str]]:
    """Yield the first sheet's rows as texts; formulas are never evaluated."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_links=False
        )
    except Exception:
        raise ClientListError(UNREADABLE) from None
    try:
        if not workbook.worksheets:
            raise ClientListError(UNREADABLE)
        sheet = workbook.worksheets[0]
        if not hasattr(sheet, "reset_dimensions"):  # a chart sheet
            raise ClientListError(UNREADABLE)
        # Some programs write a wrong size into the file; read what is really there.
        sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        while True:
            try:
                values = next(rows)
            except StopIteration:
                return
            except Exception:
                raise ClientListError(UNREADABLE) from None
            yield [_text(value) for value in values]
    finally:
        workbook.close()


def _text(value: object) -> str:
    """Return a cell value as the text a person would read in the cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _decode(data: bytes) -> str:
    """Decode CSV bytes as Excel and Google Sheets write them."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ClientListError(UNREADABLE) from None
    if b"\x00" in data:
        raise ClientListError(UNREADABLE)
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _csv_rows(text: str) -> Iterator[list[str]]:
    """Yield the CSV's records, split by the delimiter whose header names the most columns."""
    best: tuple[int, int] | None = None
    chosen = _DELIMITERS[0]
    for delimiter in _DELIMITERS:
        found = _find_header(_parse_csv(text, delimiter, limit=_HEADER_SEARCH_ROWS * 5))
        if found is None:
            continue
        _, columns, width = found
        if best is None or (len(columns), width) > best:
            best, chosen = (len(columns), width), delimiter
    yield from _parse_csv(text, chosen, limit=None)


def _parse_csv(text: str, delimiter: str, *, limit: int | None) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for count, record in enumerate(reader):
            if limit is not None and count >= limit:
                return
            yield record
    except csv.Error:
        raise ClientListError(UNREADABLE) from None


def _find_header(rows: Iterator[list[str]]) -> tuple[int, dict[str, int], int] | None:
    """Return (line, field → column, width) of the header among the first non-empty rows.

    Consumes `rows` up to and including the header, so the data rows follow.
    """
    seen = 0
    for line, cells in enumerate(rows, start=1):
        if _blank(cells):
            continue
        columns: dict[str, int] = {}
        for index, cell in enumerate(cells):
            key = normalize_header(cell)
            for field, names in _FIELDS.items():
                if key in names and field not in columns:
                    columns[field] = index
        if "rut" in columns:
            return line, columns, len(cells)
        seen += 1
        if seen >= _HEADER_SEARCH_ROWS:
            return None
    return None


def _blank(cells: list[str]) -> bool:
    return all(not cell.strip() for cell in cells)


def _read_rows(rows: Iterator[list[str]], max_rows: int) -> ClientList:
    found = _find_header(rows)
    if found is None:
        raise ClientListError(NO_RUT_COLUMN)
    header_line, columns, _ = found

    def cell(cells: list[str], field: str) -> str:
        index = columns.get(field)
        if index is None or index >= len(cells):
            return ""
        return " ".join(cells[index].split())

    accepted: list[ClientRow] = []
    rejected: list[Rejected] = []
    notes: list[Note] = []
    seen: set[str] = set()
    count = 0
    for line, cells in enumerate(rows, start=header_line + 1):
        if _blank(cells):
            continue
        count += 1
        if count > max_rows:
            raise ClientListError(TOO_BIG)
        raw_rut = cell(cells, "rut")
        if not raw_rut:
            first = next(" ".join(c.split()) for c in cells if c.strip())
            rejected.append(Rejected(line, EMPTY, _shorten(cell(cells, "name") or first)))
            continue
        try:
            rut = parse_rut(raw_rut)
        except RutError as error:
            reason = WRONG_CHECK_DIGIT if error.problem is RutProblem.WRONG_CHECK_DIGIT else BAD_RUT
            rejected.append(Rejected(line, reason, _shorten(raw_rut)))
            continue
        if rut in seen:
            rejected.append(Rejected(line, DUPLICATE, _shorten(raw_rut)))
            continue
        seen.add(rut)
        phone = email = None
        if raw_phone := cell(cells, "phone"):
            phone = normalize_phone(raw_phone)
            if phone is None:
                notes.append(Note(line, BAD_PHONE, _shorten(raw_phone)))
        if raw_email := cell(cells, "email"):
            email = normalize_email(raw_email)
            if email is None:
                notes.append(Note(line, BAD_EMAIL, _shorten(raw_email)))
        accepted.append(ClientRow(line, rut, cell(cells, "name") or None, phone, email))
    return ClientList(tuple(accepted), tuple(rejected), tuple(notes))


def _shorten(text: str) -> str:
    """Keep a rejected value short enough to quote back to the firm."""
    if len(text) <= _REJECTED_VALUE_LIMIT:
        return text
    return text[: _REJECTED_VALUE_LIMIT - 1] + "…"
