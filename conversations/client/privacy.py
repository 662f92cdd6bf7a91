"""The client's data: what is kept and why, and deleting it on request."""

import logging

from telegram import Update

from bot.domain.rut import format_rut
from bot.guide import keyboards
from bot.guide.callbacks import DELETE_YES
from bot.services.deps import BotContext
from bot.storage.repository import FirmMessage
from conversations.client.common import (
    client_info,
    ids,
    position_of,
    say,
    settle_button,
)

logger = logging.getLogger(__name__)


async def privacy(update: Update, context: BotContext) -> None:
    """Explain what is stored, why, for how long, and how to delete it."""
    deps = context.deps
    await say(
        update,
        deps.guide.message("privacy", retention_days=deps.settings.data_retention_days),
    )
    conversation = position_of(context).conversation
    if conversation is not None:
        await deps.repeat_prompt(update, conversation)


async def ask_to_delete(update: Update, context: BotContext) -> None:
    """Ask the client to confirm the deletion of their data."""
    deps = context.deps
    await say(update, deps.guide.message("delete_confirm"), keyboards.confirm_deletion(deps.guide))


async def delete_choice(update: Update, context: BotContext) -> None:
    """Delete the client's data if they confirmed, and tell the firm."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    if query.data != DELETE_YES:
        await say(update, deps.guide.message("delete_cancelled"))
        conversation = position_of(context).conversation
        if conversation is not None:
            await deps.repeat_prompt(update, conversation)
        return
    chat_id, _ = ids(update)
    now = deps.clock.now()
    deletion = await deps.privacy.delete_client_data(chat_id, now, client=client_info(update))
    # The firm keeps only what it must (completed authorizations, anonymous): an unfinished
    # one is gone entirely, so the notice counts it without naming its company.
    if deletion.anonymized:
        companies = ", ".join(format_rut(rut) for rut in deletion.anonymized)
        notice = deps.guide.message("firm_data_deleted", companies=companies)
    elif deletion.removed:
        notice = deps.guide.message("firm_data_deleted_unfinished", count=len(deletion.removed))
    if deletion.anonymized or deletion.removed:
        await deps.outbox.queue_firm_messages(
            [FirmMessage(chat, notice) for chat in deps.settings.firm_chat_ids], now
        )
        await deps.notifier.deliver_pending(update.get_bot())
    logger.info(
        "chat %s deleted its data (%d companies)",
        chat_id,
        len(deletion.anonymized) + len(deletion.removed),
    )
    await say(update, deps.guide.message("delete_done"))
