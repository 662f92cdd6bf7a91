"""The one benchmark run: every figure the performance goals need, in one output.

Run with ``python -m bench`` (about 3 minutes on 2 cores), or ``python -m bench --quick``
(about 30 s, smaller sizes). It prints, in order:

0. the machine (CPU, cores, Python, SQLite, PTB) and the date, to paste with the figures;
1. throughput of four paths over interleaved rounds (median, min-max) and their ratios:
   floor (echo + one autocommit upsert), echo, production (the Poller), handling only
   (process_update) -- bench/conversation_throughput.py;
2. per update, counted by instrumentation: commits, round trips to aiosqlite's thread and
   Bot API calls by method, for the whole flow and for one press of a step button;
3. reminders: selecting a 500-row batch among 100,000 due (median, p99) and the sweep of
   all of them against REMINDER_RATE -- bench/reminder_sweep.py;
4. resident memory per conversation, 10,000 in progress, in a fresh child process;
5. start-up time to the first getUpdates, if bench/startup.py is there;
6. reading pictures of the SII's screens (accuracy per field, false accepts, time per
   picture) -- bench/ocr.py; not in --quick, --ocr-pictures N sets how many.

Figures are printed, never judged by a test; each goal is printed beside its figure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import telegram

from bench import conversation_throughput as flow
from bench.fake_bot_api import POLLING_METHODS
from bench.reminder_sweep import (
    capped_sweep,
    cpu_model,
    create_filled,
    fs_type,
    percentile,
    print_table,
    select_times,
)
from bot.guide.guide import Guide
from bot.wiring.assembly import guide_for

GOAL_PRODUCTION_OVER_FLOOR = 3.0
GOAL_COMMITS = 1.0
GOAL_ROUND_TRIPS = 3.0
GOAL_API_PER_PRESS = 2.0
GOAL_SELECT_P99_MS = 5.0
GOAL_RSS_KB = 1.0
GOAL_STARTUP_S = 0.6


@dataclass(frozen=True)
class Sizes:
    """How much each section does."""

    rounds: int
    clients: int  # per path per round
    count_clients: int  # per instrumented pass
    rows: int  # due reminders
    batch: int
    selections: int
    sweep_seconds: float | None  # None: sweep every row
    rss: int  # conversations in progress
    startup_runs: int
    ocr_pictures: int = 0  # pictures of the SII's screens read (0: skip)


DEFAULT = Sizes(
    rounds=5,
    clients=60,
    count_clients=20,
    rows=100_000,
    batch=500,
    selections=1_000,
    sweep_seconds=40.0,
    rss=10_000,
    startup_runs=5,
    ocr_pictures=111,
)
QUICK = Sizes(
    rounds=3,
    clients=15,
    count_clients=5,
    rows=10_000,
    batch=500,
    selections=200,
    sweep_seconds=4.0,
    rss=1_000,
    startup_runs=3,
)


# --- formatting -------------------------------------------------------------------------


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 0) -> tuple[str, str]:
    """Format the median and the min-max range of `values` times `scale`."""
    if not values:
        return "-", "-"
    med = statistics.median(values) * scale
    low, high = min(values) * scale, max(values) * scale
    return f"{med:,.{digits}f}", f"{low:,.{digits}f}-{high:,.{digits}f}"


def verdict(value: float, goal: float) -> str:
    """MET or MISSED for a figure whose goal is an upper bound."""
    if math.isnan(value):
        return "not measured"
    return "MET" if value <= goal else "MISSED"


def count(value: float) -> str:
    """A per-update count, short."""
    return "-" if math.isnan(value) else f"{value:.2f}".rstrip("0").rstrip(".")


def failed(section: str, exc: BaseException) -> None:
    """Say that a section could not be measured, and why, then go on with the others."""
    print(f"\n{section}: could not measure ({type(exc).__name__}: {exc})")


# --- 0. the machine ---------------------------------------------------------------------


def code_version() -> str:
    """The commit measured, and whether product files differ from it."""
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
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (f" + {len(changed)} uncommitted product file(s)" if changed else " (clean)")


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews timings)."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"


def print_machine(directory: Path, quick: bool) -> None:
    """Where and when the figures come from."""
    print_table(
        "Machine and date",
        ["item", "value"],
        [
            ["date", datetime.now().astimezone().isoformat(timespec="seconds")],
            ["CPU", f"{cpu_model()}, {os.cpu_count()} cores"],
            ["Python", f"{sys.version.split()[0]} ({platform.platform()})"],
            ["SQLite", sqlite3.sqlite_version],
            ["python-telegram-bot", telegram.__version__],
            ["aiosqlite", aiosqlite.__version__],
            ["product code", code_version()],
            ["database directory", f"{directory} ({fs_type(directory)})"],
            ["load average (start)", load_average()],
            ["sizes", "--quick" if quick else "default"],
        ],
        left=2,
    )
    print(
        "Bot API: a fake BaseRequest answering at once (no network); no rate limiter; "
        "jobs not started; the bot's clock moves 61 s per reading"
    )


# --- 1 and 2. throughput and counts -----------------------------------------------------


def print_throughput(result: flow.Throughput, sizes: Sizes) -> None:
    """The four paths' time per update, and the ratios between them."""
    rows = []
    for path in flow.PATHS:
        values = [r[path] for r in result.rounds if path in r]
        median, range_ = spread(values, 1e6)
        rate = f"{1 / statistics.median(values):,.0f}" if values else "-"
        rows.append([flow.LABELS[path], median, range_, rate])
    print_table(
        f"1. Throughput: {len(result.rounds)} interleaved rounds, each path "
        f"{sizes.clients} clients x {len(flow.FLOW)} updates = {result.updates_per_round:,} "
        "updates per round",
        ["path", "us/update median", "min-max", "updates/s"],
        rows,
    )
    for failure in result.failures:
        print(f"production path failed in {failure}")

    def ratio(top: str, bottom: str) -> list[float]:
        return [r[top] / r[bottom] for r in result.rounds if top in r and bottom in r]

    table = []
    for top, bottom in (
        ("production", "floor"),
        ("handling", "floor"),
        ("floor", "echo"),
        ("production", "handling"),
    ):
        values = ratio(top, bottom)
        median, range_ = spread(values, digits=2)
        goal = ""
        if (top, bottom) == ("production", "floor"):
            value = statistics.median(values) if values else math.nan
            goal = f"<= {GOAL_PRODUCTION_OVER_FLOOR:g}x: "
            goal += verdict(value, GOAL_PRODUCTION_OVER_FLOOR)
        table.append([f"{top}/{bottom}", f"{median}x", range_, goal])
    print_table(
        "Ratios of time per update (per round: median, min-max)",
        ["ratio", "median", "min-max", "goal"],
        table,
    )


