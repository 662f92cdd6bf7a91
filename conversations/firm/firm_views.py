"""What the firm's commands show: listings, a company's history, the exports, list uploads."""

import csv
import dataclasses
import html
import io
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.domain.rut import format_rut
from bot.formats.client_list import ClientRow, Note, Rejected
from bot.formats.workbooks import (
    AuthorizationColumns,
    InvitationColumns,
    authorizations_workbook,
    invitations_workbook,
)
from bot.guide.guide import Guide, local_datetime
from bot.services.digest import pack_lines
from bot.storage.repository import Authorization, Event, ListInvitation, ListOutcome
from conversations.client.common import invitation_link

PAGE_SIZE = 15
TEXT_LIMIT = 4096


def page_count(total: int) -> int:
    """Return how many pages a listing of `total` items takes (at least one)."""
    return max(1, math.ceil(total / PAGE_SIZE))


def _marks(guide: Guide, authorization: Authorization) -> str:
    marks = ""
    if authorization.opted_out_at is not None:
        marks += guide.message("mark_opted_out")
    if authorization.blocked_at is not None:
        marks += guide.message("mark_blocked")
    return marks


def pending_page(
    guide: Guide, items: Sequence[Authorization], total: int, page: int, tz: ZoneInfo
) -> str:
    """Render one page of the unfinished authorizations."""
    if total == 0:
        return guide.message("list_empty")
    lines = [guide.message("pending_title", total=total, page=page, pages=page_count(total))]
    for a in items:
        progress = (
            guide.message("progress_step", step=a.step)
            if a.step > 0
            else guide.message("progress_invited")
        )
        lines.append(
            guide.message(
                "pending_line",
                {"progress": progress, "marks": _marks(guide, a)},
                company_rut=format_rut(a.company_rut),
                client_name=a.display_name,
                when=local_datetime(a.last_activity_at, tz),
                reminders=a.reminders_sent,
            )
        )
    return "\n".join(lines)


def completed_page(
    guide: Guide,
    items: Sequence[Authorization],
    total: int,
    page: int,
    since: datetime | None,
    tz: ZoneInfo,
) -> str:
    """Render one page of the completed authorizations."""
    if total == 0:
        return guide.message("list_empty")
    since_text = (
        guide.message("completed_since", date=since.astimezone(tz).strftime("%d-%m-%Y"))
        if since
        else ""
    )
    lines = [
        guide.message(
            "completed_title",
            {"since": since_text},
            total=total,
            page=page,
            pages=page_count(total),
        )
    ]
    for a in items:
        assert a.completed_at is not None
        lines.append(
            guide.message(
                "completed_line",
                {"verified": guide.message("completed_verified") if a.verified_at else ""},
                company_rut=format_rut(a.company_rut),
                client_name=a.display_name,
                when=local_datetime(a.completed_at, tz),
            )
        )
    return "\n".join(lines)


def _state(guide: Guide, a: Authorization, tz: ZoneInfo) -> str:
    if a.completed_at is not None:
        when = local_datetime(a.completed_at, tz)
        if a.verified_at is not None:
            return guide.message("state_verified", when=when, actor=a.verified_by or "—")
        return guide.message("state_completed", when=when)
    if a.step == 0:
        return guide.message("state_invited")
    return guide.message("state_pending", step=a.step) + _marks(guide, a)


def history(
    guide: Guide, authorization: Authorization, events: Sequence[Event], tz: ZoneInfo
) -> list[str]:
    """Render a company's whole history, split to fit Telegram's message limit."""
    a = authorization
    lines = [
        guide.message(
            "status_title",
            {"state": _state(guide, a, tz)},
            company_rut=format_rut(a.company_rut),
            client_name=a.display_name,
            client_username=f"@{a.client_username}" if a.client_username else "",
        ),
        "",
    ]
    for event in events:
        what = guide.message(
            f"event_{event.kind}",
            step=event.step if event.step is not None else "—",
            actor=event.actor or "—",
        )
        lines.append(guide.message("event_line", {"what": what}, when=local_datetime(event.at, tz)))
    return pack_lines(lines, TEXT_LIMIT)


CSV_HEADER = (
    "rut_empresa",
    "cliente",
    "nombre_dado_por_la_firma",
    "usuario_telegram",
    "telegram_id",
    "paso_de_7",
    "estado",
    "inicio",
    "ultima_actividad",
    "completada",
    "verificada",
    "verificada_por",
    "recordatorios",
    "no_quiere_recordatorios",
    "bloqueo_el_bot",
)


def _cell(text: str | None) -> str:
    """Neutralize text that Excel would run as a formula (names come from strangers)."""
    text = text or ""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(authorizations: Sequence[Authorization], tz: ZoneInfo) -> bytes:
    """Return every authorization as CSV for Chilean Excel: UTF-8 with BOM, ';' separated."""

    def when(moment: datetime | None) -> str:
        return local_datetime(moment, tz) if moment is not None else ""

    def state(a: Authorization) -> str:
        if a.completed_at is not None:
            return "verificada" if a.verified_at is not None else "completada"
        return "invitada" if a.step == 0 else "pendiente"

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for a in authorizations:
        writer.writerow(
            (
                format_rut(a.company_rut),
                _cell(a.client_name),
                _cell(a.invited_name),
                _cell(a.client_username),
                a.client_user_id or "",
                a.step,
                state(a),
                when(a.started_at),
                when(a.last_activity_at),
                when(a.completed_at),
                when(a.verified_at),
                _cell(a.verified_by),
                a.reminders_sent,
                "sí" if a.opted_out_at else "",
                "sí" if a.blocked_at else "",
            )
        )
    return buffer.getvalue().encode("utf-8-sig")


