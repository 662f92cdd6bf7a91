"""Small values the bot keeps for itself: processed updates, digest and purge times."""

import sqlite3
from collections.abc import Sequence

from bot.storage.base import StoreBase, put_meta


class BookkeepingStore(StoreBase):
    """Processed updates and other bookkeeping."""

    async def processed_among(self, update_ids: Sequence[int]) -> dict[int, bool]:
        """Return which of these updates were applied (before a crash), and if answered."""
        if not update_ids:
            return {}
        rows = await self._fetchall(
            "SELECT update_id, answered FROM processed_updates WHERE update_id BETWEEN ? AND ?",
            (min(update_ids), max(update_ids)),
        )
        wanted = set(update_ids)
        return {int(row[0]): bool(row[1]) for row in rows if int(row[0]) in wanted}

    async def last_processed(self) -> int | None:
        """Return the highest update id marked processed (None if none is)."""
        rows = await self._fetchall("SELECT MAX(update_id) FROM processed_updates")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def meta(self, key: str) -> str | None:
        """Return a stored bookkeeping value."""
        rows = await self._fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        """Store a bookkeeping value."""

        def body(db: sqlite3.Connection) -> None:
            put_meta(db, key, value)

        return await self._write(body)
