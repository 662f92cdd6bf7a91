"""Excel workbooks for the firm: the authorizations export and the answer to an upload."""

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bot.domain.rut import RutError, format_rut, parse_rut

if TYPE_CHECKING:
    from openpyxl import Workbook
    from openpyxl.cell.cell import Cell, MergedCell
    from openpyxl.worksheet.worksheet import Worksheet

# How a field is written: free text, a code kept as text (RUT, phone, id), a real Excel date,
# a number, or a clickable link.
Kind = Literal["text", "rut", "code", "datetime", "count", "link"]

# The keys read from each authorization mapping (dataclasses.asdict(Authorization) plus a
# "state" text), in column order. Other keys are ignored.
AUTHORIZATION_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("company_rut", "rut"),
    ("client_name", "text"),
    ("invited_name", "text"),
    ("client_username", "code"),
    ("client_user_id", "code"),
    ("step", "count"),
    ("state", "text"),
    ("started_at", "datetime"),
    ("last_activity_at", "datetime"),
    ("completed_at", "datetime"),
    ("verified_at", "datetime"),
    ("verified_by", "text"),
    ("reminders_sent", "count"),
    ("opted_out_at", "datetime"),
    ("blocked_at", "datetime"),
)
# The keys read from each event mapping: Event's fields, the company, and "what" (the
# event told in words).
EVENT_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("company_rut", "rut"),
    ("at", "datetime"),
    ("what", "text"),
    ("step", "count"),
    ("actor", "text"),
)
# The keys read from each invitation row; "whatsapp" and "mailto" are built here.
INVITATION_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("rut", "rut"),
    ("name", "text"),
    ("state", "text"),
    ("deep_link", "link"),
    ("invitation", "text"),
    ("phone", "code"),
    ("whatsapp", "link"),
    ("email", "code"),
    ("mailto", "link"),
)

DATETIME_FORMAT = "dd-mm-yyyy hh:mm"
DATE_FORMAT = "dd-mm-yyyy"
COUNT_FORMAT = "0"
MAX_COLUMN_WIDTH = 50
# Excel refuses (and "repairs" away) hyperlinks longer than this.
MAX_URL_LENGTH = 2079
_MAX_CELL_TEXT = 32_767
# One cell to write: how, the value, and the hyperlink target of a "link" cell.
_Cell = tuple[Kind, object, str | None]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SHEET_FORBIDDEN = str.maketrans({c: " " for c in "[]:*?/\\"})


def _require(titles: Mapping[str, str], fields: tuple[tuple[str, Kind], ...]) -> None:
    missing = [key for key, _ in fields if key not in titles]
    if missing:
        raise ValueError(f"column titles missing for: {', '.join(missing)}")


@dataclass(frozen=True)
class AuthorizationColumns:
    """Sheet names and column titles (key → title) of the authorizations workbook."""

    authorizations_sheet: str
    events_sheet: str
    titles: Mapping[str, str]

    def __post_init__(self) -> None:
        _require(self.titles, AUTHORIZATION_FIELDS + EVENT_FIELDS)

    @classmethod
    def from_lookup(
        cls, lookup: Callable[[str], str], prefix: str = "xlsx_"
    ) -> "AuthorizationColumns":
        """Build the titles from texts named prefix + key (e.g. the guide's messages)."""
        keys = dict.fromkeys(key for key, _ in AUTHORIZATION_FIELDS + EVENT_FIELDS)
        return cls(
            authorizations_sheet=lookup(f"{prefix}authorizations_sheet"),
            events_sheet=lookup(f"{prefix}events_sheet"),
            titles={key: lookup(f"{prefix}{key}") for key in keys},
        )


@dataclass(frozen=True)
class InvitationColumns:
    """Sheet name, column titles, link texts and email subject of the invitations workbook."""

    sheet: str
    titles: Mapping[str, str]
    whatsapp_label: str
    email_label: str
    email_subject: str

    def __post_init__(self) -> None:
        _require(self.titles, INVITATION_FIELDS)

    @classmethod
    def from_lookup(
        cls, lookup: Callable[[str], str], prefix: str = "xlsx_invitations_"
    ) -> "InvitationColumns":
        """Build the texts from texts named prefix + key (e.g. the guide's messages)."""
        return cls(
            sheet=lookup(f"{prefix}sheet"),
            titles={key: lookup(f"{prefix}{key}") for key, _ in INVITATION_FIELDS},
            whatsapp_label=lookup(f"{prefix}whatsapp_label"),
            email_label=lookup(f"{prefix}email_label"),
            email_subject=lookup(f"{prefix}email_subject"),
        )


