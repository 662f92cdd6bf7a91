"""Online backups of the live SQLite file, their rotation, and refusing unsafe restores."""

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.storage.backup import (
    BackupError,
    backup_database,
    backups_directory,
    hold_database_lock,
    list_backups,
    lock_path,
    make_private,
    restore_database,
)
from bot.storage.repository import Repository
from bot.storage.schema import SCHEMA_VERSION
from tests.support.harness import ROOT

NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
TOKEN = "1234567890:AAH" + "x" * 32

# Keeps committing one row at a time, as the bot does (WAL, synchronous=FULL), printing how
# many rows it has committed whenever asked (a line on stdin), until stdin closes.
WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = FULL")
db.execute("PRAGMA busy_timeout = 5000")
import threading
committed = 0
stop = threading.Event()
def answer():
    for _ in sys.stdin:
        print(committed, flush=True)
    stop.set()
threading.Thread(target=answer, daemon=True).start()
deadline = time.monotonic() + 60
while not stop.is_set() and time.monotonic() < deadline:
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO events (company_rut, at, kind, step, detail) VALUES (?, ?, 'writer', 1, ?)",
        ("76086428-5", time.time(), "w" * 300),
    )
    db.execute("COMMIT")
    committed += 1
print(committed, flush=True)
"""

# Holds the bot's database lock until its stdin closes, like a running bot.
HOLDER = """
import sys
from pathlib import Path
from bot.storage.backup import hold_database_lock
with hold_database_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""

# Changes the database and dies without closing it, leaving its last commits in the -wal.
CRASHER = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = FULL")
db.execute("PRAGMA wal_autocheckpoint = 0")
db.execute("DELETE FROM authorizations WHERE rowid % 5 = 0")
db.execute(
    "INSERT INTO authorizations (company_rut, step, started_at, last_activity_at) "
    "VALUES ('99999999-9', 3, 1, 1)"
)
os._exit(0)
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open a database file the way the bot does."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def create_database(path: Path) -> None:
    """Create a database with the bot's real schema, as the bot does at startup."""

    async def create() -> None:
        repository = await Repository.open(path)
        await repository.close()

    asyncio.run(create())


