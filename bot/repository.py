"""All reads and writes of the SQLite database, behind one small class."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import aiosqlite

from bot.clock import from_timestamp, to_timestamp
from bot.schema import migrate


@dataclass(frozen=True)
class ClientInfo:
    """Who is talking to the bot about a company."""

    chat_id: int
    user_id: int
    name: str
    username: str | None


@dataclass(frozen=True)
class Authorization:
    """One company's authorization of the firm's representative."""

    company_rut: str
    client_chat_id: int | None
    client_user_id: int | None
    client_name: str | None
    client_username: str | None
    step: int
    started_at: datetime
    last_activity_at: datetime
    completed_at: datetime | None
    reminders_sent: int = 0
    opted_out_at: datetime | None = None
    blocked_at: datetime | None = None
    invited_name: str | None = None
    verified_at: datetime | None = None
    verified_by: str | None = None
    proof_file_id: str | None = None

    @property
    def display_name(self) -> str:
        """Return the client's name as the firm knows it."""
        return self.invited_name or self.client_name or "—"


@dataclass(frozen=True)
class Conversation:
    """Where one chat stands in the conversation with the bot."""

    chat_id: int
    user_id: int
    state: str
    company_rut: str | None
    candidate_rut: str | None


class ReminderKind(StrEnum):
    """Why a reminder is pending."""

    AUTO = "auto"  # the REMINDER_SCHEDULE after the client's last activity
    LATER = "later"  # the client asked to be reminded at a time they chose


@dataclass(frozen=True)
class DueReminder:
    """A reminder whose time has come, with what it should say."""

    chat_id: int
    user_id: int
    company_rut: str | None
    kind: ReminderKind
    sequence: int
    anchor_at: datetime
    due_at: datetime
    step: int | None


@dataclass(frozen=True)
class Event:
    """One entry in a company's history."""

    at: datetime
    kind: str
    step: int | None
    actor: str | None


@dataclass(frozen=True)
class OutboxMessage:
    """A message to a firm chat that must be delivered even across crashes."""

    id: int
    chat_id: int
    text: str
    buttons: str | None = None
    photo_file_id: str | None = None


@dataclass(frozen=True)
class FirmMessage:
    """A message to queue for a firm chat."""

    chat_id: int
    text: str
    handoff_id: int | None = None
    photo_file_id: str | None = None


@dataclass(frozen=True)
class Handoff:
    """A client's problem put in the firm's hands, open until the firm closes it."""

    id: int
    chat_id: int
    user_id: int
    company_rut: str | None
    step: int | None
    problem: str
    closed_at: datetime | None


@dataclass(frozen=True)
class Deletion:
    """What deleting a client's data did, per company."""

    anonymized: list[str]  # completed: the completion fact stays, without the client
    removed: list[str]  # unfinished: gone entirely


@dataclass(frozen=True)
class Invitation:
    """A deep link the firm made for one company's client."""

    token: str
    company_rut: str
    client_name: str | None
    expires_at: datetime
    used_by_chat: int | None


@dataclass(frozen=True)
class DeliveredNotice:
    """A firm notice already in a firm chat, which can be edited."""

    chat_id: int
    message_id: int
    text: str
    has_photo: bool = False


# Every query reading whole authorizations starts with this, so _authorization() fits all.
_SELECT_AUTHORIZATIONS = (
    "SELECT company_rut, client_chat_id, client_user_id, client_name, client_username, step, "
    "started_at, last_activity_at, completed_at, reminders_sent, opted_out_at, blocked_at, "
    "invited_name, verified_at, verified_by, proof_file_id FROM authorizations "
)
_SELECT_AUTHORIZATION = _SELECT_AUTHORIZATIONS + "WHERE company_rut = ?"


def _authorization(row: Sequence[Any]) -> Authorization:
    return Authorization(
        company_rut=row[0],
        client_chat_id=row[1],
        client_user_id=row[2],
        client_name=row[3],
        client_username=row[4],
        step=row[5],
        started_at=from_timestamp(row[6]),
        last_activity_at=from_timestamp(row[7]),
        completed_at=_maybe_time(row[8]),
        reminders_sent=row[9],
        opted_out_at=_maybe_time(row[10]),
        blocked_at=_maybe_time(row[11]),
        invited_name=row[12],
        verified_at=_maybe_time(row[13]),
        verified_by=row[14],
        proof_file_id=row[15],
    )


_SELECT_HANDOFF = (
    "SELECT id, chat_id, user_id, company_rut, step, problem, closed_at FROM handoffs "
)
_ANONYMIZE = (
    "UPDATE authorizations SET client_chat_id = NULL, client_user_id = NULL, "
    "client_name = NULL, client_username = NULL, invited_name = NULL, proof_file_id = NULL "
    "WHERE company_rut = ?"
)

