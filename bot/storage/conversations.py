"""Where each chat stands in its conversation with the bot."""

import sqlite3
from datetime import datetime

from bot.storage.base import StoreBase, upsert_conversation
from bot.storage.records import (
    Authorization,
    Conversation,
    authorization_from_row,
)


class ConversationStore(StoreBase):
    """The conversation each chat is in."""

    async def conversation(self, chat_id: int, user_id: int) -> Conversation | None:
        """Return the conversation of this chat and user, if one is open."""
        rows = await self._fetchall(
            "SELECT chat_id, user_id, state, company_rut, candidate_rut FROM conversations "
            "WHERE chat_id = ? AND user_id = ?",
            (chat_id, user_id),
        )
        return Conversation(*rows[0]) if rows else None

    async def position(
        self, chat_id: int, user_id: int
    ) -> tuple[Conversation | None, Authorization | None]:
        """Return this chat's open conversation and the authorization it is on, in one query."""
        rows = await self._fetchall(
            "SELECT c.chat_id, c.user_id, c.state, c.company_rut, c.candidate_rut, "
            "a.company_rut, a.client_chat_id, a.client_user_id, a.client_name, "
            "a.client_username, a.step, a.started_at, a.last_activity_at, a.completed_at, "
            "a.reminders_sent, a.opted_out_at, a.blocked_at, a.invited_name, a.verified_at, "
            "a.verified_by, a.proof_file_id, a.proof_reading FROM conversations AS c "
            "LEFT JOIN authorizations AS a ON a.company_rut = c.company_rut "
            "WHERE c.chat_id = ? AND c.user_id = ?",
            (chat_id, user_id),
        )
        if not rows:
            return None, None
        row = rows[0]
        authorization = authorization_from_row(row[5:]) if row[5] is not None else None
        return Conversation(*row[:5]), authorization

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

        def body(db: sqlite3.Connection) -> None:
            upsert_conversation(db, chat_id, user_id, state, now, company_rut, candidate_rut)

        return await self._write(body)

    async def end_conversation(self, chat_id: int, user_id: int) -> None:
        """Forget the conversation of this chat and user, and its reminders.

        The authorization itself stays, so the firm still sees it as pending.
        """

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM conversations WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
            )
            db.execute("DELETE FROM reminders WHERE chat_id = ?", (chat_id,))

        return await self._write(body)
