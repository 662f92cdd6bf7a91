"""Benchmark of the reminder sweep: a real SQLite file, a real `telegram.Bot`, a fake HTTP layer.

Its figures are part of the one benchmark run, ``python -m bench`` (bench/__main__.py), which
uses `select_times` and `capped_sweep` below. Run alone, with the query plan and a pacing
check at two rates: ``python -m bench.reminder_sweep [--rows 100000] [--batch 500]``.

It measures (1) selecting one batch of due reminders, with the query plan, (2) one full sweep
over every due reminder with pacing disabled, and (3) the pacing itself with the real
``asyncio.sleep`` at reminder rates of 20 and 30 messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stdnum.cl import rut as stdnum_rut
from telegram import Bot

import bot.services.reminders as reminders_module
from bench.fake_bot_api import InstantBotApi
from bot.domain.clock import to_timestamp
from bot.domain.settings import Settings
from bot.guide.guide import FINAL_STEP, Guide, load_guide
from bot.services.reminders import ReminderSweeper
from bot.storage.repository import Repository
from bot.wiring.assembly import firm_facts

TOKEN = "123456789:AAHfakeTOKENfor-bench_0123456789abc"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TARGET_MS = 5.0
FIRST_CHAT = 500_000_000
FIRST_COMPANY = 76_000_000


# --- fakes ------------------------------------------------------------------------------


@dataclass
class FixedClock:
    """A clock that always tells the benchmark's "now"."""

    moment: datetime = NOW

    def now(self) -> datetime:
        """Return the fixed instant."""
        return self.moment


async def no_sleep(_seconds: float) -> None:
    """Pacing disabled: return at once (still yielding to the event loop)."""
    await asyncio.sleep(0)


# --- output -----------------------------------------------------------------------------


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    left: int = 1,
) -> None:
    """Print a titled table: the first `left` columns left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(f"\n== {title}")
    print(line(cells[0]))
    print("  ".join("-" * width for width in widths))
    for row in cells[1:]:
        print(line(row))


def fs_type(path: Path) -> str:
    """Return the file system type `path` lives on (Linux only; '?' elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "?"
    best, kind = "", "?"
    target = str(path.resolve())
    for entry in mounts:
        fields = entry.split()
        if len(fields) >= 3 and target.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def cpu_model() -> str:
    """Return the CPU model name, if the OS tells it."""
    try:
        for entry in Path("/proc/cpuinfo").read_text().splitlines():
            if entry.startswith("model name"):
                return entry.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def ms(seconds: float) -> str:
    """Format seconds as milliseconds."""
    return f"{seconds * 1000:.3f}"


# --- database ---------------------------------------------------------------------------


def make_settings(database: Path, rate: float = 30.0) -> Settings:
    """Settings independent of the environment; no quiet hours, the given pacing rate."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "database_path": database,
        "quiet_hours": "",
        "reminder_rate": rate,
    }
    return Settings(_env_file=None, **values)


def company_rut(number: int) -> str:
    """Return a valid compact RUT ('76000000-K') for a company number."""
    body = str(FIRST_COMPANY + number)
    return f"{body}-{stdnum_rut.calc_check_digit(body)}"


async def create_filled(path: Path, rows: int, seed: int = 42) -> float:
    """Create the schema (through Repository.open) and add `rows` due reminders; return secs.

    Each row is a pending authorization at some step with one automatic reminder (the first
    of the schedule) due at some moment of the 24 hours before NOW, in random order on disk.
    """
    repository = await Repository.open(path)  # the schema comes from bot.storage.schema
    await repository.close()
    started = time.perf_counter()
    now = to_timestamp(NOW)
    day = timedelta(days=1).total_seconds()
    # Whole milliseconds: a due time must survive the float -> datetime -> float round trip
    # the repository makes when it matches a reminder again (day * i / rows may not).
    offsets = [1.0 + round(day * i / rows, 3) for i in range(rows)]
    random.Random(seed).shuffle(offsets)
    authorizations = []
    reminders = []
    for i, offset in enumerate(offsets):
        chat = FIRST_CHAT + i
        rut = company_rut(i)
        due = now - offset
        anchor = due - day  # the first reminder is one day after the last activity
        step = 1 + i % FINAL_STEP
        authorizations.append((rut, chat, chat, f"Cliente {i}", None, step, anchor - 600, anchor))
        reminders.append((chat, chat, rut, "auto", 0, anchor, due))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO authorizations (company_rut, client_chat_id, client_user_id, "
            "client_name, client_username, step, started_at, last_activity_at, completed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            authorizations,
        )
        connection.executemany(
            "INSERT INTO reminders (chat_id, user_id, company_rut, kind, sequence, anchor_at, "
            "due_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            reminders,
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return time.perf_counter() - started


def count(path: Path, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a COUNT query on a plain connection."""
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(sql, params).fetchone()[0])
    finally:
        connection.close()


