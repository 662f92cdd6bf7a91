"""All reads and writes of the SQLite database, behind one repository class.

The class is assembled from small stores, one per concern (bot/storage/), sharing one
connection; the schema and its migrations are in bot/storage/schema.py.
"""

from pathlib import Path
from typing import Self

import aiosqlite

from bot.storage.authorizations import AuthorizationStore
from bot.storage.backup import make_private
from bot.storage.bookkeeping import BookkeepingStore
from bot.storage.conversations import ConversationStore
from bot.storage.database import Database
from bot.storage.firm import FirmStore
from bot.storage.handoffs import HandoffStore
from bot.storage.outbox import OutboxStore
from bot.storage.privacy import PrivacyStore
from bot.storage.records import (
    Authorization,
    ClientInfo,
    Conversation,
    Deletion,
    DeliveredNotice,
    DueReminder,
    Event,
    EventKind,
    FirmMessage,
    Handoff,
    Invitation,
    ListInvitation,
    ListOutcome,
    OutboxMessage,
    ReminderKind,
)
from bot.storage.reminders import ReminderStore
from bot.storage.schema import migrate

__all__ = [
    "Authorization",
    "ClientInfo",
    "Conversation",
    "Deletion",
    "DeliveredNotice",
    "DueReminder",
    "Event",
    "EventKind",
    "FirmMessage",
    "Handoff",
    "Invitation",
    "ListInvitation",
    "ListOutcome",
    "OutboxMessage",
    "ReminderKind",
    "Repository",
]


class Repository(
    ConversationStore,
    AuthorizationStore,
    ReminderStore,
    FirmStore,
    OutboxStore,
    HandoffStore,
    PrivacyStore,
    BookkeepingStore,
):
    """The only code that speaks SQL; one connection per process, writes serialized."""

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) and migrate the database at `path`."""
        make_private(path)
        connection = await aiosqlite.connect(path, isolation_level=None)
        await connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit survives power loss too, not only a killed process.
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA busy_timeout = 5000")
        await connection.execute("PRAGMA foreign_keys = ON")
        await migrate(connection)
        return cls(Database(connection))

    @property
    def database(self) -> Database:
        """The connection and its transactions (the poller opens each update's writes)."""
        return self._database

    async def close(self) -> None:
        """Close the connection."""
        await self._database.close()
