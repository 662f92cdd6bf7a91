"""The client's conversation as one table: what each stored state accepts, and what always works.

The database is the only owner of where a client is. Every update reads the stored state and
is routed by the table below, so two processes, a restart or a failed reply can never leave a
second copy behind that disagrees (python-telegram-bot's ConversationHandler keeps its own
copy in memory; it is not used for that reason). A handler writes the new state and then
answers; if it fails, the client is shown again what the stored state asks.
"""

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import MessageEntity, Update
from telegram.error import BadRequest, NetworkError, TelegramError

from bot.guide.callbacks import (
    DELETE_PATTERN,
    DEVICE_PATTERN,
    GUIDE_PATTERN,
    LATER_MENU,
    LATER_PATTERN,
    PASS_ON_PATTERN,
    PROBLEM_PATTERN,
    REPEAT_PATTERN,
    RUT_PATTERN,
    START_PATTERN,
    STOP_REMINDERS_PATTERN,
)
from bot.services.deps import BotContext, Deps, Position
from bot.services.errors import ConversationFailed
from bot.storage.repository import Conversation
from conversations.client import authorization, common, privacy, problems, reminder_choices
from conversations.client.common import answer_quietly, stale_button
from conversations.client.states import ASK_DEVICE, ASK_RUT, CONFIRM_REPEAT, CONFIRM_RUT, GUIDE

logger = logging.getLogger(__name__)

Callback = Callable[[Update, BotContext], Awaitable[object]]


@dataclass(frozen=True)
class Input:
    """What a client sent, as the table tells inputs apart."""

    command: str | None = None  # "start" for "/start x" (any @bot suffix dropped)
    args: tuple[str, ...] = ()
    button: str | None = None  # a pressed button's callback data
    text: str | None = None  # typed text that is not a command
    image_file: bool = False  # a picture sent as a file (a screenshot, say)


@dataclass(frozen=True)
class Accepts:
    """One line of the table: an input it matches and the handler that takes it."""

    callback: Callback
    commands: tuple[str, ...] = ()
    button: str | None = None  # a regular expression on the callback data
    text: bool = False
    image_file: bool = False

    def matches(self, given: Input) -> bool:
        """Tell whether this line takes the input."""
        if self.commands:
            return given.command in self.commands
        if self.button is not None:
            return given.button is not None and re.match(self.button, given.button) is not None
        if self.image_file:
            return given.image_file
        return self.text and given.text is not None


def command(names: tuple[str, ...], callback: Callback) -> Accepts:
    """A line taking /name (any of `names`)."""
    return Accepts(callback, commands=names)


def button(pattern: str, callback: Callback) -> Accepts:
    """A line taking a button whose data matches `pattern`."""
    return Accepts(callback, button=pattern)


def typed_text(callback: Callback) -> Accepts:
    """A line taking typed text."""
    return Accepts(callback, text=True)


def image_file(callback: Callback) -> Accepts:
    """A line taking a picture sent as a file."""
    return Accepts(callback, image_file=True)


async def picture_file(update: Update, context: BotContext) -> None:
    """Take a screenshot sent as a file as the proof at step 7; else answer it as media."""
    if not await problems.receive_document(update, context):
        await authorization.unexpected_message(update, context)


Prompt = Callable[[Update, Deps, Conversation], Awaitable[None]]


@dataclass(frozen=True)
class State:
    """One state of the client's conversation: its stored name, what it accepts (tried
    first), and its prompt (what "show the client where they are" sends)."""

    name: str
    accepts: tuple[Accepts, ...]
    prompt: Prompt


# The client's conversation, one line per state.
STATES: dict[str, State] = {
    state.name: state
    for state in (
        # A RUT typed before answering where they are means they are ready: take it.
        State(
            ASK_DEVICE,
            (
                button(DEVICE_PATTERN, authorization.device_choice),
                typed_text(authorization.receive_rut),
            ),
            common.prompt_ask_device,
        ),
        State(ASK_RUT, (typed_text(authorization.receive_rut),), common.prompt_ask_rut),
        State(
            CONFIRM_RUT,
            (
                button(RUT_PATTERN, authorization.confirm_rut),
                typed_text(authorization.receive_rut),
            ),
            common.prompt_confirm_rut,
        ),
        State(
            CONFIRM_REPEAT,
            (button(REPEAT_PATTERN, authorization.confirm_repeat),),
            common.prompt_confirm_repeat,
        ),
        State(GUIDE, (button(GUIDE_PATTERN, authorization.guide_button),), common.prompt_guide),
    )
}


