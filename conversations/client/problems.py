"""When the client is stuck: the problems of each step, their answers, and the firm in the loop.

Telegram measures texts in UTF-16 code units once their HTML is parsed (an emoji counts
two): what is relayed is measured so and shortened to fit, and the client is told only what
the firm really received.
"""

import logging
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import NamedTuple

from telegram import Document, Message, Update
from telegram.constants import FileSizeLimit, MessageLimit
from telegram.error import TelegramError

from bot.domain.confirmation import Verdict
from bot.domain.rut import format_rut
from bot.guide import keyboards
from bot.guide.callbacks import parse_problem_data
from bot.guide.guide import (
    CONFIRMATION_STEP,
    FINAL_STEP,
    telegram_length,
    visible_text,
)
from bot.services.deps import BotContext, Deps, Position
from bot.services.notifications import (
    MAX_ATTEMPTS,
    capture_line,
    client_message_for_firm,
    problem_report,
)
from bot.storage.repository import FirmMessage
from conversations.client import screenshots
from conversations.client.common import (
    client_info,
    ids,
    position_of,
    reply_when,
    say,
    settle_button,
    stale_button,
    step_of,
)

logger = logging.getLogger(__name__)

# Room left in a firm message for what the client wrote (UTF-16 code units).
MAX_RELAYED_TEXT = MessageLimit.MAX_TEXT_LENGTH - 500
# A photo's caption goes into a photo caption for the firm (1024 code units at most).
MAX_CAPTION = 300
# A photo this soon after completing is the screenshot of the SII's answer.
PROOF_WINDOW = timedelta(days=1)
# A screenshot sent as a file is told by its type or its name.
IMAGE_FILE_ENDINGS = (".png", ".jpg", ".jpeg")
# How many undelivered firm messages are looked through to tell whether one got out.
UNSENT_LOOKUP = 10_000
ELLIPSIS = "…"
# Characters that belong with the one before them: a cut never separates them.
_JOINERS = frozenset({"\u200d", "\ufe0e", "\ufe0f"})


class Fitted(NamedTuple):
    """A text fitted into a message: the part kept and the message rendered with it."""

    kept: str
    rendered: str
    shortened: bool


def visible_length(rendered_html: str) -> int:
    """Return how long Telegram counts an HTML text: what shows, in UTF-16 code units."""
    return telegram_length(visible_text(rendered_html))


def cut_to(text: str, units: int) -> str:
    """Return the longest start of `text` of at most `units` UTF-16 code units."""
    end, used = 0, 0
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            break
        end += 1
    # Keep an emoji sequence or an accented letter whole.
    while 0 < end < len(text) and (
        text[end] in _JOINERS or text[end - 1] == "\u200d" or unicodedata.combining(text[end])
    ):
        end -= 1
    return text[:end]


def fit(
    text: str, render: Callable[[str], str], limit: int, longest: int, mark: str = ELLIPSIS
) -> Fitted:
    """Keep at most `longest` units of `text` (then `mark`), fewer if rendered over `limit`."""
    room = longest
    while True:
        kept = text if telegram_length(text) <= room else cut_to(text, room) + mark
        rendered = render(kept)
        excess = visible_length(rendered) - limit
        if excess <= 0 or room <= 0:
            return Fitted(kept, rendered, kept != text)
        room = max(telegram_length(kept) - excess - telegram_length(mark), 0)


def is_image_document(message: Message) -> bool:
    """Tell whether a message carries a picture sent as a file (PNG or JPEG)."""
    document = message.document
    if document is None:
        return False
    mime_type = (document.mime_type or "").lower()
    name = (document.file_name or "").lower()
    return mime_type.startswith("image/") or name.endswith(IMAGE_FILE_ENDINGS)


async def reached_firm(deps: Deps, texts: Sequence[str]) -> bool:
    """Tell whether each of these queued texts was accepted by at least one firm chat."""
    firm_chats = set(deps.settings.firm_chat_ids)
    unsent = await deps.outbox.unsent_outbox(max_attempts=MAX_ATTEMPTS, limit=UNSENT_LOOKUP)
    waiting = Counter(m.text for m in unsent if m.chat_id in firm_chats and m.text in texts)
    return all(waiting[text] < len(firm_chats) for text in texts)


