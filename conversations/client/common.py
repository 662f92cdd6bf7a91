"""What every part of the client's conversation needs: who is talking, replying, where they are."""

import logging
import secrets

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError

from bot.domain.rut import format_rut
from bot.guide import keyboards
from bot.guide.callbacks import parse_guide_data
from bot.guide.guide import local_date
from bot.services.deps import BotContext, Deps, Position
from bot.storage.repository import ClientInfo, Conversation
from conversations.client.states import GUIDE

logger = logging.getLogger(__name__)


def new_invitation_token() -> str:
    """Return a fresh, unguessable deep-link payload (32 characters of [A-Za-z0-9_-])."""
    return secrets.token_urlsafe(24)


def invitation_link(bot_username: str, token: str) -> str:
    """Return the deep link that opens this bot with an invitation."""
    return f"https://t.me/{bot_username}?start={token}"


def ids(update: Update) -> tuple[int, int]:
    """Return the (chat id, user id) of an update."""
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    return chat.id, user.id


def actor_name(update: Update) -> str:
    """Name the firm member acting, for the record: @username, else their name."""
    user = update.effective_user
    if user is None:
        return "—"
    return f"@{user.username}" if user.username else user.full_name


def client_info(update: Update) -> ClientInfo:
    """Return who sent an update, as the firm's record keeps it."""
    user = update.effective_user
    chat_id, user_id = ids(update)
    assert user is not None
    return ClientInfo(chat_id, user_id, user.full_name, user.username)


async def say(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> Message:
    """Send an HTML message to the update's chat."""
    chat = update.effective_chat
    assert chat is not None
    return await chat.send_message(text, reply_markup=markup)


async def answer_quietly(
    query: CallbackQuery, notice: str | None = None, *, show_alert: bool | None = None
) -> None:
    """Answer a button press; never let that decide anything.

    Stopping the spinner is cosmetic: a press answered before a restart, too old, or refused
    by Telegram (a 500, a timeout) must not cancel what the press does.
    """
    try:
        await query.answer(notice, show_alert=show_alert)
    except TelegramError as exc:
        logger.info("button answer skipped: %s", exc)


async def settle_button(update: Update, notice: str | None = None) -> None:
    """Stop the button's spinner (with a short notice, if given).

    The pressed message keeps its buttons: taking them off would cost every press a second
    call to Telegram, and an old button pressed later is answered by where the client is.
    """
    query = update.callback_query
    if query is not None:
        await answer_quietly(query, notice)


async def send_step(update: Update, deps: Deps, company_rut: str, number: int) -> None:
    """Send step `number` of the guide with its buttons, as a picture of its screen."""
    text, markup = deps.guide.step(number, company_rut), keyboards.step(deps.guide, number)
    picture = deps.guide.step_image(number)
    chat = update.effective_chat
    if picture is None or chat is None:
        await say(update, text, markup)
        return
    await deps.pictures.send(update.get_bot(), chat.id, picture, text, markup)


async def prompt_confirm_rut(update: Update, deps: Deps, conversation: Conversation) -> None:
    """Ask again to confirm the company RUT."""
    if not conversation.candidate_rut:
        return await ask_rut(update, deps)
    await say(
        update,
        deps.guide.message("rut_confirm", company_rut=format_rut(conversation.candidate_rut)),
        keyboards.confirm_rut(deps.guide),
    )


async def prompt_confirm_repeat(update: Update, deps: Deps, conversation: Conversation) -> None:
    """Offer again to repeat a completed authorization."""
    if not conversation.candidate_rut:
        return await ask_rut(update, deps)
    await offer_repeat(update, deps, conversation.candidate_rut)


async def prompt_ask_device(update: Update, deps: Deps, conversation: Conversation) -> None:
    """Ask again where the client is reading."""
    await ask_device(update, deps)


async def prompt_ask_rut(update: Update, deps: Deps, conversation: Conversation) -> None:
    """Ask again for the company RUT."""
    await ask_rut(update, deps)


async def prompt_guide(update: Update, deps: Deps, conversation: Conversation) -> None:
    """Show again the step the client's authorization is at."""
    if not conversation.company_rut:
        return await ask_rut(update, deps)
    authorization = await deps.authorizations.authorization(conversation.company_rut)
    if authorization is None or authorization.completed_at is not None:
        await say(update, deps.guide.message("no_conversation"))
    else:
        await send_step(update, deps, authorization.company_rut, authorization.step)


async def offer_repeat(update: Update, deps: Deps, company_rut: str) -> None:
    """Say the company already authorized, offering to repeat."""
    authorization = await deps.authorizations.authorization(company_rut)
    completed = authorization.completed_at if authorization else None
    date = local_date(completed, deps.settings.timezone) if completed else "—"
    await say(
        update,
        deps.guide.message(
            "already_done", company_rut=format_rut(company_rut), completed_date=date
        ),
        keyboards.repeat_completed(deps.guide),
    )


async def current_step(deps: Deps, conversation: Conversation | None) -> int | None:
    """Return the step of the client's authorization, if they are in the guide."""
    if conversation is None or conversation.state != GUIDE or not conversation.company_rut:
        return None
    authorization = await deps.authorizations.authorization(conversation.company_rut)
    return authorization.step if authorization else None


def position_of(context: BotContext) -> Position:
    """Return the conversation and authorization the router read for this update."""
    assert context.position is not None, "client handlers are reached through the router"
    return context.position


def step_of(position: Position) -> int | None:
    """Return the step of the client's authorization, if they are in the guide."""
    conversation = position.conversation
    if conversation is None or conversation.state != GUIDE or not conversation.company_rut:
        return None
    return position.authorization.step if position.authorization else None


async def conversation_of(update: Update, deps: Deps) -> Conversation | None:
    """Return the stored conversation of the update's chat and user."""
    return await deps.conversations.conversation(*ids(update))


async def ask_device(update: Update, deps: Deps) -> None:
    """Ask whether the client is at the computer or on the phone."""
    await say(update, deps.guide.message("ask_device"), keyboards.ask_device(deps.guide))


def reply_when(deps: Deps) -> str:
    """Say when the firm will answer a client who asked for help just now."""
    settings = deps.settings
    return deps.guide.reply_promise(deps.clock.now(), settings.firm_hours, settings.timezone)


async def ask_rut(update: Update, deps: Deps) -> None:
    """Ask for the company RUT (with the remind-me-later button)."""
    await say(update, deps.guide.message("ask_rut"), keyboards.ask_rut(deps.guide))


async def stale_button(update: Update, context: BotContext) -> None:
    """Tell the client a pressed button no longer applies, and show where they are."""
    deps = context.deps
    conversation = await conversation_of(update, deps)
    if conversation is None:
        chat_id, _ = ids(update)
        latest = await deps.authorizations.latest_authorization_of(chat_id, unfinished=False)
        pressed = parse_guide_data(update.callback_query.data if update.callback_query else None)
        if latest is not None and latest.completed_at is not None and pressed is not None:
            await settle_button(update)
            await say(
                update,
                deps.guide.message("already_completed", company_rut=format_rut(latest.company_rut)),
            )
            return
        await settle_button(update, deps.guide.message("stale_button_no_step"))
        await say(update, deps.guide.message("no_conversation"))
        return
    step = await current_step(deps, conversation)
    notice = (
        deps.guide.message("stale_button", step=step)
        if step is not None
        else deps.guide.message("stale_button_no_step")
    )
    await settle_button(update, notice)
    await deps.repeat_prompt(update, conversation)
