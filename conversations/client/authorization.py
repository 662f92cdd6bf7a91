"""The guided authorization: where the client is, the RUT, the seven SII steps, completion.

Every handler writes the new state to the database before it answers, so a killed process
resumes exactly where the client was; conversations.client.router picks the handler from the stored
state.
"""

import logging
import re

from telegram import Update

from bot.domain.rut import RutError, RutProblem, format_rut, parse_rut
from bot.guide import keyboards
from bot.guide.callbacks import (
    ANOTHER_COMPANY,
    KEEP_GOING,
    ON_PHONE,
    REPEAT_YES,
    RESUME,
    RUT_EDIT,
    GuideAction,
    GuideButton,
    parse_guide_data,
)
from bot.guide.guide import (
    CONFIRMATION_STEP,
    FINAL_STEP,
    PERMISSIONS_STEP,
    local_date,
)
from bot.services.deps import BotContext, Deps
from bot.storage.repository import EventKind
from conversations.client import problems
from conversations.client.common import (
    ask_device,
    ask_rut,
    client_info,
    conversation_of,
    ids,
    invitation_link,
    new_invitation_token,
    offer_repeat,
    position_of,
    say,
    send_step,
    settle_button,
    stale_button,
    step_of,
)
from conversations.client.completion import complete
from conversations.client.states import ASK_DEVICE, ASK_RUT, CONFIRM_REPEAT, CONFIRM_RUT, GUIDE

logger = logging.getLogger(__name__)


# What a deep-link payload may be (Telegram allows up to 64 of these characters).
INVITATION_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Which buttons each step offers; anything else pressed there is stale or forged.
_ACTIONS: dict[int, frozenset[GuideAction]] = {
    1: frozenset({GuideAction.NEXT, GuideAction.BACK}),
    2: frozenset({GuideAction.NEXT, GuideAction.BACK}),
    3: frozenset({GuideAction.NEXT, GuideAction.BACK}),
    4: frozenset({GuideAction.NEXT, GuideAction.BACK}),
    5: frozenset({GuideAction.NEXT, GuideAction.BACK}),
    CONFIRMATION_STEP: frozenset({GuideAction.SAVED_USER, GuideAction.MISMATCH, GuideAction.BACK}),
    FINAL_STEP: frozenset(
        {
            GuideAction.SUCCESS,
            GuideAction.NOT_SAVED,
            GuideAction.BACK,
            GuideAction.BACK_TO_PERMISSIONS,
        }
    ),
}


async def _welcome(update: Update, deps: Deps, invited_rut: str | None = None) -> None:
    """Greet, offer any unfinished authorization, and ask where the client is reading.

    The SII page needs the computer with the certificate, while most clients open the
    invitation on the phone: that gap is where they give up, so it is asked first.
    """
    chat_id, user_id = ids(update)
    await deps.conversations.set_conversation(
        chat_id, user_id, ASK_DEVICE, deps.clock.now(), candidate_rut=invited_rut
    )
    await say(update, deps.guide.message("welcome"))
    unfinished = (
        await deps.authorizations.latest_authorization_of(chat_id, unfinished=True)
        if invited_rut is None
        else None
    )
    if unfinished is not None:
        await say(
            update,
            deps.guide.message(
                "resume_offer", company_rut=format_rut(unfinished.company_rut), step=unfinished.step
            ),
            keyboards.resume(deps.guide, unfinished.step),
        )
    await ask_device(update, deps)