async def problem_button(update: Update, context: BotContext) -> None:
    """Show the problems of the client's step, or answer the one they picked."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    pressed = parse_problem_data(query.data)
    position = position_of(context)
    conversation, step = position.conversation, step_of(position)
    if pressed is None or step is None or pressed.step != step:
        await stale_button(update, context)
        return
    problem = deps.guide.problem(pressed.key) if pressed.key else None
    if pressed.key is not None and (
        problem is None
        or step not in problem.steps
        # Never offered: a problem in the client's own words reaches the firm by itself.
        or (pressed.to_firm and problem.ask_text)
        or (pressed.proof and not problem.ask_proof)
    ):
        await stale_button(update, context)
        return
    await settle_button(update)
    if problem is None:
        await say(
            update, deps.guide.message("problem_menu"), keyboards.problem_menu(deps.guide, step)
        )
        return
    company_rut = conversation.company_rut if conversation else None
    label = deps.guide.problem_label(problem)
    if pressed.to_firm or pressed.proof:
        # The answer did not help, or asks for evidence only the firm can judge: only now is
        # the firm's time asked for (once: a double tap finds the same problem already in
        # the firm's hands).
        chat_id, _ = ids(update)
        handoff = await deps.handoffs.open_handoff_of(chat_id)
        if handoff is None or (handoff.problem, handoff.step) != (label, step):
            await report_problem(update, deps, label, company_rut, step)
        key = "proof_asked" if pressed.proof else "problem_notified"
        await say(
            update,
            deps.guide.message(key, {"reply_when": reply_when(deps)}),
            keyboards.back_to_step(deps.guide, step),
        )
        return
    await say(
        update,
        deps.guide.problem_answer(problem, company_rut, step),
        keyboards.problem_answer(deps.guide, step, problem),
    )
    if problem.ask_text:
        # A problem in the client's own words goes to the firm with what they write next.
        await report_problem(update, deps, label, company_rut, step)


async def report_problem(
    update: Update,
    deps: Deps,
    problem: str,
    company_rut: str | None,
    step: int | None,
    photo_file_id: str | None = None,
    caption: str | None = None,
) -> Fitted:
    """Open a handoff for the client and tell every firm chat; return the report queued."""
    chat_id, user_id = ids(update)
    client = client_info(update)
    limit = MessageLimit.CAPTION_LENGTH if photo_file_id else MessageLimit.MAX_TEXT_LENGTH

    def named(quoted: str) -> str:
        return f"{problem}: «{quoted}»" if quoted else problem

    report = fit(
        caption or "",
        lambda quoted: problem_report(deps.guide, named(quoted), company_rut, client, step),
        limit,
        MAX_CAPTION,
        mark="",
    )
    await deps.handoffs.open_handoff(
        chat_id,
        user_id,
        company_rut,
        step,
        named(report.kept),
        deps.clock.now(),
        lambda handoff: [
            FirmMessage(firm_chat, report.rendered, handoff, photo_file_id)
            for firm_chat in deps.settings.firm_chat_ids
        ],
    )
    await deps.notifier.deliver_pending(update.get_bot())
    return report


async def relay_to_firm(update: Update, deps: Deps, message: Message) -> bool:
    """Pass the client's text to the firm if a handoff is open; tell whether it was."""
    chat_id, _ = ids(update)
    handoff = await deps.handoffs.open_handoff_of(chat_id)
    if handoff is None or message.text is None:
        return False
    client = client_info(update)
    body = fit(
        message.text,
        lambda text: client_message_for_firm(deps.guide, client, handoff.company_rut, text),
        MessageLimit.MAX_TEXT_LENGTH,
        MAX_RELAYED_TEXT,
    )
    await deps.outbox.queue_firm_messages(
        [FirmMessage(chat, body.rendered, handoff.id) for chat in deps.settings.firm_chat_ids],
        deps.clock.now(),
    )
    await deps.notifier.deliver_pending(update.get_bot())
    if not await reached_firm(deps, [body.rendered]):
        # Queued: the outbox job delivers it as soon as Telegram takes it.
        answer = deps.guide.message("client_message_pending")
    elif body.shortened:
        answer = deps.guide.message("client_message_shortened")
    else:
        answer = deps.guide.message("client_message_forwarded")
    await say(update, answer)
    return True