# --- the Excel export -------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")


def plain_text(rendered_html: str) -> str:
    """Return what a Telegram-HTML text reads as, for a cell or a message outside Telegram."""
    return html.unescape(_TAG.sub("", rendered_html))


def _xlsx_state(guide: Guide, a: Authorization) -> str:
    if a.completed_at is not None:
        return guide.button("xlsx_state_verified" if a.verified_at else "xlsx_state_completed")
    return guide.button("xlsx_state_invited" if a.step == 0 else "xlsx_state_pending")


def _event_text(guide: Guide, event: Event) -> str:
    try:
        text = guide.message(
            f"event_{event.kind}",
            step=event.step if event.step is not None else "—",
            actor=event.actor or "—",
        )
    except KeyError:
        return event.kind  # a kind this guide does not name: shown as stored
    return plain_text(text)


def export_workbook(
    guide: Guide,
    authorizations: Sequence[Authorization],
    events: Sequence[tuple[str, Event]],
    tz: ZoneInfo,
) -> bytes:
    """Return every authorization and every event as an .xlsx (dates in local time)."""
    authorization_rows = [
        {**dataclasses.asdict(a), "state": _xlsx_state(guide, a)} for a in authorizations
    ]
    event_rows = [
        {**dataclasses.asdict(event), "company_rut": company_rut, "what": _event_text(guide, event)}
        for company_rut, event in events
    ]
    return authorizations_workbook(
        authorization_rows,
        event_rows,
        columns=AuthorizationColumns.from_lookup(guide.button),
        tz=tz,
    )


# --- the answer to a client list --------------------------------------------------------

# Rows listed one by one in the answer; the rest are only counted (the list is likely wrong).
MAX_LISTED_ROWS = 100
# A row with the representative's own RUT: refused, as /invitar refuses it.
REPRESENTATIVE = "representative"


def import_report(
    guide: Guide,
    outcomes: Sequence[ListInvitation],
    rejected: Sequence[Rejected],
    notes: Sequence[Note],
    expires: datetime,
    tz: ZoneInfo,
) -> list[str]:
    """Render the counts of an uploaded list, and its rejected rows, in as few texts as fit."""
    counts = Counter(item.outcome for item in outcomes)
    lines = [
        guide.message("import_title", total=len(outcomes)),
        guide.message(
            "import_new", count=counts[ListOutcome.NEW], expires=local_datetime(expires, tz)
        ),
        guide.message("import_reused", count=counts[ListOutcome.REUSED]),
        guide.message("import_completed", count=counts[ListOutcome.COMPLETED]),
        guide.message("import_rejected", count=len(rejected)),
    ]
    listed = [(r.line, r.value, f"import_reason_{r.reason}") for r in rejected]
    lines += _row_lines(guide, listed)
    if notes:
        lines.append(guide.message("import_noted", count=len(notes)))
        lines += _row_lines(guide, [(n.line, n.value, f"import_note_{n.kind}") for n in notes])
    return pack_lines(lines, TEXT_LIMIT)


def _row_lines(guide: Guide, rows: Sequence[tuple[int, str, str]]) -> list[str]:
    lines = [
        guide.message("import_row_line", {"what": guide.message(reason)}, count=line, text=value)
        for line, value, reason in rows[:MAX_LISTED_ROWS]
    ]
    if len(rows) > MAX_LISTED_ROWS:
        lines.append(guide.message("import_more_rows", count=len(rows) - MAX_LISTED_ROWS))
    return lines


_OUTCOME_STATE = {
    ListOutcome.NEW: "xlsx_invitation_new",
    ListOutcome.REUSED: "xlsx_invitation_reused",
    ListOutcome.COMPLETED: "xlsx_invitation_completed",
}


def invitation_rows(
    guide: Guide,
    bot_username: str,
    clients: Sequence[ClientRow],
    outcomes: Sequence[ListInvitation],
) -> list[Mapping[str, object]]:
    """Return one row per company of the list: its state, link and invitation to send."""
    by_company = {item.company_rut: item for item in outcomes}
    rows: list[Mapping[str, object]] = []
    for client in clients:
        item = by_company[client.rut]
        link = invitation_link(bot_username, item.token) if item.token else None
        rows.append(
            {
                "rut": client.rut,
                "name": client.name,
                "state": guide.button(_OUTCOME_STATE[item.outcome]),
                "deep_link": link,
                "invitation": plain_text(guide.message("invite_forward", link=link))
                if link
                else None,
                "phone": client.phone,
                "email": client.email,
            }
        )
    return rows


def invitations_file(guide: Guide, rows: Sequence[Mapping[str, object]]) -> bytes:
    """Return the .xlsx answering an uploaded list."""
    return invitations_workbook(rows, columns=InvitationColumns.from_lookup(guide.button))
