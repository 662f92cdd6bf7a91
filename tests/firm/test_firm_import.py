"""The firm's client list: a spreadsheet sent in a firm chat invites every company in it.

Real spreadsheets (openpyxl, csv) go through the real Application; the answer's .xlsx is
opened from what was uploaded. Wording comes from the guide in effect, never copied Spanish.
"""

import csv
import html
import io
import itertools
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import openpyxl
from stdnum.cl import rut as stdnum_rut
from telegram.constants import MessageLimit
from telegram.error import NetworkError

from bot.domain.rut import format_rut
from bot.guide.guide import Guide, local_datetime
from bot.storage.repository import ClientInfo, EventKind
from tests.support.fake_telegram import message_update
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, Harness

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FIRM_USER = 5150
FOREIGN_GROUP = -100_777
LINK = re.compile(r"^https://t\.me/sii_test_bot\?start=([A-Za-z0-9_-]{32})$")
TAG = re.compile(r"<[^>]+>")
_file_ids = itertools.count(1)


def make_rut(number: int) -> str:
    """A valid compact RUT for a company number."""
    return f"{number}-{stdnum_rut.calc_check_digit(str(number))}"


A, B, C, D, E, F = (
    make_rut(n) for n in (76_100_001, 76_100_002, 76_100_003, 77_200_004, 78_300_005, 79_400_006)
)


# --- making spreadsheets ----------------------------------------------------------------


def xlsx(rows: Sequence[Sequence[object]]) -> bytes:
    """An .xlsx whose first sheet holds `rows` (None leaves a cell empty)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows: Sequence[Sequence[str]], *, delimiter: str, encoding: str) -> bytes:
    """A CSV as Excel or Google Sheets would write it."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


# --- sending them -----------------------------------------------------------------------


async def send_list(
    bot: Harness,
    data: bytes,
    file_name: str | None = "clientes.xlsx",
    *,
    mime_type: str | None = XLSX_MIME,
    chat: int = FIRM_CHAT,
    user: int = FIRM_USER,
    file_size: int | None = None,
) -> str:
    """Someone sends a document (served by the fake Telegram); return its file id."""
    file_id = f"list-{next(_file_ids)}"
    bot.request.files[file_id] = data
    private = chat == user
    raw = message_update(
        user,
        kind="document",
        chat_id=chat,
        chat_type="private" if private else "group",
        first_name="Carla",
        username="contadora",
    )
    document: dict[str, Any] = {
        "file_id": file_id,
        "file_unique_id": file_id,
        "file_size": len(data) if file_size is None else file_size,
    }
    if file_name is not None:
        document["file_name"] = file_name
    if mime_type is not None:
        document["mime_type"] = mime_type
    raw["message"]["document"] = document
    await bot.feed(raw)
    return file_id


def calls(bot: Harness, method: str) -> list[Any]:
    return [c for c in bot.request.calls if c.method == method]


def answer_workbook(bot: Harness) -> tuple[str, list[dict[str, Any]], Any]:
    """The last .xlsx the bot sent: its file name, its rows (by column title) and its sheet."""
    (method, files) = bot.request.uploads[-1]
    assert method == "sendDocument"
    ((filename, data, _),) = files.values()
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    rows = [
        {title: cell for title, cell in zip(header, row, strict=True)}
        for row in sheet.iter_rows(min_row=2)
    ]
    return filename, rows, sheet


def plain(rendered_html: str) -> str:
    return html.unescape(TAG.sub("", rendered_html))


def column(guide: Guide, key: str) -> str:
    return guide.button(f"xlsx_invitations_{key}")


def report(
    guide: Guide,
    total: int,
    new: int,
    reused: int,
    completed: int,
    expires: str,
    rejected: Sequence[tuple[int, str, str]] = (),
    noted: Sequence[tuple[int, str, str]] = (),
) -> str:
    """The answer's summary as the guide words it (rows: line, value, reason key)."""
    lines = [
        guide.message("import_title", total=total),
        guide.message("import_new", count=new, expires=expires),
        guide.message("import_reused", count=reused),
        guide.message("import_completed", count=completed),
        guide.message("import_rejected", count=len(rejected)),
    ]
    for line, value, reason in rejected:
        what = guide.message(f"import_reason_{reason}")
        lines.append(guide.message("import_row_line", {"what": what}, count=line, text=value))
    if noted:
        lines.append(guide.message("import_noted", count=len(noted)))
        for line, value, kind in noted:
            what = guide.message(f"import_note_{kind}")
            lines.append(guide.message("import_row_line", {"what": what}, count=line, text=value))
    return "\n".join(lines)