async def receive_photo(update: Update, context: BotContext, message: Message) -> None:
    """Keep a screenshot of the SII's answer as proof, or pass any other photo to the firm."""
    assert message.photo
    deps = context.deps
    file_id = message.photo[-1].file_id
    position = position_of(context)
    conversation, step = position.conversation, step_of(position)
    if await _read_at_the_end(update, deps, position, file_id):
        return
    if conversation is not None and conversation.company_rut and step == FINAL_STEP:
        await deps.authorizations.set_proof(conversation.company_rut, file_id)
        await say(update, deps.guide.message("proof_received"))
    elif conversation is None and await _late_proof(update, deps, file_id):
        return
    else:
        # A screenshot for a problem the firm already has (the one an answer asked for) is
        # named after it.
        chat_id, _ = ids(update)
        open_handoff = await deps.handoffs.open_handoff_of(chat_id)
        problem = (
            deps.guide.button("problem_photo_for", problem=open_handoff.problem)
            if open_handoff is not None and open_handoff.step == step
            else deps.guide.message("problem_photo")
        )
        company_rut = conversation.company_rut if conversation else None
        report = await report_problem(
            update, deps, problem, company_rut, step, file_id, message.caption
        )
        promise = {"reply_when": reply_when(deps)}
        if not await reached_firm(deps, [report.rendered]):
            answer = deps.guide.message("photo_pending", promise)
        elif report.shortened:
            answer = deps.guide.message("photo_caption_shortened", promise)
        else:
            answer = deps.guide.message("photo_forwarded", promise)
        await say(update, answer)
    if conversation is not None:
        await deps.repeat_prompt(update, conversation)


async def _read_at_the_end(
    update: Update, deps: Deps, position: Position, file_id: str, picture: bytes | None = None
) -> bool:
    """Answer a screenshot at step 6 or 7 by what it shows; False if it could not be read."""
    step, authorization = step_of(position), position.authorization
    if step is None or step < CONFIRMATION_STEP or authorization is None:
        return False
    if authorization.completed_at is not None:
        return False
    return await screenshots.take(update, deps, authorization, file_id, picture)


async def receive_document(update: Update, context: BotContext) -> bool:
    """Take a screenshot sent as a file at step 6 or 7 as a photo; False if it is not that."""
    deps = context.deps
    message = update.effective_message
    assert message is not None and message.document is not None
    position = position_of(context)
    conversation, step = position.conversation, step_of(position)
    if conversation is None or not conversation.company_rut or step is None:
        return False
    reading = deps.reader.available and step >= CONFIRMATION_STEP
    if step != FINAL_STEP and not reading:
        return False
    # Read, the answer says what it shows; not read, it is kept as the proof.
    caption = None if reading else deps.guide.message("proof_received")
    taken = await _as_photo(update, message.document, caption)
    if taken is None:
        return False
    file_id, picture = taken
    if reading and await _read_at_the_end(update, deps, position, file_id, picture):
        return True
    await deps.authorizations.set_proof(conversation.company_rut, file_id)
    await deps.repeat_prompt(update, conversation)
    return True


async def _as_photo(
    update: Update, document: Document, caption: str | None
) -> tuple[str, bytes] | None:
    """Send a picture the client sent as a file back to them as a photo; return its file id
    and the picture."""
    # The firm's notice goes out as a photo, and Telegram refuses a document's file id there.
    if document.file_size is not None and document.file_size > FileSizeLimit.PHOTOSIZE_UPLOAD:
        return None
    chat = update.effective_chat
    assert chat is not None
    try:
        content = await (await document.get_file()).download_as_bytearray()
        sent = await chat.send_photo(bytes(content), caption=caption)
    except TelegramError as exc:
        logger.info("picture file from chat %s not taken as a photo: %s", chat.id, exc)
        return None
    return (sent.photo[-1].file_id, bytes(content)) if sent.photo else None


async def _late_proof(update: Update, deps: Deps, file_id: str) -> bool:
    """Take a photo sent soon after completing as the proof; False if it is not that."""
    chat_id, _ = ids(update)
    latest = await deps.authorizations.latest_authorization_of(chat_id, unfinished=False)
    now = deps.clock.now()
    if latest is None or latest.completed_at is None or now - latest.completed_at > PROOF_WINDOW:
        return False
    reading = await screenshots.read(update, deps, latest.company_rut, file_id)
    if reading is not None and reading.verdict is Verdict.NOT_CONFIRMATION:
        # Never proof: the client may send the right one.
        await say(update, deps.guide.message("proof_not_confirmation"))
        return True
    record = screenshots.record_of(reading) if reading is not None else None
    await deps.authorizations.set_proof(latest.company_rut, file_id, record)
    text = deps.guide.message(
        "firm_proof",
        company_rut=format_rut(latest.company_rut),
        client_name=latest.display_name,
    )
    line = capture_line(deps.guide, replace(latest, proof_reading=record))
    if line:
        text = f"{text}\n{line}"
    if reading is not None and reading.verdict is Verdict.MISMATCH:
        await say(update, screenshots.mismatch_text(deps.guide, reading, latest.company_rut))
    await deps.outbox.queue_firm_messages(
        [FirmMessage(chat, text, photo_file_id=file_id) for chat in deps.settings.firm_chat_ids],
        now,
    )
    await deps.notifier.deliver_pending(update.get_bot())
    await say(update, deps.guide.message("proof_thanks"))
    return True