def sheet_text(value: object) -> str:
    """Return the text as typed, minus what XML cannot carry, cut to Excel's cell limit."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", str(value))[:_MAX_CELL_TEXT]


def looks_like_formula(text: str) -> bool:
    """Tell whether Excel would take `text`, typed in, as a formula (names come from strangers)."""
    return text[:1] in _FORMULA_STARTS


def whatsapp_link(phone: str, text: str) -> str:
    """Return a wa.me link that opens a chat with `phone` (E.164) with `text` typed in."""
    digits = "".join(c for c in phone if c.isdigit())
    link = f"https://wa.me/{digits}?text={quote(text, safe='')}"
    return link if len(link) <= MAX_URL_LENGTH else f"https://wa.me/{digits}"


def mailto_link(email: str, subject: str, body: str) -> str:
    """Return a mailto: link with subject and body filled in (RFC 6068)."""
    address = quote(email.strip(), safe="@")
    head = f"mailto:{address}?subject={quote(subject, safe='')}"
    lines = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    link = f"{head}&body={quote(lines, safe='')}"
    return link if len(link) <= MAX_URL_LENGTH else head


def authorizations_workbook(
    authorizations: Sequence[Mapping[str, object]],
    events: Sequence[Mapping[str, object]],
    *,
    columns: AuthorizationColumns,
    tz: ZoneInfo,
) -> bytes:
    """Return an .xlsx with one sheet of authorizations and one of their events."""
    from openpyxl import Workbook

    workbook = Workbook()
    first = workbook.active
    assert first is not None
    workbook.remove(first)
    for title, fields, records in (
        (columns.authorizations_sheet, AUTHORIZATION_FIELDS, authorizations),
        (columns.events_sheet, EVENT_FIELDS, events),
    ):
        sheet = workbook.create_sheet(_sheet_title(title))
        cells: list[list[_Cell]] = [
            [(kind, record.get(key), None) for key, kind in fields] for record in records
        ]
        _fill(sheet, [columns.titles[key] for key, _ in fields], cells, tz)
    return _save(workbook)


def invitations_workbook(
    rows: Sequence[Mapping[str, object]], *, columns: InvitationColumns
) -> bytes:
    """Return an .xlsx answering an upload: each client's state, link and invitation."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = _sheet_title(columns.sheet)
    cells: list[list[_Cell]] = []
    for row in rows:
        invitation = _optional_text(row.get("invitation"))
        phone = _optional_text(row.get("phone"))
        email = _optional_text(row.get("email"))
        deep_link = _optional_text(row.get("deep_link"))
        whatsapp = mailto = None
        if phone and invitation:
            whatsapp = whatsapp_link(phone, invitation)
        if email and invitation:
            mailto = mailto_link(email, columns.email_subject, invitation)
        cells.append(
            [
                ("rut", row.get("rut"), None),
                ("text", row.get("name"), None),
                ("text", row.get("state"), None),
                ("link", deep_link, deep_link),
                ("text", invitation, None),
                ("code", phone, None),
                ("link", columns.whatsapp_label if whatsapp else None, whatsapp),
                ("code", email, None),
                ("link", columns.email_label if mailto else None, mailto),
            ]
        )
    _fill(sheet, [columns.titles[key] for key, _ in INVITATION_FIELDS], cells, None)
    return _save(workbook)


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _sheet_title(title: str) -> str:
    """Return a sheet name Excel accepts: no []:*?/\\, at most 31 characters."""
    cleaned = " ".join(title.translate(_SHEET_FORBIDDEN).split()).strip("'")[:31].rstrip()
    return cleaned or "Hoja"


def _fill(
    sheet: "Worksheet",
    header: list[str],
    rows: list[list[_Cell]],
    tz: ZoneInfo | None,
) -> None:
    """Write a bold frozen header, typed cells, an autofilter and fitting column widths."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    bold = Font(name="Calibri", size=11, bold=True)  # the workbook's own font, in bold
    top = Alignment(vertical="top")
    wrapped = Alignment(vertical="top", wrap_text=True)
    widths = [_width(title) for title in header]
    for column, title in enumerate(header, start=1):
        heading = sheet.cell(row=1, column=column)
        _write_text(heading, sheet_text(title))
        heading.font = bold
    for line, row in enumerate(rows, start=2):
        for column, (kind, value, url) in enumerate(row, start=1):
            if value is None or value == "":
                continue
            cell = sheet.cell(row=line, column=column)
            if kind == "datetime" and isinstance(value, datetime):
                cell.value = _local(value, tz)
                cell.number_format = DATETIME_FORMAT
                shown = 16
            elif kind == "datetime" and isinstance(value, date):
                cell.value = value
                cell.number_format = DATE_FORMAT
                shown = 10
            elif kind == "count" and isinstance(value, int | float) and not isinstance(value, bool):
                cell.value = value
                cell.number_format = COUNT_FORMAT
                shown = len(str(value))
            else:
                text = sheet_text(_rut(value) if kind == "rut" else value)
                _write_text(cell, text)
                shown = _width(text)
                if kind == "link" and url is not None and url.startswith(("https://", "mailto:")):
                    cell.hyperlink = url
                    cell.style = "Hyperlink"
                    cell.quotePrefix = looks_like_formula(text)
            cell.alignment = wrapped if isinstance(cell.value, str) and "\n" in cell.value else top
            widths[column - 1] = max(widths[column - 1], shown)
    last = get_column_letter(len(header))
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{last}{len(rows) + 1}"
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = min(width, MAX_COLUMN_WIDTH) + 2


def _write_text(cell: "Cell | MergedCell", text: str) -> None:
    """Store `text` as a string cell: never a formula, and no apostrophe added to the value.

    A phone '+56912345678' or a user '@ana' copied from the sheet is just that. What starts
    like a formula also gets Excel's quote prefix, a cell flag (not a character), so that
    editing the cell in Excel keeps it text too.
    """
    cell.value = text
    cell.data_type = "s"  # openpyxl would store "=..." as a formula; a string it stays
    cell.quotePrefix = looks_like_formula(text)


def _local(moment: datetime, tz: ZoneInfo | None) -> datetime:
    """Return a naive local time for Excel (a naive `moment` is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if tz is not None:
        moment = moment.astimezone(tz)
    return moment.replace(tzinfo=None, microsecond=0)


def _rut(value: object) -> str:
    """Return a RUT with dots ('76.086.428-5'), or the value as given if it is not one."""
    text = str(value)
    try:
        return format_rut(parse_rut(text))
    except RutError:
        return text


def _width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def _save(workbook: "Workbook") -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