def print_costs(costs: flow.Costs, clients: int) -> None:
    """Commits, round trips and Bot API calls per update, beside their goals."""
    passes = [costs.flow_poller, costs.flow_direct, costs.press_poller, costs.press_direct]
    methods = sorted(
        {m for c in passes for m, n in c.api.items() if n and m not in POLLING_METHODS}
    )

    def row(name: str, figure: Callable[[flow.Cost], float], goal: str) -> list[str]:
        return [name, *(count(figure(c)) for c in passes), goal]

    flow_commits = costs.flow_poller.per_update("commits")
    press_commits = costs.press_poller.per_update("commits")
    flow_trips = costs.flow_poller.per_update("round_trips")
    press_trips = costs.press_poller.per_update("round_trips")
    press_api = costs.press_poller.api_total()
    rows = [
        row(
            "commits",
            lambda c: c.per_update("commits"),
            f"1: {verdict(max(flow_commits, press_commits), GOAL_COMMITS)}",
        ),
        row(
            "aiosqlite round trips",
            lambda c: c.per_update("round_trips"),
            f"<= 3: {verdict(max(flow_trips, press_trips), GOAL_ROUND_TRIPS)}",
        ),
        row(
            "Bot API calls",
            flow.Cost.api_total,
            f"<= 2 per press: {verdict(press_api, GOAL_API_PER_PRESS)}",
        ),
        *(row(f"  {m}", partial(flow.Cost.per_update, what=m), "") for m in methods),
    ]
    print_table(
        f"2. Per update, counted: the flow ({clients} clients x {len(flow.FLOW)} updates) "
        "and one g:2:next press (step 2 -> 3)",
        ["per update", "flow, Poller", "flow, direct", "press, Poller", "press, direct", "goal"],
        rows,
    )
    own = []
    for name, cost in (("flow", costs.flow_poller), ("press", costs.press_poller)):
        calls = ", ".join(f"{m} {cost.api[m]:,}" for m in POLLING_METHODS)
        own.append(f"{name}: {calls} for {cost.updates:,} update(s)")
    print("poller's own calls, not counted above: " + "; ".join(own))
    print(
        "commits = COMMIT statements + writes outside a transaction (sqlite3 trace callback); "
        f"{costs.found}; goals judged on the Poller columns; stored steps after the presses: "
        f"{costs.steps_after_press}"
    )


