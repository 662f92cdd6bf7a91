"""What an operator can check before (re)starting the bot: settings, guide, database.

Each problem is one line naming what is wrong. The database is never changed: it is read in
place, and its migrations are tried on a copy.
"""

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bot.storage.backup import BackupError, lock_holder
from bot.storage.schema import MIGRATIONS, SCHEMA_VERSION

_SQLITE_HEADER = b"SQLite format 3\x00"
# Less free space than this beside the database is reported: SQLite needs room for its WAL.
MIN_FREE_BYTES = 50_000_000
# How long a write lock held by someone else may last before --check calls it a problem.
WRITE_WAIT_SECONDS = 2.0


@dataclass
class Report:
    """What a check found: facts worth telling, and problems (each one line)."""

    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def database_problem(path: Path) -> str | None:
    """Return, in one line, why the bot could not use the database at `path` (None: usable).

    A missing file is fine (the bot creates it); a corrupt, truncated or foreign file, a newer
    schema, or a file or folder the bot cannot write are not.
    """
    folder = path.parent if path.parent != Path("") else Path(".")
    if not path.exists():
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            return f"DATABASE_PATH: cannot create {path}: folder {folder} is not writable"
        return None
    if not path.is_file():
        return f"DATABASE_PATH: {path} is not a file"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"DATABASE_PATH: {path} is read-only (the bot must write it)"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"DATABASE_PATH: folder {folder} is not writable (SQLite keeps its journal there)"
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"DATABASE_PATH: cannot read {path} ({exc.strerror})"
    if header and header != _SQLITE_HEADER:
        return f"DATABASE_PATH: {path} is not a SQLite database"
    if not header:
        return None  # an empty file is a new database
    try:
        with _read_only(path) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        return f"DATABASE_PATH: {path} cannot be read ({_one_line(exc)})"
    if verdict != "ok":
        return f"DATABASE_PATH: {path} is damaged ({_one_line(verdict)})"
    if version > SCHEMA_VERSION:
        return (
            f"DATABASE_PATH: {path} has schema version {version}, newer than this program's "
            f"({SCHEMA_VERSION}): run the newer version, or restore a backup"
        )
    return None


def check_database(path: Path) -> Report:
    """Check the database and describe it: schema version, pending migrations, row counts.

    Also what an operator must act on before a restart: a disk nearly full, the database
    locked by another program; and, as a fact, a bot process that holds it now.
    """
    report = Report()
    problem = database_problem(path)
    if problem is not None:
        report.problems.append(problem)
        return report
    folder = path.parent if path.parent != Path("") else Path(".")
    if folder.exists() and shutil.disk_usage(folder).free < MIN_FREE_BYTES:
        free = shutil.disk_usage(folder).free / 1e6
        report.problems.append(
            f"DATABASE_PATH: the disk of {folder} is nearly full ({free:.0f} MB free)"
        )
    try:
        holder = lock_holder(path)
    except BackupError as exc:
        report.problems.append(f"DATABASE_PATH: {exc}")
        return report
    if holder is not None:
        report.facts.append(f"database {path}: in use by a running bot ({holder})")
    if path.exists() and path.stat().st_size and _write_locked(path):
        report.problems.append(
            f"DATABASE_PATH: {path} is locked by another program (a write has been under way "
            f"for over {WRITE_WAIT_SECONDS:.0f} s); the bot would wait and fail"
        )
        return report
    if not path.exists() or path.stat().st_size == 0:
        report.facts.append(f"database {path}: not created yet (the bot creates it on start)")
        return report
    try:
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "copy.sqlite3"
            with _read_only(path) as source, contextlib.closing(sqlite3.connect(copy)) as target:
                version = int(source.execute("PRAGMA user_version").fetchone()[0])
                source.backup(target)
                _migrate(target, version)
                counts = {
                    table: int(target.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
                    for (table,) in target.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                    )
                }
    except sqlite3.Error as exc:
        report.problems.append(f"DATABASE_PATH: migrations fail on a copy ({_one_line(exc)})")
        return report
    pending = SCHEMA_VERSION - version
    report.facts.append(
        f"database {path}: schema version {version}"
        + (f" ({pending} migration(s) to apply on start)" if pending else "")
        + "; rows: "
        + ", ".join(f"{table} {count}" for table, count in counts.items())
    )
    return report


def _write_locked(path: Path) -> bool:
    """Tell whether another connection holds the write lock for longer than a moment."""
    if _unopened_wal_database(path):
        return False  # a writer in WAL mode always has the -wal file open
    uri = f"file:{quote(str(path.resolve()))}?mode=rw"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(WRITE_WAIT_SECONDS * 1000)}")
        connection.execute("BEGIN IMMEDIATE")  # nothing is written: rolled back at once
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    finally:
        connection.close()


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Apply the pending migrations to a copy, as the bot would on start."""
    for number in range(version + 1, SCHEMA_VERSION + 1):
        db.executescript(
            f"BEGIN; {MIGRATIONS[number - 1]}; PRAGMA user_version = {number}; COMMIT;"
        )


def _unopened_wal_database(path: Path) -> bool:
    """Tell whether `path` is a WAL database no connection has open (no -wal, no -shm).

    Reading one, even read-only, makes SQLite create a -wal and a -shm beside it, which a
    read-only connection then cannot remove.
    """
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    in_wal_mode = len(header) == 20 and header[18] == header[19] == 2
    siblings = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    return in_wal_mode and not any(sibling.exists() for sibling in siblings)


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """Open an existing database for reading only (a running bot may be writing it).

    A WAL database nobody has open is read as immutable: nothing is created beside it.
    """
    mode = "ro&immutable=1" if _unopened_wal_database(path) else "ro"
    uri = f"file:{quote(str(path.resolve()))}?mode={mode}"
    connection = sqlite3.connect(uri, uri=True)
    try:
        connection.execute("PRAGMA busy_timeout = 2000")
        yield connection
    finally:
        connection.close()


def _one_line(problem: object) -> str:
    return " ".join(str(problem).split())