def add_completions(path: Path, count: int) -> dict[str, float]:
    """Record `count` completed authorizations; return completion time by company RUT."""
    completions = {f"{10_000_000 + i * 7}-{i % 10}": 1_700_000_000.0 + i for i in range(count)}
    with contextlib.closing(connect(path)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO authorizations (company_rut, client_chat_id, client_name, step, "
            "started_at, last_activity_at, completed_at) VALUES (?, ?, 'Cliente', 7, ?, ?, ?)",
            [(rut, 1000 + i, at - 300, at, at) for i, (rut, at) in enumerate(completions.items())],
        )
        db.execute("COMMIT")
    return completions


def completions_in(path: Path) -> dict[str, float]:
    """Read every completion row of a database file."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT company_rut, completed_at FROM authorizations WHERE completed_at IS NOT NULL"
        ).fetchall()
    return dict(rows)


def integrity(path: Path) -> list[tuple[str]]:
    """Run SQLite's integrity check on a file."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


def snapshot(directory: Path) -> dict[str, str]:
    """Fingerprint every file in a directory tree but the lock (to show nothing changed)."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


def set_aside(database: Path) -> list[Path]:
    """Return the databases a restore moved aside (not their -wal files), oldest first."""
    pattern = re.compile(
        rf"^{re.escape(database.name)}\.before-restore-[0-9]{{8}}-[0-9]{{6}}Z(-[0-9]+)?$"
    )
    return sorted(p for p in database.parent.iterdir() if pattern.match(p.name))


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A real database file with the bot's schema and 50 completions, in data/."""
    path = tmp_path / "data" / "authorizations.sqlite3"
    create_database(path)
    add_completions(path, 50)
    return path


@contextlib.contextmanager
def running(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run a Python snippet in its own process, ended (and waited for) on leaving."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# === backups ===========================================================================


def test_a_backup_taken_while_the_bot_writes_has_every_row_committed_before_it(
    database: Path,
) -> None:
    # Enough data that copying it takes a while, so the writer commits during the copies.
    with contextlib.closing(connect(database)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO events (company_rut, at, kind, step, detail) VALUES (?, ?, 'seed', 1, ?)",
            [("76086428-5", float(i), "s" * 500) for i in range(20_000)],
        )
        db.execute("COMMIT")
    reader = sqlite3.connect(database, isolation_level=None)

    def committed(process: subprocess.Popen[str]) -> int:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("?\n")
        process.stdin.flush()
        return int(process.stdout.readline())

    with running(WRITER, str(database)) as writer:
        deadline = time.monotonic() + 20
        while committed(writer) < 20:
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.01)
        for minute in range(3):
            # Everything committed before the backup starts is visible to a fresh read here.
            (before,) = reader.execute(
                "SELECT max(id) FROM events WHERE kind = 'writer'"
            ).fetchone()
            rows_before = reader.execute("SELECT count(*) FROM events").fetchone()[0]
            started = committed(writer)
            made = backup_database(database, keep=5, now=NOW + timedelta(minutes=minute))
            assert committed(writer) > started  # the bot went on committing meanwhile

            assert integrity(made) == [("ok",)]
            with contextlib.closing(sqlite3.connect(made)) as copy:
                ids = {row[0] for row in copy.execute("SELECT id FROM events")}
                assert copy.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
                assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
                assert copy.execute("SELECT count(*) FROM authorizations").fetchone()[0] == 50
            assert set(range(1, before + 1)) <= ids
            assert len(ids) >= rows_before
            assert not Path(f"{made}-wal").exists()  # one self-contained file
        assert writer.stdin is not None
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    reader.close()
    assert len(list_backups(database)) == 3


def test_a_backup_is_named_by_its_utc_time_and_only_the_newest_are_kept(
    database: Path,
) -> None:
    directory = backups_directory(database)
    directory.mkdir()
    (directory / "notes.txt").write_text("the firm's own file\n", encoding="utf-8")
    santiago = NOW.astimezone(ZoneInfo("America/Santiago"))
    made = [backup_database(database, keep=3, now=santiago + timedelta(hours=h)) for h in range(5)]
    # UTC, not Santiago time, and the name says so ("Z", as ISO 8601 writes UTC).
    assert made[0].name == "authorizations-20250314-150926Z.sqlite3"
    assert made[0].parent == database.parent / "backups"
    assert list_backups(database) == made[-3:]
    assert all(path.exists() == (path in made[-3:]) for path in made)
    assert (directory / "notes.txt").exists()
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["notes.txt", *(p.name for p in made[-3:])]
    )  # no temporary file is left behind
    assert oct(made[-1].stat().st_mode & 0o777) == oct(0o600)  # clients' personal data

    # A smaller BACKUP_KEEP trims to it; a clock set back never deletes the backup just made.
    latest = backup_database(database, keep=1, now=NOW - timedelta(days=1))
    assert list_backups(database) == [latest]