def invitations(bot: Harness) -> list[tuple[Any, ...]]:
    return bot.db_rows(
        "SELECT company_rut, token, client_name, created_by, created_at, expires_at, used_at "
        "FROM invitations ORDER BY company_rut, created_at"
    )


def expires_text(bot: Harness) -> str:
    return local_datetime(bot.clock.now() + bot.settings.invitation_ttl, bot.settings.timezone)


# === a whole list =======================================================================


async def test_an_xlsx_with_extra_columns_and_blank_rows_invites_every_company(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    data = xlsx(
        [
            ["Clientes de la oficina – noviembre"],
            [],
            ["N°", "Razón Social", "RUT", "Dirección", "Celular", "Correo electrónico", "Giro"],
            [
                1,
                "Panadería Ñuñoa & Cía",
                format_rut(A),
                "Av. Irarrázaval 123",
                "+56 9 8765 4321",
                "ana@panaderia.cl",
                "pan",
            ],
            [None, None, None, None, None, None, None],
            [2, "Ferretería Los Andes", B.replace("-", ""), "Calle 2", None, None, None],
            [],
            [3, None, C, None, "9 1234 5678", None, None],
        ]
    )
    await send_list(bot, data, "Clientes Noviembre.XLSX")

    # One getFile, one download of that file; nothing refused.
    assert len(calls(bot, "getFile")) == 1 and len(bot.request.downloads) == 1
    texts = bot.texts(FIRM_CHAT)
    assert texts == [report(guide, 3, 3, 0, 0, expires_text(bot))]
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_CHAT
    assert sent.params["caption"] == guide.message("import_caption")

    # The database: one invitation each, made as /invitar makes them, and step 0 shown.
    now = bot.clock.now().timestamp()
    ttl = bot.settings.invitation_ttl.total_seconds()
    stored = invitations(bot)
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in stored] == [
        (A, "Panadería Ñuñoa & Cía", FIRM_CHAT, now, now + ttl, None),
        (B, "Ferretería Los Andes", FIRM_CHAT, now, now + ttl, None),
        (C, None, FIRM_CHAT, now, now + ttl, None),
    ]
    tokens = {r[0]: r[1] for r in stored}
    assert bot.db_rows(
        "SELECT company_rut, step, invited_name, completed_at FROM authorizations "
        "ORDER BY company_rut"
    ) == [
        (A, 0, "Panadería Ñuñoa & Cía", None),
        (B, 0, "Ferretería Los Andes", None),
        (C, 0, None, None),
    ]
    assert bot.db_rows("SELECT company_rut, kind, actor FROM events ORDER BY id") == [
        (rut, "invited", str(FIRM_CHAT)) for rut in (A, B, C)
    ]

    # The answer: one row per company, in the list's order.
    filename, rows, sheet = answer_workbook(bot)
    assert filename == "invitaciones-2026-11-24.xlsx"
    assert sheet.title == guide.button("xlsx_invitations_sheet")
    assert [cell.value for cell in sheet[1]] == [
        column(guide, key)
        for key in (
            "rut",
            "name",
            "state",
            "deep_link",
            "invitation",
            "phone",
            "whatsapp",
            "email",
            "mailto",
        )
    ]
    assert [r[column(guide, "rut")].value for r in rows] == [format_rut(x) for x in (A, B, C)]
    assert [r[column(guide, "name")].value for r in rows] == [
        "Panadería Ñuñoa & Cía",
        "Ferretería Los Andes",
        None,
    ]
    assert {r[column(guide, "state")].value for r in rows} == {guide.button("xlsx_invitation_new")}
    for row, rut in zip(rows, (A, B, C), strict=True):
        link_cell = row[column(guide, "deep_link")]
        match = LINK.fullmatch(link_cell.value)
        assert match is not None and match.group(1) == tokens[rut]
        assert link_cell.hyperlink.target == link_cell.value
        invitation = row[column(guide, "invitation")].value
        assert invitation == plain(guide.message("invite_forward", link=link_cell.value))
        assert link_cell.value in invitation and "<" not in invitation and "&amp;" not in invitation

    first, second, third = rows
    # The workbook writes a phone as a plain text cell: the number as typed, no apostrophe.
    assert first[column(guide, "phone")].value == "+56987654321"
    assert first[column(guide, "email")].value == "ana@panaderia.cl"
    whatsapp = urlsplit(first[column(guide, "whatsapp")].hyperlink.target)
    assert (whatsapp.scheme, whatsapp.netloc, whatsapp.path) == ("https", "wa.me", "/56987654321")
    assert parse_qs(whatsapp.query)["text"] == [first[column(guide, "invitation")].value]
    assert first[column(guide, "whatsapp")].value == guide.button("xlsx_invitations_whatsapp_label")
    mailto = first[column(guide, "mailto")].hyperlink.target
    assert mailto.startswith("mailto:ana@panaderia.cl?subject=")
    query = parse_qs(urlsplit(mailto).query)
    assert query["subject"] == [guide.button("xlsx_invitations_email_subject")]
    assert query["body"][0].replace("\r\n", "\n") == first[column(guide, "invitation")].value
    assert first[column(guide, "mailto")].value == guide.button("xlsx_invitations_email_label")
    # No phone or email: no link to send it by.
    for key in ("phone", "whatsapp", "email", "mailto"):
        assert second[column(guide, key)].value is None
    assert third[column(guide, "phone")].value == "+56912345678"
    assert unquote(third[column(guide, "whatsapp")].hyperlink.target).startswith(
        "https://wa.me/56912345678?text="
    )
    assert third[column(guide, "mailto")].value is None


