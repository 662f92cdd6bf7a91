"""The database every store shares, and the statements several stores make.

Each store method is one transaction or one read, run whole on the database thread (one
round trip, see bot/storage/database.py); the functions below are its building blocks.
"""

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from bot.domain.clock import to_timestamp
from bot.storage.database import Database
from bot.storage.records import (
    Authorization,
    EventKind,
    FirmMessage,
    ReminderKind,
    authorization_from_row,
)
from bot.storage.sql import DELETE_NOTICES, SELECT_AUTHORIZATION

T = TypeVar("T")


class StoreBase:
    """The shared database; each method a transaction or a read in one hop."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` as one transaction in one hop (with the update's bookkeeping)."""
        return await self._database.write(body)

    async def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read in one hop."""
        return await self._database.read(body)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Return every row of one query, in one hop."""
        return await self._database.read(lambda db: db.execute(sql, params).fetchall())


def one_row(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Return the first row of a query (None if there is none)."""
    return db.execute(sql, params).fetchone()


def all_rows_of(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Return every row of a query."""
    return db.execute(sql, params).fetchall()


def upsert_conversation(
    db: sqlite3.Connection,
    chat_id: int,
    user_id: int,
    state: str,
    now: datetime,
    company_rut: str | None,
    candidate_rut: str | None,
) -> None:
    """Record the state a conversation is in now."""
    db.execute(
        "INSERT INTO conversations (chat_id, user_id, state, company_rut, candidate_rut, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET "
        "state = excluded.state, company_rut = excluded.company_rut, "
        "candidate_rut = excluded.candidate_rut, updated_at = excluded.updated_at",
        (chat_id, user_id, state, company_rut, candidate_rut, to_timestamp(now)),
    )


def read_authorization(db: sqlite3.Connection, company_rut: str) -> Authorization:
    """Return one company's authorization (it must exist)."""
    row = one_row(db, SELECT_AUTHORIZATION, (company_rut,))
    if row is None:
        raise LookupError(company_rut)
    return authorization_from_row(row)


def add_event(
    db: sqlite3.Connection,
    company_rut: str,
    now: datetime,
    kind: EventKind,
    step: int | None,
    actor: str | None = None,
) -> int:
    """Add one line to a company's history; return its id."""
    cursor = db.execute(
        "INSERT INTO events (company_rut, at, kind, step, actor) VALUES (?, ?, ?, ?, ?)",
        (company_rut, to_timestamp(now), kind.value, step, actor),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def count_reminder(
    db: sqlite3.Connection,
    company_rut: str,
    now: datetime,
    step: int | None,
    actor: str | None,
) -> None:
    """Count one reminder sent to a company's client."""
    db.execute(
        "UPDATE authorizations SET reminders_sent = reminders_sent + 1 WHERE company_rut = ?",
        (company_rut,),
    )
    add_event(db, company_rut, now, EventKind.REMINDER, step, actor)


def schedule_auto(
    db: sqlite3.Connection,
    authorization: Authorization,
    chat_id: int,
    user_id: int,
    now: datetime,
    first_reminder: datetime | None,
) -> None:
    """Start (or stop) the automatic reminder clock of a chat."""
    wanted = (
        first_reminder is not None
        and authorization.completed_at is None
        and authorization.opted_out_at is None
    )
    if not wanted or first_reminder is None:
        db.execute("DELETE FROM reminders WHERE chat_id = ?", (chat_id,))
        return
    # An automatic reminder never replaces one the client chose ("mañana 9:00").
    db.execute(
        "INSERT INTO reminders (chat_id, user_id, company_rut, kind, sequence, anchor_at, "
        "due_at) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET "
        "user_id = excluded.user_id, company_rut = excluded.company_rut, kind = excluded.kind, "
        "sequence = 0, anchor_at = excluded.anchor_at, due_at = excluded.due_at "
        "WHERE reminders.kind = ?",
        (
            chat_id,
            user_id,
            authorization.company_rut,
            ReminderKind.AUTO.value,
            to_timestamp(now),
            to_timestamp(first_reminder),
            ReminderKind.AUTO.value,
        ),
    )


def upsert_reminder(
    db: sqlite3.Connection,
    chat_id: int,
    user_id: int,
    company_rut: str | None,
    kind: ReminderKind,
    sequence: int,
    anchor: datetime,
    due: datetime,
) -> None:
    """Set the one pending reminder of a chat."""
    db.execute(
        "INSERT INTO reminders (chat_id, user_id, company_rut, kind, sequence, anchor_at, "
        "due_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET "
        "user_id = excluded.user_id, company_rut = excluded.company_rut, "
        "kind = excluded.kind, sequence = excluded.sequence, "
        "anchor_at = excluded.anchor_at, due_at = excluded.due_at",
        (
            chat_id,
            user_id,
            company_rut,
            kind.value,
            sequence,
            to_timestamp(anchor),
            to_timestamp(due),
        ),
    )


def put_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    """Store a bookkeeping value."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def queue(db: sqlite3.Connection, messages: Sequence[FirmMessage], now: datetime) -> None:
    """Put firm messages in the outbox."""
    db.executemany(
        "INSERT INTO outbox (chat_id, text, created_at, handoff_id, photo_file_id) "
        "VALUES (?, ?, ?, ?, ?)",
        [(m.chat_id, m.text, to_timestamp(now), m.handoff_id, m.photo_file_id) for m in messages],
    )


def remove_company(db: sqlite3.Connection, company_rut: str) -> None:
    """Delete everything kept about one company."""
    db.execute(DELETE_NOTICES, (company_rut, EventKind.COMPLETED.value))
    for statement in (
        "DELETE FROM outbox WHERE handoff_id IN (SELECT id FROM handoffs WHERE company_rut = ?)",
        "DELETE FROM handoffs WHERE company_rut = ?",
        "DELETE FROM conversations WHERE company_rut = ? OR candidate_rut = ?",
        "DELETE FROM authorizations WHERE company_rut = ?",
        "DELETE FROM events WHERE company_rut = ?",
        "DELETE FROM invitations WHERE company_rut = ?",
        "DELETE FROM reminders WHERE company_rut = ?",
    ):
        db.execute(statement, (company_rut,) * statement.count("?"))


def forget_chat(db: sqlite3.Connection, chat_id: int) -> None:
    """Delete everything kept about one chat."""
    for statement in (
        "DELETE FROM conversations WHERE chat_id = ?",
        "DELETE FROM reminders WHERE chat_id = ?",
        "DELETE FROM outbox WHERE handoff_id IN (SELECT id FROM handoffs WHERE chat_id = ?)",
        "DELETE FROM handoffs WHERE chat_id = ?",
        "UPDATE invitations SET used_by_chat = NULL, client_name = NULL WHERE used_by_chat = ?",
    ):
        db.execute(statement, (chat_id,))
