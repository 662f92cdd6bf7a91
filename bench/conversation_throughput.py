"""The guided flow against an echo bot: throughput of four paths, and what an update costs.

Part of the one benchmark run, ``python -m bench`` (bench/__main__.py); nothing runs here alone.

Every client goes /start, dev:pc (at the computer), types the RUT, rut:ok, g:1:next ...
g:5:next, g:6:save, g:7:yes: 11 updates. The four paths, each fed fresh clients:

a. floor: PTB's process_update of an echo handler that also upserts one row, autocommit,
   through aiosqlite at the bot's PRAGMAs (WAL, synchronous = FULL);
b. echo: the same echo handler, no database;
c. production: this bot's Poller (getUpdates answered by the fake with batches of raw
   updates, its per-chat queues, process_update, acknowledging), timed from the first
   getUpdates to the getUpdates whose offset confirms the last update;
d. handling only: the same updates through this bot's application.process_update.

Only stable entry points are used (assemble, the assembly's poller().run()/stop(),
application.process_update, the fake request), so the bench keeps working while the storage
and the poller change.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    CallbackContext,
    CallbackQueryHandler,
    Defaults,
    MessageHandler,
    filters,
)

from bench.fake_bot_api import BOT_USER, POLLING_METHODS, InstantBotApi, Raw
from bench.instrument import Counts, Probe
from bench.reminder_sweep import NOW, TOKEN, company_rut
from bot.domain.rut import format_rut
from bot.domain.settings import Settings
from bot.guide.guide import Guide
from bot.wiring.assembly import Assembly, assemble

FIRM_CHAT = -100_555_000
FIRST_CLIENT = 600_000_000
DATE = int(NOW.timestamp())
STEP_BUTTONS = ("g:1:next", "g:2:next", "g:3:next", "g:4:next", "g:5:next", "g:6:save", "g:7:yes")
FLOW = ("/start", "dev:pc", "RUT", "rut:ok", *STEP_BUTTONS)
# Clients whose updates interleave (update k of each, then update k + 1 of each, ...).
GROUP = 50
# How long the Poller gets to confirm a pass's updates before the pass is given up.
POLL_TIMEOUT = 120.0
CLOCK_STEP = timedelta(seconds=61)

AnyApp = Application[Any, Any, Any, Any, Any, Any]
Context = CallbackContext[Any, Any, Any, Any]


# --- raw updates, as getUpdates delivers them -------------------------------------------

_update_ids = itertools.count(1)
_clients = itertools.count(0)


def _user(user_id: int) -> Raw:
    return {"id": user_id, "is_bot": False, "first_name": "Juana", "username": f"c{user_id}"}


def message_raw(user_id: int, text: str) -> Raw:
    """A private text message (a bot command if it starts with '/')."""
    message: Raw = {
        "message_id": next(_update_ids),
        "date": DATE,
        "chat": {"id": user_id, "type": "private", "first_name": "Juana"},
        "from": _user(user_id),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": next(_update_ids), "message": message}


def callback_raw(user_id: int, data: str) -> Raw:
    """A press of an inline button carrying `data` on one of the bot's messages."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": f"cq{next(_update_ids)}",
            "from": _user(user_id),
            "chat_instance": f"ci{user_id}",
            "data": data,
            "message": {
                "message_id": 77,
                "date": DATE,
                "chat": {"id": user_id, "type": "private", "first_name": "Juana"},
                "from": BOT_USER,
                "text": "…",
            },
        },
    }


def flow_update(client: int, kind: str) -> Raw:
    """Update `kind` of FLOW for client number `client` (its chat, user and company)."""
    user_id = FIRST_CLIENT + client
    if kind == "/start":
        return message_raw(user_id, "/start")
    if kind == "RUT":
        return message_raw(user_id, format_rut(company_rut(client)))
    return callback_raw(user_id, "dev:pc" if kind == "dev:pc" else kind)


def new_clients(n: int) -> list[int]:
    """Client numbers never used before in this process (each a new chat and company)."""
    return [next(_clients) for _ in range(n)]


def waves(clients: Sequence[int], length: Callable[[int], int] | None = None) -> Iterator[Raw]:
    """The clients' updates, built lazily: within each group of GROUP clients, update k of
    each one, then update k + 1 of each; client i gets its first `length(i)` updates."""
    for start in range(0, len(clients), GROUP):
        group = [(i, clients[i]) for i in range(start, min(start + GROUP, len(clients)))]
        lengths = {c: (length(i) if length else len(FLOW)) for i, c in group}
        for k in range(max(lengths.values(), default=0)):
            for _, client in group:
                if k < lengths[client]:
                    yield flow_update(client, FLOW[k])


