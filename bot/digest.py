"""The firm's daily summary: who completed, who is pending, who opted out or blocked."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram.constants import MessageLimit

from bot.clock import Clock
from bot.repository import Authorization, FirmMessage, Repository
from bot.rut import format_rut
from bot.schedule import next_daily_at
from bot.settings import Settings
from conversations.guide import Guide, local_date, local_datetime

LAST_DIGEST_KEY = "last_digest_at"


def render_digest(
    guide: Guide,
    now: datetime,
    completed: Sequence[Authorization],
    pending: Sequence[Authorization],
    tz: ZoneInfo,
) -> list[str]:
    """Render the summary as few messages as Telegram's length limit allows."""
    active = [a for a in pending if a.opted_out_at is None and a.blocked_at is None]
    opted_out = [a for a in pending if a.opted_out_at is not None]
    blocked = [a for a in pending if a.blocked_at is not None and a.opted_out_at is None]

    def completed_line(a: Authorization) -> str:
        assert a.completed_at is not None
        return guide.message(
            "digest_completed_line",
            company_rut=format_rut(a.company_rut),
            client_name=a.display_name,
            when=local_datetime(a.completed_at, tz),
        )

    def pending_line(a: Authorization) -> str:
        progress = (
            guide.message("progress_step", step=a.step)
            if a.step > 0
            else guide.message("progress_invited")
        )
        return guide.message(
            "digest_pending_line",
            {"progress": progress},
            company_rut=format_rut(a.company_rut),
            client_name=a.display_name,
            reminders=a.reminders_sent,
            when=local_datetime(a.last_activity_at, tz),
        )

    lines = [guide.message("digest_header", date=local_date(now, tz)), ""]
    for title, items, render in (
        ("digest_completed", completed, completed_line),
        ("digest_pending", active, pending_line),
        ("digest_opted_out", opted_out, pending_line),
        ("digest_blocked", blocked, pending_line),
    ):
        lines.append(guide.message(title, count=len(items)))
        if items:
            lines.extend(render(a) for a in items)
        else:
            lines.append(guide.message("digest_none"))
        lines.append("")
    return pack_lines(lines[:-1], MessageLimit.MAX_TEXT_LENGTH)


def pack_lines(lines: Sequence[str], limit: int) -> list[str]:
    """Join lines into as few texts of at most `limit` characters as possible."""
    messages: list[str] = []
    current = ""
    for line in lines:
        line = line[:limit]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            messages.append(current)
            current = line
        else:
            current = candidate
    if current:
        messages.append(current)
    return messages


async def send_digest_if_due(
    settings: Settings, repository: Repository, guide: Guide, clock: Clock
) -> bool:
    """Queue the daily digest for the firm's chats when its time has come."""
    now = clock.now()
    stored = await repository.meta(LAST_DIGEST_KEY)
    if stored is None:
        # First run: the first digest covers from now on, at the next digest time.
        await repository.set_meta(LAST_DIGEST_KEY, now.isoformat())
        return False
    last = datetime.fromisoformat(stored)
    if now < next_daily_at(last, settings.digest_time, settings.timezone):
        return False
    completed, pending = await repository.authorizations_for_digest(last)
    texts = render_digest(guide, now, completed, pending, settings.timezone)
    messages = [FirmMessage(chat_id, text) for chat_id in settings.firm_chat_ids for text in texts]
    await repository.queue_firm_messages(messages, now, (LAST_DIGEST_KEY, now.isoformat()))
    return True