# --- measurements -----------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values`."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def timed_calls(call: Callable[[], Awaitable[object]], repetitions: int) -> list[float]:
    """Await `call` `repetitions` times after a short warm-up; return each duration (s)."""
    for _ in range(5):
        await call()
    durations = []
    for _ in range(repetitions):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


async def bench_select(path: Path, batch: int, repetitions: int) -> None:
    """Time Repository.due_reminders(now, batch) and show the query plan."""
    repository = await Repository.open(path)
    captured: list[str] = []
    # The Repository's own connection: catch the exact SQL it runs (parameters expanded).
    connection = repository.database.connection
    await connection.set_trace_callback(captured.append)
    first = await repository.reminders.due_reminders(NOW, batch)
    await connection.set_trace_callback(None)  # type: ignore[arg-type]  # sqlite3 takes None
    query = next(sql for sql in captured if "FROM reminders" in sql)

    repo_times = await timed_calls(
        lambda: repository.reminders.due_reminders(NOW, batch), repetitions
    )

    async def raw_fetch() -> object:
        async with connection.execute(query) as cursor:
            return await cursor.fetchall()

    aio_times = await timed_calls(raw_fetch, repetitions)
    async with connection.execute(f"EXPLAIN QUERY PLAN {query}") as cursor:
        plan = [(int(row[0]), int(row[1]), str(row[3])) for row in await cursor.fetchall()]
    await repository.close()

    plain = sqlite3.connect(path)
    sql_times = []
    for i in range(repetitions + 5):
        started = time.perf_counter()
        plain.execute(query).fetchall()
        if i >= 5:
            sql_times.append(time.perf_counter() - started)
    plain.close()

    def stats(name: str, times: list[float]) -> list[object]:
        return [
            name,
            ms(statistics.median(times)),
            ms(percentile(times, 0.99)),
            ms(min(times)),
            ms(max(times)),
        ]

    p99 = percentile(repo_times, 0.99)
    verdict = "MET" if p99 <= TARGET_MS / 1000 else f"MISSED by {ms(p99 - TARGET_MS / 1000)} ms"
    print_table(
        f"Select one batch: due_reminders(now, {batch}) -> {len(first)} rows, "
        f"{repetitions} repetitions (ms)",
        ["what", "median", "p99", "min", "max"],
        [
            stats("Repository.due_reminders (target)", repo_times),
            stats("  same SQL via aiosqlite, raw rows", aio_times),
            stats("  same SQL via sqlite3, same thread", sql_times),
        ],
    )
    print(f"target p99 <= {TARGET_MS:.1f} ms: {verdict}")

    print(f"\n== EXPLAIN QUERY PLAN (SQL as run by the Repository)\n{query}")
    depth: dict[int, int] = {0: -1}
    for node, parent, detail in plan:
        depth[node] = depth.get(parent, -1) + 1
        print(f"{'  ' * depth[node]}|-- {detail}")
    uses_index = any("reminders_due" in detail for _, _, detail in plan)
    sorts = any("TEMP B-TREE" in detail for _, _, detail in plan)
    print(
        f"index reminders_due used: {'yes' if uses_index else 'NO'}; "
        f"temporary sort b-tree: {'YES' if sorts else 'no'}"
    )