# --- the bots ---------------------------------------------------------------------------


@dataclass
class SteppingClock:
    """A clock 61 s further on at every reading: every client's press comes more than a
    minute after their previous one (as on the SII site), so no activity write is skipped."""

    moment: datetime = NOW
    step: timedelta = CLOCK_STEP

    def now(self) -> datetime:
        """Return the next instant."""
        self.moment += self.step
        return self.moment


def make_settings(database: Path) -> Settings:
    """Production defaults, except the token, the database and one firm chat."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "database_path": database,
        "firm_chat_ids": str(FIRM_CHAT),
    }
    return Settings(_env_file=None, **values)


@dataclass
class Ours:
    """This bot as assemble builds it (no rate limiter, jobs not started), with its fake."""

    built: Assembly
    request: InstantBotApi

    @property
    def app(self) -> AnyApp:
        """The Application."""
        return self.built.application

    async def close(self) -> None:
        """Shut the Application down and close the database."""
        await self.built.close()


async def boot_ours(path: Path, guide: Guide, *, record: bool = True, backlog: int = 1_000) -> Ours:
    """Assemble and initialize this bot on a fake Bot API."""
    request = InstantBotApi(date=DATE, record=record, backlog=backlog)
    built = await assemble(
        make_settings(path), clock=SteppingClock(), request=request, guide=guide, rate_limit=False
    )
    await built.application.initialize()
    return Ours(built, request)


UPSERT = (
    "INSERT INTO floor (chat_id, user_id, state, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (chat_id) DO UPDATE SET user_id = excluded.user_id, "
    "state = excluded.state, updated_at = excluded.updated_at"
)


@dataclass
class Echo:
    """An echo Application on a fake Bot API, with the floor's database if it has one."""

    app: AnyApp
    request: InstantBotApi
    db: aiosqlite.Connection | None = None

    async def close(self) -> None:
        """Shut the Application down, then the database."""
        await self.app.shutdown()
        if self.db is not None:
            await self.db.close()


async def open_floor_db(path: Path) -> aiosqlite.Connection:
    """An aiosqlite connection with the PRAGMAs Repository.open sets, and one table."""
    db = await aiosqlite.connect(path, isolation_level=None)
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = FULL")
    await db.execute("PRAGMA busy_timeout = 5000")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS floor (chat_id INTEGER PRIMARY KEY, user_id INTEGER, "
        "state TEXT NOT NULL, updated_at REAL NOT NULL)"
    )
    return db


async def boot_echo(path: Path | None) -> Echo:
    """The echo bot (the floor if `path`: one autocommit upsert per update before replying)."""
    request = InstantBotApi(date=DATE)
    db = await open_floor_db(path) if path is not None else None

    async def store(update: Update) -> None:
        if db is not None and update.effective_chat and update.effective_user:
            row = (update.effective_chat.id, update.effective_user.id, "s", time.time())
            await db.execute(UPSERT, row)

    async def echo_message(update: Update, context: Context) -> None:
        await store(update)
        message = update.effective_message
        assert message is not None
        await message.chat.send_message(message.text or "…")

    async def echo_button(update: Update, context: Context) -> None:
        await store(update)
        assert update.callback_query is not None
        await update.callback_query.answer()

    app: AnyApp = (
        Application.builder()
        .token(TOKEN)
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        .updater(None)
        .request(request)
        .get_updates_request(request)
        .build()
    )
    app.add_handler(MessageHandler(filters.ALL, echo_message))
    app.add_handler(CallbackQueryHandler(echo_button))
    await app.initialize()
    return Echo(app, request, db)


# --- the paths --------------------------------------------------------------------------


async def feed_direct(app: AnyApp, updates: Iterable[Raw]) -> tuple[int, float]:
    """Parse and process every update one at a time; return the count and seconds."""
    bot = app.bot
    fed = 0
    started = time.perf_counter()
    for raw in updates:
        await app.process_update(Update.de_json(raw, bot))
        fed += 1
    return fed, time.perf_counter() - started


class PollerFailed(RuntimeError):
    """The Poller stopped, or did not confirm the updates in time."""


