"""Long polling that acknowledges updates to Telegram only after they were processed.

python-telegram-bot's Updater confirms updates (the next getUpdates offset) before its
handlers have run, so a killed process could lose a client's message. Here a batch is
processed first (chats side by side, each chat in order), every processed update is
marked in the database, and only then is the offset moved and Telegram told on the next
getUpdates. After a crash the updates in flight are delivered again (at least once), and
the ones already processed are skipped.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.repository import Repository

logger = logging.getLogger(__name__)

OFFSET_KEY = "update_offset"
POLL_TIMEOUT = timedelta(seconds=10)
MAX_BACKOFF_SECONDS = 30.0
# A persistent 409 (another process polling the token) is reported at most this often.
CONFLICT_REPORT_SECONDS = 60.0
# Chats handled side by side (each chat's own updates stay in order). A reply costs a few
# round trips to Telegram, so one-at-a-time would make a busy moment queue everyone.
MAX_CONCURRENT_CHATS = 32


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
        self._conflict_told = -CONFLICT_REPORT_SECONDS

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
            except Conflict as exc:
                # The webhook was dropped at start, so this is another process polling the
                # same token: say so clearly, but not on every retry.
                if time.monotonic() - self._conflict_told >= CONFLICT_REPORT_SECONDS:
                    self._conflict_told = time.monotonic()
                    logger.error(
                        "Telegram refuses polling (409 Conflict: %s): another bot process is "
                        "polling this token; stop it. Retrying meanwhile.",
                        exc,
                    )
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except (NetworkError, TelegramError) as exc:
                logger.warning("getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if updates is None:
                break  # stopped while waiting
            backoff = 1.0
            self.last_success = time.time()
            if updates:
                offset = await self._process_batch(updates)
        await self._acknowledge(offset)

    async def _process_batch(self, updates: list[Update]) -> int:
        """Process a batch, each chat in order and chats side by side; return the new offset.

        Each update is marked processed when done, so after a crash the redelivered batch
        skips what was already handled. The offset moves past the batch only when every
        update in it is done (a stop request can leave some for the next run).
        """
        done = await self._repository.processed_among([u.update_id for u in updates])
        chains: dict[int, list[Update]] = defaultdict(list)
        for update in updates:
            if update.update_id not in done:
                chat = update.effective_chat
                chains[chat.id if chat else -update.update_id].append(update)
        self._waiting = sum(len(chain) for chain in chains.values())
        limit = asyncio.Semaphore(MAX_CONCURRENT_CHATS)

        async def run_chain(chain: list[Update]) -> None:
            async with limit:
                for update in chain:
                    if self._stop.is_set():
                        return
                    await self._application.process_update(update)
                    await self._repository.mark_processed(update.update_id)
                    done.add(update.update_id)
                    self._waiting -= 1

        await asyncio.gather(*(run_chain(chain) for chain in chains.values()))
        self._waiting = 0
        pending = [u.update_id for u in updates if u.update_id not in done]
        offset = min(pending) if pending else updates[-1].update_id + 1
        await self._repository.advance_offset(OFFSET_KEY, offset)
        return offset

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
