"""The client's say over reminders: 'remind me later' and 'stop reminding me'."""

from telegram import Update

from bot.domain.schedule import later_option, remind_later_options
from bot.guide import keyboards
from bot.services.deps import BotContext
from conversations.client.common import answer_quietly, position_of


async def later_menu(update: Update, context: BotContext) -> None:
    """Show the times the client can pick to be reminded."""
    deps = context.deps
    query = update.callback_query
    assert query is not None and update.effective_chat is not None
    await answer_quietly(query)
    options = remind_later_options(
        deps.clock.now(), deps.settings.timezone, deps.settings.quiet_hours
    )
    await update.effective_chat.send_message(
        deps.guide.message("later_menu"),
        reply_markup=keyboards.later_options(deps.guide, options, deps.settings.timezone),
    )


async def later_pick(update: Update, context: BotContext) -> None:
    """Schedule the reminder at the time the client picked."""
    deps = context.deps
    query = update.callback_query
    chat, user = update.effective_chat, update.effective_user
    assert query is not None and query.data is not None and chat is not None and user is not None
    now = deps.clock.now()
    settings = deps.settings
    chosen = later_option(query.data.split(":", 1)[1], now, settings.timezone, settings.quiet_hours)
    if chosen is None:
        await answer_quietly(query)
        options = remind_later_options(now, settings.timezone, settings.quiet_hours)
        await chat.send_message(
            deps.guide.message("later_expired"),
            reply_markup=keyboards.later_options(deps.guide, options, deps.settings.timezone),
        )
        return
    conversation = position_of(context).conversation
    company_rut = conversation.company_rut if conversation else None
    await deps.reminders.remind_later(chat.id, user.id, company_rut, now, chosen.at)
    await answer_quietly(query)
    await chat.send_message(
        deps.guide.later_set(chosen, settings.timezone),
    )


async def stop_reminders(update: Update, context: BotContext) -> None:
    """Stop every reminder to this client, and record it for the firm."""
    deps = context.deps
    query = update.callback_query
    chat = update.effective_chat
    assert query is not None and chat is not None
    await deps.reminders.opt_out(chat.id, deps.clock.now())
    await answer_quietly(query)
    await chat.send_message(deps.guide.message("opted_out"))
