"""Small values the bot keeps for itself: update offsets, digest and purge times."""

from collections.abc import Sequence

from bot.storage.base import StoreBase


class BookkeepingStore(StoreBase):
    """Polling offsets, processed updates and other bookkeeping."""

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

    async def meta(self, key: str) -> str | None:
        """Return a stored bookkeeping value."""
        rows = await self._fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        """Store a bookkeeping value."""
        async with self._transaction() as db:
            await self._put_meta(db, key, value)
