"""Online backups of the SQLite database, their rotation, and restoring one safely.

A backup is taken while the bot keeps writing: SQLite's backup API copies the database as it
was when the copy started (WAL lets the bot commit meanwhile), the copy is checked, written
under a temporary name and renamed, and only the newest BACKUP_KEEP backups are kept.

A restore must never happen under a running bot, which would go on writing to the file that
was moved aside. The bot holds an advisory lock beside the database for as long as it runs
(`hold_database_lock`, taken before the database is opened); a restore takes the same lock
without waiting and refuses while anyone else holds it. The lock is fcntl.flock's: released
by the kernel when its holder exits, even by SIGKILL, so a crash never leaves it stale.
POSIX only (Linux, macOS), like the container the bot runs in.

The bot takes one a day by itself; `python -m bot backup` takes one now, and
`python -m bot restore FILE` restores one (with the bot stopped).
"""

import contextlib
import fcntl
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from bot.storage.schema import SCHEMA_VERSION

BACKUP_DIRECTORY = "backups"
# UTC, said by the "Z" (ISO 8601): names sort by time even across a change of summer time.
_STAMP_FORMAT = "%Y%m%d-%H%M%SZ"
# Backups made before the "Z" was added are UTC too, and rotate with the others.
_BACKUP_NAME = re.compile(r"^authorizations-[0-9]{8}-[0-9]{6}Z?\.sqlite3$")
# Owner only: the database, its -wal and -shm, and the backups hold clients' personal data.
PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700
_SQLITE_HEADER = b"SQLite format 3\x00"
# Files SQLite keeps beside a database, by the suffix added to the database's name.
_WAL, _SHM, _JOURNAL = "-wal", "-shm", "-journal"


class BackupError(Exception):
    """A backup or restore that cannot be done, described in one line naming the file."""


def backups_directory(db_path: Path) -> Path:
    """Return where the backups of `db_path` live: a folder beside it, on the same volume."""
    return db_path.parent / BACKUP_DIRECTORY


def lock_path(db_path: Path) -> Path:
    """Return the lock file the running bot holds, beside the database."""
    return db_path.with_name(f"{db_path.name}.lock")


def make_private(db_path: Path) -> None:
    """Create the database's folder (owner only) and file if missing; make both owner-only.

    SQLite gives the -wal and -shm it creates the database file's permissions, so they follow.
    A folder that already exists keeps its permissions (the operator's choice, or a volume's).
    """
    db_path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    os.close(os.open(db_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    for path in (db_path, _beside(db_path, _WAL), _beside(db_path, _SHM)):
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                os.chmod(path, mode & ~0o077)


def list_backups(db_path: Path) -> list[Path]:
    """Return the backups of `db_path`, oldest first (their UTC stamps sort by time)."""
    directory = backups_directory(db_path)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _BACKUP_NAME.match(p.name) and p.is_file())


def backup_database(db_path: Path, *, keep: int, now: datetime) -> Path:
    """Copy the live database consistently into backups/, check it, keep the newest `keep`."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not db_path.is_file():
        raise BackupError(f"{db_path}: no database to back up")
    directory = backups_directory(db_path)
    target = directory / f"authorizations-{now.astimezone(UTC).strftime(_STAMP_FORMAT)}.sqlite3"
    temporary = directory / f".{target.name}.{os.getpid()}.tmp"
    try:
        directory.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        _copy_live_database(db_path, temporary)
        problem = _problem_with(temporary)
        if problem is not None:
            raise BackupError(f"{db_path}: the backup failed its check, {problem}")
        _fsync(temporary)
        os.replace(temporary, target)
        _fsync_directory(directory)
        _rotate(db_path, keep, target)
    except OSError as exc:
        raise BackupError(f"{db_path}: cannot be backed up ({_one_line(exc)})") from None
    finally:
        _remove(temporary)
    return target


def restore_database(backup: Path, db_path: Path) -> None:
    """Replace the database with a checked backup, keeping the current file aside."""
    if not backup.is_file():
        raise BackupError(f"{backup}: no such backup file")
    db_path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    with hold_database_lock(db_path):
        stamp = datetime.now(UTC).strftime(_STAMP_FORMAT)
        temporary = db_path.with_name(f".{db_path.name}.restoring.{os.getpid()}")
        try:
            # What is checked is the very copy that is put in place.
            shutil.copyfile(backup, temporary)
            os.chmod(temporary, PRIVATE_FILE)
            problem = _problem_with(temporary)
            if problem is not None:
                raise BackupError(f"{backup}: not restored, {problem}")
            _fsync(temporary)
            if db_path.exists():
                _move_aside(
                    db_path, _unused(db_path.with_name(f"{db_path.name}.before-restore-{stamp}"))
                )
            for suffix in (_WAL, _SHM, _JOURNAL):
                _remove(_beside(db_path, suffix))
            os.replace(temporary, db_path)
            _fsync_directory(db_path.parent)
        except OSError as exc:
            raise BackupError(f"{backup}: not restored ({_one_line(exc)})") from None
        finally:
            _remove(temporary)


@contextlib.contextmanager
def hold_database_lock(db_path: Path) -> Iterator[None]:
    """Hold the database's advisory lock, or raise BackupError at once if a process has it."""
    path = lock_path(db_path)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BackupError(f"{path}: cannot open the lock file ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            raise BackupError(
                f"{db_path}: in use by {holder} (is the bot running? stop it first)"
            ) from None
        except OSError as exc:
            raise BackupError(f"{path}: cannot be locked ({exc.strerror})") from None
        # Who holds it, for the message above; the lock itself is the flock, not this text.
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        # Closing the descriptor releases the lock; the file stays (removing it would race).
        os.close(descriptor)


def lock_holder(db_path: Path) -> str | None:
    """Describe the process holding the database's lock, or None; creates no file.

    No lock file means no bot has run on this database yet (a running one always has it).
    """
    path = lock_path(db_path)
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"{path}: cannot open the lock file ({exc.strerror})") from None
    try:
        # A shared lock only tests for the bot's exclusive one; released at once on close.
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path)
    except OSError as exc:
        raise BackupError(f"{path}: cannot be locked ({exc.strerror})") from None
    finally:
        os.close(descriptor)
    return None


