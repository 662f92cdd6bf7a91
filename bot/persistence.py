"""Conversation states for python-telegram-bot, read from the database the handlers write."""

from typing import Any

from telegram.ext import BasePersistence, PersistenceInput

from bot.repository import Repository

# The shapes python-telegram-bot uses for conversation keys and their states.
ConversationKey = tuple[int | str, ...]
ConversationDict = dict[ConversationKey, object]


class DatabaseConversationPersistence(
    BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]
):
    """Load conversation states from SQLite at startup; handlers write them as they change.

    python-telegram-bot only flushes persistence on an interval or at shutdown, which a
    killed process would miss. So every handler writes its new state in the same transaction
    as the step it records (see Repository), and the periodic flush has nothing to add:
    writing its older snapshot could even undo a newer state.
    """

    def __init__(self, repository: Repository) -> None:
        super().__init__(
            store_data=PersistenceInput(
                bot_data=False, chat_data=False, user_data=False, callback_data=False
            )
        )
        self._repository = repository

    async def get_conversations(self, name: str) -> ConversationDict:
        """Return the stored state of every open conversation."""
        states = await self._repository.conversation_states()
        return {tuple(key): state for key, state in states.items()}

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Ignore: the handlers already wrote this state through the repository."""

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        """Return nothing: user data is not used."""
        return {}

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        """Return nothing: chat data is not used."""
        return {}

    async def get_bot_data(self) -> dict[Any, Any]:
        """Return nothing: bot data is not persisted."""
        return {}

    async def get_callback_data(self) -> None:
        """Return nothing: arbitrary callback data is not used."""
        return None

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        """Ignore: user data is not used."""

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        """Ignore: chat data is not used."""

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        """Ignore: bot data is not persisted."""

    async def update_callback_data(self, data: Any) -> None:
        """Ignore: arbitrary callback data is not used."""

    async def drop_chat_data(self, chat_id: int) -> None:
        """Ignore: chat data is not used."""

    async def drop_user_data(self, user_id: int) -> None:
        """Ignore: user data is not used."""

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        """Ignore: user data is not used."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """Ignore: chat data is not used."""

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """Ignore: bot data is not persisted."""

    async def flush(self) -> None:
        """Nothing to flush: every state is already committed."""
