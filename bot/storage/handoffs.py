"""Clients' problems put in the firm's hands, and the conversation that follows."""

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from bot.domain.clock import to_timestamp
from bot.storage.base import StoreBase, add_event, one_row, queue
from bot.storage.records import (
    EventKind,
    FirmMessage,
    Handoff,
    handoff_from_row,
)
from bot.storage.sql import (
    SELECT_HANDOFF,
)


class HandoffStore(StoreBase):
    """Open and closed handoffs."""

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

        def body(db: sqlite3.Connection) -> int:
            found = one_row(
                db, "SELECT id FROM handoffs WHERE chat_id = ? AND closed_at IS NULL", (chat_id,)
            )
            if found is not None:
                handoff_id = int(found[0])
                db.execute(
                    "UPDATE handoffs SET company_rut = ?, step = ?, problem = ? WHERE id = ?",
                    (company_rut, step, problem, handoff_id),
                )
            else:
                cursor = db.execute(
                    "INSERT INTO handoffs (chat_id, user_id, company_rut, step, problem, "
                    "opened_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (chat_id, user_id, company_rut, step, problem, to_timestamp(now)),
                )
                assert cursor.lastrowid is not None
                handoff_id = cursor.lastrowid
            if company_rut is not None:
                add_event(db, company_rut, now, EventKind.PROBLEM, step)
            queue(db, report(handoff_id), now)
            return handoff_id

        return await self._write(body)

    async def open_handoff_of(self, chat_id: int) -> Handoff | None:
        """Return the client's open handoff, if any."""
        rows = await self._fetchall(
            SELECT_HANDOFF + "WHERE chat_id = ? AND closed_at IS NULL", (chat_id,)
        )
        return handoff_from_row(rows[0]) if rows else None

    async def handoff_replied_to(self, firm_chat_id: int, message_id: int) -> Handoff | None:
        """Return the handoff a firm message belongs to (by the bot message replied to)."""
        rows = await self._fetchall(
            "SELECT h.id, h.chat_id, h.user_id, h.company_rut, h.step, h.problem, h.closed_at "
            "FROM outbox AS o JOIN handoffs AS h ON h.id = o.handoff_id "
            "WHERE o.chat_id = ? AND o.message_id = ?",
            (firm_chat_id, message_id),
        )
        return handoff_from_row(rows[0]) if rows else None

    async def close_handoff(self, handoff_id: int, actor: str, now: datetime) -> bool:
        """Close a handoff; False if it was closed already."""

        def body(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE handoffs SET closed_at = ?, closed_by = ? "
                "WHERE id = ? AND closed_at IS NULL",
                (to_timestamp(now), actor, handoff_id),
            )
            return cursor.rowcount == 1

        return await self._write(body)