async def device_choice(update: Update, context: BotContext) -> None:
    """Carry on at the computer, or explain how to open this chat there."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    # Routed here only from ASK_DEVICE (the state table), so there is a conversation.
    conversation = position_of(context).conversation
    assert conversation is not None
    await settle_button(update)
    if query.data == ON_PHONE:
        await say(update, deps.guide.message("on_phone"), keyboards.on_phone(deps.guide))
        return
    if conversation.candidate_rut:
        return await _ask_to_confirm(update, deps, conversation.candidate_rut)
    chat_id, user_id = ids(update)
    await deps.conversations.set_conversation(chat_id, user_id, ASK_RUT, deps.clock.now())
    await ask_rut(update, deps)


async def _begin_guide(update: Update, deps: Deps, company_rut: str, confirmed_in: str) -> None:
    """Start the guide from the confirmation the client answered (once, however many taps)."""
    now = deps.clock.now()
    authorization = await deps.authorizations.start_guide(
        client_info(update),
        company_rut,
        GUIDE,
        now,
        deps.first_reminder(now),
        only_from=confirmed_in,
    )
    if authorization is None:
        # Another tap on the same confirmation got there first: show where the client is.
        await deps.repeat_prompt(update, await conversation_of(update, deps))
        return
    logger.info("chat %s started authorization at step 1", ids(update)[0])
    await say(
        update,
        deps.guide.message("who_can", company_rut=format_rut(company_rut)),
        keyboards.pass_on(deps.guide),
    )
    await send_step(update, deps, company_rut, authorization.step)


async def pass_on(update: Update, context: BotContext) -> None:
    """Prepare a message, with a fresh deep link, for the person who has the certificate."""
    deps = context.deps
    conversation = position_of(context).conversation
    if conversation is None or conversation.state != GUIDE or not conversation.company_rut:
        await stale_button(update, context)
        return
    await settle_button(update)
    chat_id, _ = ids(update)
    company_rut = conversation.company_rut
    now = deps.clock.now()
    expires = now + deps.settings.invitation_ttl
    token = new_invitation_token()
    await deps.firm.create_invitation(
        token, company_rut, None, chat_id, now, expires, event=EventKind.PASSED_ON
    )
    values: dict[str, object] = {
        "company_rut": format_rut(company_rut),
        "expires": local_date(expires, deps.settings.timezone),
        "link": invitation_link(update.get_bot().username, token),
    }
    await say(update, deps.guide.message("pass_on_intro", **values))
    await say(update, deps.guide.message("pass_on_forward", **values))


# --- entry and RUT ----------------------------------------------------------------------


async def start(update: Update, context: BotContext) -> None:
    """Welcome the client, or offer to carry on if they are mid-conversation."""
    deps = context.deps
    if context.args:
        return await _open_invitation(update, deps, context.args[0])
    conversation = position_of(context).conversation
    if conversation is None or (
        # Nothing chosen yet (also a /start delivered again after a crash): welcome again,
        # rather than asking whether to carry on with nothing.
        conversation.state in (ASK_DEVICE, ASK_RUT) and not conversation.candidate_rut
    ):
        return await _welcome(update, deps)
    step = step_of(position_of(context))
    text = (
        deps.guide.message("restart_offer", step=step)
        if step is not None
        else deps.guide.message("restart_offer_no_step")
    )
    await say(update, text, keyboards.keep_or_start_over(deps.guide))


async def _open_invitation(update: Update, deps: Deps, token: str) -> None:
    """Start from the firm's deep link: the company is known, the client only confirms it."""
    chat_id, _ = ids(update)
    now = deps.clock.now()
    invitation = (
        await deps.firm.claim_invitation(token, chat_id, now)
        if INVITATION_TOKEN.fullmatch(token)
        else None
    )
    if invitation is None:
        await say(update, deps.guide.message("invite_invalid"))
        return await _welcome(update, deps)
    return await _welcome(update, deps, invited_rut=invitation.company_rut)


async def _ask_to_confirm(update: Update, deps: Deps, company_rut: str) -> None:
    """Remember the RUT and ask the client to confirm it."""
    chat_id, user_id = ids(update)
    await deps.conversations.set_conversation(
        chat_id, user_id, CONFIRM_RUT, deps.clock.now(), candidate_rut=company_rut
    )
    await say(
        update,
        deps.guide.message("rut_confirm", company_rut=format_rut(company_rut)),
        keyboards.confirm_rut(deps.guide),
    )


