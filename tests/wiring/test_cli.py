"""The operator's commands, as real processes: --check, backup, restore, a bad database at start,
a second process, a webhook left by another tool."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bot.storage.repository import Repository
from bot.storage.schema import SCHEMA_VERSION
from tests.botapi import BotApiServer
from tests.support.harness import TOKEN


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: only what the test gives (no .env is read from tmp_path)."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": "http://127.0.0.1:9",
        "DATABASE_PATH": str(tmp_path / "data" / "authorizations.sqlite3"),
        **extra,
    }


def bot(
    tmp_path: Path, *args: str, timeout: float = 30, token: bool = True, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` to completion (without TELEGRAM_BOT_TOKEN if not `token`)."""
    environment = env(tmp_path, **extra)
    if not token:
        del environment["TELEGRAM_BOT_TOKEN"]
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_database(path: Path, completions: int = 0) -> None:
    """A database of this bot, migrated, with some completed authorizations."""

    async def create() -> None:
        repository = await Repository.open(path)
        await repository.close()

    asyncio.run(create())
    with closing(sqlite3.connect(path)) as db:
        for number in range(completions):
            db.execute(
                "INSERT INTO authorizations (company_rut, step, started_at, last_activity_at, "
                "completed_at) VALUES (?, 7, 1, 1, 2)",
                (f"7600000{number}-{number}",),
            )
        db.commit()


# --- --check -----------------------------------------------------------------------------


