"""The .xlsx files for the firm, opened again with openpyxl as Excel would read them."""

import dataclasses
import io
import zipfile
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from bot.formats.workbooks import (
    AUTHORIZATION_FIELDS,
    EVENT_FIELDS,
    INVITATION_FIELDS,
    MAX_URL_LENGTH,
    AuthorizationColumns,
    InvitationColumns,
    authorizations_workbook,
    invitations_workbook,
    looks_like_formula,
    mailto_link,
    sheet_text,
    whatsapp_link,
)
from bot.storage.repository import Authorization
from conversations.firm import firm_views

TZ = ZoneInfo("America/Santiago")
# 12:00 in Santiago (summer time, UTC-3) and 09:30 in winter (UTC-4).
SUMMER_NOON = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
WINTER = datetime(2026, 7, 1, 13, 30, 45, 123456, tzinfo=UTC)

AUTH_TITLES = {
    "company_rut": "RUT empresa",
    "client_name": "Cliente en Telegram",
    "invited_name": "Nombre dado por la firma",
    "client_username": "Usuario de Telegram",
    "client_user_id": "ID de Telegram",
    "step": "Paso (de 7)",
    "state": "Estado",
    "started_at": "Inicio",
    "last_activity_at": "Última actividad",
    "completed_at": "Completada",
    "verified_at": "Verificada",
    "verified_by": "Verificada por",
    "reminders_sent": "Recordatorios enviados",
    "opted_out_at": "No quiere recordatorios desde",
    "blocked_at": "Bloqueó el bot",
    "at": "Fecha",
    "what": "Qué pasó",
    "actor": "Quién",
}
AUTH_COLUMNS = AuthorizationColumns("Autorizaciones", "Historial", AUTH_TITLES)
INVITATION_TITLES = {
    "rut": "RUT empresa",
    "name": "Razón social",
    "state": "Estado",
    "deep_link": "Enlace de invitación",
    "invitation": "Mensaje para enviar",
    "phone": "Celular",
    "whatsapp": "WhatsApp",
    "email": "Correo",
    "mailto": "Correo listo",
}
INVITATION_COLUMNS = InvitationColumns(
    "Invitaciones",
    INVITATION_TITLES,
    whatsapp_label="Enviar por WhatsApp",
    email_label="Enviar por correo",
    email_subject="Autorización en el SII para Pérez & Cía",
)
INVITATION = "Hola 👋 Para autorizarnos en el SII, abra este enlace:\nhttps://t.me/bot?start=abc"


def authorization(**changes: object) -> dict[str, object]:
    base = Authorization(
        company_rut="76086428-5",
        client_chat_id=555,
        client_user_id=1234567890123,
        client_name="Ana Pérez",
        client_username="anaperez",
        step=3,
        started_at=SUMMER_NOON,
        last_activity_at=WINTER,
        completed_at=None,
        reminders_sent=2,
        invited_name="Ferretería Ñuñoa",
    )
    return {**dataclasses.asdict(base), "state": "pendiente", **changes}


