"""Messages to the firm's chats, delivered at least once even across crashes."""

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bot.domain.clock import to_timestamp
from bot.storage.base import StoreBase, put_meta, queue
from bot.storage.records import (
    DeliveredNotice,
    FirmMessage,
    OutboxMessage,
)


class OutboxStore(StoreBase):
    """The outbox of firm messages."""

    async def queue_firm_messages(
        self,
        messages: Sequence[FirmMessage],
        now: datetime,
        meta: tuple[str, str] | None = None,
    ) -> None:
        """Queue firm messages for delivery, with an optional bookkeeping value, atomically."""

        def body(db: sqlite3.Connection) -> None:
            queue(db, messages, now)
            if meta is not None:
                put_meta(db, *meta)

        return await self._write(body)

    async def unsent_outbox(self, max_attempts: int, limit: int = 100) -> list[OutboxMessage]:
        """Return firm messages not yet delivered nor given up on, oldest first."""
        rows = await self._fetchall(
            "SELECT id, chat_id, text, buttons, photo_file_id, attempts, ref FROM outbox "
            "WHERE sent_at IS NULL AND attempts < ? ORDER BY id LIMIT ?",
            (max_attempts, limit),
        )
        return [OutboxMessage(*row) for row in rows]

    async def mark_outbox(
        self, outbox_id: int, now: datetime, *, sent: bool, message_id: int | None = None
    ) -> None:
        """Record a delivery attempt of a firm message, and its success."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, "
                "sent_at = CASE WHEN ? THEN ? ELSE sent_at END, message_id = ? WHERE id = ?",
                (sent, to_timestamp(now), message_id, outbox_id),
            )

        return await self._write(body)

    async def delivered_notices(self, ref: int) -> list[DeliveredNotice]:
        """Return the firm notices about one completion that reached their chats."""
        rows = await self._fetchall(
            "SELECT chat_id, message_id, text, photo_file_id IS NOT NULL FROM outbox "
            "WHERE ref = ? AND message_id IS NOT NULL ORDER BY id",
            (ref,),
        )
        return [DeliveredNotice(row[0], row[1], row[2], bool(row[3])) for row in rows]
