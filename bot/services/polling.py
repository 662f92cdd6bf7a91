"""Long polling that acknowledges updates to Telegram only after they were processed.

python-telegram-bot's Updater confirms updates (the next getUpdates offset) before its
handlers have run, so a killed process could lose a client's message. Here every chat has
its own queue, worked in order by its own task, chats side by side; the poller keeps
fetching meanwhile, so one slow chat (a 429 being waited out, a firm group's pacing) never
holds the others. Telegram is told an offset only up to the oldest update not yet done, so
after a crash everything unfinished is delivered again.

One commit per update. The "processed" marker is written inside the handler's own
transaction (bot/storage/database.py), and the offset lives in memory: Telegram itself keeps
it, as the updates it delivers again. Markers are consulted only for updates delivered again
after a restart (at most the ids up to the highest marker found at start). Such an update
was applied before the process died; the next commit notes that its answer went out. One
applied and answered is skipped; one applied but maybe not answered is not processed again
either: the client is shown where the stored state is (`show_again`). So nothing is applied
twice, no client is left without an answer, and at most the last answers before a crash
are shown twice.

Updates are read one by one from getUpdates' raw answer: one python-telegram-bot cannot
parse is logged by id and type, counted and skipped, and the rest are processed. A database
refusing to write (disk full, locked by another program) leaves the update unacknowledged
and is retried, with a short backoff, until it works again.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ExtBot

from bot.storage.database import UpdateWrites
from bot.storage.repository import Repository

logger = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 10
# Added to the long poll's own timeout for reading the answer (PTB's default read timeout).
READ_MARGIN_SECONDS = 5.0
# Once Telegram answers again, polling resumes within this long at most.
MAX_BACKOFF_SECONDS = 5.0
# A write the database refuses, or replies Telegram could not take, are retried this soon at
# first, doubling up to the cap.
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 4.0
# While an older update is unfinished Telegram is asked this often whether newer ones came,
# waiting this long at most for the answer.
BUSY_POLL_SECONDS = 0.5
PROBE_SECONDS = 1.0
# On SIGTERM, updates in progress get this long to finish; the rest are delivered again.
STOP_GRACE_SECONDS = 7.0
# A persistent 409 (another process polling the token) is reported at most this often.
CONFLICT_REPORT_SECONDS = 60.0
# Chats handled side by side (each chat's own updates stay in order). A reply costs a few
# round trips to Telegram, so one-at-a-time would make a busy moment queue everyone.
MAX_CONCURRENT_CHATS = 32

# Updates of one chat share a key; an update without a chat is a chain of its own.
ChainKey = tuple[str, int]
# Shows a client, whose update was applied before a crash, where the stored state is; it
# never raises (conversations/client/router.py).
ShowAgain = Callable[[Update], Awaitable[None]]


class Poller:
    """Fetches updates, processes each chat's in order, and acknowledges what is done."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        repository: Repository,
        allowed_updates: list[str],
        *,
        show_again: ShowAgain | None = None,
        undelivered: set[int] | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self._application = application
        # Updates whose replies the handlers could not deliver (Deps.undelivered, shared).
        self._undelivered_ids = undelivered if undelivered is not None else set()
        self._repository = repository
        self._database = repository.database
        self._show_again = show_again
        # Updates at or below this id may have been processed before a restart.
        self._marked_until: int | None = None
        self._again: set[int] = set()
        # Answered, but not yet noted so in the database (the next commit does it).
        self._answered: set[int] = set()
        self._allowed_updates = allowed_updates
        self._stop_grace = stop_grace
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_CHATS)
        self._queues: dict[ChainKey, deque[Update]] = {}
        self._workers: dict[ChainKey, asyncio.Task[None]] = {}
        self._unfinished: set[int] = set()
        # Done, but still at or above the offset Telegram was told: it may deliver them again.
        self._done: set[int] = set()
        self._highest: int | None = None
        self._confirmed: int | None = None
        # The offset of the last getUpdates Telegram answered: it has forgotten what is below.
        self._told: int | None = None
        self._storage_delay = RETRY_SECONDS
        self.last_success: float | None = None
        self._conflict_told = -CONFLICT_REPORT_SECONDS
        self._probed = -BUSY_POLL_SECONDS  # when Telegram was last asked for newer updates

    @property
    def backlog(self) -> int:
        """Return how many fetched updates still wait to be processed."""
        return len(self._unfinished)

    def stop(self) -> None:
        """Ask the loop to finish the updates in progress and return."""
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
        self._marked_until = await self._last_marked()
        try:
            await self._poll()
        finally:
            await self._finish_chains()
        offset = self._confirm()
        if offset is not None:
            await self._acknowledge(offset)

    async def _last_marked(self) -> int | None:
        """Read the highest processed marker, retrying while the database cannot be read."""
        while True:
            try:
                marked = await self._repository.bookkeeping.last_processed()
            except sqlite3.Error as exc:
                await self._storage_failed("the processed updates could not be read", exc)
                if self._stop.is_set():
                    return None
            else:
                self._storage_delay = RETRY_SECONDS
                return marked

    async def _poll(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            offset = self._confirm()
            self._progress.clear()
            if self._unfinished:
                # Asked at most every BUSY_POLL_SECONDS: an update done meanwhile does not
                # cost another probe while older ones are still in progress.
                since = time.monotonic() - self._probed
                if since < BUSY_POLL_SECONDS:
                    await self._wait_for_progress(BUSY_POLL_SECONDS - since)
                    continue
                self._probed = time.monotonic()
                if not await self._news_waiting():
                    await self._wait_for_progress(BUSY_POLL_SECONDS)
                    continue
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
                return  # stopped while waiting
            backoff = 1.0
            self.last_success = time.time()
            try:
                fresh = await self._take(updates)
            except sqlite3.Error as exc:
                await self._storage_failed("the processed updates could not be read", exc)
                continue
            self._storage_delay = RETRY_SECONDS
            if not fresh and self._unfinished:
                await self._wait_for_progress()

    async def _take(self, raw: Sequence[Any]) -> bool:
        """Queue the updates not seen before, each on its chat's chain; tell if any was new."""
        new = [
            item
            for item in raw
            if isinstance(item, dict)
            and isinstance(item.get("update_id"), int)
            and not self._known(item["update_id"])
        ]
        if not new:
            return False
        maybe = [
            item["update_id"]
            for item in new
            if self._marked_until is not None and item["update_id"] <= self._marked_until
        ]
        # Read before anything is taken: if this fails, the batch is simply fetched again.
        processed = await self._repository.bookkeeping.processed_among(maybe) if maybe else {}
        for item in new:
            update_id = int(item["update_id"])
            self._highest = update_id if self._highest is None else max(self._highest, update_id)
            update = self._parse(item)
            if update is None:
                self._done.add(update_id)
                continue
            if processed.get(update_id):
                self._done.add(update_id)  # applied and answered before the restart
                continue
            if update_id in processed:
                self._again.add(update_id)
            self._unfinished.add(update_id)
            self._enqueue(update)
        return True

    def _known(self, update_id: int) -> bool:
        if update_id in self._unfinished or update_id in self._done:
            return True
        return self._confirmed is not None and update_id < self._confirmed

    def _parse(self, item: dict[str, Any]) -> Update | None:
        """Build one Update; one the library rejects is logged (id and type only) and counted."""
        bot = self._application.bot
        try:
            update = Update.de_json(item, bot)
        except Exception as exc:
            kinds = [key for key in item if key != "update_id"]
            # Never the content: it is a client's message.
            logger.warning(
                "update %s (%s) could not be read (%s); skipped",
                item["update_id"],
                ", ".join(kinds) or "empty",
                type(exc).__name__,
            )
            return None
        if isinstance(bot, ExtBot):
            bot.insert_callback_data(update)
        return update

    def _enqueue(self, update: Update) -> None:
        chat = update.effective_chat
        key: ChainKey = ("chat", chat.id) if chat is not None else ("update", update.update_id)
        self._queues.setdefault(key, deque()).append(update)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key))

    async def _work(self, key: ChainKey) -> None:
        """Process one chat's updates in order, until its queue is empty or a stop request."""
        queue = self._queues[key]
        try:
            while queue and not self._stop.is_set():
                update = queue[0]
                async with self._limit:
                    if self._stop.is_set() or not await self.handle(update):
                        return
                queue.popleft()
                self._unfinished.discard(update.update_id)
                self._done.add(update.update_id)
                self._progress.set()
        finally:
            del self._workers[key]
            if not queue:
                del self._queues[key]

    async def handle(self, update: Update) -> bool:
        """Process one fetched update and record it, in its own commit (as polling does);
        False if stopped before it was recorded.

        An update whose replies Telegram could not take at all (unreachable) is processed
        again, with a short backoff, until they go through: the handlers show the client
        where the stored state is, so nothing is applied twice.
        """
        if update.update_id in self._again:
            self._again.discard(update.update_id)
            await self._show(update)
            return True
        # Updates answered since the last commit are noted in this one (prune what Telegram
        # will never deliver again).
        told = self._told
        if told is not None:
            self._answered = {done for done in self._answered if done >= told}
        answered = sorted(self._answered)
        with self._database.for_update(
            update.update_id, answered=answered, prune_below=told
        ) as writes:
            delivered = await self._process_until_delivered(update)
            if not (delivered and await self._record(writes)):
                return False
        self._answered.difference_update(answered)
        self._answered.add(update.update_id)
        return True

    async def _process_until_delivered(self, update: Update) -> bool:
        """Process an update, again while Telegram could not take its replies at all."""
        delay = RETRY_SECONDS
        while True:
            await self._process(update)
            if not self._undelivered(update.update_id):
                return True
            logger.warning(
                "update %s: Telegram unreachable for its replies; again in %.1f s",
                update.update_id,
                delay,
            )
            if await self.wait_stopped(delay):
                return False
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _show(self, update: Update) -> None:
        """Answer an update applied before a restart by showing where the client is."""
        if self._show_again is None:
            return
        await self._show_again(update)  # guarded: it logs its own failure
        # It was applied before the crash: never processed again, even if that went unheard.
        self._undelivered(update.update_id)

    async def _process(self, update: Update) -> None:
        """Run the handlers of one update; an error outside them is logged, not raised."""
        try:
            await self._application.process_update(update)
        except Exception:
            # Handlers' own errors are caught by the application; this is anything else.
            logger.exception(
                "update %s (%s) failed outside its handlers; skipped",
                update.update_id,
                _kind(update),
            )

    def _undelivered(self, update_id: int) -> bool:
        """Take note (once) of whether the handlers could not deliver this update's replies."""
        if update_id not in self._undelivered_ids:
            return False
        self._undelivered_ids.discard(update_id)
        return True

    async def _record(self, writes: UpdateWrites) -> bool:
        """Commit what the handler's own transaction did not carry, retrying while refused."""
        # Processed: only the marker is retried, so a client is never answered twice (nor
        # told twice that something failed) because the database refused a write.
        delay, failures = RETRY_SECONDS, 0
        update_id = writes.update_id
        while True:
            try:
                await self._database.finish_update(writes)
            except sqlite3.Error as exc:
                failures += 1
                (logger.warning if failures == 1 else logger.debug)(
                    "update %s processed but not recorded (%s); retrying in %.1f s",
                    update_id,
                    _one_line(exc),
                    delay,
                )
            else:
                if failures:
                    logger.info("update %s recorded; the database writes again", update_id)
                return True
            if await self.wait_stopped(delay):
                return False
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _confirm(self) -> int | None:
        """Return the offset that may be told: up to the oldest unfinished update."""
        if self._unfinished:
            frontier: int | None = min(self._unfinished)
        else:
            frontier = None if self._highest is None else self._highest + 1
        if frontier is None or (self._confirmed is not None and frontier <= self._confirmed):
            return self._confirmed
        self._confirmed = frontier
        self._done = {update_id for update_id in self._done if update_id >= frontier}
        return frontier

    async def _storage_failed(self, what: str, exc: sqlite3.Error) -> None:
        logger.warning("%s (%s); retrying in %.1f s", what, _one_line(exc), self._storage_delay)
        await self._pause(self._storage_delay)
        self._storage_delay = min(self._storage_delay * 2, MAX_RETRY_SECONDS)

    async def _news_waiting(self) -> bool:
        """Tell whether Telegram holds updates not fetched yet (True if it cannot say soon)."""
        # While an update is unfinished every getUpdates answer repeats it (and all after it):
        # asking how many are pending first keeps those repeats to when something is new.
        # The rate limiter holds this call while it waits out a 429: then just look.
        probe = asyncio.ensure_future(self._application.bot.get_webhook_info())
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait(
            {probe, stopped}, timeout=PROBE_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        stopped.cancel()
        if not probe.done():
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
            return not self._stop.is_set()
        if probe.exception() is not None:
            return True
        self.last_success = time.time()
        known = len(self._unfinished) + len(self._done)
        return bool(probe.result().pending_update_count > known)

    async def _wait_for_progress(self, seconds: float = BUSY_POLL_SECONDS) -> None:
        """Wait until an update is done, a stop request, or `seconds` (time to look again)."""
        waits = [
            asyncio.ensure_future(self._progress.wait()),
            asyncio.ensure_future(self._stop.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _finish_chains(self) -> None:
        """Let the updates in progress finish (within the grace period); cancel the rest."""
        self._stop.set()
        workers = list(self._workers.values())
        if not workers:
            return
        _, late = await asyncio.wait(workers, timeout=self._stop_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if late:
            logger.warning("%d update(s) still in progress at exit; they come again", len(late))

    async def _get_updates(self, offset: int | None, wait: int, limit: int | None) -> list[Any]:
        """Call getUpdates and return its raw answer, not parsed (see `_parse`)."""
        data: dict[str, Any] = {
            "offset": offset,
            "timeout": wait,
            "limit": limit,
            "allowed_updates": self._allowed_updates,
        }
        # Bot.get_updates parses the whole batch at once: one update it cannot read would
        # fail them all (and its log line would print every client's message).
        result = await self._application.bot._post(
            "getUpdates", data, read_timeout=wait + READ_MARGIN_SECONDS
        )
        if offset is not None:
            self._told = offset
        return list(result) if isinstance(result, list) else []

    async def _fetch(self, offset: int | None) -> list[Any] | None:
        """Long-poll for updates; None if stopped meanwhile."""
        poll = asyncio.ensure_future(self._get_updates(offset, POLL_TIMEOUT_SECONDS, None))
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not poll.done():
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            return None
        stopped.cancel()
        return poll.result()

    async def _acknowledge(self, offset: int) -> None:
        """Tell Telegram what was processed, so a graceful restart starts clean."""
        try:
            await self._get_updates(offset, 0, 1)
        except TelegramError as exc:
            logger.info("final acknowledgement skipped (%s); those updates come again", exc)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _kind(update: Update) -> str:
    """Name what an update carries ('message', 'callback_query', …), never its content."""
    fields = update.to_dict()
    return ", ".join(key for key in fields if key != "update_id") or "empty"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
