"""What the firm's commands show: listings, a company's history, the CSV export."""

import csv
import io
import math
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.digest import pack_lines
from bot.repository import Authorization, Event
from bot.rut import format_rut
from conversations.guide import Guide, local_datetime

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
