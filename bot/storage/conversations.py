"""Where each chat stands in its conversation with the bot."""

import sqlite3
from datetime import datetime

from bot.storage.base import StoreBase, one_row, upsert_conversation
from bot.storage.records import (
    Authorization,
    Conversation,
    authorization_from_row,
)
from bot.storage.sql import SELECT_AUTHORIZATION

SELECT_CONVERSATION = (
    "SELECT chat_id, user_id, state, company_rut, candidate_rut FROM conversations "
    "WHERE chat_id = ? AND user_id = ?"
)


class ConversationStore(StoreBase):
    """The conversation each chat is in."""

    async def conversation(self, chat_id: int, user_id: int) -> Conversation | None:
        """Return the conversation of this chat and user, if one is open."""
        rows = await self._fetchall(SELECT_CONVERSATION, (chat_id, user_id))
        return Conversation(*rows[0]) if rows else None

    async def position(
        self, chat_id: int, user_id: int
    ) -> tuple[Conversation | None, Authorization | None]:
        """Return this chat's open conversation and the authorization it is on, in one hop."""

        def body(db: sqlite3.Connection) -> tuple[Conversation | None, Authorization | None]:
            found = one_row(db, SELECT_CONVERSATION, (chat_id, user_id))
            if found is None:
                return None, None
            conversation = Conversation(*found)
            if conversation.company_rut is None:
                return conversation, None
            row = one_row(db, SELECT_AUTHORIZATION, (conversation.company_rut,))
            return conversation, authorization_from_row(row) if row is not None else None

        return await self._read(body)

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