async def conversation_sections(directory: Path, guide: Guide, sizes: Sizes) -> None:
    """Sections 1 and 2, on one booted bot."""
    ours: flow.Ours | None = None
    try:
        try:
            result, ours = await flow.throughput(directory, guide, sizes.rounds, sizes.clients)
            print_throughput(result, sizes)
            print(f"flow check: {flow.completed(ours)} (warm-up included)")
        except Exception as exc:
            failed("1. throughput", exc)
        try:
            if ours is None:
                ours = await flow.boot_ours(directory / "ours.sqlite3", guide)
            print_costs(await flow.costs(ours, sizes.count_clients), sizes.count_clients)
        except Exception as exc:
            failed("2. counts per update", exc)
    finally:
        if ours is not None:
            await ours.close()


# --- 3. reminders -----------------------------------------------------------------------


async def reminder_section(directory: Path, guide: Guide, sizes: Sizes) -> None:
    """Selecting one batch among `rows` due reminders, and sweeping them all."""
    path = directory / "reminders.sqlite3"
    fill = await create_filled(path, sizes.rows)
    rows, times = await select_times(path, sizes.batch, sizes.selections)
    p99 = percentile(times, 0.99) * 1000
    print(
        f"\n== 3. Reminders: {sizes.rows:,} due rows (filled in {fill:.1f} s); "
        f"Repository.due_reminders(now, {sizes.batch}) -> {rows:,} rows"
    )
    print(
        f"select one batch, {len(times):,} selections: median "
        f"{statistics.median(times) * 1000:.2f} ms, p99 {p99:.2f} ms (min "
        f"{min(times) * 1000:.2f}, max {max(times) * 1000:.2f}) -- goal p99 <= "
        f"{GOAL_SELECT_P99_MS:g} ms: {verdict(p99, GOAL_SELECT_P99_MS)}"
    )
    swept = await capped_sweep(path, guide, sizes.rows, sizes.sweep_seconds)
    each = swept.seconds / max(swept.sent, 1)
    whole = each * sizes.rows
    if swept.complete:
        how = f"all {swept.sent:,} sent in {swept.seconds:.1f} s"
    else:
        how = (
            f"{swept.sent:,} of {sizes.rows:,} sent in {swept.seconds:.1f} s (stopped at the "
            f"time cap) -> all of them in ~{whole:.0f} s, extrapolated (--full-sweep runs it all)"
        )
    print(f"full sweep, pacing disabled: {how}; {each * 1000:.2f} ms per reminder")
    rate = flow.make_settings(path).reminder_rate
    paced = sizes.rows / rate
    print(
        f"vs REMINDER_RATE = {rate:g}/s: pacing alone spreads {sizes.rows:,} reminders over "
        f"{paced:,.0f} s ({paced / 3600:.1f} h); the sweep's own work is "
        f"{each * 1000:.2f} ms of each {1000 / rate:.0f} ms interval ({each * rate * 100:.1f}%), "
        f"so its own maximum is {1 / each:,.0f}/s, {1 / each / rate:.0f}x REMINDER_RATE"
    )
    check = directory / "pacing.sqlite3"
    few = int(rate) + 1
    await create_filled(check, few, seed=7)
    paced_run = await capped_sweep(check, guide, few, None, rate=rate)
    achieved = (paced_run.sent - 1) / paced_run.seconds if paced_run.seconds else math.nan
    print(
        f"pacing check with the real asyncio.sleep: {paced_run.sent} reminders in "
        f"{paced_run.seconds:.2f} s, {achieved:.1f}/s (REMINDER_RATE {rate:g}/s)"
    )


# --- 4. memory, in a fresh process ------------------------------------------------------

RSS_MARK = "RSS-RESULT "


async def rss_child(directory: Path, guide: Guide, conversations: int) -> None:
    """In the child: measure, then print one line the parent reads."""
    result = await flow.rss_per_conversation(directory, guide, conversations)
    print(RSS_MARK + json.dumps(result), flush=True)


