"""The command menus Telegram shows: clients' in private chats, the firm's in its own chats."""

import logging

from telegram import Bot, BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from telegram.error import TelegramError

from bot.guide.guide import Guide

logger = logging.getLogger(__name__)


async def publish_command_menus(bot: Bot, guide: Guide, firm_chat_ids: tuple[int, ...]) -> bool:
    """Set both menus; a server that refuses only costs a warning. Return True if all set.

    Clients see their commands in private chats only (not in groups, where they do nothing).
    A firm group sees only the firm's commands; a firm member's private chat sees both, since
    the client's commands work there too.
    """
    client = [BotCommand(name, text) for name, text in guide.commands("client").items()]
    firm = [BotCommand(name, text) for name, text in guide.commands("firm").items()]
    try:
        await bot.set_my_commands(client, scope=BotCommandScopeAllPrivateChats())
        for chat_id in firm_chat_ids:
            commands = client + firm if chat_id > 0 else firm
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id))
    except TelegramError as exc:
        logger.warning("command menus not set: %s", exc)
        return False
    return True
