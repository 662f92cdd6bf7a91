"""/exportar: an Excel workbook of every authorization and its history; /exportar csv: the CSV.

Driven through the real Application; the files are opened from what was uploaded.
Wording comes from the guide in effect, never copied Spanish.
"""

import csv
import html
import io
import re
from datetime import UTC, datetime
from typing import Any

import openpyxl
from stdnum.cl import rut as stdnum_rut

from bot.domain.rut import format_rut
from bot.formats.workbooks import AUTHORIZATION_FIELDS, EVENT_FIELDS
from bot.guide.guide import Guide
from bot.storage.repository import ClientInfo
from conversations.firm.firm_views import export_csv
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, Harness

RUT = "76086428-5"
SHOWN = "76.086.428-5"
RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
THIRD = f"96543210-{stdnum_rut.calc_check_digit('96543210')}"
OTHER = 777_002
FIRM_USER = 5150
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LINK = re.compile(r"https://t\.me/sii_test_bot\?start=([A-Za-z0-9_-]+)")
TAG = re.compile(r"<[^>]+>")


async def firm_say(bot: Harness, text: str) -> None:
    """Someone of the firm writes in the firm's group."""
    await bot.say(text, user=FIRM_USER, chat_id=FIRM_CHAT, chat_type="group", username="contadora")


def calls(bot: Harness, method: str) -> list[Any]:
    return [c for c in bot.request.calls if c.method == method]


def sent_file(bot: Harness) -> tuple[str, bytes, str]:
    """The one document the bot uploaded: (file name, bytes, MIME type)."""
    (files,) = [files for method, files in bot.request.uploads if method == "sendDocument"]
    ((filename, data, mime),) = files.values()
    return filename, data, mime


def local(hour: int, minute: int) -> datetime:
    """What Excel should show: Santiago's wall clock on 24-11-2026 (no time zone)."""
    return datetime(2026, 11, 24, hour, minute)


async def practice(bot: Harness) -> None:
    """Three companies: one at step 3 (a formula as its name), one invited, one verified."""
    await firm_say(bot, '/invitar 76.086.428-5 =HYPERLINK("http://evil.example/?x=1","clic")')
    match = LINK.search(bot.texts(FIRM_CHAT)[-2])
    assert match is not None
    bot.clock.advance(minutes=1)
    who: dict[str, Any] = {"first_name": 'José "Pepe" Núñez; Ltda', "username": None}
    await bot.say(f"/start {match.group(1)}", **who)
    await bot.press("dev:pc", **who)
    await bot.press("rut:ok", **who)
    await bot.steps_from(1, 3, **who)
    bot.clock.advance(minutes=1)
    await firm_say(bot, f"/invitar {SHOWN_B} Núñez; Pérez")
    bot.clock.advance(minutes=1)
    client = ClientInfo(OTHER, OTHER, "=1+2", "otro")
    repository, now = bot.repository, bot.clock.now()
    await repository.authorizations.start_guide(client, THIRD, "guide", now, None)
    await repository.authorizations.complete(THIRD, 1, client, now, "", ())
    [(completion,)] = bot.db_rows("SELECT id FROM events WHERE kind = 'completed'")
    bot.clock.advance(minutes=2)
    assert await repository.firm.verify(completion, "@contadora", bot.clock.now()) is not None
    await repository.reminders.count_reminder(RUT, bot.clock.now(), "@contadora")
    bot.request.clear()


def rows_of(sheet: Any) -> list[list[Any]]:
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def event_text(guide: Guide, kind: str, step: int | None, actor: str | None) -> str:
    rendered = guide.message(
        f"event_{kind}", step=step if step is not None else "—", actor=actor or "—"
    )
    return html.unescape(TAG.sub("", rendered))