_DELETE_NOTICES = (
    "DELETE FROM outbox WHERE ref IN "
    "(SELECT id FROM events WHERE company_rut = ? AND kind = 'completed')"
)

_MARK_SQL = {
    "opted_out_at": "UPDATE authorizations SET opted_out_at = ? WHERE company_rut = ?",
    "blocked_at": "UPDATE authorizations SET blocked_at = ? WHERE company_rut = ?",
}


def _handoff(row: Sequence[Any]) -> Handoff:
    return Handoff(row[0], row[1], row[2], row[3], row[4], row[5], _maybe_time(row[6]))


def _maybe_time(value: float | None) -> datetime | None:
    return from_timestamp(value) if value is not None else None


async def _one(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Return the first row of a query, in one round trip to the database thread."""
    rows = list(await db.execute_fetchall(sql, params))
    return rows[0] if rows else None


async def _all(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Return every row of a query, in one round trip to the database thread."""
    return list(await db.execute_fetchall(sql, params))


class Repository:
    """The only code that speaks SQL; one connection per process, writes serialized."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        # One connection is shared by every task: a lock keeps each transaction whole.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) and migrate the database at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        await connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit survives power loss too, not only a killed process.
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA busy_timeout = 5000")
        await connection.execute("PRAGMA foreign_keys = ON")
        await migrate(connection)
        return cls(connection)

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._db.close()

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
            return await _all(self._db, sql, params)

    # --- conversations ------------------------------------------------------------------

    async def conversation_states(self) -> dict[tuple[int, int], str]:
        """Return every open conversation's state, keyed by (chat id, user id)."""
        rows = await self._fetchall("SELECT chat_id, user_id, state FROM conversations")
        return {(row[0], row[1]): row[2] for row in rows}

    async def conversation(self, chat_id: int, user_id: int) -> Conversation | None:
        """Return the conversation of this chat and user, if one is open."""
        rows = await self._fetchall(
            "SELECT chat_id, user_id, state, company_rut, candidate_rut FROM conversations "
            "WHERE chat_id = ? AND user_id = ?",
            (chat_id, user_id),
        )
        return Conversation(*rows[0]) if rows else None

    async def guide_position(self, chat_id: int, user_id: int) -> Authorization | None:
        """Return the authorization this chat's open conversation is working on, in one query."""
        rows = await self._fetchall(
            "SELECT a.company_rut, a.client_chat_id, a.client_user_id, a.client_name, "
            "a.client_username, a.step, a.started_at, a.last_activity_at, a.completed_at, "
            "a.reminders_sent, a.opted_out_at, a.blocked_at, a.invited_name, a.verified_at, "
            "a.verified_by, a.proof_file_id FROM conversations AS c "
            "JOIN authorizations AS a ON a.company_rut = c.company_rut "
            "WHERE c.chat_id = ? AND c.user_id = ?",
            (chat_id, user_id),
        )
        return _authorization(rows[0]) if rows else None

    async def set_conversation(
        self,
        chat_id: int,
        user_id: int,
        state: str,
        now: datetime,
        *,
        company_rut: str | None = None,
        candidate_rut: str | None = None,
    ) -> None:
        """Record the state a conversation is in now."""
        async with self._transaction() as db:
            await self._upsert_conversation(
                db, chat_id, user_id, state, now, company_rut, candidate_rut
            )

    async def end_conversation(self, chat_id: int, user_id: int) -> None:
        """Forget the conversation of this chat and user, and its reminders.

        The authorization itself stays, so the firm still sees it as pending.
        """
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM conversations WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
            )
            await db.execute("DELETE FROM reminders WHERE chat_id = ?", (chat_id,))

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

    # --- authorizations -----------------------------------------------------------------

    async def authorization(self, company_rut: str) -> Authorization | None:
        """Return the authorization of one company."""
        rows = await self._fetchall(_SELECT_AUTHORIZATION, (company_rut,))
        return _authorization(rows[0]) if rows else None

    async def latest_authorization_of(
        self, chat_id: int, *, unfinished: bool
    ) -> Authorization | None:
        """Return the most recently active (unfinished, if asked) authorization of this chat."""
        rows = await self._fetchall(
            _SELECT_AUTHORIZATIONS + "WHERE client_chat_id = ? AND step > 0 "
            "AND (completed_at IS NULL OR NOT ?) ORDER BY last_activity_at DESC LIMIT 1",
            (chat_id, unfinished),
        )
        return _authorization(rows[0]) if rows else None

    async def start_guide(
        self,
        client: ClientInfo,
        company_rut: str,
        state: str,
        now: datetime,
        first_reminder: datetime | None,
    ) -> Authorization:
        """Begin (or begin again) one company's authorization at step 1 for this client."""
        stamp = to_timestamp(now)
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO authorizations (company_rut, client_chat_id, client_user_id, "
                "client_name, client_username, step, started_at, last_activity_at, completed_at) "
                "VALUES (?, ?, ?, ?, ?, 1, ?, ?, NULL) ON CONFLICT (company_rut) DO UPDATE SET "
                "client_chat_id = excluded.client_chat_id, "
                "client_user_id = excluded.client_user_id, client_name = excluded.client_name, "
                "client_username = excluded.client_username, step = 1, "
                "started_at = CASE WHEN completed_at IS NULL AND step > 0 THEN started_at "
                "ELSE excluded.started_at END, verified_at = NULL, verified_by = NULL, "
                "last_activity_at = excluded.last_activity_at, completed_at = NULL",
                (
                    company_rut,
                    client.chat_id,
                    client.user_id,
                    client.name,
                    client.username,
                    stamp,
                    stamp,
                ),
            )
            await self._add_event(db, company_rut, now, "started", 1)
            await self._upsert_conversation(
                db, client.chat_id, client.user_id, state, now, company_rut, None
            )
            row = await self._read_authorization(db, company_rut)
            await self._schedule_auto(db, row, client.chat_id, client.user_id, now, first_reminder)
        return row

    async def resume_guide(
        self,
        client: ClientInfo,
        company_rut: str,
        state: str,
        now: datetime,
        first_reminder: datetime | None,
    ) -> Authorization | None:
        """Put this chat back into an unfinished authorization at its stored step."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE authorizations SET client_chat_id = ?, client_user_id = ?, "
                "last_activity_at = ? WHERE company_rut = ? AND completed_at IS NULL",
                (client.chat_id, client.user_id, to_timestamp(now), company_rut),
            )
            if cursor.rowcount != 1:
                return None
            await self._upsert_conversation(
                db, client.chat_id, client.user_id, state, now, company_rut, None
            )
            row = await self._read_authorization(db, company_rut)
            await self._schedule_auto(db, row, client.chat_id, client.user_id, now, first_reminder)
        return row

    async def move_to_step(
        self, company_rut: str, from_step: int, to_step: int, now: datetime
    ) -> bool:
        """Move an unfinished authorization from one step to another; False if it was not there."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE authorizations SET step = ?, last_activity_at = ? "
                "WHERE company_rut = ? AND step = ? AND completed_at IS NULL",
                (to_step, to_timestamp(now), company_rut, from_step),
            )
            if cursor.rowcount != 1:
                return False
            await self._add_event(db, company_rut, now, "step", to_step)
        return True

    async def touch(self, company_rut: str, now: datetime) -> None:
        """Record activity by the client without changing the step."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE authorizations SET last_activity_at = ? WHERE company_rut = ?",
                (to_timestamp(now), company_rut),
            )

    async def complete(
        self,
        company_rut: str,
        at_step: int,
        client: ClientInfo,
        now: datetime,
        firm_notice: Callable[[Authorization, int], tuple[str, str]],
        firm_chat_ids: Sequence[int],
    ) -> Authorization | None:
        """Record a completion once, queueing the firm's notice in the same transaction.

        The client who completed is the one the firm is told about. Anyone else who was
        working on the same company is done too: their conversation and reminders end.
        Returns the completed authorization, or None when it was not at `at_step` (already
        completed, or moved on), so a repeated update never completes twice.
        """
        stamp = to_timestamp(now)
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE authorizations SET completed_at = ?, last_activity_at = ?, "
                "client_chat_id = ?, client_user_id = ?, client_name = ?, client_username = ? "
                "WHERE company_rut = ? AND step = ? AND completed_at IS NULL",
                (
                    stamp,
                    stamp,
                    client.chat_id,
                    client.user_id,
                    client.name,
                    client.username,
                    company_rut,
                    at_step,
                ),
            )
            if cursor.rowcount != 1:
                return None
            completion = await self._add_event(db, company_rut, now, "completed", at_step)
            await db.execute("DELETE FROM conversations WHERE company_rut = ?", (company_rut,))
            await db.execute(
                "DELETE FROM reminders WHERE company_rut = ? OR chat_id = ?",
                (company_rut, client.chat_id),
            )
            row = await self._read_authorization(db, company_rut)
            text, buttons = firm_notice(row, completion)
            await db.executemany(
                "INSERT INTO outbox (chat_id, text, created_at, ref, buttons, photo_file_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (firm_chat, text, stamp, completion, buttons, row.proof_file_id)
                    for firm_chat in firm_chat_ids
                ],
            )
        return row

    @staticmethod
    async def _read_authorization(db: aiosqlite.Connection, company_rut: str) -> Authorization:
        row = await _one(db, _SELECT_AUTHORIZATION, (company_rut,))
        if row is None:
            raise LookupError(company_rut)
        return _authorization(row)

    async def events(self, company_rut: str) -> list[Event]:
        """Return the history of one company, oldest first."""
        rows = await self._fetchall(
            "SELECT at, kind, step, actor FROM events WHERE company_rut = ? ORDER BY id",
            (company_rut,),
        )
        return [Event(from_timestamp(row[0]), row[1], row[2], row[3]) for row in rows]

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

    # --- reminders ----------------------------------------------------------------------

    async def record_activity(
        self, chat_id: int, user_id: int, now: datetime, first_reminder: datetime | None
    ) -> None:
        """Note that the client did something: the reminder clock starts again.

        Only a client in an open conversation counts; after /cancelar nothing is rescheduled.
        A reminder the client asked for at a chosen time is kept. A client who writes again
        has evidently unblocked the bot.
        """
        async with self._transaction() as db:
            found = await _one(
                db,
                "SELECT company_rut FROM conversations WHERE chat_id = ? AND user_id = ?",
                (chat_id, user_id),
            )
            if found is None:
                return
            if found[0] is None:
                # No company yet: nothing to remind automatically, but a time the client
                # chose stays chosen.
                await db.execute(
                    "DELETE FROM reminders WHERE chat_id = ? AND kind = ?",
                    (chat_id, ReminderKind.AUTO.value),
                )
                return
            await db.execute(
                "UPDATE authorizations SET last_activity_at = ?, blocked_at = NULL "
                "WHERE company_rut = ? AND completed_at IS NULL",
                (to_timestamp(now), found[0]),
            )
            authorization = await self._read_authorization(db, found[0])
            await self._schedule_auto(db, authorization, chat_id, user_id, now, first_reminder)

    async def remind_later(
        self,
        chat_id: int,
        user_id: int,
        company_rut: str | None,
        now: datetime,
        due: datetime,
        actor: str | None = None,
    ) -> None:
        """Schedule one reminder at a chosen time (by the client, or by the firm as `actor`)."""
        async with self._transaction() as db:
            await self._upsert_reminder(
                db, chat_id, user_id, company_rut, ReminderKind.LATER, 0, now, due
            )
            if company_rut is not None:
                kind = "remind_later" if actor is None else "reminder_scheduled"
                await self._add_event(db, company_rut, now, kind, None, actor)

    async def due_reminders(self, now: datetime, limit: int) -> list[DueReminder]:
        """Return up to `limit` reminders due at `now`, the most overdue first."""
        rows = await self._fetchall(
            "SELECT r.chat_id, r.user_id, r.company_rut, r.kind, r.sequence, r.anchor_at, "
            "r.due_at, a.step FROM reminders AS r "
            "LEFT JOIN authorizations AS a ON a.company_rut = r.company_rut "
            "WHERE r.due_at <= ? ORDER BY r.due_at LIMIT ?",
            (to_timestamp(now), limit),
        )
        return [
            DueReminder(
                chat_id=row[0],
                user_id=row[1],
                company_rut=row[2],
                kind=ReminderKind(row[3]),
                sequence=row[4],
                anchor_at=from_timestamp(row[5]),
                due_at=from_timestamp(row[6]),
                step=row[7],
            )
            for row in rows
        ]

    async def reminder_sent(
        self,
        reminder: DueReminder,
        now: datetime,
        next_due: datetime | None,
        next_sequence: int,
        next_anchor: datetime,
    ) -> None:
        """Record a delivered reminder and schedule the next one (None: no more)."""
        async with self._transaction() as db:
            # The client may have acted while the message was in flight: their new schedule wins.
            params: tuple[Any, ...] = (
                reminder.chat_id,
                to_timestamp(reminder.due_at),
                reminder.kind.value,
            )
            if next_due is None:
                cursor = await db.execute(
                    "DELETE FROM reminders WHERE chat_id = ? AND due_at = ? AND kind = ?", params
                )
            else:
                cursor = await db.execute(
                    "UPDATE reminders SET kind = ?, sequence = ?, anchor_at = ?, due_at = ? "
                    "WHERE chat_id = ? AND due_at = ? AND kind = ?",
                    (
                        ReminderKind.AUTO.value,
                        next_sequence,
                        to_timestamp(next_anchor),
                        to_timestamp(next_due),
                        *params,
                    ),
                )
            if reminder.company_rut is not None and cursor.rowcount == 1:
                await self._count_reminder(db, reminder.company_rut, now, reminder.step, None)

    async def count_reminder(self, company_rut: str, now: datetime, actor: str) -> None:
        """Record a reminder the firm had sent by hand."""
        async with self._transaction() as db:
            await self._count_reminder(db, company_rut, now, None, actor)

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

    async def reminder_is_current(self, reminder: DueReminder) -> bool:
        """Tell whether a due reminder still stands (nobody acted or completed since)."""
        rows = await self._fetchall(
            "SELECT 1 FROM reminders AS r LEFT JOIN authorizations AS a "
            "ON a.company_rut = r.company_rut WHERE r.chat_id = ? AND r.due_at = ? "
            "AND r.kind = ? AND a.completed_at IS NULL",
            (reminder.chat_id, to_timestamp(reminder.due_at), reminder.kind.value),
        )
        return bool(rows)

    async def drop_reminder(self, reminder: DueReminder) -> None:
        """Forget a reminder that cannot be delivered (unless it was rescheduled meanwhile)."""
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM reminders WHERE chat_id = ? AND due_at = ? AND kind = ?",
                (reminder.chat_id, to_timestamp(reminder.due_at), reminder.kind.value),
            )

    async def opt_out(self, chat_id: int, now: datetime) -> int:
        """Stop all reminders to this chat for good; return how many authorizations it marks."""
        return await self._stop_reminders_marking(chat_id, now, "opted_out_at", "opted_out")

    async def mark_blocked(self, chat_id: int, now: datetime) -> int:
        """Record that the client blocked the bot: no more reminders, visible to the firm."""
        return await self._stop_reminders_marking(chat_id, now, "blocked_at", "blocked")

    async def _stop_reminders_marking(
        self, chat_id: int, now: datetime, column: str, event: str
    ) -> int:
        async with self._transaction() as db:
            await db.execute("DELETE FROM reminders WHERE chat_id = ?", (chat_id,))
            companies = [
                row[0]
                for row in await _all(
                    db,
                    "SELECT company_rut FROM authorizations "
                    "WHERE client_chat_id = ? AND completed_at IS NULL",
                    (chat_id,),
                )
            ]
            for company_rut in companies:
                await db.execute(_MARK_SQL[column], (to_timestamp(now), company_rut))
                await self._add_event(db, company_rut, now, event, None)
        return len(companies)

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

    # --- polling bookkeeping ------------------------------------------------------------

    async def processed_among(self, update_ids: Sequence[int]) -> set[int]:
        """Return which of these updates were already processed (before a crash)."""
        if not update_ids:
            return set()
        rows = await self._fetchall(
            "SELECT update_id FROM processed_updates WHERE update_id BETWEEN ? AND ?",
            (min(update_ids), max(update_ids)),
        )
        return {int(row[0]) for row in rows} & set(update_ids)

    async def mark_processed(self, update_id: int) -> None:
        """Record that one update was fully processed."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO processed_updates (update_id) VALUES (?)", (update_id,)
            )

    async def advance_offset(self, key: str, offset: int) -> None:
        """Store the next update to ask Telegram for; older markers are no longer needed."""
        async with self._transaction() as db:
            await self._put_meta(db, key, str(offset))
            await db.execute("DELETE FROM processed_updates WHERE update_id < ?", (offset,))

    # --- daily digest -------------------------------------------------------------------

    async def meta(self, key: str) -> str | None:
        """Return a stored bookkeeping value."""
        rows = await self._fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        """Store a bookkeeping value."""
        async with self._transaction() as db:
            await self._put_meta(db, key, value)

    @staticmethod
    async def _put_meta(db: aiosqlite.Connection, key: str, value: str) -> None:
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def authorizations_for_digest(
        self, completed_since: datetime
    ) -> tuple[list[Authorization], list[Authorization]]:
        """Return (completed since the given time, all unfinished oldest first)."""
        rows = await self._fetchall(
            _SELECT_AUTHORIZATIONS + "WHERE completed_at IS NULL OR completed_at > ? "
            "ORDER BY started_at",
            (to_timestamp(completed_since),),
        )
        authorizations = [_authorization(row) for row in rows]
        completed = [a for a in authorizations if a.completed_at is not None]
        pending = [a for a in authorizations if a.completed_at is None]
        return completed, pending

    async def queue_firm_messages(
        self,
        messages: Sequence[FirmMessage],
        now: datetime,
        meta: tuple[str, str] | None = None,
    ) -> None:
        """Queue firm messages for delivery, with an optional bookkeeping value, atomically."""
        async with self._transaction() as db:
            await self._queue(db, messages, now)
            if meta is not None:
                await self._put_meta(db, *meta)

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

    # --- problems and handoffs ------------------------------------------------------------

    async def open_handoff(
        self,
        chat_id: int,
        user_id: int,
        company_rut: str | None,
        step: int | None,
        problem: str,
        now: datetime,
        report: Callable[[int], Sequence[FirmMessage]],
    ) -> int:
        """Open (or reuse) this client's handoff and queue the report for the firm."""
        async with self._transaction() as db:
            found = await _one(
                db, "SELECT id FROM handoffs WHERE chat_id = ? AND closed_at IS NULL", (chat_id,)
            )
            if found is not None:
                handoff_id = int(found[0])
                await db.execute(
                    "UPDATE handoffs SET company_rut = ?, step = ?, problem = ? WHERE id = ?",
                    (company_rut, step, problem, handoff_id),
                )
            else:
                cursor = await db.execute(
                    "INSERT INTO handoffs (chat_id, user_id, company_rut, step, problem, "
                    "opened_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (chat_id, user_id, company_rut, step, problem, to_timestamp(now)),
                )
                assert cursor.lastrowid is not None
                handoff_id = cursor.lastrowid
            if company_rut is not None:
                await self._add_event(db, company_rut, now, "problem", step)
            await self._queue(db, report(handoff_id), now)
        return handoff_id

    async def open_handoff_of(self, chat_id: int) -> Handoff | None:
        """Return the client's open handoff, if any."""
        rows = await self._fetchall(
            _SELECT_HANDOFF + "WHERE chat_id = ? AND closed_at IS NULL", (chat_id,)
        )
        return _handoff(rows[0]) if rows else None

    async def handoff_replied_to(self, firm_chat_id: int, message_id: int) -> Handoff | None:
        """Return the handoff a firm message belongs to (by the bot message replied to)."""
        rows = await self._fetchall(
            "SELECT h.id, h.chat_id, h.user_id, h.company_rut, h.step, h.problem, h.closed_at "
            "FROM outbox AS o JOIN handoffs AS h ON h.id = o.handoff_id "
            "WHERE o.chat_id = ? AND o.message_id = ?",
            (firm_chat_id, message_id),
        )
        return _handoff(rows[0]) if rows else None

    async def close_handoff(self, handoff_id: int, actor: str, now: datetime) -> bool:
        """Close a handoff; False if it was closed already."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE handoffs SET closed_at = ?, closed_by = ? "
                "WHERE id = ? AND closed_at IS NULL",
                (to_timestamp(now), actor, handoff_id),
            )
            return cursor.rowcount == 1

    async def set_proof(self, company_rut: str, file_id: str) -> None:
        """Keep the Telegram file id of the client's screenshot of the SII's answer."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE authorizations SET proof_file_id = ? WHERE company_rut = ?",
                (file_id, company_rut),
            )

    # --- privacy --------------------------------------------------------------------------

    async def delete_client_data(self, chat_id: int, now: datetime) -> Deletion:
        """Erase what identifies this client; completions stay as anonymous facts."""
        async with self._transaction() as db:
            rows = await _all(
                db,
                "SELECT company_rut, completed_at FROM authorizations WHERE client_chat_id = ?",
                (chat_id,),
            )
            anonymized = [row[0] for row in rows if row[1] is not None]
            removed = [row[0] for row in rows if row[1] is None]
            for company_rut in anonymized:
                await db.execute(_ANONYMIZE, (company_rut,))
                # The firm's copies of the notices name the client: they go too.
                await db.execute(_DELETE_NOTICES, (company_rut,))
                await self._add_event(db, company_rut, now, "data_deleted", None)
            for company_rut in removed:
                await self._remove_company(db, company_rut)
            await self._forget_chat(db, chat_id)
        return Deletion(anonymized, removed)

    async def purge_inactive(self, before: datetime) -> int:
        """Remove unfinished authorizations idle since before `before`, and old messages."""
        stamp = to_timestamp(before)
        async with self._transaction() as db:
            rows = await _all(
                db,
                "SELECT company_rut, client_chat_id FROM authorizations "
                "WHERE completed_at IS NULL AND last_activity_at < ?",
                (stamp,),
            )
            for company_rut, chat_id in rows:
                await self._remove_company(db, company_rut)
                if chat_id is not None:
                    await self._forget_chat(db, chat_id)
            # Delivered firm messages and closed handoffs keep names and texts: not forever.
            await db.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? AND ("
                "handoff_id IS NULL OR handoff_id NOT IN "
                "(SELECT id FROM handoffs WHERE closed_at IS NULL))",
                (stamp,),
            )
            await db.execute(
                "DELETE FROM handoffs WHERE closed_at IS NOT NULL AND closed_at < ?", (stamp,)
            )
            await db.execute("DELETE FROM invitations WHERE expires_at < ?", (stamp,))
        return len(rows)

    @staticmethod
    async def _remove_company(db: aiosqlite.Connection, company_rut: str) -> None:
        for statement in (
            _DELETE_NOTICES,
            "DELETE FROM authorizations WHERE company_rut = ?",
            "DELETE FROM events WHERE company_rut = ?",
            "DELETE FROM invitations WHERE company_rut = ?",
            "DELETE FROM reminders WHERE company_rut = ?",
        ):
            await db.execute(statement, (company_rut,))

    @staticmethod
    async def _forget_chat(db: aiosqlite.Connection, chat_id: int) -> None:
        for statement in (
            "DELETE FROM conversations WHERE chat_id = ?",
            "DELETE FROM reminders WHERE chat_id = ?",
            "DELETE FROM outbox WHERE handoff_id IN (SELECT id FROM handoffs WHERE chat_id = ?)",
            "DELETE FROM handoffs WHERE chat_id = ?",
            "UPDATE invitations SET used_by_chat = NULL WHERE used_by_chat = ?",
        ):
            await db.execute(statement, (chat_id,))

    # --- firm outbox --------------------------------------------------------------------

    async def unsent_outbox(self, max_attempts: int, limit: int = 100) -> list[OutboxMessage]:
        """Return firm messages not yet delivered nor given up on, oldest first."""
        rows = await self._fetchall(
            "SELECT id, chat_id, text, buttons, photo_file_id FROM outbox "
            "WHERE sent_at IS NULL AND attempts < ? ORDER BY id LIMIT ?",
            (max_attempts, limit),
        )
        return [OutboxMessage(*row) for row in rows]

    async def mark_outbox(
        self, outbox_id: int, now: datetime, *, sent: bool, message_id: int | None = None
    ) -> None:
        """Record a delivery attempt of a firm message, and its success."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE outbox SET attempts = attempts + 1, "
                "sent_at = CASE WHEN ? THEN ? ELSE sent_at END, message_id = ? WHERE id = ?",
                (sent, to_timestamp(now), message_id, outbox_id),
            )

    async def delivered_notices(self, ref: int) -> list[DeliveredNotice]:
        """Return the firm notices about one completion that reached their chats."""
        rows = await self._fetchall(
            "SELECT chat_id, message_id, text, photo_file_id IS NOT NULL FROM outbox "
            "WHERE ref = ? AND message_id IS NOT NULL ORDER BY id",
            (ref,),
        )
        return [DeliveredNotice(row[0], row[1], row[2], bool(row[3])) for row in rows]

    # --- the firm's side ----------------------------------------------------------------

    async def create_invitation(
        self,
        token: str,
        company_rut: str,
        client_name: str | None,
        created_by: int,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        """Store a new invitation and show the company as pending (step 0) if it is new."""
        stamp = to_timestamp(now)
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO invitations (token, company_rut, client_name, created_by, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token, company_rut, client_name, created_by, stamp, to_timestamp(expires_at)),
            )
            await db.execute(
                "INSERT INTO authorizations (company_rut, step, started_at, last_activity_at, "
                "invited_name) VALUES (?, 0, ?, ?, ?) ON CONFLICT (company_rut) DO UPDATE SET "
                "invited_name = COALESCE(excluded.invited_name, invited_name)",
                (company_rut, stamp, stamp, client_name),
            )
            await self._add_event(db, company_rut, now, "invited", None, str(created_by))

    async def claim_invitation(self, token: str, chat_id: int, now: datetime) -> Invitation | None:
        """Bind an unexpired invitation to the first chat that opens it.

        Returns the invitation when this chat may use it, None when it is unknown, expired or
        already used by another chat.
        """
        async with self._transaction() as db:
            row = await _one(
                db,
                "SELECT token, company_rut, client_name, expires_at, used_by_chat "
                "FROM invitations WHERE token = ?",
                (token,),
            )
            if row is None or row[3] <= to_timestamp(now):
                return None
            if row[4] is not None and row[4] != chat_id:
                return None
            if row[4] is None:
                await db.execute(
                    "UPDATE invitations SET used_at = ?, used_by_chat = ? WHERE token = ?",
                    (to_timestamp(now), chat_id, token),
                )
                await self._add_event(db, row[1], now, "invitation_opened", None)
        return Invitation(row[0], row[1], row[2], from_timestamp(row[3]), chat_id)

    async def invitation_status(self, token: str) -> Invitation | None:
        """Return an invitation as stored, whatever its state."""
        rows = await self._fetchall(
            "SELECT token, company_rut, client_name, expires_at, used_by_chat "
            "FROM invitations WHERE token = ?",
            (token,),
        )
        if not rows:
            return None
        row = rows[0]
        return Invitation(row[0], row[1], row[2], from_timestamp(row[3]), row[4])

    async def pending(self, offset: int, limit: int) -> tuple[list[Authorization], int]:
        """Return one page of unfinished authorizations, oldest first, and their total."""
        rows = await self._fetchall(
            _SELECT_AUTHORIZATIONS + "WHERE completed_at IS NULL "
            "ORDER BY started_at, company_rut LIMIT ? OFFSET ?",
            (limit, offset),
        )
        total = await self._fetchall(
            "SELECT COUNT(*) FROM authorizations WHERE completed_at IS NULL"
        )
        return [_authorization(row) for row in rows], int(total[0][0])

    async def completed(
        self, since: datetime | None, offset: int, limit: int
    ) -> tuple[list[Authorization], int]:
        """Return one page of completed authorizations, newest first, and their total."""
        floor = to_timestamp(since) if since is not None else 0.0
        rows = await self._fetchall(
            _SELECT_AUTHORIZATIONS + "WHERE completed_at IS NOT NULL AND completed_at >= ? "
            "ORDER BY completed_at DESC, company_rut LIMIT ? OFFSET ?",
            (floor, limit, offset),
        )
        total = await self._fetchall(
            "SELECT COUNT(*) FROM authorizations "
            "WHERE completed_at IS NOT NULL AND completed_at >= ?",
            (floor,),
        )
        return [_authorization(row) for row in rows], int(total[0][0])

    async def all_authorizations(self) -> list[Authorization]:
        """Return every authorization, for the export."""
        rows = await self._fetchall(_SELECT_AUTHORIZATIONS + "ORDER BY started_at, company_rut")
        return [_authorization(row) for row in rows]

    async def verify(self, completion: int, actor: str, now: datetime) -> Authorization | None:
        """Record that the firm saw the user in the SII; None if not (or no longer) open to it."""
        async with self._transaction() as db:
            company_rut = await self._current_completion(db, completion)
            if company_rut is None:
                return None
            cursor = await db.execute(
                "UPDATE authorizations SET verified_at = ?, verified_by = ? "
                "WHERE company_rut = ? AND completed_at IS NOT NULL AND verified_at IS NULL",
                (to_timestamp(now), actor, company_rut),
            )
            if cursor.rowcount != 1:
                return None
            await self._add_event(db, company_rut, now, "verified", None, actor)
            return await self._read_authorization(db, company_rut)

    async def reopen(
        self,
        completion: int,
        actor: str,
        now: datetime,
        step: int,
        first_reminder: datetime | None,
    ) -> Authorization | None:
        """Undo a completion the firm could not find in the SII, back to `step`.

        The client is reminded on the usual schedule if they do not come back.
        """
        async with self._transaction() as db:
            company_rut = await self._current_completion(db, completion)
            if company_rut is None:
                return None
            cursor = await db.execute(
                "UPDATE authorizations SET completed_at = NULL, step = ?, last_activity_at = ? "
                "WHERE company_rut = ? AND completed_at IS NOT NULL AND verified_at IS NULL",
                (step, to_timestamp(now), company_rut),
            )
            if cursor.rowcount != 1:
                return None
            await self._add_event(db, company_rut, now, "rejected", step, actor)
            row = await self._read_authorization(db, company_rut)
            if row.client_chat_id is not None and row.client_user_id is not None:
                await self._schedule_auto(
                    db, row, row.client_chat_id, row.client_user_id, now, first_reminder
                )
            return row

    async def completion_company(self, completion: int) -> str | None:
        """Return the company a completion event belongs to."""
        rows = await self._fetchall(
            "SELECT company_rut FROM events WHERE id = ? AND kind = 'completed'", (completion,)
        )
        return str(rows[0][0]) if rows else None

    @staticmethod
    async def _current_completion(db: aiosqlite.Connection, completion: int) -> str | None:
        """Return the company of a completion event if it is that company's latest one."""
        row = await _one(
            db,
            "SELECT e.company_rut FROM events AS e WHERE e.id = ? AND e.kind = 'completed' "
            "AND NOT EXISTS (SELECT 1 FROM events AS later WHERE later.company_rut = "
            "e.company_rut AND later.id > e.id AND later.kind IN ('completed', 'started', "
            "'rejected'))",
            (completion,),
        )
        return str(row[0]) if row else None
