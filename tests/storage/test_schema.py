"""The schema's migrations (bot/storage/schema.py): an empty file, or one left at any earlier
user_version, reaches the latest version with every table; running them again changes nothing."""

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import aiosqlite
import pytest

from bot.storage.schema import MIGRATIONS, SCHEMA_VERSION, migrate

# The tables the bot's stores read and write (every migration's CREATE TABLE is also checked).
CORE_TABLES = (
    "authorizations",
    "conversations",
    "events",
    "outbox",
    "reminders",
    "meta",
    "invitations",
    "handoffs",
)


@pytest.fixture
async def connection(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """A connection to an empty database file, opened as the repository opens it."""
    db = await aiosqlite.connect(tmp_path / "schema.sqlite3", isolation_level=None)
    yield db
    await db.close()


async def user_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def schema_of(db: aiosqlite.Connection) -> list[tuple[str, str, str]]:
    """Every table and index with its SQL, in a fixed order."""
    async with db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
        "ORDER BY type, name"
    ) as cursor:
        return [(str(kind), str(name), str(sql)) for kind, name, sql in await cursor.fetchall()]


async def tables_of(db: aiosqlite.Connection) -> set[str]:
    return {name for kind, name, _ in await schema_of(db) if kind == "table"}


def created_tables() -> set[str]:
    """Every table some migration creates."""
    return {
        name for migration in MIGRATIONS for name in re.findall(r"CREATE TABLE (\w+)", migration)
    }


def test_the_version_is_the_number_of_migrations() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    assert set(CORE_TABLES) <= created_tables()


async def test_an_empty_file_is_migrated_to_the_latest_version(
    connection: aiosqlite.Connection,
) -> None:
    assert await user_version(connection) == 0
    assert await migrate(connection) == SCHEMA_VERSION
    assert await user_version(connection) == SCHEMA_VERSION
    assert not connection.in_transaction


async def test_every_table_exists_after_migrating(connection: aiosqlite.Connection) -> None:
    await migrate(connection)
    tables = await tables_of(connection)
    for table in (*CORE_TABLES, *sorted(created_tables())):
        assert table in tables, table
    # Each table can be read, so its SQL is whole (no half-applied migration).
    for table in tables:
        async with connection.execute(f"SELECT COUNT(*) FROM {table}") as cursor:  # noqa: S608
            assert await cursor.fetchone() == (0,)


async def test_migrating_twice_is_a_no_op(connection: aiosqlite.Connection) -> None:
    await migrate(connection)
    await connection.execute("INSERT INTO meta (key, value) VALUES ('kept', 'yes')")
    before = await schema_of(connection)
    assert await migrate(connection) == SCHEMA_VERSION
    assert await user_version(connection) == SCHEMA_VERSION
    assert await schema_of(connection) == before
    async with connection.execute("SELECT value FROM meta WHERE key = 'kept'") as cursor:
        assert await cursor.fetchone() == ("yes",)


@pytest.mark.parametrize("shipped", range(1, SCHEMA_VERSION))
async def test_a_database_of_any_earlier_version_reaches_the_same_schema(
    tmp_path: Path, connection: aiosqlite.Connection, shipped: int
) -> None:
    await migrate(connection)
    fresh = await schema_of(connection)

    # A file as an older release left it: its migrations only, its user_version.
    older = tmp_path / "older.sqlite3"
    with closing(sqlite3.connect(older)) as db:
        for migration in MIGRATIONS[:shipped]:
            db.executescript(migration)
        db.execute(f"PRAGMA user_version = {shipped}")
        db.commit()
    async with aiosqlite.connect(older, isolation_level=None) as db:
        assert await user_version(db) == shipped
        assert await migrate(db) == SCHEMA_VERSION
        assert await user_version(db) == SCHEMA_VERSION
        assert await schema_of(db) == fresh


async def test_a_newer_database_is_refused_and_left_untouched(
    connection: aiosqlite.Connection,
) -> None:
    await connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this program"):
        await migrate(connection)
    assert await user_version(connection) == SCHEMA_VERSION + 1
    assert await tables_of(connection) == set()
