"""Benchmark of the guided conversation's throughput against an echo bot on the same PTB setup.

Run with ``python -m bench.conversation_throughput [--clients 1000] [--rss-clients 10000]``.

Everything goes through the real ``Application.process_update``, one update at a time
(bot.services.polling keeps each chat's updates in order), with a fake Bot API (no network)
and a real SQLite file:

1. our bot: every client goes /start, types the RUT, rut:ok, g:1:next ... g:5:next, g:6:save,
   g:7:yes (10 updates per client);
2. the floor: an echo bot built with the same Application options, fed the same updates;
3. the ratio, with where the time goes (Bot API calls, SQLite transactions, the rest), and
   with ``--profile`` the top of a cProfile of our flow;
4. peak RSS with ``--rss-clients`` conversations in progress, measured in a child process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import itertools
import os
import platform
import pstats
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import telegram
from telegram import Bot, Update
from telegram.ext import (
    Application,
    CallbackContext,
    CallbackQueryHandler,
    MessageHandler,
    filters,
)

from bench.fake_bot_api import BOT_USER, InstantBotApi
from bench.reminder_sweep import (
    NOW,
    TOKEN,
    FixedClock,
    company_rut,
    cpu_model,
    fs_type,
    ms,
    percentile,
    print_table,
)
from bot.domain.rut import format_rut
from bot.domain.settings import Settings
from bot.storage.repository import Repository
from bot.wiring.assembly import assemble, firm_facts
from conversations.texts.guide import Guide, load_guide

TARGET_RATIO = 2.0
FIRM_CHAT = -100_555_000
FIRST_CLIENT = 600_000_000  # the timed run; other passes use their own id ranges
DATE = int(NOW.timestamp())
STEP_BUTTONS = ("g:1:next", "g:2:next", "g:3:next", "g:4:next", "g:5:next", "g:6:save", "g:7:yes")
FLOW_KINDS = ("/start", "RUT text", "rut:ok", *STEP_BUTTONS)

AnyApp = Application[Any, Any, Any, Any, Any, Any]
Context = CallbackContext[Any, Any, Any, Any]
Raw = dict[str, Any]


# --- raw updates, as getUpdates delivers them -------------------------------------------

_update_ids = itertools.count(1)


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


def client_flow(
    user_id: int, company: int, presses: int = len(STEP_BUTTONS)
) -> list[tuple[str, Raw]]:
    """One client's updates: /start, the RUT, rut:ok, then the first `presses` step buttons."""
    return [
        ("/start", message_raw(user_id, "/start")),
        ("RUT text", message_raw(user_id, format_rut(company_rut(company)))),
        ("rut:ok", callback_raw(user_id, "rut:ok")),
        *((data, callback_raw(user_id, data)) for data in STEP_BUTTONS[:presses]),
    ]


def flows(
    first: int, clients: int, presses: Callable[[int], int] | None = None
) -> Iterator[list[tuple[str, Raw]]]:
    """Each client's updates, built lazily; client i is chat and user `first + i`."""
    for i in range(clients):
        number = first - FIRST_CLIENT + i
        yield client_flow(first + i, number, presses(i) if presses else len(STEP_BUTTONS))


# --- the two bots -----------------------------------------------------------------------


