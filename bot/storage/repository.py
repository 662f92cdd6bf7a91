"""All reads and writes of the SQLite database: one connection and its stores.

Each store is one concern (bot/storage/), named on the repository; they share the
connection. The schema and its migrations are in bot/storage/schema.py.
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


class Repository:
    """The only code that speaks SQL: one connection per process, writes serialized, and a
    store for each concern, by name (`repository.authorizations`, `repository.outbox`, ...)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.conversations = ConversationStore(database)
        self.authorizations = AuthorizationStore(database)
        self.reminders = ReminderStore(database)
        self.firm = FirmStore(database)
        self.outbox = OutboxStore(database)
        self.handoffs = HandoffStore(database)
        self.privacy = PrivacyStore(database)
        self.bookkeeping = BookkeepingStore(database)

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
