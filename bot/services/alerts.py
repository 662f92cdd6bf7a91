"""Short alerts to the firm's chats about failures only a person can fix."""

import logging
from datetime import datetime, timedelta
from enum import StrEnum

from telegram import Bot
from telegram.error import TelegramError

from bot.domain.clock import Clock
from bot.guide.guide import Guide

logger = logging.getLogger(__name__)

# One alert of each kind per this long at most: a failure that lasts must not flood the firm.
ALERT_EVERY = timedelta(hours=1)
# Handler failures within this window that make an alert.
FAILURES_WINDOW = timedelta(minutes=10)
FAILURES_TO_ALERT = 3


class AlertKind(StrEnum):
    """What needs a person; each is a text of the guide, `alert_<kind>`."""

    OUTBOX_GAVE_UP = "outbox"
    HANDLER_FAILING = "failing"
    DATABASE_REFUSING = "database"


class Alerts:
    """Sends alerts straight to the firm's chats (not through the outbox: the database may be
    what fails), rate-limited per kind, never with a client's data or the token."""

    def __init__(self, guide: Guide, firm_chat_ids: tuple[int, ...], clock: Clock) -> None:
        self._guide = guide
        self._firm_chat_ids = firm_chat_ids
        self._clock = clock
        self._last_sent: dict[AlertKind, datetime] = {}
        self._failures: list[datetime] = []

    def is_firm_chat(self, chat_id: int) -> bool:
        """Tell whether a chat is one of the firm's (FIRM_CHAT_IDS)."""
        return chat_id in self._firm_chat_ids

    async def alert(self, bot: Bot, kind: AlertKind, **values: object) -> bool:
        """Send one alert unless one of its kind went out recently; tell whether it was sent."""
        now = self._clock.now()
        last = self._last_sent.get(kind)
        if last is not None and now - last < ALERT_EVERY:
            return False
        self._last_sent[kind] = now
        text = self._guide.message(f"alert_{kind.value}", **values)
        logger.warning("alert to the firm: %s", kind.value)
        for chat_id in self._firm_chat_ids:
            try:
                await bot.send_message(chat_id, text)
            except TelegramError as exc:
                logger.warning("alert not delivered to chat %s: %s", chat_id, exc)
        return True

    async def handler_failed(self, bot: Bot) -> None:
        """Count a failed update; alert when failures repeat within a short window."""
        now = self._clock.now()
        self._failures = [at for at in self._failures if now - at < FAILURES_WINDOW]
        self._failures.append(now)
        if len(self._failures) >= FAILURES_TO_ALERT:
            minutes = int(FAILURES_WINDOW.total_seconds() // 60)
            await self.alert(
                bot, AlertKind.HANDLER_FAILING, count=len(self._failures), minutes=minutes
            )
