"""Telling the firm's chats what happened, without losing a notice to a crash."""

import asyncio
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.clock import Clock
from bot.repository import Authorization, Repository
from bot.rut import format_rut
from conversations.guide import Guide, local_datetime

logger = logging.getLogger(__name__)

# A firm chat that keeps refusing (bot removed from the group) is not retried forever.
MAX_ATTEMPTS = 20


def describe_duration(duration: timedelta) -> str:
    """Say how long something took, in short Spanish ('12 min', '2 h 5 min', '3 días')."""
    minutes = max(1, round(duration.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} días"


def completion_notice(guide: Guide, authorization: Authorization, tz: ZoneInfo) -> str:
    """Render the firm's notice that a company completed its authorization."""
    completed_at = authorization.completed_at or authorization.last_activity_at
    username = f"@{authorization.client_username}" if authorization.client_username else ""
    return guide.message(
        "firm_completed",
        company_rut=format_rut(authorization.company_rut),
        client_name=authorization.client_name or "—",
        client_username=username,
        client_id=authorization.client_user_id or "—",
        completed_at=f"{local_datetime(completed_at, tz)} (hora de Chile)",
        duration=describe_duration(completed_at - authorization.started_at),
    )


class FirmNotifier:
    """Delivers the outbox of firm messages: at least once, in order, never in parallel."""

    def __init__(self, repository: Repository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock
        self._lock = asyncio.Lock()

    async def deliver_pending(self, bot: Bot) -> int:
        """Send every undelivered firm message; return how many went out."""
        delivered = 0
        async with self._lock:
            for message in await self._repository.unsent_outbox(max_attempts=MAX_ATTEMPTS):
                try:
                    await bot.send_message(message.chat_id, message.text, parse_mode=ParseMode.HTML)
                except (Forbidden, BadRequest) as exc:
                    logger.warning(
                        "firm chat %s refused notice %s: %s", message.chat_id, message.id, exc
                    )
                    await self._repository.mark_outbox(message.id, self._clock.now(), sent=False)
                    continue
                except NetworkError as exc:
                    # Telegram unreachable: the retry job will try again; keep the order.
                    logger.warning("could not reach Telegram for firm notices: %s", exc)
                    break
                # A crash right here sends this notice once more after restart: a duplicate
                # notice is better than a lost one.
                await self._repository.mark_outbox(message.id, self._clock.now(), sent=True)
                delivered += 1
        return delivered