async def test_a_link_from_the_answer_opens_the_invitation_for_that_company(bot: Harness) -> None:
    guide = bot.deps.guide
    await send_list(bot, xlsx([["RUT", "Nombre"], [format_rut(A), "Ana"]]))
    _, [row], _ = answer_workbook(bot)
    token = LINK.fullmatch(row[column(guide, "deep_link")].value)
    assert token is not None
    await bot.say(f"/start {token.group(1)}")
    assert bot.db_rows("SELECT used_by_chat FROM invitations") == [(CLIENT,)]
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("rut_confirm", company_rut=format_rut(A))


async def test_the_same_list_twice_invites_nobody_twice(bot: Harness) -> None:
    guide = bot.deps.guide
    data = xlsx([["RUT", "Razón social"], [A, "Uno"], [B, "Dos"]])
    await send_list(bot, data)
    first = invitations(bot)
    _, first_rows, _ = answer_workbook(bot)
    bot.clock.advance(days=3)
    bot.request.clear()

    await send_list(bot, data, "otra vez.xlsx")
    assert invitations(bot) == first  # nothing new stored
    assert bot.db_rows("SELECT COUNT(*) FROM events") == [(2,)]
    assert bot.texts(FIRM_CHAT) == [report(guide, 2, 0, 2, 0, expires_text(bot))]
    _, rows, _ = answer_workbook(bot)
    assert {r[column(guide, "state")].value for r in rows} == {
        guide.button("xlsx_invitation_reused")
    }
    links = [r[column(guide, "deep_link")].value for r in rows]
    assert links == [r[column(guide, "deep_link")].value for r in first_rows]
    assert [r[column(guide, "invitation")].value for r in rows] == [
        r[column(guide, "invitation")].value for r in first_rows
    ]