async def feed_poller(ours: Ours, updates: Iterable[Raw], within: float = POLL_TIMEOUT) -> float:
    """Let a new Poller take `updates` from the fake's getUpdates until every one is confirmed;
    return the seconds from its first getUpdates to the one whose offset confirmed the last."""
    request = ours.request
    request.feed(updates)
    poller = ours.built.poller()
    started = time.perf_counter()
    running = asyncio.ensure_future(poller.run())
    drained = asyncio.ensure_future(request.wait_drained(within))
    await asyncio.wait({running, drained}, return_when=asyncio.FIRST_COMPLETED)
    finished = time.perf_counter()
    ok = drained.done() and drained.result()
    poller.stop()
    request.close_polling()
    try:
        await asyncio.wait_for(running, timeout=30)
    except TimeoutError as exc:
        raise PollerFailed("the Poller did not return within 30 s of stop()") from exc
    finally:
        drained.cancel()
    if not ok:
        raise PollerFailed(
            f"the updates were not all confirmed within {within:.0f} s "
            f"({len(request.pending)} still pending)"
        )
    return finished - (request.first_poll_at or started)


# --- throughput: interleaved rounds -----------------------------------------------------

PATHS = ("floor", "echo", "production", "handling")
LABELS = {
    "floor": "a. floor: echo + 1 autocommit upsert (WAL, FULL)",
    "echo": "b. echo bot, no database",
    "production": "c. production: Poller, getUpdates batches",
    "handling": "d. handling only: process_update",
}


@dataclass
class Throughput:
    """Seconds per update of each path, one dict per round."""

    rounds: list[dict[str, float]] = field(default_factory=list)
    updates_per_round: int = 0
    failures: list[str] = field(default_factory=list)


async def throughput(
    directory: Path, guide: Guide, rounds: int, clients: int, ours: Ours | None = None
) -> tuple[Throughput, Ours]:
    """Run `rounds` rounds of the four paths (order rotated each round), fresh clients each."""
    ours = ours or await boot_ours(directory / "ours.sqlite3", guide)
    floor = await boot_echo(directory / "floor.sqlite3")
    echo = await boot_echo(None)
    result = Throughput(updates_per_round=clients * len(FLOW))
    try:
        # Warm-up: imports, regex and statement caches, the Poller's first run.
        warm = list(waves(new_clients(3)))
        await feed_direct(floor.app, warm)
        await feed_direct(echo.app, warm)
        await feed_direct(ours.app, warm)
        warm = list(waves(new_clients(3)))
        await feed_poller(ours, warm)
        for r in range(rounds):
            order = PATHS[r % len(PATHS) :] + PATHS[: r % len(PATHS)]
            figures: dict[str, float] = {}
            result.rounds.append(figures)
            for path in order:
                updates = list(waves(new_clients(clients)))
                gc.collect()
                if path == "production":
                    try:
                        seconds = await feed_poller(ours, updates)
                    except PollerFailed as exc:
                        result.failures.append(f"round {r + 1}: {exc}")
                        continue
                else:
                    app = {"floor": floor.app, "echo": echo.app, "handling": ours.app}[path]
                    _, seconds = await feed_direct(app, updates)
                figures[path] = seconds / len(updates)
    finally:
        await floor.close()
        await echo.close()
    return result, ours


# --- counts: what one update costs ------------------------------------------------------


@dataclass
class Cost:
    """What a set of updates cost, in total."""

    updates: int
    counts: Counts | None  # None: no aiosqlite connection found
    api: Counter[str]

    def per_update(self, what: str) -> float:
        """The average of one figure per update ('commits', 'round_trips', an API method)."""
        if what in ("commits", "round_trips"):
            if self.counts is None:
                return float("nan")
            return float(getattr(self.counts, what)) / self.updates
        return self.api[what] / self.updates

    def api_total(self) -> float:
        """Bot API calls per update, the poller's own calls left out."""
        return sum(v for k, v in self.api.items() if k not in POLLING_METHODS) / self.updates


@dataclass
class Costs:
    """The instrumented passes."""

    flow_poller: Cost
    flow_direct: Cost
    press_poller: Cost
    press_direct: Cost
    found: str  # where the connection(s) were found, for the report
    steps_after_press: str


