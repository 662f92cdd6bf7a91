"""The connection every store shares, its transactions, and helpers they all use."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiosqlite

from bot.domain.clock import to_timestamp
from bot.storage.records import (
    Authorization,
    FirmMessage,
    ReminderKind,
    authorization_from_row,
)
from bot.storage.sql import DELETE_NOTICES, SELECT_AUTHORIZATION


async def one(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Return the first row of a query, in one round trip to the database thread."""
    rows = list(await db.execute_fetchall(sql, params))
    return rows[0] if rows else None


async def all_rows(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Return every row of a query, in one round trip to the database thread."""
    return list(await db.execute_fetchall(sql, params))


class StoreBase:
    """One connection per process; a lock keeps each transaction whole."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        # One connection is shared by every task: a lock keeps each transaction whole.
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            return await all_rows(self._db, sql, params)

    @staticmethod
    async def _upsert_conversation(
        db: aiosqlite.Connection,
        chat_id: int,
        user_id: int,
        state: str,
        now: datetime,
        company_rut: str | None,
        candidate_rut: str | None,
    ) -> None:
        await db.execute(
            "INSERT INTO conversations (chat_id, user_id, state, company_rut, candidate_rut, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET "
            "state = excluded.state, company_rut = excluded.company_rut, "
            "candidate_rut = excluded.candidate_rut, updated_at = excluded.updated_at",
            (chat_id, user_id, state, company_rut, candidate_rut, to_timestamp(now)),
        )

    @staticmethod
    async def _read_authorization(db: aiosqlite.Connection, company_rut: str) -> Authorization:
        row = await one(db, SELECT_AUTHORIZATION, (company_rut,))
        if row is None:
            raise LookupError(company_rut)
        return authorization_from_row(row)

    @staticmethod
    async def _add_event(
        db: aiosqlite.Connection,
        company_rut: str,
        now: datetime,
        kind: str,
        step: int | None,
        actor: str | None = None,
    ) -> int:
        cursor = await db.execute(
            "INSERT INTO events (company_rut, at, kind, step, actor) VALUES (?, ?, ?, ?, ?)",
            (company_rut, to_timestamp(now), kind, step, actor),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def _count_reminder(
        self,
        db: aiosqlite.Connection,
        company_rut: str,
        now: datetime,
        step: int | None,
        actor: str | None,
    ) -> None:
        await db.execute(
            "UPDATE authorizations SET reminders_sent = reminders_sent + 1 WHERE company_rut = ?",
            (company_rut,),
        )
        await self._add_event(db, company_rut, now, "reminder", step, actor)

    async def _schedule_auto(
        self,
        db: aiosqlite.Connection,
        authorization: Authorization,
        chat_id: int,
        user_id: int,
        now: datetime,
        first_reminder: datetime | None,
    ) -> None:
        wanted = (
            first_reminder is not None
            and authorization.completed_at is None
            and authorization.opted_out_at is None
        )
        if not wanted or first_reminder is None:
            await db.execute("DELETE FROM reminders WHERE chat_id = ?", (chat_id,))
            return
        # An automatic reminder never replaces one the client chose ("mañana 9:00").
        await db.execute(
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

    @staticmethod
    async def _upsert_reminder(
        db: aiosqlite.Connection,
        chat_id: int,
        user_id: int,
        company_rut: str | None,
        kind: ReminderKind,
        sequence: int,
        anchor: datetime,
        due: datetime,
    ) -> None:
        await db.execute(
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

    @staticmethod
    async def _put_meta(db: aiosqlite.Connection, key: str, value: str) -> None:
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @staticmethod
    async def _queue(
        db: aiosqlite.Connection, messages: Sequence[FirmMessage], now: datetime
    ) -> None:
        await db.executemany(
            "INSERT INTO outbox (chat_id, text, created_at, handoff_id, photo_file_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (m.chat_id, m.text, to_timestamp(now), m.handoff_id, m.photo_file_id)
                for m in messages
            ],
        )

    @staticmethod
    async def _remove_company(db: aiosqlite.Connection, company_rut: str) -> None:
        for statement in (
            DELETE_NOTICES,
            "DELETE FROM outbox WHERE handoff_id IN "
            "(SELECT id FROM handoffs WHERE company_rut = ?)",
            "DELETE FROM handoffs WHERE company_rut = ?",
            "DELETE FROM conversations WHERE company_rut = ? OR candidate_rut = ?",
            "DELETE FROM authorizations WHERE company_rut = ?",
            "DELETE FROM events WHERE company_rut = ?",
            "DELETE FROM invitations WHERE company_rut = ?",
            "DELETE FROM reminders WHERE company_rut = ?",
        ):
            await db.execute(statement, (company_rut,) * statement.count("?"))

    @staticmethod
    async def _forget_chat(db: aiosqlite.Connection, chat_id: int) -> None:
        for statement in (
            "DELETE FROM conversations WHERE chat_id = ?",
            "DELETE FROM reminders WHERE chat_id = ?",
            "DELETE FROM outbox WHERE handoff_id IN (SELECT id FROM handoffs WHERE chat_id = ?)",
            "DELETE FROM handoffs WHERE chat_id = ?",
            "UPDATE invitations SET used_by_chat = NULL, client_name = NULL WHERE used_by_chat = ?",
        ):
            await db.execute(statement, (chat_id,))