def _read_holder(path: Path) -> str:
    """Describe the process that holds the lock, as far as its lock file tells."""
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    """Open an existing database file (never creating one) in autocommit mode."""
    uri = f"file:{quote(str(path.resolve()))}?mode={mode}"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def _copy_live_database(db_path: Path, temporary: Path) -> None:
    """Copy the database in one step of the backup API: one read snapshot, never restarted."""
    try:
        with (
            contextlib.closing(_connect(db_path, "rw")) as source,
            contextlib.closing(sqlite3.connect(temporary, isolation_level=None)) as copy,
        ):
            source.backup(copy, pages=-1)
            # The copy is a single self-contained file: no -wal to carry along.
            copy.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"{db_path}: cannot be backed up ({_one_line(exc)})") from None
    os.chmod(temporary, PRIVATE_FILE)  # it holds clients' personal data


def _problem_with(path: Path) -> str | None:
    """Return why `path` is not a usable database of this bot, or None if it is."""
    with path.open("rb") as file:
        if file.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            return "not a SQLite database"
    try:
        with contextlib.closing(_connect(path, "rw")) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        return f"unreadable database ({_one_line(exc)})"
    if [tuple(row) for row in rows] != [("ok",)]:
        found = "; ".join(str(row[0]) for row in rows[:3])
        return f"integrity check failed ({_one_line(found)})"
    if version > SCHEMA_VERSION:
        return f"its schema version {version} is newer than this program's ({SCHEMA_VERSION})"
    if version < 1:
        return "not a database of this bot (schema version 0)"
    return None


def _rotate(db_path: Path, keep: int, newest: Path) -> None:
    """Delete the oldest backups so that `keep` remain, always keeping `newest`."""
    others = [p for p in list_backups(db_path) if p != newest]
    for old in others[: max(0, len(others) - (keep - 1))]:
        _remove(old)


def _move_aside(db_path: Path, aside: Path) -> None:
    """Rename the database to `aside`, its -wal with it (it may hold its last commits)."""
    os.replace(db_path, aside)
    wal = _beside(db_path, _WAL)
    if wal.exists():
        os.replace(wal, _beside(aside, _WAL))
    journal = _beside(db_path, _JOURNAL)
    if journal.exists():
        os.replace(journal, _beside(aside, _JOURNAL))


def _unused(path: Path) -> Path:
    """Return `path`, or `path` with a counter added if that name is taken."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _one_line(problem: object) -> str:
    """Return a problem's text on one line (SQLite's integrity reports span several)."""
    return " ".join(str(problem).split())


def _beside(db_path: Path, suffix: str) -> Path:
    """Return the file SQLite keeps beside `db_path` under `suffix` (-wal, -shm, -journal)."""
    return db_path.with_name(db_path.name + suffix)


def _remove(path: Path) -> None:
    """Delete a file if it is there."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _fsync(path: Path) -> None:
    """Flush a file's content to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_directory(directory: Path) -> None:
    """Flush a directory, so that a rename in it survives a power cut."""
    _fsync(directory)
