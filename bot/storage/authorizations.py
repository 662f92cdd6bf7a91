"""Each company's authorization: started, moved through the steps, completed."""

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bot.domain.clock import from_timestamp, to_timestamp
from bot.storage.base import (
    StoreBase,
    add_event,
    one_row,
    read_authorization,
    schedule_auto,
    upsert_conversation,
)
from bot.storage.records import (
    Authorization,
    ClientInfo,
    Event,
    EventKind,
    authorization_from_row,
)
from bot.storage.sql import (
    SELECT_AUTHORIZATION,
    SELECT_AUTHORIZATIONS,
)


class AuthorizationStore(StoreBase):
    """Authorizations and their history."""

    async def authorization(self, company_rut: str) -> Authorization | None:
        """Return the authorization of one company."""
        rows = await self._fetchall(SELECT_AUTHORIZATION, (company_rut,))
        return authorization_from_row(rows[0]) if rows else None

    async def latest_authorization_of(
        self, chat_id: int, *, unfinished: bool
    ) -> Authorization | None:
        """Return the most recently active (unfinished, if asked) authorization of this chat."""
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE client_chat_id = ? AND step > 0 "
            "AND (completed_at IS NULL OR NOT ?) ORDER BY last_activity_at DESC LIMIT 1",
            (chat_id, unfinished),
        )
        return authorization_from_row(rows[0]) if rows else None

    async def start_guide(
        self,
        client: ClientInfo,
        company_rut: str,
        state: str,
        now: datetime,
        first_reminder: datetime | None,
        *,
        only_from: str | None = None,
    ) -> Authorization | None:
        """Begin (or begin again) one company's authorization at step 1 for this client.

        With `only_from`, only while the client's conversation is still in that state with
        this company as its candidate: a second tap handled meanwhile (or by another process)
        finds it moved on and changes nothing (None).
        """
        stamp = to_timestamp(now)

        def body(db: sqlite3.Connection) -> Authorization | None:
            if only_from is not None and not one_row(
                db,
                "SELECT 1 FROM conversations WHERE chat_id = ? AND user_id = ? AND state = ? "
                "AND candidate_rut = ?",
                (client.chat_id, client.user_id, only_from, company_rut),
            ):
                return None
            db.execute(
                "INSERT INTO authorizations (company_rut, client_chat_id, client_user_id, "
                "client_name, client_username, step, started_at, last_activity_at, completed_at) "
                "VALUES (?, ?, ?, ?, ?, 1, ?, ?, NULL) ON CONFLICT (company_rut) DO UPDATE SET "
                "client_chat_id = excluded.client_chat_id, "
                "client_user_id = excluded.client_user_id, client_name = excluded.client_name, "
                "client_username = excluded.client_username, step = 1, "
                "started_at = CASE WHEN completed_at IS NULL AND step > 0 THEN started_at "
                "ELSE excluded.started_at END, verified_at = NULL, verified_by = NULL, "
                "proof_file_id = NULL, proof_reading = NULL, "
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
            add_event(db, company_rut, now, EventKind.STARTED, 1)
            return self._enter_guide(db, client, company_rut, state, now, first_reminder)

        return await self._write(body)

    async def resume_guide(
        self,
        client: ClientInfo,
        company_rut: str,
        state: str,
        now: datetime,
        first_reminder: datetime | None,
    ) -> Authorization | None:
        """Put this chat back into an unfinished authorization at its stored step."""

        def body(db: sqlite3.Connection) -> Authorization | None:
            cursor = db.execute(
                "UPDATE authorizations SET client_chat_id = ?, client_user_id = ?, "
                "last_activity_at = ? WHERE company_rut = ? AND completed_at IS NULL",
                (client.chat_id, client.user_id, to_timestamp(now), company_rut),
            )
            if cursor.rowcount != 1:
                return None
            return self._enter_guide(db, client, company_rut, state, now, first_reminder)

        return await self._write(body)

    def _enter_guide(
        self,
        db: sqlite3.Connection,
        client: ClientInfo,
        company_rut: str,
        state: str,
        now: datetime,
        first_reminder: datetime | None,
    ) -> Authorization:
        """Put the client's conversation on this company and start its reminder clock."""
        upsert_conversation(db, client.chat_id, client.user_id, state, now, company_rut, None)
        row = read_authorization(db, company_rut)
        schedule_auto(db, row, client.chat_id, client.user_id, now, first_reminder)
        return row

    async def move_to_step(
        self, company_rut: str, from_step: int, to_step: int, now: datetime
    ) -> bool:
        """Move an unfinished authorization from one step to another; False if it was not there."""

        def body(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE authorizations SET step = ?, last_activity_at = ? "
                "WHERE company_rut = ? AND step = ? AND completed_at IS NULL",
                (to_step, to_timestamp(now), company_rut, from_step),
            )
            if cursor.rowcount != 1:
                return False
            add_event(db, company_rut, now, EventKind.STEP, to_step)
            return True

        return await self._write(body)

    async def touch(self, company_rut: str, now: datetime) -> None:
        """Record activity by the client without changing the step."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE authorizations SET last_activity_at = ? WHERE company_rut = ?",
                (to_timestamp(now), company_rut),
            )

        return await self._write(body)

    async def complete(
        self,
        company_rut: str,
        at_step: int,
        client: ClientInfo,
        now: datetime,
        firm_notice: str,
        firm_chat_ids: Sequence[int],
        passer_notice: str | None = None,
        proof: tuple[str, str] | None = None,
    ) -> Authorization | None:
        """Record a completion once, queueing the firm's notice in the same transaction.

        Whoever passed this company's procedure on to someone else (and is not the one who
        completed it) is told too, with `passer_notice`. `proof` is the screenshot that
        proved it (file id, what was read), kept in the same transaction.

        The notice is rendered by the caller beforehand; its verification buttons are drawn
        when it is delivered, from the completion it refers to (`ref`).

        The client who completed is the one the firm is told about. Anyone else who was
        working on the same company is done too: their conversation and reminders end.
        Returns the completed authorization, or None when it was not at `at_step` (already
        completed, or moved on), so a repeated update never completes twice.
        """
        stamp = to_timestamp(now)

        def body(db: sqlite3.Connection) -> Authorization | None:
            cursor = db.execute(
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
            completion = add_event(db, company_rut, now, EventKind.COMPLETED, at_step)
            if proof is not None:
                db.execute(
                    "UPDATE authorizations SET proof_file_id = ?, proof_reading = ? "
                    "WHERE company_rut = ?",
                    (*proof, company_rut),
                )
            db.execute("DELETE FROM conversations WHERE company_rut = ?", (company_rut,))
            db.execute(
                "DELETE FROM reminders WHERE company_rut = ? OR chat_id = ?",
                (company_rut, client.chat_id),
            )
            row = read_authorization(db, company_rut)
            db.executemany(
                "INSERT INTO outbox (chat_id, text, created_at, ref, photo_file_id) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (firm_chat, firm_notice, stamp, completion, row.proof_file_id)
                    for firm_chat in firm_chat_ids
                ],
            )
            if passer_notice is not None:
                db.execute(
                    "INSERT INTO outbox (chat_id, text, created_at) "
                    "SELECT DISTINCT CAST(actor AS INTEGER), ?, ? FROM events "
                    "WHERE company_rut = ? AND kind = ? AND actor != ?",
                    (passer_notice, stamp, company_rut, EventKind.PASSED_ON, str(client.chat_id)),
                )
            return row

        return await self._write(body)

    async def events(self, company_rut: str) -> list[Event]:
        """Return the history of one company, oldest first."""
        rows = await self._fetchall(
            "SELECT at, kind, step, actor FROM events WHERE company_rut = ? ORDER BY id",
            (company_rut,),
        )
        return [Event(from_timestamp(row[0]), row[1], row[2], row[3]) for row in rows]

    async def set_proof(self, company_rut: str, file_id: str, reading: str | None = None) -> None:
        """Keep the Telegram file id of the client's screenshot of the SII's answer, and what
        was read on it (JSON), if it was read."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE authorizations SET proof_file_id = ?, proof_reading = ? "
                "WHERE company_rut = ?",
                (file_id, reading, company_rut),
            )

        return await self._write(body)
