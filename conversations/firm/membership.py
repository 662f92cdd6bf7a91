"""What the bot does when it is blocked, unblocked, or added to a group."""

import logging

from telegram import ChatMember, Update
from telegram.ext import ApplicationHandlerStop

from bot.services.deps import BotContext

logger = logging.getLogger(__name__)

_PRESENT = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER)


async def my_membership(update: Update, context: BotContext) -> None:
    """Record a client blocking the bot; tell a group it was added to its chat id.

    Neither is the client doing something, so nothing else handles these updates (no
    activity is counted, no reminder clock restarts).
    """
    change = update.my_chat_member
    if change is None:
        return
    deps = context.deps
    chat = change.chat
    was, now = change.old_chat_member.status, change.new_chat_member.status
    if chat.type == chat.PRIVATE:
        if now == ChatMember.BANNED:
            await deps.reminders.mark_blocked(chat.id, deps.clock.now())
            logger.info("chat %s blocked the bot", chat.id)
    elif now in _PRESENT and was not in _PRESENT:
        logger.info("added to group %s", chat.id)
        await context.bot.send_message(
            chat.id, deps.guide.message("group_chat_id", chat_id=chat.id)
        )
    raise ApplicationHandlerStop