def open_book(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def column(sheet: Worksheet, title: str) -> int:
    titles = [cell.value for cell in sheet[1]]
    return titles.index(title) + 1


def test_authorizations_workbook_layout() -> None:
    data = authorizations_workbook(
        [authorization(), authorization(company_rut="96790240-3")],
        [{"company_rut": "76086428-5", "at": SUMMER_NOON, "what": "Comenzó", "step": 1}],
        columns=AUTH_COLUMNS,
        tz=TZ,
    )
    book = open_book(data)
    assert book.sheetnames == ["Autorizaciones", "Historial"]
    for sheet, fields, rows in (
        (book["Autorizaciones"], AUTHORIZATION_FIELDS, 2),
        (book["Historial"], EVENT_FIELDS, 1),
    ):
        assert [cell.value for cell in sheet[1]] == [AUTH_TITLES[key] for key, _ in fields]
        assert all(cell.font.b for cell in sheet[1])
        assert sheet.freeze_panes == "A2"
        last = openpyxl.utils.get_column_letter(len(fields))
        assert sheet.auto_filter.ref == f"A1:{last}{rows + 1}"
        assert sheet.max_row == rows + 1
        for index, (_, _) in enumerate(fields, start=1):
            width = sheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width
            assert len(str(sheet.cell(row=1, column=index).value)) <= width <= 52


def test_authorizations_cells_are_typed() -> None:
    data = authorizations_workbook(
        [authorization(verified_at=datetime(2026, 11, 25, 3, 0))],  # naive: taken as UTC
        [{"company_rut": "76086428-5", "at": WINTER, "what": "Comenzó", "step": 1, "actor": None}],
        columns=AUTH_COLUMNS,
        tz=TZ,
    )
    book = open_book(data)
    sheet = book["Autorizaciones"]

    def cell(title: str) -> openpyxl.cell.Cell:
        value = sheet.cell(row=2, column=column(sheet, title))
        assert isinstance(value, openpyxl.cell.Cell)
        return value

    rut = cell(AUTH_TITLES["company_rut"])
    assert rut.value == "76.086.428-5" and rut.data_type == "s"
    user_id = cell(AUTH_TITLES["client_user_id"])
    assert user_id.value == "1234567890123" and user_id.data_type == "s"
    assert cell(AUTH_TITLES["client_username"]).value == "anaperez"
    step = cell(AUTH_TITLES["step"])
    assert step.value == 3 and step.data_type == "n" and step.number_format == "0"
    assert cell(AUTH_TITLES["reminders_sent"]).value == 2
    started = cell(AUTH_TITLES["started_at"])
    assert started.is_date and started.number_format == "dd-mm-yyyy hh:mm"
    assert started.value == datetime(2026, 11, 24, 12, 0)  # naive, Santiago's wall clock
    last_activity = cell(AUTH_TITLES["last_activity_at"])
    assert last_activity.value == datetime(2026, 7, 1, 9, 30, 45)  # winter, no µs
    assert cell(AUTH_TITLES["verified_at"]).value == datetime(2026, 11, 25, 0, 0)
    assert cell(AUTH_TITLES["completed_at"]).value is None
    assert cell(AUTH_TITLES["blocked_at"]).value is None
    assert cell(AUTH_TITLES["state"]).value == "pendiente"

    events = book["Historial"]
    assert [c.value for c in events[2]] == [
        "76.086.428-5",
        datetime(2026, 7, 1, 9, 30, 45),
        "Comenzó",
        1,
        None,
    ]


def test_rut_that_is_not_valid_is_written_as_given() -> None:
    data = authorizations_workbook(
        [authorization(company_rut="123")], [], columns=AUTH_COLUMNS, tz=TZ
    )
    sheet = open_book(data)["Autorizaciones"]
    assert sheet["A2"].value == "123" and sheet["A2"].data_type == "s"
    assert open_book(data)["Historial"].max_row == 1


# (typed, stored): every value is kept as typed, minus what XML cannot carry.
HOSTILE = [
    ("=cmd|' /C calc'!A0", "=cmd|' /C calc'!A0"),
    ("+56912345678", "+56912345678"),
    ("-2+3", "-2+3"),
    ("@SUM(1)", "@SUM(1)"),
    ("\t=1", "\t=1"),
    ("\r=1", "\r=1"),
    ("\x01=1+1", "=1+1"),  # characters XML cannot carry are dropped
    ("Ana\x00 Pérez", "Ana Pérez"),
    ("Normal = fine", "Normal = fine"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_sheet_text_keeps_the_text_as_typed(text: str, expected: str) -> None:
    assert sheet_text(text) == expected


@pytest.mark.parametrize("text", ["=1", "+1", "-1", "@1", "\t1", "\r1", "a=1", "1", "", "'x"])
def test_formula_looking_text_is_told_by_the_csv_export_rule(text: str) -> None:
    # The CSV export adds an apostrophe to exactly what an .xlsx cell gets the quote flag for.
    assert looks_like_formula(text) == (firm_views._cell(text) != text)


def xml_parts(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return "".join(
            archive.read(name).decode("utf-8")
            for name in archive.namelist()
            if name.startswith("xl/worksheets/")
        )


def test_every_text_cell_is_a_string_as_typed_never_a_formula() -> None:
    names = [text for text, _ in HOSTILE]
    auths = [authorization(client_name=name, verified_by=name) for name in names]
    events = [{"company_rut": "76086428-5", "at": WINTER, "what": n, "actor": n} for n in names]
    invitations = [{"rut": "76086428-5", "name": n, "state": n, "invitation": n} for n in names]
    data = [
        authorizations_workbook(auths, events, columns=AUTH_COLUMNS, tz=TZ),
        invitations_workbook(invitations, columns=INVITATION_COLUMNS),
    ]
    seen = 0
    for book in map(open_book, data):
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f"
                    if isinstance(cell.value, str):
                        assert not cell.value.startswith("'")
                        # Excel's own "text, not formula" flag, on what would otherwise run
                        # (a carriage return is read back as a line feed).
                        typed = cell.value.replace("\n", "\r")
                        assert cell.quotePrefix == looks_like_formula(typed)
                        seen += 1
    assert seen > 4 * len(names)
    for part in map(xml_parts, data):
        assert "<f>" not in part and "<f " not in part  # no formula anywhere in the file
    sheet = open_book(data[0])["Autorizaciones"]
    got = [
        sheet.cell(row=r, column=column(sheet, "Cliente en Telegram")).value for r in range(2, 9)
    ]
    # XML reads a carriage return back as a line feed.
    assert got == [expected.replace("\r", "\n") for _, expected in HOSTILE[:7]]


def test_titles_and_sheet_names_are_cleaned_too() -> None:
    columns = AuthorizationColumns(
        "Autorizaciones: [todas]/2026 — un nombre larguísimo", "=Historial", AUTH_TITLES
    )
    book = open_book(authorizations_workbook([], [], columns=columns, tz=TZ))
    assert book.sheetnames == ["Autorizaciones todas 2026 — un", "=Historial"]
    assert all(len(name) <= 31 for name in book.sheetnames)
    evil = AuthorizationColumns("A", "B", {**AUTH_TITLES, "state": "=Estado"})
    sheet = open_book(authorizations_workbook([], [], columns=evil, tz=TZ))["A"]
    title = sheet.cell(row=1, column=column(sheet, "=Estado"))
    assert title.data_type == "s" and title.quotePrefix


def test_missing_titles_are_refused_when_the_columns_are_made() -> None:
    with pytest.raises(ValueError, match="actor"):
        AuthorizationColumns("A", "B", {k: v for k, v in AUTH_TITLES.items() if k != "actor"})
    with pytest.raises(ValueError, match="mailto"):
        InvitationColumns("A", {k: k for k, _ in INVITATION_FIELDS[:-1]}, "w", "e", "s")


def test_columns_from_a_lookup_of_guide_texts() -> None:
    texts = {f"xlsx_{k}": v for k, v in AUTH_TITLES.items()}
    texts |= {"xlsx_authorizations_sheet": "Autorizaciones", "xlsx_events_sheet": "Historial"}
    assert AuthorizationColumns.from_lookup(texts.__getitem__) == AUTH_COLUMNS
    invitation_texts = {f"xlsx_invitations_{k}": v for k, v in INVITATION_TITLES.items()}
    invitation_texts |= {
        "xlsx_invitations_sheet": "Invitaciones",
        "xlsx_invitations_whatsapp_label": "Enviar por WhatsApp",
        "xlsx_invitations_email_label": "Enviar por correo",
        "xlsx_invitations_email_subject": "Autorización en el SII para Pérez & Cía",
    }
    assert InvitationColumns.from_lookup(invitation_texts.__getitem__) == INVITATION_COLUMNS


def invitations_sheet(rows: list[dict[str, object]]) -> Worksheet:
    sheet = open_book(invitations_workbook(rows, columns=INVITATION_COLUMNS)).active
    assert isinstance(sheet, Worksheet)
    return sheet


def test_invitations_workbook_layout_and_links() -> None:
    sheet = invitations_sheet(
        [
            {
                "rut": "76086428-5",
                "name": "Ferretería Ñuñoa",
                "state": "Invitada",
                "deep_link": "https://t.me/bot?start=abc",
                "invitation": INVITATION,
                "phone": "+56912345678",
                "email": "ana@ñuñoa.cl",
            },
            {"rut": "96790240-3", "name": None, "state": "Ya completada"},
            {"rut": "x", "state": "RUT no válido", "phone": "+56987654321"},
        ]
    )
    assert sheet.title == "Invitaciones"
    assert [c.value for c in sheet[1]] == [INVITATION_TITLES[k] for k, _ in INVITATION_FIELDS]
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:I4"

    first = {
        title: sheet.cell(row=2, column=column(sheet, title))
        for title in INVITATION_TITLES.values()
    }
    assert first[INVITATION_TITLES["rut"]].value == "76.086.428-5"
    # A phone copied from the sheet is the number itself: a plain text cell, no apostrophe.
    phone = first[INVITATION_TITLES["phone"]]
    assert phone.value == "+56912345678" and phone.data_type == "s"
    assert first[INVITATION_TITLES["invitation"]].value == INVITATION
    assert first[INVITATION_TITLES["invitation"]].alignment.wrap_text
    link = first[INVITATION_TITLES["deep_link"]]
    assert link.value == "https://t.me/bot?start=abc"
    assert link.hyperlink is not None and link.hyperlink.target == "https://t.me/bot?start=abc"

    whatsapp = first[INVITATION_TITLES["whatsapp"]]
    assert whatsapp.value == INVITATION_COLUMNS.whatsapp_label and whatsapp.hyperlink is not None
    target = urlsplit(whatsapp.hyperlink.target)
    assert (target.scheme, target.netloc, target.path) == ("https", "wa.me", "/56912345678")
    assert parse_qs(target.query) == {"text": [INVITATION]}

    mail = first[INVITATION_TITLES["mailto"]]
    assert mail.value == INVITATION_COLUMNS.email_label and mail.hyperlink is not None
    assert mail.hyperlink.target.startswith("mailto:ana@%C3%B1u%C3%B1oa.cl?subject=")
    query = parse_qs(urlsplit(mail.hyperlink.target).query)
    assert query["subject"] == [INVITATION_COLUMNS.email_subject]
    assert query["body"] == [INVITATION.replace("\n", "\r\n")]
    assert " " not in mail.hyperlink.target and "+" not in mail.hyperlink.target

    # Without a phone, an email or an invitation, there is nothing to link.
    for row in (3, 4):
        for title in ("Enlace de invitación", "WhatsApp", "Correo listo"):
            cell = sheet.cell(row=row, column=column(sheet, title))
            assert cell.value is None and cell.hyperlink is None
    assert sheet.cell(row=4, column=1).value == "x"
    assert sheet.cell(row=4, column=column(sheet, "Celular")).value == "+56987654321"


TWO_LINES = "Hola, " + "x" * 24 + "\n" + "y" * 20


def test_invitation_column_widths_fit_and_are_capped() -> None:
    sheet = invitations_sheet(
        [{"rut": "76086428-5", "name": "N" * 200, "state": "ok", "invitation": TWO_LINES}]
    )
    widths = {
        title: sheet.column_dimensions[openpyxl.utils.get_column_letter(column(sheet, title))].width
        for title in INVITATION_TITLES.values()
    }
    assert widths[INVITATION_TITLES["name"]] == 52
    assert widths[INVITATION_TITLES["rut"]] == len("76.086.428-5") + 2
    # A multi-line text is as wide as its longest line.
    assert widths[INVITATION_TITLES["invitation"]] == 30 + 2


def test_only_web_and_mail_links_are_made_clickable() -> None:
    sheet = invitations_sheet(
        [{"rut": "76086428-5", "deep_link": "javascript:alert(1)", "invitation": "x"}]
    )
    cell = sheet.cell(row=2, column=column(sheet, "Enlace de invitación"))
    assert cell.value == "javascript:alert(1)" and cell.hyperlink is None


def test_links_too_long_for_excel_drop_the_text_but_keep_the_recipient() -> None:
    long_text = "ñ" * 1000
    assert whatsapp_link("+56 9 1234 5678", long_text) == "https://wa.me/56912345678"
    short = whatsapp_link("+56912345678", "Hola")
    assert short == "https://wa.me/56912345678?text=Hola"
    assert mailto_link("a@b.cl", "Asunto", long_text) == "mailto:a@b.cl?subject=Asunto"
    assert len(mailto_link("a@b.cl", "Asunto", "x" * 2000)) <= MAX_URL_LENGTH
    sheet = invitations_sheet(
        [
            {
                "rut": "76086428-5",
                "invitation": long_text,
                "phone": "+56912345678",
                "email": "a@b.cl",
            }
        ]
    )
    whatsapp = sheet.cell(row=2, column=column(sheet, "WhatsApp"))
    assert whatsapp.hyperlink is not None
    assert whatsapp.hyperlink.target == "https://wa.me/56912345678"


def test_mailto_encodes_the_address_and_line_breaks() -> None:
    link = mailto_link(" ana+sii@b.cl ", "Hola & chao", "uno\r\ndos\nres\rcuatro")
    assert link == (
        "mailto:ana%2Bsii@b.cl?subject=Hola%20%26%20chao&body=uno%0D%0Ados%0D%0Ares%0D%0Acuatro"
    )
    assert unquote(urlsplit(link).path) == "ana+sii@b.cl"


def test_dates_without_time_are_written_as_dates() -> None:
    data = authorizations_workbook(
        [], [{"company_rut": "76086428-5", "at": date(2026, 3, 1)}], columns=AUTH_COLUMNS, tz=TZ
    )
    cell = open_book(data)["Historial"]["B2"]
    assert cell.value == datetime(2026, 3, 1) and cell.number_format == "dd-mm-yyyy"