def test_check_reports_settings_guide_and_database_and_exits_0(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    make_database(database, completions=3)
    before = database.read_bytes()
    result = bot(tmp_path, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok: settings"
    assert lines[1].startswith("ok: guide")
    assert f"schema version {SCHEMA_VERSION}" in lines[2]
    assert "authorizations 3" in lines[2]
    assert database.read_bytes() == before  # read only


def listing(directory: Path) -> list[str]:
    """Every file and folder under `directory`, relative to it."""
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def test_check_on_a_new_install_creates_nothing_and_says_not_created_yet(tmp_path: Path) -> None:
    before = listing(tmp_path)  # empty: no data folder yet
    result = bot(tmp_path, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    database = tmp_path / "data" / "authorizations.sqlite3"
    assert result.stdout.splitlines()[2:] == [
        f"ok: database {database}: not created yet (the bot creates it on start)"
    ]
    assert "in use" not in result.stdout
    assert listing(tmp_path) == before == []


def test_check_of_a_stopped_bots_database_leaves_nothing_beside_it(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    make_database(database, completions=2)
    before = listing(tmp_path)
    assert before == ["data", "data/authorizations.sqlite3"]  # the bot closed it cleanly
    content = database.read_bytes()
    result = bot(tmp_path, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "authorizations 2" in result.stdout and "in use" not in result.stdout
    # No .lock, no -wal, no -shm: the file is read as it is.
    assert listing(tmp_path) == before
    assert database.read_bytes() == content


def test_check_lists_every_problem_one_line_each_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "guide.toml").write_text("not = [valid", encoding="utf-8")
    database = tmp_path / "data" / "authorizations.sqlite3"
    database.parent.mkdir()
    database.write_text("hello, I am a text file\n", encoding="utf-8")
    result = bot(tmp_path, "--check", GUIDE_PATH=str(tmp_path / "guide.toml"))
    assert result.returncode == 2
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2
    assert "GUIDE_PATH" in problems[0] and "not valid TOML" in problems[0]
    assert "DATABASE_PATH" in problems[1] and "not a SQLite database" in problems[1]
    assert "Traceback" not in result.stdout + result.stderr


def test_check_with_bad_settings_names_each_one(tmp_path: Path) -> None:
    result = bot(tmp_path, "--check", QUIET_HOURS="25-3", FIRM_HOURS="noon")
    assert result.returncode == 2
    problems = result.stdout.splitlines()
    assert [p.split(":")[1].strip() for p in problems] == ["QUIET_HOURS", "FIRM_HOURS"]


def test_check_reports_a_database_locked_by_another_program(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    make_database(database)
    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another program in the middle of a long write
        result = bot(tmp_path, "--check")
        other.execute("ROLLBACK")
    assert result.returncode == 2
    [problem] = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert "DATABASE_PATH" in problem and "locked by another program" in problem


def test_check_reports_pending_migrations_on_a_copy(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    make_database(database)
    with closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA user_version = 4")
        db.execute("DROP TABLE processed_updates")
        db.execute("ALTER TABLE authorizations DROP COLUMN proof_reading")
        db.commit()
    result = bot(tmp_path, "--check")
    assert result.returncode == 0, result.stdout
    pending = SCHEMA_VERSION - 4
    assert f"schema version 4 ({pending} migration(s) to apply on start)" in result.stdout
    assert "processed_updates 0" in result.stdout  # the migration ran, on the copy
    with closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)


# --- a database the bot cannot use: one line, exit 2, at once ---------------------------


def _newer(path: Path) -> None:
    make_database(path)
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.commit()


def _truncated(path: Path) -> None:
    make_database(path, completions=50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path: Path) -> None:
    make_database(path, completions=50)
    data = bytearray(path.read_bytes())
    data[120:4096] = b"\xff" * (4096 - 120)
    path.write_bytes(bytes(data))


def _read_only(path: Path) -> None:
    make_database(path)
    path.chmod(0o444)


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda p: p.write_text("text, not a database", encoding="utf-8"), "not a SQLite"),
        (_truncated, "DATABASE_PATH"),
        (_corrupt, "DATABASE_PATH"),
        (_newer, "newer than this program"),
        (_read_only, "read-only"),
    ],
    ids=["text", "truncated", "corrupt", "newer-schema", "read-only"],
)
def test_a_bad_database_stops_the_bot_with_one_line(
    tmp_path: Path, spoil: object, words: str
) -> None:
    if os.geteuid() == 0 and spoil is _read_only:
        pytest.skip("root can write a read-only file")
    database = tmp_path / "data" / "authorizations.sqlite3"
    database.parent.mkdir()
    assert callable(spoil)
    spoil(database)
    started = time.monotonic()
    result = bot(tmp_path, timeout=20)
    assert time.monotonic() - started < 15
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_PATH" in lines[0] and words in lines[0]
    assert TOKEN not in result.stderr


# --- backup and restore ------------------------------------------------------------------


def test_backup_then_restore_brings_back_every_completion(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    make_database(database, completions=5)
    made = bot(tmp_path, "backup")
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.strip().rsplit(" ", 1)[-1])
    assert backup.parent == database.parent / "backups"
    with closing(sqlite3.connect(database)) as db:
        db.execute("DELETE FROM authorizations")
        db.commit()
    restored = bot(tmp_path, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    with closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT COUNT(*) FROM authorizations").fetchone() == (5,)


def test_backup_restore_and_check_need_no_token(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    make_database(database, completions=4)
    made = bot(tmp_path, "backup", token=False)
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.strip().rsplit(" ", 1)[-1])
    restored = bot(tmp_path, "restore", str(backup), token=False)
    assert restored.returncode == 0, restored.stderr
    # --check still checks the guide and the database, and says the bot could not start.
    checked = bot(tmp_path, "--check", token=False)
    assert checked.returncode == 2
    lines = checked.stdout.splitlines()
    assert lines[:2] == ["ok: settings", "ok: guide (packaged)"]
    assert "authorizations 4" in lines[2]
    assert lines[3:] == [
        "problem: TELEGRAM_BOT_TOKEN is required but not set (only running the bot needs it)"
    ]
    assert "Traceback" not in checked.stdout + checked.stderr
    # Running the bot is what needs it: one line, exit 2.
    started = bot(tmp_path, token=False, TELEGRAM_BOT_TOKEN="  ")
    assert started.returncode == 2
    assert started.stderr == "Configuration error: TELEGRAM_BOT_TOKEN is required but not set\n"


# --- the running process -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    """A loopback Bot API server."""
    with BotApiServer() as running:
        yield running


def start_bot(server: BotApiServer, tmp_path: Path, log: str) -> subprocess.Popen[bytes]:
    """Start `python -m bot` against the loopback server, logging to a file."""
    environment = {**env(tmp_path), **server.bot_env(), "REMINDER_SCHEDULE": ""}
    with (tmp_path / log).open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot"], env=environment, cwd=tmp_path, stdout=out, stderr=out
        )


def wait_for_log(path: Path, words: str, timeout: float = 20) -> None:
    """Wait until a process's log mentions `words`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and words in path.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{words!r} not in {path.read_text(encoding='utf-8', errors='replace')}")


def test_a_second_process_waits_for_the_first_and_restore_is_refused_meanwhile(
    server: BotApiServer, tmp_path: Path
) -> None:
    first = start_bot(server, tmp_path, "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        server.wait_until_polling(timeout=20)
        second = start_bot(server, tmp_path, "second.log")
        wait_for_log(tmp_path / "second.log", "another bot process uses")
        log = (tmp_path / "second.log").read_text(encoding="utf-8")
        assert log.count("another bot process uses") == 1
        checked = bot(tmp_path, "--check")  # what an operator runs before restarting
        assert checked.returncode == 0, checked.stdout
        assert "in use by a running bot (process " in checked.stdout
        made = bot(tmp_path, "backup")  # online, while the first one runs
        assert made.returncode == 0, made.stderr
        backup = made.stdout.strip().rsplit(" ", 1)[-1]
        refused = bot(tmp_path, "restore", backup)
        assert refused.returncode == 2
        assert refused.stderr.startswith("Backup error: ") and "in use by" in refused.stderr
        first.kill()
        first.wait(timeout=10)
        wait_for_log(tmp_path / "second.log", "bot started")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_a_webhook_left_by_another_tool_is_removed_and_polling_works(
    server: BotApiServer, tmp_path: Path
) -> None:
    token = server.bot_env()["TELEGRAM_BOT_TOKEN"]
    request = urllib.request.Request(
        f"{server.url}/bot{token}/setWebhook",
        data=json.dumps({"url": "https://example.invalid/hook"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer)["ok"] is True
    process = start_bot(server, tmp_path, "bot.log")
    try:
        server.wait_until_polling(timeout=20)
        wait_for_log(tmp_path / "bot.log", "a webhook was set for this token")
        assert server.calls("deleteWebhook")[0]["params"].get("drop_pending_updates") in (
            None,
            False,
            "false",
        )
    finally:
        process.kill()
        process.wait(timeout=10)