def rss_section(directory: Path, conversations: int) -> None:
    """Run the memory measurement in a fresh interpreter and report what it found."""
    command = [sys.executable, "-m", "bench", "--rss-child", str(conversations)]
    command += ["--dir", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # our module
    lines = [line for line in done.stdout.splitlines() if line.startswith(RSS_MARK)]
    if done.returncode != 0 or not lines:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        print(f"\n4. memory: could not measure (child exit {done.returncode}: {tail})")
        return
    r: dict[str, Any] = json.loads(lines[-1].removeprefix(RSS_MARK))
    per = float(r["per_conversation_kb"])
    print(
        f"\n== 4. Memory: {r['conversations']:,} conversations in progress (fresh process, "
        "through the Poller, the fake keeps no message log)"
    )
    print(
        f"VmRSS {r['before_kb'] / 1024:.1f} MB -> {r['after_kb'] / 1024:.1f} MB: "
        f"+{(r['after_kb'] - r['before_kb']) / 1024:.1f} MB = {per:.2f} kB per conversation "
        f"-- goal <= {GOAL_RSS_KB:g} kB: {verdict(per, GOAL_RSS_KB)}"
    )
    if r["conversations"] < DEFAULT.rss:
        print(f"(fewer than {DEFAULT.rss:,}: fixed costs weigh more per conversation)")
    print(
        f"({r['updates']:,} updates in {r['seconds']:.1f} s; stored conversations: "
        f"{r['states']}; PTB chat_data entries: {r['chat_data']:,})"
    )


# --- 5. start-up ------------------------------------------------------------------------


def startup_section(runs: int) -> None:
    """Start-up to the first getUpdates, measured by bench/startup.py if it exists."""
    try:
        startup = importlib.import_module("bench.startup")  # written on another branch
    except ModuleNotFoundError as exc:
        if exc.name != "bench.startup":
            raise
        print("\nstart-up: bench/startup.py not present")
        return
    try:
        times: Any = startup.measure_startup(runs)
        if asyncio.iscoroutine(times):
            times = asyncio.run(times)
        values = [float(t) for t in times]
    except Exception as exc:
        failed("5. start-up", exc)
        return
    if not values:
        print("\nstart-up: measure_startup returned no figure")
        return
    median, range_ = spread(values, digits=3)
    value = statistics.median(values)
    print(
        f"\n== 5. Start-up to the first getUpdates ({len(values)} runs): median {median} s, "
        f"min-max {range_} s -- goal <= {GOAL_STARTUP_S:g} s: {verdict(value, GOAL_STARTUP_S)}"
    )


# --- main -------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 30 s)")
    parser.add_argument("--rounds", type=int, help="interleaved throughput rounds")
    parser.add_argument("--clients", type=int, help="clients per path per round")
    parser.add_argument("--count-clients", type=int, help="clients per instrumented pass")
    parser.add_argument("--rows", type=int, help="due reminders")
    parser.add_argument("--selections", type=int, help="timed batch selections")
    parser.add_argument("--sweep-seconds", type=float, help="time cap of the sweep")
    parser.add_argument("--full-sweep", action="store_true", help="sweep every row, no cap")
    parser.add_argument("--rss", type=int, help="conversations in progress (0: skip)")
    parser.add_argument("--startup-runs", type=int, help="start-up measurements (0: skip)")
    parser.add_argument("--ocr-pictures", type=int, help="screenshots to read (0: skip)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp dir goes")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sizes_of(args: argparse.Namespace) -> Sizes:
    """The sizes asked for: --quick or the defaults, then each option given."""
    sizes = QUICK if args.quick else DEFAULT
    for name in ("rounds", "clients", "count_clients", "rows", "selections", "rss", "ocr_pictures"):
        if getattr(args, name) is not None:
            sizes = replace(sizes, **{name: getattr(args, name)})
    if args.startup_runs is not None:
        sizes = replace(sizes, startup_runs=args.startup_runs)
    if args.sweep_seconds is not None:
        sizes = replace(sizes, sweep_seconds=args.sweep_seconds)
    if args.full_sweep:
        sizes = replace(sizes, sweep_seconds=None)
    return sizes


def main(argv: Sequence[str] | None = None) -> None:
    """Run every section, each in its own event loop; a failing one does not stop the rest."""
    args = parse(argv)
    guide = guide_for(flow.make_settings(Path("unused.sqlite3")))
    if args.rss_child:
        asyncio.run(rss_child(args.dir, guide, args.rss_child))
        return
    sizes = sizes_of(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-", dir=args.dir) as tmp:
        directory = Path(tmp)
        print_machine(directory, args.quick)
        asyncio.run(conversation_sections(directory, guide, sizes))
        try:
            asyncio.run(reminder_section(directory, guide, sizes))
        except Exception as exc:
            failed("3. reminders", exc)
        if sizes.rss:
            rss_section(directory, sizes.rss)
        if sizes.startup_runs:
            startup_section(sizes.startup_runs)
        if sizes.ocr_pictures:
            try:
                from bench import ocr  # draws with the tests' picture generator

                ocr.section(directory, sizes.ocr_pictures)
            except Exception as exc:
                failed("6. screenshot reading", exc)
    print(
        f"\ntotal benchmark time: {time.perf_counter() - started:.0f} s; "
        f"load average (end): {load_average()}"
    )
    sys.stdout.flush()
