"""The firm's side of a handoff: replies relayed to the client, and closing it."""

import logging

from telegram import Message, Update
from telegram.constants import MessageLimit
from telegram.error import Forbidden, TelegramError

from bot.services.deps import BotContext, Deps
from bot.storage.repository import Handoff
from conversations.client.common import actor_name
from conversations.client.problems import fit

logger = logging.getLogger(__name__)


# Room for the label around the firm's text in the client's message (UTF-16 code units,
# as Telegram counts them).
MAX_RELAYED_TEXT = MessageLimit.MAX_TEXT_LENGTH - 200


async def _replied_handoff(
    update: Update, context: BotContext, deps: Deps
) -> tuple[Message, Handoff | None] | None:
    """Return the firm's message and the handoff it answers; None if not a reply to the bot."""
    message = update.effective_message
    if message is None or message.reply_to_message is None:
        return None
    replied = message.reply_to_message
    if replied.from_user is None or replied.from_user.id != context.bot.id:
        return None  # the firm's members talking among themselves
    handoff = await deps.handoffs.handoff_replied_to(message.chat_id, replied.message_id)
    return message, handoff


async def relay_reply(update: Update, context: BotContext) -> None:
    """Pass a firm member's reply to the client whose problem it answers."""
    deps = context.deps
    found = await _replied_handoff(update, context, deps)
    if found is None:
        return
    message, handoff = found
    if handoff is None:
        await message.reply_text(deps.guide.message("firm_reply_not_handoff"))
        return
    if handoff.closed_at is not None:
        await message.reply_text(deps.guide.message("firm_reply_closed"))
        return
    relayed = fit(
        message.text or "",
        lambda text: deps.guide.message("client_firm_message", text=text),
        MessageLimit.MAX_TEXT_LENGTH,
        MAX_RELAYED_TEXT,
    )
    try:
        await context.bot.send_message(handoff.chat_id, relayed.rendered)
    except Forbidden:
        await deps.reminders.mark_blocked(handoff.chat_id, deps.clock.now())
        await message.reply_text(
            deps.guide.message("remind_blocked", {"client_name": deps.guide.message("the_client")}),
        )
        return
    except TelegramError as exc:
        logger.warning("reply not relayed to chat %s: %s", handoff.chat_id, exc)
        await message.reply_text(deps.guide.message("remind_failed"))
        return
    sent = (
        deps.guide.message("firm_reply_shortened")
        if relayed.shortened
        else deps.guide.message("firm_reply_sent")
    )
    await message.reply_text(sent)


async def reply_not_text(update: Update, context: BotContext) -> None:
    """Tell a firm member that only text is passed on to the client."""
    deps = context.deps
    found = await _replied_handoff(update, context, deps)
    if found is not None and found[1] is not None and update.effective_message is not None:
        await update.effective_message.reply_text(deps.guide.message("firm_reply_text_only"))


async def close(update: Update, context: BotContext) -> None:
    """Close the handoff whose message the firm member answered with /cerrar."""
    deps = context.deps
    found = await _replied_handoff(update, context, deps)
    message = update.effective_message
    assert message is not None
    if found is None or found[1] is None:
        await message.reply_text(deps.guide.message("firm_close_usage"))
        return
    handoff = found[1]
    actor = actor_name(update)
    if not await deps.handoffs.close_handoff(handoff.id, actor, deps.clock.now()):
        await message.reply_text(deps.guide.message("firm_reply_closed"))
        return
    await message.reply_text(deps.guide.message("firm_handoff_closed", actor=actor))
    try:
        await context.bot.send_message(
            handoff.chat_id,
            deps.guide.message("client_handoff_closed"),
        )
    except TelegramError as exc:
        logger.info("chat %s not told its handoff closed: %s", handoff.chat_id, exc)
