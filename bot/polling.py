"""Long polling that acknowledges an update to Telegram only after it was processed.

python-telegram-bot's Updater confirms updates (the next getUpdates offset) before its
handlers have run, so a killed process could lose a client's message. Here each update is
processed first; the offset of the last processed update is then committed to the
database, and Telegram is told on the next getUpdates. After a crash the update that was
being processed is delivered again (at least once), and nothing processed is repeated.
"""

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.repository import Repository

logger = logging.getLogger(__name__)

OFFSET_KEY = "update_offset"
POLL_TIMEOUT = timedelta(seconds=10)
MAX_BACKOFF_SECONDS = 30.0


class Poller:
    """Fetches updates, processes them one by one, then acknowledges them."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        repository: Repository,
        allowed_updates: list[str],
    ) -> None:
        self._application = application
        self._repository = repository
        self._allowed_updates = allowed_updates
        self._stop = asyncio.Event()
        self._waiting = 0
        self.last_success: float | None = None

    @property
    def backlog(self) -> int:
        """Return how many fetched updates still wait to be processed."""
        return self._waiting

    def stop(self) -> None:
        """Ask the loop to finish the update in progress and return."""
        self._stop.set()

    async def wait_stopped(self, seconds: float) -> bool:
        """Wait up to `seconds` for a stop request; tell whether one came."""
        await self._pause(seconds)
        return self._stop.is_set()

    def is_alive(self, now: float, within: float) -> bool:
        """Tell whether a poll succeeded in the last `within` seconds."""
        return self.last_success is not None and now - self.last_success < within

    async def run(self) -> None:
        """Poll until stopped; raises InvalidToken when the token is refused."""
        stored = await self._repository.meta(OFFSET_KEY)
        offset = int(stored) if stored else None
        backoff = 1.0
        while not self._stop.is_set():
            try:
                updates = await self._fetch(offset)
            except (InvalidToken, asyncio.CancelledError):
                raise
            except RetryAfter as exc:
                await self._pause(_seconds(exc.retry_after))
                continue
            except (NetworkError, Conflict, TelegramError) as exc:
                logger.warning("getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if updates is None:
                break  # stopped while waiting
            backoff = 1.0
            self.last_success = time.time()
            self._waiting = len(updates)
            for update in updates:
                if offset is not None and update.update_id < offset:
                    continue  # already processed before a restart
                await self._application.process_update(update)
                offset = update.update_id + 1
                self._waiting -= 1
                await self._repository.set_meta(OFFSET_KEY, str(offset))
                if self._stop.is_set():
                    break
            self._waiting = 0
        await self._acknowledge(offset)

    async def _fetch(self, offset: int | None) -> list[Any] | None:
        """Long-poll for updates; None if stopped meanwhile."""
        poll = asyncio.ensure_future(
            self._application.bot.get_updates(
                offset=offset, timeout=POLL_TIMEOUT, allowed_updates=self._allowed_updates
            )
        )
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not poll.done():
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            return None
        stopped.cancel()
        return list(poll.result())

    async def _acknowledge(self, offset: int | None) -> None:
        """Tell Telegram what was processed, so a graceful restart starts clean."""
        if offset is None:
            return
        try:
            await self._application.bot.get_updates(
                offset=offset, timeout=0, limit=1, allowed_updates=self._allowed_updates
            )
        except TelegramError as exc:
            logger.info("final acknowledgement skipped (%s); the offset is stored", exc)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
