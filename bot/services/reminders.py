"""Sending due reminders from the database: paced, quiet-hours aware, crash-safe.

Delivery side chosen: at least once. A reminder is recorded as sent only after Telegram
accepted it, so a crash between the two sends that one reminder again after the restart
(at most one duplicate); a reminder is never lost.

One failing chat never starves the others: a reminder Telegram answers with an error (a
500 for that chat, say) is put off, 1, 2, 4… minutes, and the sweep goes on. Only when
Telegram itself seems unreachable (no answer, flood control, several chats failing in a
row) does the sweep stop, leaving the rest for the next one.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.domain.clock import Clock
from bot.domain.rut import format_rut
from bot.domain.schedule import reminder_due_at
from bot.domain.settings import Settings
from bot.guide import keyboards
from bot.guide.guide import Guide
from bot.storage.repository import DueReminder, ReminderKind, Repository

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A reminder that failed is put off this long, doubling with each failure up to the cap.
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)
# This many different chats failing in a row means Telegram is the problem, not the chats.
MAX_FAILURES_IN_A_ROW = 3
# How PTB words a request that got no answer at all (httpx's errors, a dropped connection).
_NO_ANSWER_WORDS = ("httpx", "connection", "connect", "timed out", "timeout", "network")


class Delivery(Enum):
    """How sending one reminder went."""

    SENT = "sent"
    BLOCKED = "blocked"  # Forbidden: the client blocked the bot
    REFUSED = "refused"  # BadRequest: this message will never go through
    FAILED = "failed"  # anything else (network, flood limits): worth trying later


@dataclass(frozen=True)
class NextReminder:
    """What comes after a reminder that was just sent."""

    due: datetime | None
    sequence: int
    anchor: datetime


def next_after(reminder: DueReminder, sent_at: datetime, settings: Settings) -> NextReminder:
    """Schedule the reminder that follows one sent at `sent_at`."""
    delays = settings.reminder_schedule
    if reminder.kind is ReminderKind.LATER:
        if reminder.company_rut is None:
            return NextReminder(None, 0, sent_at)
        return NextReminder(reminder_due_at(sent_at, delays, 0), 0, sent_at)
    following = reminder.sequence + 1
    due = reminder_due_at(reminder.anchor_at, delays, following)
    if due is None:
        return NextReminder(None, following, reminder.anchor_at)
    # After downtime several entries may be overdue at once: keep their spacing instead.
    gap = delays[following] - delays[reminder.sequence]
    return NextReminder(max(due, sent_at + gap), following, reminder.anchor_at)


class ActivityThrottle:
    """Decides when a client's activity is worth writing down again.

    Activity restarts the reminder clock, but a client pressing a button every few seconds
    would otherwise cost a write each time. Re-recording within a small fraction of the
    first reminder delay (at most a minute) moves a reminder by no more than that fraction.
    """

    MAX_WINDOW = timedelta(minutes=1)

    def __init__(self, delays: tuple[timedelta, ...]) -> None:
        self._window = min(self.MAX_WINDOW, delays[0] / 10) if delays else self.MAX_WINDOW
        # Oldest first; a chat not seen within the window is forgotten, so this holds only
        # the chats active in the last minute, not every chat ever seen.
        self._last: OrderedDict[int, datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def should_record(self, chat_id: int, now: datetime) -> bool:
        """Tell whether to record activity in this chat now (and remember that it was)."""
        while self._last:
            oldest, at = next(iter(self._last.items()))
            if timedelta(0) <= now - at < self._window:
                break
            del self._last[oldest]
        last = self._last.get(chat_id)
        if last is not None and timedelta(0) <= now - last < self._window:
            return False
        self._last.pop(chat_id, None)
        self._last[chat_id] = now
        return True


class ReminderSweeper:
    """Finds due reminders in batches and sends them, one sweep at a time."""

    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        guide: Guide,
        clock: Clock,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._guide = guide
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._interval = 1.0 / settings.reminder_rate
        self._stopping = False
        # Failures in a row per chat (in memory: after a restart a chat starts over at 1 min).
        self._failures: dict[int, int] = {}

    def stop(self) -> None:
        """Make a running sweep return after the reminder in flight (for shutdown)."""
        self._stopping = True

    def in_quiet_hours(self, now: datetime) -> bool:
        """Tell whether reminders must wait because it is quiet time locally."""
        quiet = self._settings.quiet_hours
        return quiet is not None and quiet.contains(now.astimezone(self._settings.timezone))

    async def sweep(self, bot: Bot, busy: Callable[[], bool] = lambda: False) -> int:
        """Send every reminder due now; return how many were sent.

        `busy` tells when clients' updates are waiting: their replies go first.
        """
        if self._lock.locked():
            return 0  # the previous sweep is still sending
        async with self._lock:
            now = self._clock.now()
            if self.in_quiet_hours(now):
                return 0
            sent = 0
            failing = 0  # chats failing in a row in this sweep
            while True:
                batch = await self._repository.reminders.due_reminders(now, BATCH_SIZE)
                for reminder in batch:
                    if self._stopping:
                        return sent
                    while busy():
                        await self._sleep(0.05)
                    outcome = await self._send(bot, reminder)
                    if outcome is None:
                        return sent  # Telegram unreachable: the next sweep carries on
                    failing = failing + 1 if outcome < 0 else 0
                    if failing >= MAX_FAILURES_IN_A_ROW:
                        logger.warning("%d chats in a row failed; the next sweep goes on", failing)
                        return sent
                    sent += max(outcome, 0)
                    await self._sleep(self._interval)
                if len(batch) < BATCH_SIZE:
                    return sent

    async def deliver(
        self, bot: Bot, chat_id: int, company_rut: str | None, step: int | None
    ) -> Delivery:
        """Send one reminder message; a client who blocked the bot is recorded as such."""
        outcome, _ = await self._deliver(bot, chat_id, company_rut, step)
        return outcome

    async def _deliver(
        self, bot: Bot, chat_id: int, company_rut: str | None, step: int | None
    ) -> tuple[Delivery, TelegramError | None]:
        """Send one reminder message; return how it went and, if it failed, why."""
        if company_rut is not None and step is not None:
            text = self._guide.message(
                "reminder_step", company_rut=format_rut(company_rut), step=step
            )
        else:
            text = self._guide.message("reminder_welcome")
        try:
            await bot.send_message(
                chat_id,
                text,
                reply_markup=keyboards.reminder(self._guide),
            )
        except Forbidden:
            logger.info("chat %s blocked the bot; reminders stopped", chat_id)
            await self._repository.reminders.mark_blocked(chat_id, self._clock.now())
            return Delivery.BLOCKED, None
        except BadRequest as exc:
            logger.warning("reminder to chat %s refused: %s", chat_id, exc)
            return Delivery.REFUSED, None
        except TelegramError as exc:
            logger.warning("reminder to chat %s not sent: %s", chat_id, exc)
            return Delivery.FAILED, exc
        return Delivery.SENT, None

    async def _send(self, bot: Bot, reminder: DueReminder) -> int | None:
        """Send one due reminder and record it: 1 sent, 0 dropped, -1 put off, None to stop."""
        # The batch was read a while ago (sending is paced): quiet hours may have begun, and
        # the client may have acted.
        if self.in_quiet_hours(self._clock.now()):
            return None
        if not await self._repository.reminders.reminder_is_current(reminder):
            return 0
        outcome, error = await self._deliver(
            bot, reminder.chat_id, reminder.company_rut, reminder.step
        )
        if outcome is Delivery.BLOCKED:
            return 0
        if outcome is Delivery.REFUSED:
            await self._repository.reminders.drop_reminder(reminder)
            return 0
        if outcome is Delivery.FAILED:
            return await self._failed(reminder, error)
        self._failures.pop(reminder.chat_id, None)
        sent_at = self._clock.now()
        following = next_after(reminder, sent_at, self._settings)
        await self._repository.reminders.reminder_sent(
            reminder, sent_at, following.due, following.sequence, following.anchor
        )
        return 1

    async def _failed(self, reminder: DueReminder, error: TelegramError | None) -> int | None:
        """Put a failed reminder off (-1), or stop the sweep (None) if Telegram is unreachable."""
        # A reminder that got no answer at all is left as it is the first time (Telegram is
        # probably unreachable for everyone); one that failed before, or that Telegram
        # answered with an error, is put off so that the next ones are not held up.
        if isinstance(error, RetryAfter):
            return None  # flood control applies to the whole bot
        failures = self._failures.get(reminder.chat_id, 0)
        self._failures[reminder.chat_id] = failures + 1
        if failures == 0 and _unanswered(error):
            return None
        delay = min(FIRST_BACKOFF * 2 ** min(failures, 10), MAX_BACKOFF)
        due = self._clock.now() + delay
        await self._repository.reminders.postpone_reminder(reminder, due)
        logger.info(
            "reminder to chat %s put off %d min (failure %d)",
            reminder.chat_id,
            delay // timedelta(minutes=1),
            failures + 1,
        )
        return -1


def _unanswered(error: TelegramError | None) -> bool:
    """Tell whether a failed request got no answer from Telegram (a network failure)."""
    if isinstance(error, TimedOut):
        return True
    if not isinstance(error, NetworkError):
        return False
    if error.__cause__ is not None and not isinstance(error.__cause__, TelegramError):
        return True  # httpx's own exception
    # An HTTP error answer (500, 502…) carries Telegram's description instead.
    return any(word in error.message.lower() for word in _NO_ANSWER_WORDS)
