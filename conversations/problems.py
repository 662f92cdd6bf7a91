"""When the client is stuck: the problems of each step, their answers, and the firm in the loop."""

from datetime import timedelta

from telegram import Message, Update
from telegram.constants import MessageLimit

from bot.deps import Deps, get_deps
from bot.notifications import client_message_for_firm, problem_report
from bot.repository import FirmMessage
from bot.rut import format_rut
from conversations import keyboards
from conversations.callbacks import parse_problem_data
from conversations.common import (
    Context,
    client_info,
    conversation_of,
    current_step,
    ids,
    repeat_prompt,
    reply_when,
    say,
    settle_button,
    stale_button,
)
from conversations.guide import FINAL_STEP

# Room left in a firm message for what the client wrote.
MAX_RELAYED_TEXT = MessageLimit.MAX_TEXT_LENGTH - 500
# A photo's caption goes into a photo caption for the firm (1024 characters at most).
MAX_CAPTION = 300
# A photo this soon after completing is the screenshot of the SII's answer.
PROOF_WINDOW = timedelta(days=1)


async def problem_button(update: Update, context: Context) -> None:
    """Show the problems of the client's step, or answer the one they picked."""
    deps = get_deps(context)
    query = update.callback_query
    assert query is not None
    pressed = parse_problem_data(query.data)
    conversation = await conversation_of(update, deps)
    step = await current_step(deps, conversation)
    if pressed is None or step is None or pressed.step != step:
        await stale_button(update, context)
        return
    problem = deps.guide.problem(pressed.key) if pressed.key else None
    if pressed.key is not None and (
        problem is None
        or step not in problem.steps
        # Never offered: a problem in the client's own words reaches the firm by itself.
        or (pressed.to_firm and problem.ask_text)
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
    if pressed.to_firm:
        # The answer did not help: only now is the firm's time asked for (once: a double
        # tap finds the same problem already in the firm's hands).
        chat_id, _ = ids(update)
        handoff = await deps.repository.open_handoff_of(chat_id)
        if handoff is None or (handoff.problem, handoff.step) != (problem.label, step):
            await report_problem(update, deps, problem.label, company_rut, step)
        await say(
            update,
            deps.guide.message("problem_notified", {"reply_when": reply_when(deps)}),
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
        await report_problem(update, deps, problem.label, company_rut, step)


async def report_problem(
    update: Update,
    deps: Deps,
    problem: str,
    company_rut: str | None,
    step: int | None,
    photo_file_id: str | None = None,
) -> None:
    """Open a handoff for the client and tell every firm chat, with the context."""
    chat_id, user_id = ids(update)
    text = problem_report(deps.guide, problem, company_rut, client_info(update), step)
    await deps.repository.open_handoff(
        chat_id,
        user_id,
        company_rut,
        step,
        problem,
        deps.clock.now(),
        lambda handoff: [
            FirmMessage(firm_chat, text, handoff, photo_file_id)
            for firm_chat in deps.settings.firm_chat_ids
        ],
    )
    await deps.notifier.deliver_pending(update.get_bot())


async def relay_to_firm(update: Update, deps: Deps, message: Message) -> bool:
    """Pass the client's text to the firm if a handoff is open; tell whether it was."""
    chat_id, _ = ids(update)
    handoff = await deps.repository.open_handoff_of(chat_id)
    if handoff is None or message.text is None:
        return False
    text = message.text
    if len(text) > MAX_RELAYED_TEXT:
        text = text[:MAX_RELAYED_TEXT] + "…"
    body = client_message_for_firm(deps.guide, client_info(update), handoff.company_rut, text)
    await deps.repository.queue_firm_messages(
        [FirmMessage(chat, body, handoff.id) for chat in deps.settings.firm_chat_ids],
        deps.clock.now(),
    )
    await deps.notifier.deliver_pending(update.get_bot())
    await say(update, deps.guide.message("client_message_forwarded"))
    return True


async def receive_photo(update: Update, deps: Deps, message: Message) -> None:
    """Keep a screenshot of the SII's answer as proof, or pass any other photo to the firm."""
    assert message.photo
    file_id = message.photo[-1].file_id
    conversation = await conversation_of(update, deps)
    step = await current_step(deps, conversation)
    if conversation is not None and conversation.company_rut and step == FINAL_STEP:
        await deps.repository.set_proof(conversation.company_rut, file_id)
        await say(update, deps.guide.message("proof_received"))
    elif conversation is None and await _late_proof(update, deps, file_id):
        return
    else:
        problem = deps.guide.message("problem_photo")
        if message.caption:
            problem = f"{problem}: «{message.caption[:MAX_CAPTION]}»"
        company_rut = conversation.company_rut if conversation else None
        await report_problem(update, deps, problem, company_rut, step, file_id)
        await say(update, deps.guide.message("photo_forwarded", {"reply_when": reply_when(deps)}))
    if conversation is not None:
        await repeat_prompt(update, deps, conversation)


async def _late_proof(update: Update, deps: Deps, file_id: str) -> bool:
    """Take a photo sent soon after completing as the proof; False if it is not that."""
    chat_id, _ = ids(update)
    latest = await deps.repository.latest_authorization_of(chat_id, unfinished=False)
    now = deps.clock.now()
    if latest is None or latest.completed_at is None or now - latest.completed_at > PROOF_WINDOW:
        return False
    await deps.repository.set_proof(latest.company_rut, file_id)
    text = deps.guide.message(
        "firm_proof",
        company_rut=format_rut(latest.company_rut),
        client_name=latest.display_name,
    )
    await deps.repository.queue_firm_messages(
        [FirmMessage(chat, text, photo_file_id=file_id) for chat in deps.settings.firm_chat_ids],
        now,
    )
    await deps.notifier.deliver_pending(update.get_bot())
    await say(update, deps.guide.message("proof_thanks"))
    return True
