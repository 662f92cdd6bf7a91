"""The firm's daily summary: who completed, who is pending, who opted out or blocked."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from telegram import Bot
from telegram.constants import MessageLimit
from telegram.error import TelegramError

from bot.domain.clock import Clock
from bot.domain.rut import format_rut
from bot.domain.schedule import next_daily_at
from bot.domain.settings import Settings
from bot.formats.progress_chart import (
    LABEL_KEYS,
    STEPS,
    WEEKS,
    ProgressCounts,
    progress_png,
    weekly_completions,
)
from bot.guide.guide import Guide, local_date, local_datetime
from bot.storage.repository import Authorization, FirmMessage, Repository

logger = logging.getLogger(__name__)

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


def chart_labels(guide: Guide) -> dict[str, str]:
    """Return the progress picture's labels from the guide (its chart_* texts)."""
    labels = {
        key: guide.button(f"chart_{key}") for key in LABEL_KEYS if not key.startswith("step_")
    }
    labels.update({f"step_{n}": guide.button("chart_step", step=n) for n in range(1, STEPS + 1)})
    return labels


def first_week(today: date, weeks: int = WEEKS) -> date:
    """Return the Monday that starts the first of the picture's weeks."""
    return today - timedelta(days=today.weekday(), weeks=weeks - 1)


def progress_caption(
    guide: Guide,
    counts: ProgressCounts,
    weekly: Sequence[tuple[date, int]],
    now: datetime,
    tz: ZoneInfo,
) -> str:
    """Render the numbers of the progress picture, to go under it."""
    in_progress = sum(counts.by_step)
    total = counts.completed + in_progress + counts.not_started + counts.opted_out
    total += counts.blocked
    lines = [
        guide.message("summary_title", date=local_date(now, tz)),
        guide.message("summary_total", total=total),
        guide.message("summary_completed", count=counts.completed),
        guide.message("summary_in_progress", count=in_progress),
        *(
            guide.message("summary_step", step=step, count=count)
            for step, count in enumerate(counts.by_step, start=1)
        ),
        guide.message("summary_not_started", count=counts.not_started),
        guide.message("summary_opted_out", count=counts.opted_out),
        guide.message("summary_blocked", count=counts.blocked),
        guide.message("summary_this_week", count=weekly[-1][1] if weekly else 0),
    ]
    return "\n".join(lines)


async def progress_picture(
    repository: Repository, guide: Guide, now: datetime, tz: ZoneInfo
) -> tuple[bytes, str]:
    """Return the practice's progress as a PNG (drawn in a thread) and its caption."""
    today = now.astimezone(tz).date()
    since = datetime.combine(first_week(today), time(), tzinfo=tz)
    counts, completed_at = await repository.firm.progress(since)
    weekly = weekly_completions(completed_at, today=today, tz=tz)
    # Drawing takes about half a second of CPU: never on the event loop.
    png = await asyncio.to_thread(progress_png, counts, weekly, labels=chart_labels(guide))
    return png, progress_caption(guide, counts, weekly, now, tz)


async def send_digest_picture(
    bot: Bot, settings: Settings, repository: Repository, guide: Guide, now: datetime
) -> None:
    """Send the progress picture to every firm chat; best effort, failures only logged."""
    try:
        png, caption = await progress_picture(repository, guide, now, settings.timezone)
    except Exception:
        logger.exception("the digest's progress picture could not be drawn")
        return
    for chat_id in settings.firm_chat_ids:
        try:
            await bot.send_photo(chat_id, png, caption=caption)
        except TelegramError as exc:
            logger.warning("digest picture not sent to chat %s: %s", chat_id, exc)


async def send_digest_if_due(
    settings: Settings,
    repository: Repository,
    guide: Guide,
    clock: Clock,
    bot: Bot | None = None,
) -> bool:
    """Queue the daily digest for the firm's chats when its time has come (and its picture)."""
    now = clock.now()
    stored = await repository.bookkeeping.meta(LAST_DIGEST_KEY)
    if stored is None:
        # First run: the first digest covers from now on, at the next digest time.
        await repository.bookkeeping.set_meta(LAST_DIGEST_KEY, now.isoformat())
        return False
    last = datetime.fromisoformat(stored)
    if now < next_daily_at(last, settings.digest_time, settings.timezone):
        return False
    completed, pending = await repository.firm.authorizations_for_digest(last)
    texts = render_digest(guide, now, completed, pending, settings.timezone)
    messages = [FirmMessage(chat_id, text) for chat_id in settings.firm_chat_ids for text in texts]
    await repository.outbox.queue_firm_messages(messages, now, (LAST_DIGEST_KEY, now.isoformat()))
    # The picture is not in the outbox (its photos are Telegram file ids): sent once, now.
    if bot is not None:
        await send_digest_picture(bot, settings, repository, guide, now)
    return True
