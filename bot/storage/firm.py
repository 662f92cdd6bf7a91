"""What the firm asks for: invitations, listings, verification of completions."""

from datetime import datetime

import aiosqlite

from bot.clock import from_timestamp, to_timestamp
from bot.storage.base import StoreBase, one
from bot.storage.records import (
    Authorization,
    Invitation,
    authorization_from_row,
)
from bot.storage.sql import (
    SELECT_AUTHORIZATIONS,
)


class FirmStore(StoreBase):
    """The firm's view of the authorizations."""

    async def authorizations_for_digest(
        self, completed_since: datetime
    ) -> tuple[list[Authorization], list[Authorization]]:
        """Return (completed since the given time, all unfinished oldest first)."""
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE completed_at IS NULL OR completed_at > ? "
            "ORDER BY started_at",
            (to_timestamp(completed_since),),
        )
        authorizations = [authorization_from_row(row) for row in rows]
        completed = [a for a in authorizations if a.completed_at is not None]
        pending = [a for a in authorizations if a.completed_at is None]
        return completed, pending

    async def create_invitation(
        self,
        token: str,
        company_rut: str,
        client_name: str | None,
        created_by: int,
        now: datetime,
        expires_at: datetime,
        event: str = "invited",
    ) -> None:
        """Store a new invitation and show the company as pending (step 0) if it is new.

        `event` names who made it in the history: the firm ("invited") or a client passing
        the procedure on to the person with the certificate ("passed_on").
        """
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
            await self._add_event(db, company_rut, now, event, None, str(created_by))

    async def claim_invitation(self, token: str, chat_id: int, now: datetime) -> Invitation | None:
        """Bind an unexpired invitation to the first chat that opens it.

        Returns the invitation when this chat may use it, None when it is unknown, expired or
        already used by another chat.
        """
        async with self._transaction() as db:
            row = await one(
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

    async def pending(self, offset: int, limit: int) -> tuple[list[Authorization], int]:
        """Return one page of unfinished authorizations, oldest first, and their total."""
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE completed_at IS NULL "
            "ORDER BY started_at, company_rut LIMIT ? OFFSET ?",
            (limit, offset),
        )
        total = await self._fetchall(
            "SELECT COUNT(*) FROM authorizations WHERE completed_at IS NULL"
        )
        return [authorization_from_row(row) for row in rows], int(total[0][0])

    async def completed(
        self, since: datetime | None, offset: int, limit: int
    ) -> tuple[list[Authorization], int]:
        """Return one page of completed authorizations, newest first, and their total."""
        floor = to_timestamp(since) if since is not None else 0.0
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE completed_at IS NOT NULL AND completed_at >= ? "
            "ORDER BY completed_at DESC, company_rut LIMIT ? OFFSET ?",
            (floor, limit, offset),
        )
        total = await self._fetchall(
            "SELECT COUNT(*) FROM authorizations "
            "WHERE completed_at IS NOT NULL AND completed_at >= ?",
            (floor,),
        )
        return [authorization_from_row(row) for row in rows], int(total[0][0])

    async def all_authorizations(self) -> list[Authorization]:
        """Return every authorization, for the export."""
        rows = await self._fetchall(SELECT_AUTHORIZATIONS + "ORDER BY started_at, company_rut")
        return [authorization_from_row(row) for row in rows]

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
        row = await one(
            db,
            "SELECT e.company_rut FROM events AS e WHERE e.id = ? AND e.kind = 'completed' "
            "AND NOT EXISTS (SELECT 1 FROM events AS later WHERE later.company_rut = "
            "e.company_rut AND later.id > e.id AND later.kind IN ('completed', 'started', "
            "'rejected'))",
            (completion,),
        )
        return str(row[0]) if row else None
