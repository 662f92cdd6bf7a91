"""Deleting a client's data on request, and purging what is kept too long."""

from datetime import datetime

from bot.clock import to_timestamp
from bot.storage.base import StoreBase, all_rows
from bot.storage.records import (
    Deletion,
)
from bot.storage.sql import (
    ANONYMIZE,
    DELETE_NOTICES,
)


class PrivacyStore(StoreBase):
    """Deletion and retention."""

    async def delete_client_data(self, chat_id: int, now: datetime) -> Deletion:
        """Erase what identifies this client; completions stay as anonymous facts."""
        async with self._transaction() as db:
            # Ever completed (a repeat may be under way): the completion fact stays.
            rows = await all_rows(
                db,
                "SELECT a.company_rut, EXISTS (SELECT 1 FROM events AS e WHERE "
                "e.company_rut = a.company_rut AND e.kind = 'completed') "
                "FROM authorizations AS a WHERE a.client_chat_id = ?",
                (chat_id,),
            )
            anonymized = [row[0] for row in rows if row[1]]
            removed = [row[0] for row in rows if not row[1]]
            for company_rut in anonymized:
                # The firm's copies of the notices and of the proof name the client: they go.
                await db.execute(DELETE_NOTICES, (company_rut,))
                await db.execute(
                    "DELETE FROM outbox WHERE photo_file_id IN "
                    "(SELECT proof_file_id FROM authorizations WHERE company_rut = ?)",
                    (company_rut,),
                )
                await db.execute(ANONYMIZE, (company_rut,))
                await self._add_event(db, company_rut, now, "data_deleted", None)
            for company_rut in removed:
                await self._remove_company(db, company_rut)
            await self._forget_chat(db, chat_id)
        return Deletion(anonymized, removed)

    async def purge_inactive(self, before: datetime) -> int:
        """Remove unfinished authorizations idle since before `before`, and old messages."""
        stamp = to_timestamp(before)
        async with self._transaction() as db:
            # Never completed: one that was completed and is being repeated keeps its
            # completion, which the firm must be able to show.
            rows = await all_rows(
                db,
                "SELECT company_rut FROM authorizations AS a "
                "WHERE completed_at IS NULL AND last_activity_at < ? AND NOT EXISTS ("
                "SELECT 1 FROM events AS e WHERE e.company_rut = a.company_rut "
                "AND e.kind = 'completed')",
                (stamp,),
            )
            for (company_rut,) in rows:
                # Only what belongs to this company: the same chat may be busy with another.
                await self._remove_company(db, company_rut)
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