async def start_choice(update: Update, context: BotContext) -> None:
    """Carry on, start over, or resume the stored authorization, as the client chose."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    conversation = position_of(context).conversation
    if query.data == KEEP_GOING and conversation is not None:
        await deps.repeat_prompt(update, conversation)
        return
    if query.data == ANOTHER_COMPANY:
        chat_id, user_id = ids(update)
        await deps.conversations.set_conversation(chat_id, user_id, ASK_RUT, deps.clock.now())
        await ask_rut(update, deps)
        return
    if query.data == RESUME:
        chat_id, _ = ids(update)
        unfinished = await deps.authorizations.latest_authorization_of(chat_id, unfinished=True)
        if unfinished is not None:
            now = deps.clock.now()
            resumed = await deps.authorizations.resume_guide(
                client_info(update), unfinished.company_rut, GUIDE, now, deps.first_reminder(now)
            )
            if resumed is not None:
                await send_step(update, deps, resumed.company_rut, resumed.step)
                return
    return await _welcome(update, deps)


async def receive_rut(update: Update, context: BotContext) -> None:
    """Check the company RUT the client typed and ask them to confirm it."""
    deps = context.deps
    message = update.effective_message
    assert message is not None and message.text is not None
    try:
        company_rut = parse_rut(message.text)
    except RutError as error:
        key = (
            "rut_wrong_check_digit"
            if error.problem is RutProblem.WRONG_CHECK_DIGIT
            else "rut_not_a_rut"
        )
        await say(update, deps.guide.message(key))
        return
    if company_rut == deps.settings.representative_rut:
        await say(update, deps.guide.message("rut_is_representative"))
        return
    return await _ask_to_confirm(update, deps, company_rut)


async def _candidate(update: Update, context: BotContext) -> str | None:
    """The RUT a confirmation button is about, its press settled; None (told it is stale)
    if the stored conversation has none."""
    conversation = position_of(context).conversation
    if conversation is None or not conversation.candidate_rut:
        await stale_button(update, context)
        return None
    await settle_button(update)
    return conversation.candidate_rut


async def confirm_rut(update: Update, context: BotContext) -> None:
    """Start the guide for the confirmed RUT, or ask for it again."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    # Routed here only from CONFIRM_RUT (the state table).
    company_rut = await _candidate(update, context)
    if company_rut is None:
        return
    chat_id, user_id = ids(update)
    if query.data == RUT_EDIT:
        await deps.conversations.set_conversation(chat_id, user_id, ASK_RUT, deps.clock.now())
        await ask_rut(update, deps)
        return
    existing = await deps.authorizations.authorization(company_rut)
    if existing is not None and existing.completed_at is not None:
        await deps.conversations.set_conversation(
            chat_id, user_id, CONFIRM_REPEAT, deps.clock.now(), candidate_rut=company_rut
        )
        await offer_repeat(update, deps, company_rut)
        return
    return await _begin_guide(update, deps, company_rut, CONFIRM_RUT)