async def repeat_prompt(update: Update, deps: Deps, conversation: Conversation | None) -> None:
    """Show the client what their stored state asks now, by the state's own prompt."""
    if conversation is None:
        await common.say(update, deps.guide.message("no_conversation"))
        return
    state = STATES.get(conversation.state)
    if state is None:
        # A state the table does not know (a newer release's, say): never a wrong question.
        logger.error("chat %s is in an unknown state %r", conversation.chat_id, conversation.state)
        await common.say(update, deps.guide.message("no_conversation"))
        return
    await state.prompt(update, deps, conversation)


# What works whether or not a conversation is open.
ALWAYS: tuple[Accepts, ...] = (
    command(("start",), authorization.start),
    command(("ayuda", "help"), authorization.help_command),
    command(("cancelar", "cancel"), authorization.cancel),
    command(("privacidad",), privacy.privacy),
    command(("borrar_mis_datos",), privacy.ask_to_delete),
    button(START_PATTERN, authorization.start_choice),
    button(STOP_REMINDERS_PATTERN, reminder_choices.stop_reminders),
    button(DELETE_PATTERN, privacy.delete_choice),
    image_file(picture_file),
)

# What works only while a conversation is open.
IN_CONVERSATION: tuple[Accepts, ...] = (
    button(PASS_ON_PATTERN, authorization.pass_on),
    button(f"^{LATER_MENU}$", reminder_choices.later_menu),
    button(LATER_PATTERN, reminder_choices.later_pick),
    button(PROBLEM_PATTERN, problems.problem_button),
)


def read_input(update: Update) -> Input | None:
    """Tell what a private-chat update carries; None for what the client flow ignores."""
    query = update.callback_query
    if query is not None:
        return Input(button=query.data or "")
    message = update.message  # edited messages never run anything again
    if message is None:
        return None
    text = message.text
    if text is None:
        # A sticker, photo, voice or document: only a picture sent as a file has its own line.
        return Input(image_file=problems.is_image_document(message))
    first = message.entities[0] if message.entities else None
    if first is not None and first.type == MessageEntity.BOT_COMMAND and first.offset == 0:
        name = text[1 : first.length].split("@", 1)[0].lower()
        return Input(command=name, args=tuple(text[first.length :].split()))
    return Input(text=text)


def choose(given: Input, conversation: Conversation | None) -> Callback:
    """Pick the handler for an input in the stored state (the table, then the defaults)."""
    state = STATES.get(conversation.state) if conversation is not None else None
    lines = state.accepts if state is not None else ()
    lines += ALWAYS
    if conversation is not None:
        lines += IN_CONVERSATION
    for line in lines:
        if line.matches(given):
            return line.callback
    if given.command is not None:
        return authorization.unknown_command
    if given.button is not None:
        return stale_button
    return authorization.unexpected_message


async def route(update: Update, context: BotContext) -> None:
    """Hand a client's update to what the stored state accepts."""
    chat = update.effective_chat
    if chat is None or chat.type != chat.PRIVATE or update.effective_user is None:
        return
    given = read_input(update)
    if given is None:
        return
    deps = context.deps
    conversation, authorization = await deps.conversations.position(
        chat.id, update.effective_user.id
    )
    context.position = Position(conversation, authorization)
    context.args = list(given.args)
    try:
        await choose(given, conversation)(update, context)
    except Exception as exc:
        # Reported once, by the application's error handler, which then shows the client
        # what the stored state asks (show_stored_state).
        raise ConversationFailed(exc) from exc


async def show_stored_state(update: Update, context: BotContext) -> None:
    """Show the client what the stored state asks now; never raises.

    The one recovery, after a handler failed (it may have committed a new state before
    failing to answer) and for an update applied before a crash. Its own failure is logged,
    never told the client a second time.
    """
    chat, user = update.effective_chat, update.effective_user
    if chat is None or chat.type != chat.PRIVATE or user is None or read_input(update) is None:
        return
    deps = context.deps
    try:
        await repeat_prompt(update, deps, await deps.conversations.conversation(chat.id, user.id))
    except TelegramError as exc:
        if _unreachable(exc):
            # The client has no answer at all: have the poller process it again.
            deps.undelivered.add(update.update_id)
        logger.warning(
            "update %s: could not show the stored state again (%s)", update.update_id, exc
        )
    except Exception:
        logger.exception("update %s: could not show the stored state again", update.update_id)


async def show_again(update: Update, context: BotContext) -> None:
    """Answer an update applied before a crash: show the client where the stored state is.

    Its own answer may never have gone out; running it again could apply it twice.
    """
    if update.callback_query is not None and read_input(update) is not None:
        await answer_quietly(update.callback_query)
    await show_stored_state(update, context)


def _unreachable(error: TelegramError) -> bool:
    """Tell whether Telegram could not be reached (as opposed to refusing the request)."""
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)