async def test_completed_companies_are_not_invited_and_only_valid_firm_invitations_reused(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    repository, now = bot.repository, bot.clock.now()
    ttl = bot.settings.invitation_ttl
    # A: completed. B: invited with /invitar, still valid. C: an invitation that expired.
    # D: an invitation already opened. E: a link a client passed on to someone else.
    client = ClientInfo(CLIENT, CLIENT, "Juana", None)
    await repository.authorizations.start_guide(client, A, "guide", now, None)
    await repository.authorizations.complete(A, 1, client, now, "", ())
    await bot.say(f"/invitar {format_rut(B)} Beto", user=FIRM_MEMBER)
    await repository.firm.create_invitation("tok-c", C, None, FIRM_CHAT, now - ttl, now)
    await repository.firm.create_invitation("tok-d", D, None, FIRM_CHAT, now, now + ttl)
    await repository.firm.claim_invitation("tok-d", 555, now)
    await repository.firm.create_invitation(
        "tok-e", E, None, 31_337, now, now + ttl, EventKind.PASSED_ON
    )
    (b_token,) = [r[1] for r in invitations(bot) if r[0] == B]
    bot.clock.advance(hours=1)
    bot.request.clear()

    rows = [["RUT", "Razón social"], *([rut, f"Empresa {rut}"] for rut in (A, B, C, D, E, F))]
    data = csv_bytes(rows, delimiter=";", encoding="utf-8")
    await send_list(bot, data, "lista.csv", mime_type="text/csv")

    assert bot.texts(FIRM_CHAT) == [report(guide, 6, 4, 1, 1, expires_text(bot))]
    stored = invitations(bot)
    assert [r[1] for r in stored if r[0] == A] == []  # a completed company: no invitation
    assert [r[1] for r in stored if r[0] == B] == [b_token]  # reused, not duplicated
    for rut, old in ((C, "tok-c"), (D, "tok-d"), (E, "tok-e")):
        tokens = [r[1] for r in stored if r[0] == rut]
        assert len(tokens) == 2 and tokens[0] == old and tokens[1] != old
    assert len([r for r in stored if r[0] == F]) == 1
    completion = await repository.authorizations.authorization(A)
    assert completion is not None and completion.completed_at is not None  # left alone

    _, answer, _ = answer_workbook(bot)
    states = {r[column(guide, "rut")].value: r[column(guide, "state")].value for r in answer}
    assert states == {
        format_rut(A): guide.button("xlsx_invitation_completed"),
        format_rut(B): guide.button("xlsx_invitation_reused"),
        **{format_rut(x): guide.button("xlsx_invitation_new") for x in (C, D, E, F)},
    }
    by_rut = {r[column(guide, "rut")].value: r for r in answer}
    done = by_rut[format_rut(A)]
    assert done[column(guide, "deep_link")].value is None
    assert done[column(guide, "invitation")].value is None
    assert by_rut[format_rut(B)][column(guide, "deep_link")].value.endswith(f"start={b_token}")


async def test_a_latin1_csv_with_semicolons(bot: Harness) -> None:
    guide = bot.deps.guide
    rows = [
        ["Razón Social", "R.U.T.", "Teléfono", "Email"],
        ["Ñandú y Compañía Ltda.", format_rut(A), "987654321", "CONTACTO@ÑANDU.CL"],
        ["José Pérez Núñez", format_rut(B), "", "jose@example.cl"],
    ]
    data = csv_bytes(rows, delimiter=";", encoding="latin-1")
    assert b"\xd1" in data and b"\xc3" not in data  # Ñ as one Latin-1 byte, not UTF-8
    await send_list(bot, data, "clientes.csv", mime_type="text/csv")
    assert bot.texts(FIRM_CHAT)[0].startswith(guide.message("import_title", total=2))
    assert [(r[0], r[2]) for r in invitations(bot)] == [
        (A, "Ñandú y Compañía Ltda."),
        (B, "José Pérez Núñez"),
    ]
    _, answer, _ = answer_workbook(bot)
    assert [r[column(guide, "name")].value for r in answer] == [
        "Ñandú y Compañía Ltda.",
        "José Pérez Núñez",
    ]
    assert answer[0][column(guide, "phone")].value == "+56987654321"


async def test_a_utf8_csv_with_bom_and_commas(bot: Harness) -> None:
    guide = bot.deps.guide
    rows = [
        ["rut", "nombre", "celular"],
        [A, "Café Ñuñoa, Ltda.", "+56 9 1111 2222"],
        [B, "Dos", ""],
    ]
    data = csv_bytes(rows, delimiter=",", encoding="utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    # Known by its type only: no name at all.
    await send_list(bot, data, None, mime_type="text/csv")
    assert [(r[0], r[2]) for r in invitations(bot)] == [(A, "Café Ñuñoa, Ltda."), (B, "Dos")]
    _, answer, _ = answer_workbook(bot)
    assert answer[0][column(guide, "phone")].value == "+56911112222"
    assert answer[0][column(guide, "whatsapp")].hyperlink is not None


async def test_bad_duplicate_and_empty_rows_are_listed_with_their_line(bot: Harness) -> None:
    guide = bot.deps.guide
    representative = format_rut(bot.settings.representative_rut)
    wrong_digit = A[:-1] + ("0" if A[-1] != "0" else "1")
    data = xlsx(
        [
            ["RUT", "Razón social", "Celular", "Correo"],
            [A, "Buena", "12345", "no-es-correo"],  # line 2: kept, phone and email dropped
            ["hola", "Mala", None, None],  # 3
            [wrong_digit, "Dígito", None, None],  # 4
            [format_rut(A), "Repetida", None, None],  # 5
            [None, "Sin RUT", None, None],  # 6
            [],  # 7: blank, skipped silently
            [representative, "Alex", None, None],  # 8
            [B, "Otra buena", None, None],  # 9
        ]
    )
    await send_list(bot, data)
    expected = report(
        guide,
        2,
        2,
        0,
        0,
        expires_text(bot),
        rejected=[
            (3, "hola", "bad_rut"),
            (4, wrong_digit, "wrong_check_digit"),
            (5, format_rut(A), "duplicate"),
            (6, "Sin RUT", "empty"),
            (8, representative, "representative"),
        ],
        noted=[(2, "12345", "bad_phone"), (2, "no-es-correo", "bad_email")],
    )
    assert bot.texts(FIRM_CHAT) == [expected]
    assert [r[0] for r in invitations(bot)] == [A, B]
    _, answer, _ = answer_workbook(bot)
    assert [r[column(guide, "rut")].value for r in answer] == [format_rut(A), format_rut(B)]
    assert answer[0][column(guide, "phone")].value is None
    assert answer[0][column(guide, "whatsapp")].value is None


async def test_hundreds_of_rejected_rows_fit_telegrams_limit(bot: Harness) -> None:
    guide = bot.deps.guide
    bad = [[f"no-es-rut-{n:04d}-{'x' * 40}", f"Empresa {n}"] for n in range(400)]
    data = csv_bytes([["RUT", "Nombre"], [A, "Buena"], *bad], delimiter=";", encoding="utf-8")
    await send_list(bot, data, "lista.csv", mime_type="text/csv")
    texts = bot.texts(FIRM_CHAT)
    assert len(texts) > 1
    assert all(0 < len(text) <= MessageLimit.MAX_TEXT_LENGTH for text in texts)
    lines = "\n".join(texts).split("\n")
    assert guide.message("import_rejected", count=400) in lines
    listed = [line for line in lines if "no-es-rut-" in line]
    assert len(listed) == 100 and "no-es-rut-0000-" in listed[0] and "no-es-rut-0099-" in listed[-1]
    assert lines[-1] == guide.message("import_more_rows", count=300)
    assert len(calls(bot, "sendDocument")) == 1


async def test_a_list_with_nothing_to_invite_gets_only_the_summary(bot: Harness) -> None:
    guide = bot.deps.guide
    await send_list(bot, xlsx([["RUT"], ["malo"]]))
    assert bot.texts(FIRM_CHAT) == [
        report(guide, 0, 0, 0, 0, expires_text(bot), rejected=[(2, "malo", "bad_rut")])
    ]
    assert calls(bot, "sendDocument") == [] and invitations(bot) == []


# === what is refused ====================================================================


async def test_a_file_over_two_megabytes_is_refused_before_it_is_downloaded(bot: Harness) -> None:
    guide = bot.deps.guide
    await send_list(bot, xlsx([["RUT"], [A]]), file_size=2_000_001)
    assert bot.texts(FIRM_CHAT) == [guide.message("import_too_big")]
    assert calls(bot, "getFile") == [] and bot.request.downloads == []
    assert invitations(bot) == []


async def test_more_than_five_thousand_rows_are_refused(bot: Harness) -> None:
    guide = bot.deps.guide
    rows = [["RUT"], *([make_rut(60_000_000 + n)] for n in range(5001))]
    data = csv_bytes(rows, delimiter=";", encoding="utf-8")
    assert len(data) < 2_000_000
    await send_list(bot, data, "todos.csv", mime_type="text/csv")
    assert bot.texts(FIRM_CHAT) == [guide.message("import_too_big")]
    assert invitations(bot) == [] and bot.db_rows("SELECT COUNT(*) FROM authorizations") == [(0,)]


async def test_five_thousand_rows_are_invited_in_one_go(bot: Harness) -> None:
    guide = bot.deps.guide
    ruts = [make_rut(60_000_000 + n) for n in range(5000)]
    data = csv_bytes(
        [["RUT", "Nombre"], *([r, f"Cliente {r}"] for r in ruts)], delimiter=";", encoding="utf-8"
    )
    await send_list(bot, data, "todos.csv", mime_type="text/csv")
    assert bot.texts(FIRM_CHAT) == [report(guide, 5000, 5000, 0, 0, expires_text(bot))]
    assert bot.db_rows("SELECT COUNT(*), COUNT(DISTINCT company_rut) FROM invitations") == [
        (5000, 5000)
    ]
    ((_, data, _),) = bot.request.uploads[-1][1].values()
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    links = [row[3] for row in sheet.iter_rows(min_row=2, values_only=True)]
    tokens = {row[0] for row in bot.db_rows("SELECT token FROM invitations")}
    assert len(links) == 5000
    assert {LINK.sub(r"\1", str(link)) for link in links} == tokens


async def test_unreadable_files_and_a_list_without_rut_column(bot: Harness) -> None:
    guide = bot.deps.guide
    await send_list(bot, b"%PDF-1.4 not a spreadsheet", "lista.xlsx")
    await send_list(
        bot,
        b"\xd0\xcf\x11\xe0" + b"\x00" * 600,
        "antigua.xls",
        mime_type="application/vnd.ms-excel",
    )
    await send_list(bot, xlsx([["Nombre", "Celular"], ["Ana", "912345678"]]))
    assert bot.texts(FIRM_CHAT) == [
        guide.message("import_unreadable"),
        guide.message("import_unreadable"),
        guide.message("import_no_rut_column"),
    ]
    assert invitations(bot) == []


async def test_a_download_that_fails_is_said_in_one_line(bot: Harness) -> None:
    guide = bot.deps.guide
    bot.request.fail_next("getFile", NetworkError("connection reset"))
    await send_list(bot, xlsx([["RUT"], [A]]))
    assert bot.texts(FIRM_CHAT) == [guide.message("import_download_failed")]
    assert invitations(bot) == []


async def test_other_documents_in_a_firm_chat_are_not_fetched(bot: Harness) -> None:
    await send_list(bot, b"%PDF-1.4", "contrato.pdf", mime_type="application/pdf")
    assert calls(bot, "getFile") == [] and bot.texts(FIRM_CHAT) == []


async def test_a_firm_members_private_chat_takes_a_list_too(bot: Harness) -> None:
    await send_list(bot, xlsx([["RUT"], [A]]), chat=FIRM_MEMBER, user=FIRM_MEMBER)
    assert [(r[0], r[3]) for r in invitations(bot)] == [(A, FIRM_MEMBER)]
    assert len(calls(bot, "sendDocument")) == 1


async def test_a_list_from_a_client_or_a_foreign_group_is_never_fetched(bot: Harness) -> None:
    data = xlsx([["RUT", "Nombre"], [A, "Uno"]])
    await bot.reach_step(3)
    bot.request.clear()
    before = bot.db_snapshot()
    await send_list(bot, data, chat=CLIENT, user=CLIENT)
    await send_list(bot, data, "lista.csv", mime_type="text/csv", chat=CLIENT, user=CLIENT)
    await send_list(bot, data, chat=FOREIGN_GROUP, user=FIRM_MEMBER)
    assert calls(bot, "getFile") == [] and bot.request.downloads == []
    assert calls(bot, "sendDocument") == []
    assert bot.db_snapshot() == before
    # The client got what the client side answers any document, and nobody else heard a thing.
    assert {int(c.params["chat_id"]) for c in bot.request.sent()} == {CLIENT}


async def test_an_edited_document_message_is_not_read_again(bot: Harness) -> None:
    data = xlsx([["RUT"], [A]])
    file_id = "edited-list"
    bot.request.files[file_id] = data
    raw = message_update(
        FIRM_USER, kind="document", chat_id=FIRM_CHAT, chat_type="group", edited=True
    )
    raw["edited_message"]["document"] = {
        "file_id": file_id,
        "file_unique_id": file_id,
        "file_name": "clientes.xlsx",
        "file_size": len(data),
    }
    await bot.feed(raw)
    assert calls(bot, "getFile") == [] and invitations(bot) == []