def make_settings(database: Path) -> Settings:
    """Production defaults, except the token, the database and one firm chat."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "database_path": database,
        "firm_chat_ids": str(FIRM_CHAT),
    }
    return Settings(_env_file=None, **values)


@dataclass
class Running:
    """A booted Application with its fake Bot API (and the repository, for our bot)."""

    app: AnyApp
    request: InstantBotApi
    repository: Repository | None = None

    async def close(self) -> None:
        """Shut the Application down, then the database."""
        await self.app.shutdown()
        if self.repository is not None:
            await self.repository.close()


async def boot_ours(path: Path, guide: Guide) -> Running:
    """Our bot as bot.wiring.main builds it, minus the rate limiter, polling and started jobs."""
    request = InstantBotApi(date=DATE)
    built = await assemble(
        make_settings(path), clock=FixedClock(), request=request, guide=guide, rate_limit=False
    )
    await built.application.initialize()
    return Running(built.application, request, built.deps.repository)


async def echo_message(update: Update, context: Context) -> None:
    """Reply once with the text received."""
    message = update.effective_message
    assert message is not None
    await message.chat.send_message(message.text or "…")


async def echo_button(update: Update, context: Context) -> None:
    """Answer the button press once."""
    assert update.callback_query is not None
    await update.callback_query.answer()


async def boot_echo(settings: Settings) -> Running:
    """The floor: the same builder options as build_application, no persistence, 2 handlers."""
    request = InstantBotApi(date=DATE)
    api_url = settings.telegram_api_url
    app: AnyApp = (
        Application.builder()
        .token(settings.token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .updater(None)
        .request(request)
        .get_updates_request(request)
        .build()
    )
    app.add_handler(MessageHandler(filters.ALL, echo_message))
    app.add_handler(CallbackQueryHandler(echo_button))
    await app.initialize()
    return Running(app, request)


# --- feeding and timing -----------------------------------------------------------------


@dataclass
class Samples:
    """process_update durations (s), overall and per update kind, and the loop's wall time."""

    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    every: list[float] = field(default_factory=list)
    wall: float = 0.0

    def add(self, kind: str, seconds: float) -> None:
        """Record one update."""
        self.by_kind[kind].append(seconds)
        self.every.append(seconds)


async def feed(
    app: AnyApp,
    clients: Iterable[list[tuple[str, Raw]]],
    samples: Samples | None = None,
    after_each: Callable[[str], None] | None = None,
) -> int:
    """Parse and process every update one at a time, timing process_update; return the count."""
    bot = app.bot
    fed = 0
    started = time.perf_counter()
    for updates in clients:
        for kind, raw in updates:
            update = Update.de_json(raw, bot)
            before = time.perf_counter()
            await app.process_update(update)
            if samples is not None:
                samples.add(kind, time.perf_counter() - before)
            if after_each is not None:
                after_each(kind)
            fed += 1
    if samples is not None:
        samples.wall = time.perf_counter() - started
    return fed


def count(path: Path, sql: str) -> int:
    """Run a COUNT query on a plain connection."""
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


# --- instrumentation: where the time goes -----------------------------------------------


@dataclass
class Tally:
    """What a set of updates cost, by category; per update kind too."""

    api_calls: Counter[str] = field(default_factory=Counter)
    api_seconds: float = 0.0
    transactions: int = 0
    reads: int = 0
    repo_seconds: float = 0.0
    hops: int = 0
    statements: Counter[str] = field(default_factory=Counter)
    thread_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    depth: int = 0
    api_started: float = 0.0

    def snapshot(self) -> tuple[int, int, int, int, int]:
        """Return (api calls, write transactions, reads, thread hops, statements) so far."""
        return (
            sum(self.api_calls.values()),
            self.transactions,
            self.reads,
            self.hops,
            sum(v for k, v in self.statements.items() if k.isupper()),
        )