async def timed_sweep(
    path: Path,
    settings: Settings,
    guide: Guide,
    request: InstantBotApi,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[int, float]:
    """Run one sweep over the database at `path`; return reminders sent and seconds taken."""
    repository = await Repository.open(path)
    sweeper = ReminderSweeper(settings, repository, guide, FixedClock(), sleep=sleep)
    async with Bot(
        TOKEN, request=request, get_updates_request=InstantBotApi(date=int(NOW.timestamp()))
    ) as bot:
        started = time.perf_counter()
        sent = await sweeper.sweep(bot)
        elapsed = time.perf_counter() - started
    await repository.close()
    return sent, elapsed


async def select_times(path: Path, batch: int, repetitions: int) -> tuple[int, list[float]]:
    """Time Repository.due_reminders(now, batch) `repetitions` times; return rows and times."""
    repository = await Repository.open(path)
    try:
        rows = len(await repository.reminders.due_reminders(NOW, batch))
        times = await timed_calls(
            lambda: repository.reminders.due_reminders(NOW, batch), repetitions
        )
    finally:
        await repository.close()
    return rows, times


@dataclass(frozen=True)
class SweepResult:
    """One sweep: reminders sent, seconds taken, and whether it got through every row."""

    sent: int
    seconds: float
    complete: bool


async def capped_sweep(
    path: Path, guide: Guide, rows: int, cap: float | None, rate: float | None = None
) -> SweepResult:
    """Sweep the `rows` due reminders at `path`, stopping after `cap` seconds if given.

    Pacing is disabled unless `rate` is given (then the real asyncio.sleep paces it): the
    sweeper's own sleep hook is where the time cap asks it to stop (ReminderSweeper.stop).
    """
    settings = make_settings(path, rate or 30.0)
    repository = await Repository.open(path)
    started = time.perf_counter()
    sweeper: ReminderSweeper | None = None

    async def sleep(seconds: float) -> None:
        if cap is not None and sweeper is not None and time.perf_counter() - started > cap:
            sweeper.stop()
        await asyncio.sleep(seconds if rate else 0)

    sweeper = ReminderSweeper(settings, repository, guide, FixedClock(), sleep=sleep)
    request = InstantBotApi(date=int(NOW.timestamp()), record=False)
    try:
        async with Bot(TOKEN, request=request, get_updates_request=request) as bot:
            started = time.perf_counter()
            sent = await sweeper.sweep(bot)
            elapsed = time.perf_counter() - started
    finally:
        await repository.close()
    return SweepResult(sent, elapsed, sent >= rows)


async def bench_full_sweep(path: Path, guide: Guide, rows: int) -> None:
    """Sweep every due reminder once with pacing disabled; check what was recorded."""
    settings = make_settings(path)
    request = InstantBotApi(date=int(NOW.timestamp()))
    sent, elapsed = await timed_sweep(path, settings, guide, request, sleep=no_sleep)

    now = to_timestamp(NOW)
    counted = count(path, "SELECT COUNT(*) FROM authorizations WHERE reminders_sent = 1")
    rescheduled = count(
        path, "SELECT COUNT(*) FROM reminders WHERE sequence = 1 AND due_at > ?", (now,)
    )
    still_due = count(path, "SELECT COUNT(*) FROM reminders WHERE due_at <= ?", (now,))
    events = count(path, "SELECT COUNT(*) FROM events WHERE kind = 'reminder'")
    chats = len({s.chat_id for s in request.sent})
    print_table(
        f"Full sweep over {rows:,} due reminders, pacing disabled "
        f"(batch {reminders_module.BATCH_SIZE})",
        ["measure", "value"],
        [
            ["total time (s)", f"{elapsed:.2f}"],
            ["throughput (rows/s)", f"{sent / elapsed:,.0f}"],
            ["per reminder (ms)", f"{elapsed / max(sent, 1) * 1000:.3f}"],
            ["sweep() returned (sent)", f"{sent:,}"],
            ["sendMessage calls recorded", f"{len(request.sent):,}"],
            ["distinct chats messaged", f"{chats:,}"],
            ["authorizations with reminders_sent = 1", f"{counted:,}"],
            ["reminders rescheduled (sequence 1, future)", f"{rescheduled:,}"],
            ["reminders still due after the sweep", f"{still_due:,}"],
            ["'reminder' events recorded", f"{events:,}"],
        ],
    )
    ok = sent == len(request.sent) == chats == counted == rescheduled == events == rows
    print(f"every reminder sent once and recorded: {'yes' if ok and still_due == 0 else 'NO'}")


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """Return the most events in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def bench_pacing(directory: Path, guide: Guide, rates: Sequence[float], rows: int) -> None:
    """Sweep a small fresh set with the real asyncio.sleep at each rate; report what it did."""
    table = []
    for rate in rates:
        path = directory / f"pacing-{rate:g}.sqlite3"
        await create_filled(path, rows, seed=int(rate))
        request = InstantBotApi(date=int(NOW.timestamp()))
        sent, elapsed = await timed_sweep(path, make_settings(path, rate), guide, request)

        times = [s.at for s in request.sent]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        by_chat: dict[int, list[float]] = defaultdict(list)
        for s in request.sent:
            by_chat[s.chat_id].append(s.at)
        per_chat = max((max_in_window(t) for t in by_chat.values()), default=0)
        table.append(
            [
                f"{rate:g}",
                f"{sent}",
                f"{elapsed:.2f}",
                f"{(len(times) - 1) / span:.2f}" if span else "-",
                f"{max_in_window(times)}",
                f"{statistics.median(gaps) * 1000:.1f}" if gaps else "-",
                f"{min(gaps) * 1000:.1f}" if gaps else "-",
                f"{per_chat}",
                "ok" if per_chat <= 1 and max_in_window(times) <= rate else "EXCEEDED",
            ]
        )
    print_table(
        f"Pacing with the real asyncio.sleep, {rows} due reminders per rate",
        [
            "rate setting (msg/s)",
            "sent",
            "sweep (s)",
            "achieved (msg/s)",
            "max in any 1 s",
            "median gap (ms)",
            "min gap (ms)",
            "max per chat per 1 s",
            "limits",
        ],
        table,
    )
    print("achieved = (sends - 1) / (last send - first send), from the fake request's clock")


# --- main -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    """Run every measurement in a fresh temporary directory."""
    if args.batch != reminders_module.BATCH_SIZE:
        reminders_module.BATCH_SIZE = args.batch  # the sweep reads the module constant
    settings = make_settings(Path("unused.sqlite3"))
    guide = load_guide(settings.guide_path, firm_facts(settings))
    with tempfile.TemporaryDirectory(prefix="bench-reminders-", dir=args.dir) as tmp:
        directory = Path(tmp)
        print_table(
            "Machine",
            ["item", "value"],
            [
                ["platform", platform.platform()],
                ["CPU", cpu_model()],
                ["CPU count", f"{os.cpu_count()}"],
                ["Python", sys.version.split()[0]],
                ["SQLite (library)", sqlite3.sqlite_version],
                ["database directory", f"{directory} ({fs_type(directory)})"],
                ["benchmark 'now'", NOW.isoformat()],
            ],
            left=2,
        )
        path = directory / "reminders.sqlite3"
        fill = await create_filled(path, args.rows)
        size = path.stat().st_size / 1e6
        print(f"\nfilled {args.rows:,} pending authorizations + due reminders in {fill:.2f} s")
        print(f"(one executemany transaction via sqlite3; file {size:.1f} MB)")

        await bench_select(path, args.batch, args.repetitions)
        await bench_full_sweep(path, guide, args.rows)
        await bench_pacing(directory, guide, args.rates, args.pace_rows)


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="due reminders to fill")
    parser.add_argument("--batch", type=int, default=reminders_module.BATCH_SIZE)
    parser.add_argument("--repetitions", type=int, default=200, help="timed selects")
    parser.add_argument("--pace-rows", type=int, default=100, help="reminders per pacing run")
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 30.0])
    parser.add_argument("--dir", type=Path, default=None, help="where the temp dir goes")
    args = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(run(args))
    print(f"\ntotal benchmark time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
