"""What happens when handling an update fails: log without personal data, tell the client."""

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from telegram import Update
from telegram.error import Forbidden, TelegramError

from bot.services.alerts import AlertKind
from bot.services.deps import BotContext

logger = logging.getLogger(__name__)


# Shows the client where their stored conversation is; guarded, it never raises.
ShowStoredState = Callable[[Update, BotContext], Awaitable[None]]
ErrorHandler = Callable[[object, BotContext], Coroutine[Any, Any, None]]


class ConversationFailed(Exception):
    """A handler of the client's conversation failed (the error it raised is `cause`).

    It may have committed a new state before failing to answer, so after the one report the
    client is shown what the stored state asks now.
    """

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the client's conversation failed: {type(cause).__name__}")
        self.cause = cause


def error_handler(show_stored_state: ShowStoredState) -> ErrorHandler:
    """The application's error handler: the one place a failed update is reported."""

    async def on_error(update: object, context: BotContext) -> None:
        error = context.error
        if not isinstance(update, Update):
            logger.error("background task failed", exc_info=error)
            return
        failed = isinstance(error, ConversationFailed)
        cause = error.cause if isinstance(error, ConversationFailed) else error
        await report_failure(update, context, cause)
        # A client who blocked the bot cannot be shown anything.
        if failed and not isinstance(cause, Forbidden):
            await show_stored_state(update, context)

    return on_error


async def report_failure(update: Update, context: BotContext, error: BaseException | None) -> None:
    """Log a failed update by its ids only and tell the client something went wrong."""
    chat = update.effective_chat
    logger.error(
        "update %s in chat %s failed", update.update_id, chat.id if chat else None, exc_info=error
    )
    if update.callback_query is not None:
        # The press failed, but its spinner must still stop.
        with suppress(TelegramError):
            await update.callback_query.answer()
    deps = context.deps
    if isinstance(error, sqlite3.OperationalError):
        # Disk full, the file locked by another program, read-only: only a person can fix it.
        await deps.alerts.alert(
            context.bot, AlertKind.DATABASE_REFUSING, problem=" ".join(str(error).split())
        )
    await deps.alerts.handler_failed(context.bot)
    if chat is None:
        return
    key = "firm_error" if chat.id in deps.settings.firm_chat_ids else "error"
    try:
        await context.bot.send_message(chat.id, deps.guide.message(key))
    except TelegramError:
        logger.warning("could not tell chat %s about the failure", chat.id)