def _label(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """SQL statements by their first keyword (upper case), other calls by name (lower case)."""
    if args and isinstance(args[0], str):
        return args[0].lstrip().split(None, 1)[0].upper()
    return getattr(fn, "__name__", "call").lower()


@contextmanager
def instrumented(tally: Tally) -> Iterator[None]:
    """Count and time Bot API calls, Repository transactions/reads and aiosqlite round trips.

    Monkeypatches (class level, restored on exit): Repository._transaction and _fetchall,
    aiosqlite.Connection._execute (every hop to the SQLite thread), Bot._post and
    Bot._send_message (the outermost one is timed, so replies' parsing counts too).
    """
    original_transaction = getattr(Repository, "_transaction", None)
    original_fetchall = getattr(Repository, "_fetchall", None)
    original_execute = aiosqlite.Connection._execute
    original_post = Bot._post
    original_send = Bot._send_message

    @asynccontextmanager
    async def transaction(self: Repository) -> AsyncIterator[aiosqlite.Connection]:
        tally.transactions += 1
        started = time.perf_counter()
        try:
            assert original_transaction is not None
            async with original_transaction(self) as db:
                yield db
        finally:
            tally.repo_seconds += time.perf_counter() - started

    async def fetchall(self: Repository, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        tally.reads += 1
        started = time.perf_counter()
        try:
            assert original_fetchall is not None
            rows: list[Any] = await original_fetchall(self, sql, params)
            return rows
        finally:
            tally.repo_seconds += time.perf_counter() - started

    async def execute(
        self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        tally.hops += 1
        label = _label(fn, args)
        tally.statements[label] += 1

        def timed() -> Any:  # runs on aiosqlite's thread while the loop awaits it
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                tally.thread_seconds[label] += time.perf_counter() - started

        return await original_execute(self, timed)  # type: ignore[no-untyped-call]

    def api_timer(original: Callable[..., Awaitable[Any]], counts: bool) -> Any:
        async def wrapper(self: Bot, endpoint: str, *args: Any, **kwargs: Any) -> Any:
            if counts:
                tally.api_calls[endpoint] += 1
            if tally.depth == 0:
                tally.api_started = time.perf_counter()
            tally.depth += 1
            try:
                return await original(self, endpoint, *args, **kwargs)
            finally:
                tally.depth -= 1
                if tally.depth == 0:
                    tally.api_seconds += time.perf_counter() - tally.api_started

        return wrapper

    patches: list[tuple[Any, str, Any, Any]] = [
        (Repository, "_transaction", original_transaction, transaction),
        (Repository, "_fetchall", original_fetchall, fetchall),
        (aiosqlite.Connection, "_execute", original_execute, execute),
        (Bot, "_post", original_post, api_timer(original_post, counts=True)),
        (Bot, "_send_message", original_send, api_timer(original_send, counts=False)),
    ]
    # Product code changes under us: patch only what exists (counts stay 0 otherwise).
    patches = [patch for patch in patches if callable(getattr(patch[0], patch[1], None))]
    for owner, name, _, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original, _ in patches:
            setattr(owner, name, original)


@dataclass
class Measured:
    """An instrumented pass: the tally, per-kind counts and the process_update time."""

    tally: Tally
    updates: int
    flows: int
    samples: Samples
    per_kind: dict[str, list[int]]  # kind -> summed snapshot deltas


async def measure(app: AnyApp, clients: Iterable[list[tuple[str, Raw]]], n: int) -> Measured:
    """Feed `clients` with the instrumentation on, attributing counts to update kinds."""
    tally = Tally()
    samples = Samples()
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    last = [tally.snapshot()]

    def after_each(kind: str) -> None:
        now = tally.snapshot()
        per_kind[kind] = [a + b - c for a, b, c in zip(per_kind[kind], now, last[0], strict=True)]
        last[0] = now

    with instrumented(tally):
        updates = await feed(app, clients, samples, after_each)
    return Measured(tally, updates, n, samples, per_kind)


# --- the report -------------------------------------------------------------------------


def summary_rows(name: str, samples: Samples) -> list[str]:
    """One row of the throughput table."""
    every = samples.every
    return [
        name,
        f"{len(every):,}",
        f"{samples.wall:.2f}",
        f"{len(every) / samples.wall:,.0f}",
        ms(statistics.fmean(every)),
        ms(statistics.median(every)),
        ms(percentile(every, 0.99)),
        ms(max(every)),
    ]


def report_throughput(ours: Samples, echo: Samples, clients: int) -> float:
    """Print the two bots' figures and the ratio; return the ratio of mean costs."""
    print_table(
        f"Throughput: {clients:,} clients x {len(FLOW_KINDS)} updates, process_update one at a "
        "time (latency in ms)",
        ["bot", "updates", "wall (s)", "updates/s", "mean", "p50", "p99", "max"],
        [summary_rows("ours (full flow)", ours), summary_rows("echo floor", echo)],
    )
    print("wall = the whole loop (Update.de_json + process_update); latencies: process_update only")
    mean_ratio = statistics.fmean(ours.every) / statistics.fmean(echo.every)
    p50_ratio = statistics.median(ours.every) / statistics.median(echo.every)
    p99_ratio = percentile(ours.every, 0.99) / percentile(echo.every, 0.99)
    verdict = "MET" if mean_ratio <= TARGET_RATIO else f"MISSED ({mean_ratio:.1f}x)"
    print(
        f"\nratio ours/floor per update: mean {mean_ratio:.2f}x, p50 {p50_ratio:.2f}x, "
        f"p99 {p99_ratio:.2f}x -- target <= {TARGET_RATIO:g}x (mean): {verdict}"
    )
    return mean_ratio


def report_kinds(ours: Samples, echo: Samples, counted: Measured | None) -> None:
    """Per update kind: latencies of both bots and what one such update of ours costs."""
    rows = []
    for kind in FLOW_KINDS:
        mine, floor = ours.by_kind[kind], echo.by_kind[kind]
        row: list[object] = [
            kind,
            ms(statistics.median(mine)),
            ms(percentile(mine, 0.99)),
            ms(statistics.median(floor)),
            ms(percentile(floor, 0.99)),
            f"{statistics.median(mine) / statistics.median(floor):.1f}x",
        ]
        if counted is not None:
            api, tx, reads, hops, statements = counted.per_kind[kind]
            n = counted.flows
            row += [f"{api / n:g}", f"{tx / n:g}", f"{reads / n:g}", f"{hops / n:g}"]
            row += [f"{statements / n:g}"]
        rows.append(row)
    headers = ["update", "ours p50", "ours p99", "echo p50", "echo p99", "p50 ratio"]
    if counted is not None:
        headers += ["API calls", "write tx", "reads", "sqlite hops", "SQL stmts"]
    print_table("Per update kind (ms; counts are ours, per update)", headers, rows)
    print("echo per kind: 1 sendMessage per message, 1 answerCallbackQuery per button press")


def report_breakdown(ours: Measured, echo: Measured, plain_ours: float, plain_echo: float) -> None:
    """Print where one update's time goes, for both bots, and the counts per flow."""

    def per_update(m: Measured) -> dict[str, float]:
        t = m.tally
        thread = sum(t.thread_seconds.values())
        commit = t.thread_seconds.get("COMMIT", 0.0)
        total = sum(m.samples.every)
        return {
            "total": total / m.updates,
            "api": t.api_seconds / m.updates,
            "repo": t.repo_seconds / m.updates,
            "thread": thread / m.updates,
            "commit": commit / m.updates,
            "hop": (t.repo_seconds - thread) / m.updates,
            "rest": (total - t.api_seconds - t.repo_seconds) / m.updates,
        }

    a, b = per_update(ours), per_update(echo)

    def row(name: str, key: str) -> list[str]:
        share = f"{a[key] / a['total'] * 100:.0f}%" if a["total"] else "-"
        return [name, ms(a[key]), share, ms(b[key]), ms(a[key] - b[key])]

    print_table(
        f"Where one update's time goes (mean ms per update, instrumented pass: "
        f"{ours.flows} flows each)",
        ["part", "ours", "share", "echo", "ours - echo"],
        [
            [
                "process_update, uninstrumented (timed run)",
                ms(plain_ours),
                "",
                ms(plain_echo),
                ms(plain_ours - plain_echo),
            ],
            row("process_update, instrumented", "total"),
            row("  in Bot API calls (PTB request + JSON + parsing)", "api"),
            row("  in Repository transactions and reads", "repo"),
            row("    SQLite executing, on aiosqlite's thread", "thread"),
            row("      of which COMMIT (WAL append + fsync)", "commit"),
            row("    thread hops, lock, Python inside transactions", "hop"),
            row("  everything else (PTB dispatch, filters, handlers)", "rest"),
        ],
    )

    def counts(m: Measured) -> dict[str, float]:
        t, n = m.tally, m.flows
        out = {f"Bot API {method}": c / n for method, c in sorted(t.api_calls.items())}
        out["Bot API calls, total"] = sum(t.api_calls.values()) / n
        out["write transactions (BEGIN IMMEDIATE .. COMMIT)"] = t.transactions / n
        out["reads outside transactions (autocommit)"] = t.reads / n
        out["aiosqlite thread round trips"] = t.hops / n
        for label, c in sorted(t.statements.items()):
            kind = "SQL" if label.isupper() else "cursor call"
            out[f"  {kind} {label}"] = c / n
        return out

    mine, floor = counts(ours), counts(echo)
    names = list(dict.fromkeys([*mine, *floor]))
    print_table(
        "Work per client flow (10 updates), ours vs echo",
        ["per flow", "ours", "echo"],
        [[name, f"{mine.get(name, 0):g}", f"{floor.get(name, 0):g}"] for name in names],
    )
    commit_n = ours.tally.statements.get("COMMIT", 0)
    if commit_n:
        commit_ms = ours.tally.thread_seconds["COMMIT"] / commit_n * 1000
        other = sum(v for k, v in ours.tally.thread_seconds.items() if k != "COMMIT")
        other_n = ours.tally.hops - commit_n
        print(
            f"one COMMIT on the SQLite thread: {commit_ms:.3f} ms mean; any other SQLite call: "
            f"{other / max(other_n, 1) * 1000:.3f} ms mean"
        )


async def bench_variants(
    ours: Running, path: Path, n: int, first: int, hops_per_update: float
) -> None:
    """What fsync, aiosqlite's thread hops and the poller's offset write cost (bench only)."""
    assert ours.repository is not None
    db = ours.repository._db
    rows = []
    for mode in ("FULL", "NORMAL"):
        await db.execute(f"PRAGMA synchronous = {mode}")
        samples = Samples()
        await feed(ours.app, flows(first, n), samples)
        first += n
        rows.append(
            [
                f"synchronous = {mode}" + (" (as production)" if mode == "FULL" else ""),
                ms(statistics.fmean(samples.every)),
                ms(statistics.median(samples.every)),
                ms(percentile(samples.every, 0.99)),
                f"{len(samples.every) / samples.wall:,.0f}",
            ]
        )
    await db.execute("PRAGMA synchronous = FULL")
    print_table(
        f"Durability: our flow with the connection's synchronous setting changed "
        f"({n} clients each, ms)",
        ["setting", "mean", "p50", "p99", "updates/s"],
        rows,
    )
    print("NORMAL in WAL mode: no fsync at COMMIT (a power loss may lose the last commits)")

    # One round trip to aiosqlite's thread: the median of 20 batches of 100 (it is noisy).
    for _ in range(50):
        await db.execute("SELECT 1")
    batches = []
    for _ in range(20):
        started = time.perf_counter()
        for _ in range(100):
            await db.execute("SELECT 1")
        batches.append((time.perf_counter() - started) / 100)
    hop = statistics.median(batches)
    plain = sqlite3.connect(path)
    started = time.perf_counter()
    for _ in range(2000):
        plain.execute("SELECT 1")
    direct = (time.perf_counter() - started) / 2000
    plain.close()
    # What bot.services.polling commits after each update, outside process_update.
    repository = ours.repository
    mark: Callable[[int], Awaitable[None]] | None = getattr(repository, "mark_processed", None)
    if mark is not None:
        poller_write = "Repository.mark_processed(update_id)"
    else:
        poller_write = "Repository.set_meta(offset)"

        async def mark(i: int) -> None:
            await repository.set_meta("bench-offset", str(i))

    started = time.perf_counter()
    for i in range(300):
        await mark(900_000_000 + i)
    poller = (time.perf_counter() - started) / 300
    print_table(
        "Unit costs (ms)",
        ["operation", "ms"],
        [
            ["one aiosqlite round trip: await connection.execute('SELECT 1')", ms(hop)],
            ["the same with sqlite3 on the calling thread", ms(direct)],
            [
                f"our round trips per update ({hops_per_update:.1f}) x one round trip",
                ms(hops_per_update * hop),
            ],
            [f"the poller's commit after each update: {poller_write}", ms(poller)],
        ],
    )
    print("the poller's commit is outside process_update: add it to ours for production")


async def profile_flow(app: AnyApp, n: int, first: int) -> None:
    """cProfile our flow for `n` clients; print the top 15 by cumulative and by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    await feed(app, flows(first, n))
    profiler.disable()
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(15)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        print(f"\n== cProfile of our flow, {n} clients x {len(FLOW_KINDS)} updates, by {key}")
        print("\n".join(line for line in lines[start:] if line.strip()))
    print("(the event loop's thread only: time on aiosqlite's thread shows as waiting in epoll)")


# --- resident memory, in a child process ------------------------------------------------


def rss_now_kb() -> int:
    """Return the current resident set size (kB), from /proc (0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def rss_child(directory: Path, clients: int, guide: Guide) -> None:
    """Bring `clients` clients to steps 1..7 (client i to step i % 7 + 1) and print memory."""
    path = directory / "rss.sqlite3"
    ours = await boot_ours(path, guide)
    await feed(ours.app, flows(FIRST_CLIENT + 9_000_000, 3))  # warm-up, then a clean start
    gc.collect()
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before_now = rss_now_kb()
    samples = Samples()
    updates = await feed(
        ours.app,
        flows(FIRST_CLIENT + 10_000_000, clients, presses=lambda i: i % 7),
        samples,
    )
    gc.collect()
    after_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    after_now = rss_now_kb()
    assert ours.repository is not None
    # The database is the only owner of the states: nothing of them is kept in memory.
    states = Counter(
        {
            str(state): int(number)
            for state, number in await ours.repository._db.execute_fetchall(
                "SELECT state, COUNT(*) FROM conversations GROUP BY state"
            )
        }
    )
    await ours.repository._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db_size = path.stat().st_size
    steps = count(path, "SELECT COUNT(*) FROM authorizations WHERE completed_at IS NULL")
    app = ours.app
    await ours.close()
    print_table(
        f"Memory with {clients:,} conversations in progress (client i at step i % 7 + 1; "
        f"{updates:,} updates in {samples.wall:.1f} s, fresh child process)",
        ["measure", "value"],
        [
            ["ru_maxrss before (after boot + warm-up), MB", f"{before_peak / 1024:.1f}"],
            ["ru_maxrss after, MB", f"{after_peak / 1024:.1f}"],
            ["  growth, MB", f"{(after_peak - before_peak) / 1024:.1f}"],
            ["  growth per conversation, kB", f"{(after_peak - before_peak) / clients:.2f}"],
            [
                "VmRSS (current) before / after, MB",
                f"{before_now / 1024:.1f} / {after_now / 1024:.1f}",
            ],
            ["  growth per conversation, kB", f"{(after_now - before_now) / clients:.2f}"],
            ["conversations stored", f"{sum(states.values()):,}"],
            ["  states", ", ".join(f"{k}: {v:,}" for k, v in sorted(states.items()))],
            [
                "application.chat_data / user_data entries",
                f"{len(app.chat_data):,} / {len(app.user_data):,}",
            ],
            ["unfinished authorizations in the database", f"{steps:,}"],
            ["database file after checkpoint, MB", f"{db_size / 1e6:.2f}"],
            ["mean process_update while filling, ms", ms(statistics.fmean(samples.every))],
        ],
        left=1,
    )


def run_rss_child(directory: Path, clients: int) -> None:
    """Run the memory measurement in a fresh interpreter, its output inline with ours."""
    sys.stdout.flush()
    command = [
        sys.executable,
        "-m",
        "bench.conversation_throughput",
        "--rss-child",
        str(clients),
        "--dir",
        str(directory),
    ]
    subprocess.run(command, check=True)  # our own module, fixed arguments


# --- main -------------------------------------------------------------------------------


def load_average() -> str:
    """Return the 1/5/15-minute load averages (other work on the machine skews timings)."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"


def code_version() -> str:
    """Return the commit measured, and which product files differ from it (others edit them)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # git from PATH, read-only
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot", "conversations"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "?"
    files = [line[3:] for line in changed if line.strip()]
    return f"{head}" + (f" + uncommitted: {', '.join(files)}" if files else " (clean)")


async def run(args: argparse.Namespace) -> None:
    """Run every measurement in a fresh temporary directory."""
    guide = load_guide(None, firm_facts(make_settings(Path("unused.sqlite3"))))
    if args.rss_child:
        await rss_child(args.dir, args.rss_child, guide)
        return
    with tempfile.TemporaryDirectory(prefix="bench-conversation-", dir=args.dir) as tmp:
        directory = Path(tmp)
        path = directory / "conversations.sqlite3"
        print_table(
            "Machine",
            ["item", "value"],
            [
                ["platform", platform.platform()],
                ["CPU", cpu_model()],
                ["CPU count", f"{os.cpu_count()}"],
                ["load average 1/5/15 min (start)", load_average()],
                ["Python", sys.version.split()[0]],
                ["SQLite (library)", sqlite3.sqlite_version],
                ["python-telegram-bot", telegram.__version__],
                ["product code (git)", code_version()],
                ["aiosqlite", aiosqlite.__version__],
                ["database directory", f"{directory} ({fs_type(directory)})"],
                ["SQLite settings", "WAL, synchronous = FULL (as Repository.open)"],
                ["Bot API", "fake BaseRequest, instant answers; no rate limiter, no network"],
                ["firm chats", f"1 ({FIRM_CHAT}): a completion sends it one notice"],
            ],
            left=2,
        )

        ours = await boot_ours(path, guide)
        echo = await boot_echo(make_settings(path))
        # Warm-up (imports, regex and statement caches), then the timed runs.
        await feed(ours.app, flows(FIRST_CLIENT + 5_000_000, 5))
        await feed(echo.app, flows(FIRST_CLIENT + 5_000_000, 5))
        ours_samples, echo_samples = Samples(), Samples()
        await feed(ours.app, flows(FIRST_CLIENT, args.clients), ours_samples)
        await feed(echo.app, flows(FIRST_CLIENT, args.clients), echo_samples)

        completed = count(
            path, "SELECT COUNT(*) FROM authorizations WHERE completed_at IS NOT NULL"
        )
        sent = ours.request.calls["sendMessage"]
        expected = 5 + args.clients
        ok = completed == expected and count(path, "SELECT COUNT(*) FROM conversations") == 0
        print(
            f"\nflow check: {completed:,} of {expected:,} authorizations completed "
            f"(incl. warm-up), no conversation left open: {'yes' if ok else 'NO'}; "
            f"ours sent {sent:,} messages, echo {echo.request.calls['sendMessage']:,} + "
            f"{echo.request.calls['answerCallbackQuery']:,} button answers"
        )
        report_throughput(ours_samples, echo_samples, args.clients)

        n = min(args.clients, args.detail_clients)
        counted_ours = await measure(ours.app, flows(FIRST_CLIENT + 1_000_000, n), n)
        counted_echo = await measure(echo.app, flows(FIRST_CLIENT + 1_000_000, n), n)
        report_kinds(ours_samples, echo_samples, counted_ours)
        report_breakdown(
            counted_ours,
            counted_echo,
            statistics.fmean(ours_samples.every),
            statistics.fmean(echo_samples.every),
        )
        await bench_variants(
            ours, path, n, FIRST_CLIENT + 2_000_000, counted_ours.tally.hops / counted_ours.updates
        )
        if args.profile:
            await profile_flow(ours.app, n, FIRST_CLIENT + 3_000_000)

        await echo.close()
        await ours.close()
        print(f"\ndatabase after the runs: {path.stat().st_size / 1e6:.2f} MB (+ WAL)")
        if args.rss_clients:
            run_rss_child(directory, args.rss_clients)


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000, help="full flows timed per bot")
    parser.add_argument(
        "--rss-clients", type=int, default=10_000, help="conversations in progress (0: skip)"
    )
    parser.add_argument(
        "--detail-clients", type=int, default=200, help="flows per instrumented/variant pass"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile a subset of our flow")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp dir goes")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(run(args))
    if not args.rss_child:
        print(f"\ntotal benchmark time: {time.perf_counter() - started:.1f} s")
        print(f"load average 1/5/15 min (end): {load_average()}")


if __name__ == "__main__":
    main()
