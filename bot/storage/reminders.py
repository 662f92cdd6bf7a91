"""Reminders: activity, chosen times, due rows, opt-outs and blocked clients."""

import sqlite3
from datetime import datetime
from typing import Any

from bot.domain.clock import from_timestamp, to_timestamp
from bot.storage.base import (
    StoreBase,
    add_event,
    all_rows_of,
    count_reminder,
    one_row,
    read_authorization,
    schedule_auto,
    upsert_reminder,
)
from bot.storage.database import Database
from bot.storage.records import (
    DueReminder,
    EventKind,
    ReminderKind,
)
from bot.storage.sql import (
    MARK_SQL,
)


class ReminderStore(StoreBase):
    """Pending reminders, one per client chat."""

    async def record_activity(
        self, chat_id: int, user_id: int, now: datetime, first_reminder: datetime | None
    ) -> None:
        """Note that the client did something: the reminder clock starts again.

        Only a client in an open conversation counts; after /cancelar nothing is rescheduled.
        A reminder the client asked for at a chosen time is kept. A client who writes again
        has evidently unblocked the bot. While an update is processed, this is written in
        the same commit as whatever its handler changes (see bot/storage/database.py).
        """

        def body(db: sqlite3.Connection) -> None:
            found = one_row(
                db,
                "SELECT company_rut FROM conversations WHERE chat_id = ? AND user_id = ?",
                (chat_id, user_id),
            )
            if found is None:
                return
            if found[0] is None:
                # No company yet: nothing to remind automatically, but a time the client
                # chose stays chosen.
                db.execute(
                    "DELETE FROM reminders WHERE chat_id = ? AND kind = ?",
                    (chat_id, ReminderKind.AUTO.value),
                )
                return
            db.execute(
                "UPDATE authorizations SET last_activity_at = ?, blocked_at = NULL "
                "WHERE company_rut = ? AND completed_at IS NULL",
                (to_timestamp(now), found[0]),
            )
            authorization = read_authorization(db, found[0])
            schedule_auto(db, authorization, chat_id, user_id, now, first_reminder)

        writes = Database.current_update()
        if writes is not None:
            writes.add(body)
            return
        await self._write(body)

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

        def body(db: sqlite3.Connection) -> None:
            upsert_reminder(db, chat_id, user_id, company_rut, ReminderKind.LATER, 0, now, due)
            if company_rut is not None:
                kind = EventKind.REMIND_LATER if actor is None else EventKind.REMINDER_SCHEDULED
                add_event(db, company_rut, now, kind, None, actor)

        return await self._write(body)

    async def due_reminders(self, now: datetime, limit: int) -> list[DueReminder]:
        """Return up to `limit` reminders due at `now`, the most overdue first."""

        # Rows become reminders on the database thread, in the same hop as the query.
        def read(db: sqlite3.Connection) -> list[DueReminder]:
            rows = db.execute(
                "SELECT r.chat_id, r.user_id, r.company_rut, r.kind, r.sequence, r.anchor_at, "
                "r.due_at, a.step FROM reminders AS r "
                "LEFT JOIN authorizations AS a ON a.company_rut = r.company_rut "
                "WHERE r.due_at <= ? ORDER BY r.due_at LIMIT ?",
                (to_timestamp(now), limit),
            )
            return [
                DueReminder(
                    chat_id=chat_id,
                    user_id=user_id,
                    company_rut=company_rut,
                    kind=ReminderKind(kind),
                    sequence=sequence,
                    anchor_at=from_timestamp(anchor),
                    due_at=from_timestamp(due),
                    step=step,
                )
                for chat_id, user_id, company_rut, kind, sequence, anchor, due, step in rows
            ]

        return await self._read(read)

    async def reminder_sent(
        self,
        reminder: DueReminder,
        now: datetime,
        next_due: datetime | None,
        next_sequence: int,
        next_anchor: datetime,
    ) -> None:
        """Record a delivered reminder and schedule the next one (None: no more)."""

        def body(db: sqlite3.Connection) -> None:
            # The client may have acted while the message was in flight: their new schedule wins.
            params: tuple[Any, ...] = (
                reminder.chat_id,
                to_timestamp(reminder.due_at),
                reminder.kind.value,
            )
            if next_due is None:
                cursor = db.execute(
                    "DELETE FROM reminders WHERE chat_id = ? AND due_at = ? AND kind = ?", params
                )
            else:
                cursor = db.execute(
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
                count_reminder(db, reminder.company_rut, now, reminder.step, None)

        return await self._write(body)

    async def count_reminder(self, company_rut: str, now: datetime, actor: str) -> None:
        """Record a reminder the firm had sent by hand."""

        def body(db: sqlite3.Connection) -> None:
            count_reminder(db, company_rut, now, None, actor)

        return await self._write(body)

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

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM reminders WHERE chat_id = ? AND due_at = ? AND kind = ?",
                (reminder.chat_id, to_timestamp(reminder.due_at), reminder.kind.value),
            )

        return await self._write(body)

    async def postpone_reminder(self, reminder: DueReminder, due: datetime) -> None:
        """Move a reminder that could not be delivered to `due` (unless rescheduled meanwhile)."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE reminders SET due_at = ? WHERE chat_id = ? AND due_at = ? AND kind = ?",
                (
                    to_timestamp(due),
                    reminder.chat_id,
                    to_timestamp(reminder.due_at),
                    reminder.kind.value,
                ),
            )

        return await self._write(body)

    async def opt_out(self, chat_id: int, now: datetime) -> int:
        """Stop all reminders to this chat for good; return how many authorizations it marks."""
        return await self._stop_reminders_marking(chat_id, now, "opted_out_at", EventKind.OPTED_OUT)

    async def mark_blocked(self, chat_id: int, now: datetime) -> int:
        """Record that the client blocked the bot: no more reminders, visible to the firm."""
        return await self._stop_reminders_marking(chat_id, now, "blocked_at", EventKind.BLOCKED)

    async def _stop_reminders_marking(
        self, chat_id: int, now: datetime, column: str, event: EventKind
    ) -> int:
        def body(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM reminders WHERE chat_id = ?", (chat_id,))
            companies = [
                row[0]
                for row in all_rows_of(
                    db,
                    "SELECT company_rut FROM authorizations "
                    "WHERE client_chat_id = ? AND completed_at IS NULL",
                    (chat_id,),
                )
            ]
            for company_rut in companies:
                db.execute(MARK_SQL[column], (to_timestamp(now), company_rut))
                add_event(db, company_rut, now, event, None)
            return len(companies)

        return await self._write(body)
