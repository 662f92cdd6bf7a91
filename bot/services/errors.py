"""What happens when handling an update fails: log without personal data, tell the client."""

import logging
import sqlite3
from contextlib import suppress

from telegram import Update
from telegram.error import TelegramError

from bot.services.alerts import AlertKind
from bot.services.deps import BotContext

logger = logging.getLogger(__name__)


async def on_error(update: object, context: BotContext) -> None:
    """Report an error python-telegram-bot caught (the application's error handler)."""
    if not isinstance(update, Update):
        logger.error("background task failed", exc_info=context.error)
        return
    await report_failure(update, context, context.error)


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
