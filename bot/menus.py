"""The command menus Telegram shows: clients everywhere, the firm's extra in its chats."""

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from conversations.guide import Guide

logger = logging.getLogger(__name__)


async def publish_command_menus(bot: Bot, guide: Guide, firm_chat_ids: tuple[int, ...]) -> bool:
    """Set both menus; a server that refuses only costs a warning. Return True if all set."""
    client = [BotCommand(name, text) for name, text in guide.commands("client").items()]
    firm = client + [BotCommand(name, text) for name, text in guide.commands("firm").items()]
    try:
        await bot.set_my_commands(client, scope=BotCommandScopeDefault())
        for chat_id in firm_chat_ids:
            await bot.set_my_commands(firm, scope=BotCommandScopeChat(chat_id))
    except TelegramError as exc:
        logger.warning("command menus not set: %s", exc)
        return False
    return True