def test_backup_refuses_a_missing_or_damaged_database_and_a_bad_keep(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "authorizations.sqlite3"
    with pytest.raises(BackupError, match=r"authorizations\.sqlite3: no database to back up$"):
        backup_database(missing, keep=3, now=NOW)
    assert not missing.exists()  # not created by trying
    with pytest.raises(ValueError):
        backup_database(missing, keep=0, now=NOW)
    with pytest.raises(ValueError):
        backup_database(missing, keep=3, now=NOW.replace(tzinfo=None))

    create_database(missing)
    add_completions(missing, 200)
    backups_directory(missing).write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(BackupError, match=r"authorizations\.sqlite3: cannot be backed up \("):
        backup_database(missing, keep=3, now=NOW)
    backups_directory(missing).unlink()

    damage_table(missing, "authorizations")
    with pytest.raises(BackupError) as raised:
        backup_database(missing, keep=3, now=NOW)
    assert str(missing) in str(raised.value) and "\n" not in str(raised.value)
    assert list_backups(missing) == []
    assert list(backups_directory(missing).iterdir()) == []  # nor a temporary copy


def damage_table(path: Path, table: str) -> None:
    """Overwrite the middle of a table's root page with garbage, as a bad disk would."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size + 8)
        file.write(b"\xa5\x5a" * (page_size // 4))


def test_backups_named_before_the_z_still_rotate_with_the_new_ones(database: Path) -> None:
    directory = backups_directory(database)
    directory.mkdir(mode=0o700)
    old = directory / "authorizations-20250101-000000.sqlite3"
    old.write_bytes(backup_database(database, keep=5, now=NOW).read_bytes())
    assert list_backups(database)[0] == old
    newest = backup_database(database, keep=1, now=NOW + timedelta(days=1))
    assert list_backups(database) == [newest] and not old.exists()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The usual umask 022, under which a file created plainly is readable by all (0o644)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes_while_open(database: Path) -> list[int]:
    """Open the database as the bot does, write once, and return the modes of the database,
    its -wal and its -shm while it is still open."""

    async def opened() -> list[int]:
        repository = await Repository.open(database)
        try:
            await repository.database.connection.execute("CREATE TABLE IF NOT EXISTS t (x)")
            return await asyncio.to_thread(
                lambda: [mode(Path(f"{database}{suffix}")) for suffix in ("", "-wal", "-shm")]
            )
        finally:
            await repository.close()

    return asyncio.run(opened())


@pytest.mark.usefixtures("usual_umask")
def test_the_live_database_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "data" / "authorizations.sqlite3"
    assert modes_while_open(database) == [0o600] * 3
    assert mode(database.parent) == 0o700  # the folder the bot created
    # A database of an older version, left readable by all, is tightened when opened.
    os.chmod(database, 0o644)
    assert modes_while_open(database) == [0o600] * 3


@pytest.mark.usefixtures("usual_umask")
def test_a_folder_that_exists_keeps_its_mode_and_restored_files_are_private(
    database: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "volume"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    make_private(shared / "authorizations.sqlite3")
    assert mode(shared) == 0o755
    assert mode(shared / "authorizations.sqlite3") == 0o600
    backup = backup_database(database, keep=3, now=NOW)
    os.chmod(backup, 0o644)  # copied off and back by hand
    restore_database(backup, database)
    assert mode(database) == 0o600
    elsewhere = tmp_path / "new" / "authorizations.sqlite3"
    restore_database(backup, elsewhere)
    assert mode(elsewhere) == 0o600 and mode(elsewhere.parent) == 0o700


# === restore ===========================================================================


def test_restore_brings_back_every_completion_and_keeps_the_replaced_file(
    database: Path,
) -> None:
    original = completions_in(database)
    backup = backup_database(database, keep=3, now=NOW)
    changed = {rut: at for i, (rut, at) in enumerate(original.items()) if (i + 1) % 5}

    # The bot crashes after changing things: its last commits are only in the -wal (which
    # is not opened here: closing the last connection would fold it into the file).
    with running(CRASHER, str(database)) as crasher:
        assert crasher.wait(timeout=30) == 0
    assert Path(f"{database}-wal").stat().st_size > 0

    restore_database(backup, database)

    assert completions_in(database) == original
    assert integrity(database) == [("ok",)]
    assert not Path(f"{database}-wal").exists() and not Path(f"{database}-shm").exists()
    [aside] = set_aside(database)
    assert Path(f"{aside}-wal").exists()
    # The replaced database was moved aside whole, with the commits its -wal held.
    assert completions_in(aside) == changed
    with contextlib.closing(sqlite3.connect(aside)) as db:
        query = "SELECT step FROM authorizations WHERE company_rut = '99999999-9'"
        assert db.execute(query).fetchone() == (3,)
    assert backup.exists()  # the backup itself is left as it was

    # The bot opens the restored file as usual, and a second restore keeps both old files.
    create_database(database)
    restore_database(backup, database)
    assert len(set_aside(database)) == 2
    assert completions_in(database) == original


def test_restore_into_an_empty_place_needs_no_database_there(
    database: Path, tmp_path: Path
) -> None:
    backup = backup_database(database, keep=3, now=NOW)
    elsewhere = tmp_path / "new" / "authorizations.sqlite3"
    restore_database(backup, elsewhere)
    assert completions_in(elsewhere) == completions_in(database)
    assert set_aside(elsewhere) == []


def test_restore_refuses_while_a_running_bot_holds_the_database(database: Path) -> None:
    backup = backup_database(database, keep=3, now=NOW)
    with running(HOLDER, str(database)) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(database.parent)
        with pytest.raises(BackupError) as raised:
            restore_database(backup, database)
        message = str(raised.value)
        assert message == (
            f"{database}: in use by process {holder.pid} (is the bot running? stop it first)"
        )
        assert snapshot(database.parent) == before
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    restore_database(backup, database)  # once the bot has stopped it goes ahead


def test_a_killed_bot_leaves_no_stale_lock(database: Path) -> None:
    backup = backup_database(database, keep=3, now=NOW)
    with running(HOLDER, str(database)) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BackupError, match="in use"):
            restore_database(backup, database)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert lock_path(database).exists()  # the file stays; the kernel released its lock
    restore_database(backup, database)


def test_the_lock_is_exclusive_within_one_process_too(database: Path) -> None:
    held_twice = pytest.raises(BackupError, match=rf"in use by process {os.getpid()} ")
    with hold_database_lock(database), held_twice, hold_database_lock(database):
        pass  # pragma: no cover
    with hold_database_lock(database):
        pass


def corrupt_garbage(backup: Path) -> None:
    """Replace the backup with something that is not a database."""
    backup.write_bytes(b"not a database at all " * 500)


def corrupt_empty(backup: Path) -> None:
    """Leave an empty file, as a full disk would."""
    backup.write_bytes(b"")


def corrupt_truncated(backup: Path) -> None:
    """Cut the backup in half, as an interrupted copy would."""
    data = backup.read_bytes()
    backup.write_bytes(data[: len(data) // 2])


def corrupt_page(backup: Path) -> None:
    """Damage the completions table inside an otherwise valid file."""
    damage_table(backup, "authorizations")


def newer_schema(backup: Path) -> None:
    """Make the backup look like one from a newer release of the bot."""
    with contextlib.closing(sqlite3.connect(backup)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def not_ours(backup: Path) -> None:
    """Replace the backup with a valid SQLite file that the bot never made."""
    backup.unlink()
    with contextlib.closing(sqlite3.connect(backup)) as db:
        db.execute("CREATE TABLE other (x)")


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (corrupt_garbage, "not a SQLite database"),
        (corrupt_empty, "not a SQLite database"),
        (corrupt_truncated, "(unreadable database|integrity check failed)"),
        (corrupt_page, "(unreadable database|integrity check failed)"),
        (
            newer_schema,
            rf"its schema version {SCHEMA_VERSION + 1} is newer than .*\({SCHEMA_VERSION}\)$",
        ),
        (not_ours, r"not a database of this bot \(schema version 0\)"),
    ],
)
def test_restore_refuses_a_bad_backup_and_leaves_the_database_untouched(
    database: Path, spoil: Callable[[Path], None], problem: str
) -> None:
    backup = backup_database(database, keep=3, now=NOW)
    spoil(backup)
    before = snapshot(database.parent)
    expected = rf"^{re.escape(str(backup))}: not restored, {problem}"
    with pytest.raises(BackupError, match=expected) as raised:
        restore_database(backup, database)
    assert "\n" not in str(raised.value)
    assert snapshot(database.parent) == before  # no file moved, changed or left behind
    assert len(completions_in(database)) == 50


def test_restore_refuses_a_missing_backup(database: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    with pytest.raises(BackupError, match=rf"^{re.escape(str(missing))}: no such backup file$"):
        restore_database(missing, database)


# === the command ========================================================================


def test_the_command_backs_up_and_restores_with_one_line_on_failure(
    database: Path, tmp_path: Path
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_PATH", "BACKUP_KEEP", "TELEGRAM_BOT_TOKEN"}
    }
    env |= {"TELEGRAM_BOT_TOKEN": TOKEN, "DATABASE_PATH": str(database), "BACKUP_KEEP": "2"}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *(args or ("backup",))],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = command()
    assert made.returncode == 0, made.stderr
    [backup] = list_backups(database)
    assert made.stdout == f"Backup written to {backup}\n"

    restored = command("restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert completions_in(database) == completions_in(backup)

    refused = command("restore", str(tmp_path / "missing.sqlite3"))
    assert refused.returncode == 2
    assert refused.stderr == f"Backup error: {tmp_path / 'missing.sqlite3'}: no such backup file\n"
    assert "Traceback" not in refused.stderr and refused.stdout == ""