async def test_export_sends_a_workbook_with_typed_cells_and_the_history(bot: Harness) -> None:
    guide = bot.deps.guide
    await practice(bot)

    await firm_say(bot, "/exportar")
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_CHAT
    assert sent.params["caption"] == guide.message("export_caption", count=3)
    filename, data, mime = sent_file(bot)
    assert filename == "autorizaciones-2026-11-24.xlsx" and mime == XLSX_MIME
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == [
        guide.button("xlsx_authorizations_sheet"),
        guide.button("xlsx_events_sheet"),
    ]
    sheet, events = workbook.worksheets

    # The authorizations: titles from the guide, one row each, oldest first.
    table = rows_of(sheet)
    assert table[0] == [guide.button(f"xlsx_{key}") for key, _ in AUTHORIZATION_FIELDS]
    assert len(table) == 4
    titles = table[0]
    first, second, third = (
        {t: c for t, c in zip(titles, row, strict=True)} for row in sheet.iter_rows(min_row=2)
    )

    def value(row: dict[str, Any], key: str) -> Any:
        return row[guide.button(f"xlsx_{key}")].value

    # Text stays text: the RUT with dots, ids as typed, a formula never a formula.
    assert value(first, "company_rut") == SHOWN
    assert first[guide.button("xlsx_company_rut")].data_type == "s"
    assert value(first, "client_name") == 'José "Pepe" Núñez; Ltda'
    # A formula is stored as a string (with Excel's quote flag), its text as typed.
    assert value(first, "invited_name") == '=HYPERLINK("http://evil.example/?x=1","clic")'
    assert first[guide.button("xlsx_invited_name")].data_type == "s"
    assert first[guide.button("xlsx_invited_name")].quotePrefix
    assert value(first, "client_user_id") == str(CLIENT)
    assert first[guide.button("xlsx_client_user_id")].data_type == "s"
    # Numbers are numbers; dates are real dates in Santiago's time, shown as Chile writes them.
    assert value(first, "step") == 3 and isinstance(value(first, "step"), int)
    assert value(first, "reminders_sent") == 1
    assert value(first, "state") == guide.button("xlsx_state_pending")
    assert value(first, "started_at") == local(12, 1)
    assert first[guide.button("xlsx_started_at")].number_format == "dd-mm-yyyy hh:mm"
    assert first[guide.button("xlsx_started_at")].is_date
    assert value(first, "completed_at") is None

    assert (value(second, "company_rut"), value(second, "invited_name")) == (
        SHOWN_B,
        "Núñez; Pérez",
    )
    assert (value(second, "step"), value(second, "state")) == (
        0,
        guide.button("xlsx_state_invited"),
    )

    assert value(third, "company_rut") == format_rut(THIRD)
    assert value(third, "client_name") == "=1+2"
    assert value(third, "state") == guide.button("xlsx_state_verified")
    assert value(third, "completed_at") == local(12, 3)
    assert value(third, "verified_at") == local(12, 5)
    # Text that Excel would read as a formula (@, -, =, +) is a string cell, as typed.
    assert value(third, "verified_by") == "@contadora"
    assert third[guide.button("xlsx_verified_by")].data_type == "s"

    # The history: every event of every company, oldest first, told as /estado tells it.
    history = rows_of(events)
    assert history[0] == [guide.button(f"xlsx_{key}") for key, _ in EVENT_FIELDS]
    stored = bot.db_rows("SELECT company_rut, at, kind, step, actor FROM events ORDER BY id")
    assert len(history) == len(stored) + 1 and len(stored) >= 6
    for row, (company_rut, at, kind, step, actor) in zip(history[1:], stored, strict=True):
        moment = datetime.fromtimestamp(at, UTC).astimezone(bot.settings.timezone)
        assert row == [
            format_rut(company_rut),
            moment.replace(tzinfo=None, microsecond=0),
            event_text(guide, kind, step, actor),
            step,
            actor,
        ]
    assert [row[2] for row in history[1:3]] == [
        event_text(guide, "invited", None, str(FIRM_CHAT)),
        event_text(guide, "invitation_opened", None, None),
    ]


async def test_export_csv_keeps_the_csv_of_before(bot: Harness) -> None:
    guide = bot.deps.guide
    await practice(bot)
    await firm_say(bot, "/exportar csv")
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["caption"] == guide.message("export_caption", count=3)
    filename, data, mime = sent_file(bot)
    assert (filename, mime) == ("autorizaciones-2026-11-24.csv", "text/csv")
    authorizations = await bot.repository.firm.all_authorizations()
    assert data == export_csv(authorizations, bot.settings.timezone)
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\r\n") == 4
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0][:3] == ["rut_empresa", "cliente", "nombre_dado_por_la_firma"]
    assert rows[1][:7] == [
        SHOWN,
        'José "Pepe" Núñez; Ltda',
        '\'=HYPERLINK("http://evil.example/?x=1","clic")',
        "",
        str(CLIENT),
        "3",
        "pendiente",
    ]
    assert rows[3][6] == "verificada"

    bot.request.clear()
    bot.request.uploads.clear()
    await bot.say("/exportar CSV", user=FIRM_MEMBER)
    assert sent_file(bot)[0].endswith(".csv")


async def test_export_of_nothing_has_both_sheets_with_their_titles(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/exportar", user=FIRM_MEMBER)
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_MEMBER
    assert sent.params["caption"] == guide.message("export_caption", count=0)
    _, data, _ = sent_file(bot)
    sheet, events = openpyxl.load_workbook(io.BytesIO(data)).worksheets
    assert rows_of(sheet) == [[guide.button(f"xlsx_{key}") for key, _ in AUTHORIZATION_FIELDS]]
    assert rows_of(events) == [[guide.button(f"xlsx_{key}") for key, _ in EVENT_FIELDS]]


async def test_export_with_another_word_shows_usage(bot: Harness) -> None:
    await firm_say(bot, "/exportar pdf")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("export_usage")]
    assert calls(bot, "sendDocument") == []


async def test_export_outside_the_firm_is_an_unknown_command(bot: Harness) -> None:
    await practice(bot)
    for command in ("/exportar", "/exportar csv"):
        await bot.say(command, user=OTHER)
    assert calls(bot, "sendDocument") == []
    assert bot.texts(OTHER)[0] == bot.deps.guide.message("unknown_command")
