"""The application's error handler: log without personal data, tell the client."""

import logging
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import CallbackContext

from bot.deps import get_deps

logger = logging.getLogger(__name__)


async def on_error(update: object, context: CallbackContext[Any, Any, Any, Any]) -> None:
    """Log a failed update by its ids only and tell the client something went wrong."""
    if not isinstance(update, Update):
        logger.error("background task failed", exc_info=context.error)
        return
    chat = update.effective_chat
    logger.error(
        "update %s in chat %s failed",
        update.update_id,
        chat.id if chat else None,
        exc_info=context.error,
    )
    if chat is None:
        return
    try:
        await context.bot.send_message(
            chat.id, get_deps(context).guide.message("error"), parse_mode=ParseMode.HTML
        )
    except TelegramError:
        logger.warning("could not tell chat %s about the failure", chat.id)