async def confirm_repeat(update: Update, context: BotContext) -> None:
    """Repeat a completed authorization only if the client insists."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    # Routed here only from CONFIRM_REPEAT (the state table).
    company_rut = await _candidate(update, context)
    if company_rut is None:
        return
    if query.data == REPEAT_YES:
        return await _begin_guide(update, deps, company_rut, CONFIRM_REPEAT)
    await deps.conversations.end_conversation(*ids(update))
    await say(update, deps.guide.message("already_done_ok"))


# --- the seven steps --------------------------------------------------------------------


async def guide_button(update: Update, context: BotContext) -> None:
    """Move through the steps as the client presses each step's buttons."""
    deps = context.deps
    query = update.callback_query
    assert query is not None
    pressed = parse_guide_data(query.data)
    # Read by the router for this update, with the conversation it routed by.
    authorization = position_of(context).authorization
    if (
        pressed is not None
        and authorization is not None
        and authorization.completed_at is None
        and _is_repeat(pressed, authorization.step)
    ):
        # A double tap, or the same press delivered again after a restart (whose answer may
        # never have been sent): no "wrong button" notice, just where the client is.
        await settle_button(update)
        await send_step(update, deps, authorization.company_rut, authorization.step)
        return
    if (
        pressed is None
        or authorization is None
        or authorization.completed_at is not None
        or pressed.step != authorization.step
        or pressed.action not in _ACTIONS[pressed.step]
    ):
        await stale_button(update, context)
        return
    await settle_button(update)
    step, action = pressed.step, pressed.action
    now = deps.clock.now()
    rut = authorization.company_rut

    if action is GuideAction.SUCCESS:
        return await complete(update, deps, authorization, step)
    if action is GuideAction.NOT_SAVED:
        await deps.authorizations.touch(rut, now)
        await say(update, deps.guide.message("not_saved"), keyboards.not_saved(deps.guide))
        return
    if action is GuideAction.BACK and step == 1:
        return await _ask_to_confirm(update, deps, rut)

    target = _target(step, action)
    assert target is not None
    if not await deps.authorizations.move_to_step(rut, step, target, now):
        await stale_button(update, context)
        return
    if action is GuideAction.MISMATCH:
        await say(update, deps.guide.message("mismatch"))
    await send_step(update, deps, rut, target)


def _target(step: int, action: GuideAction) -> int | None:
    """Return the step a button leads to (None where it leads elsewhere or nowhere)."""
    if action in (GuideAction.MISMATCH, GuideAction.BACK_TO_PERMISSIONS):
        return PERMISSIONS_STEP
    if action is GuideAction.BACK:
        return step - 1 if step > 1 else None
    if action in (GuideAction.NEXT, GuideAction.SAVED_USER):
        return step + 1
    return None


def _is_repeat(pressed: GuideButton, current: int) -> bool:
    """Tell whether a press is the one that brought the client to `current`."""
    return (
        pressed.step != current
        and pressed.action in _ACTIONS[pressed.step]
        and _target(pressed.step, pressed.action) == current
    )


# --- anywhere in the conversation -------------------------------------------------------


async def cancel(update: Update, context: BotContext) -> None:
    """End the conversation politely, keeping the progress for later."""
    deps = context.deps
    conversation = position_of(context).conversation
    if conversation is None:
        await say(update, deps.guide.message("nothing_to_cancel"))
        return
    await deps.conversations.end_conversation(*ids(update))
    await say(update, deps.guide.message("cancelled"))


async def help_command(update: Update, context: BotContext) -> None:
    """Explain what the bot does and its commands, then repeat the current question."""
    deps = context.deps
    await say(update, deps.guide.message("help"))
    conversation = position_of(context).conversation
    if conversation is not None:
        await deps.repeat_prompt(update, conversation)


async def unknown_command(update: Update, context: BotContext) -> None:
    """Say the command is unknown and repeat the current question."""
    deps = context.deps
    await say(update, deps.guide.message("unknown_command"))
    await deps.repeat_prompt(update, position_of(context).conversation)


async def unexpected_message(update: Update, context: BotContext) -> None:
    """Answer media or text that does not fit here, and repeat the current question.

    A photo is a proof at step 7 and a problem report elsewhere; text goes to the firm
    while a handoff is open.
    """
    deps = context.deps
    message = update.effective_message
    if message is not None and message.photo:
        await problems.receive_photo(update, context, message)
        return
    if message is not None and await problems.relay_to_firm(update, deps, message):
        return
    conversation = position_of(context).conversation
    is_text = message is not None and message.text is not None
    if conversation is None:
        await say(update, deps.guide.message("no_conversation"))
        return
    await say(update, deps.guide.message("use_buttons" if is_text else "unexpected_input"))
    await deps.repeat_prompt(update, conversation)