async def costs(ours: Ours, clients: int) -> Costs:
    """Count commits, round trips and Bot API calls for the flow and for one step press."""
    probe = Probe()
    attached = await probe.attach(ours.built.deps.repository)
    found = (
        f"{len(probe.connections)} aiosqlite connection(s) under the repository"
        if attached
        else "no aiosqlite connection found under the repository: commits and round trips "
        "not counted"
    )
    request = ours.request

    async def measured(run: Callable[[], Any], updates: int) -> Cost:
        before, api_before = probe.snapshot(), request.calls.copy()
        await run()
        return Cost(
            updates,
            probe.snapshot() - before if attached else None,
            request.calls - api_before,
        )

    try:
        flow = list(waves(new_clients(clients)))
        flow_poller = await measured(lambda: feed_poller(ours, flow), len(flow))
        flow2 = list(waves(new_clients(clients)))
        flow_direct = await measured(lambda: feed_direct(ours.app, flow2), len(flow2))
        # Two clients brought to step 2, then each presses g:2:next once.
        a, b = new_clients(2)
        to_step_2 = list(waves([a, b], length=lambda i: FLOW.index("g:1:next") + 1))
        await feed_direct(ours.app, to_step_2)
        press_a = [callback_raw(FIRST_CLIENT + a, "g:2:next")]
        press_poller = await measured(lambda: feed_poller(ours, press_a), 1)
        press_b = [callback_raw(FIRST_CLIENT + b, "g:2:next")]
        press_direct = await measured(lambda: feed_direct(ours.app, press_b), 1)
    finally:
        await probe.detach()
    steps = steps_of(ours, [a, b])
    return Costs(flow_poller, flow_direct, press_poller, press_direct, found, steps)


def steps_of(ours: Ours, clients: Sequence[int]) -> str:
    """The clients' steps as stored (a check that the press moved them on), or why not."""
    path = ours.built.deps.settings.database_path
    try:
        connection = sqlite3.connect(path)
        try:
            steps = [
                connection.execute(
                    "SELECT step FROM authorizations WHERE client_chat_id = ?",
                    (FIRST_CLIENT + c,),
                ).fetchone()
                for c in clients
            ]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"not checked ({exc})"
    return ", ".join(str(row[0]) if row else "none" for row in steps)


def completed(ours: Ours) -> str:
    """Completed authorizations and open conversations, as stored (or why not known)."""
    path = ours.built.deps.settings.database_path
    try:
        connection = sqlite3.connect(path)
        try:
            done = connection.execute(
                "SELECT COUNT(*) FROM authorizations WHERE completed_at IS NOT NULL"
            ).fetchone()[0]
            total = connection.execute("SELECT COUNT(*) FROM authorizations").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"not checked ({exc})"
    return f"{done:,} of {total:,} authorizations completed"


# --- resident memory per conversation (run in a fresh child process) --------------------


def rss_kb() -> int:
    """The current resident set size (kB), from /proc (0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def rss_per_conversation(directory: Path, guide: Guide, conversations: int) -> dict[str, Any]:
    """Bring `conversations` clients part way (client i gets 1 + i % 4 updates: asked for
    the device, for the RUT, to confirm it, at step 1) through the Poller; measure VmRSS."""
    ours = await boot_ours(directory / "rss.sqlite3", guide, record=False, backlog=500)
    try:
        warm = list(waves(new_clients(3)))
        await feed_poller(ours, warm)
        clients = new_clients(conversations)
        gc.collect()
        before = rss_kb()
        # Built lazily: the fake holds at most its backlog of raw updates at a time.
        seconds = await feed_poller(
            ours, waves(clients, length=lambda i: 1 + i % 4), within=POLL_TIMEOUT * 10
        )
        gc.collect()
        after = rss_kb()
        chats = len(ours.app.chat_data)
        sent = sum(1 + i % 4 for i in range(conversations))
    finally:
        await ours.close()
    states = open_states(ours)
    return {
        "conversations": conversations,
        "updates": sent,
        "seconds": seconds,
        "before_kb": before,
        "after_kb": after,
        "per_conversation_kb": (after - before) / conversations,
        "chat_data": chats,
        "states": states,
    }


def open_states(ours: Ours) -> str:
    """The stored conversations by state (or why not known)."""
    path = ours.built.deps.settings.database_path
    try:
        connection = sqlite3.connect(path)
        try:
            rows = connection.execute(
                "SELECT state, COUNT(*) FROM conversations GROUP BY state ORDER BY state"
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"not checked ({exc})"
    return ", ".join(f"{state} {number:,}" for state, number in rows) or "none"
