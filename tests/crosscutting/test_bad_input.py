"""Whatever a client sends that does not fit, the bot answers briefly and nothing moves.

Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
"""

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from telegram.error import BadRequest, NetworkError

from bot.guide.guide import local_date
from tests.support.fake_telegram import Call, button_data, message_update
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, TOKEN, Harness

RUT = "76086428-5"
SHOWN_RUT = "76.086.428-5"
GROUP = -100_987_654  # a group the bot was added to that is not one of the firm's
LONG_TEXT = "hola " * 1000
FIRM_CHATS = (FIRM_CHAT, FIRM_MEMBER)
# What a step's button looks like: once completed, pressing one is answered "already done".
STEP_BUTTON = re.compile(r"g:[1-7]:(next|back|save|mismatch|yes|no|back5)")

# Presses that belong nowhere, or to another place than the client is at: buttons left on
# older messages, and data no button of the bot ever carried. Each state leaves out the
# ones it really offers (State.offers).
FORGED = (
    "dev:pc",
    "dev:phone",
    "pass:on",
    "rut:ok",
    "rut:edit",
    "rep:yes",
    "rep:no",
    "g:1:next",
    "g:3:had",  # once "already has the permissions", which never counts as done any more
    "g:4:had",
    "g:5:had",
    "g:6:had",
    "g:7:yes",
    "g:3:nope",
    "g:9:next",
    "pb:2",
    "pb:3:nocert",  # a problem of steps 1-2 only
    "pb:2:certlist:firm",
    "pb:3:nocert:firm",
    "pb:4:listed:firm",
    "pb:5:boxes:firm",
    "pb:8:login:firm",
    "x",
)


@dataclass(frozen=True)
class State:
    """A place in the conversation: how it is stored, its buttons, and what fits there."""

    name: str
    stored: str  # the conversation's state in the database
    buttons: tuple[str, ...]  # callback data its question offers
    typed_text_answer: str  # the guide's message for a long typed text here
    offers: frozenset[str] = frozenset()  # the FORGED data that really works here
    step: int | None = None

    @property
    def forged(self) -> list[str]:
        """The presses that do not belong here."""
        return [data for data in FORGED if data not in self.offers]


def _step(number: int, *buttons: str, offers: tuple[str, ...] = ()) -> State:
    return State(
        f"step_{number}",
        "guide",
        (*buttons, "later:menu", f"pb:{number}"),
        "use_buttons",
        frozenset({"pass:on", *offers}),
        number,
    )


STATES = {
    state.name: state
    for state in (
        State(
            "ask_device",
            "ask_device",
            ("dev:pc", "dev:phone"),
            "rut_not_a_rut",
            frozenset({"dev:pc", "dev:phone"}),
        ),
        # Opened from the firm's invitation: the company is known, the question is the same.
        State(
            "ask_device_invited",
            "ask_device",
            ("dev:pc", "dev:phone"),
            "rut_not_a_rut",
            frozenset({"dev:pc", "dev:phone"}),
        ),
        State("ask_rut", "ask_rut", ("later:menu",), "rut_not_a_rut"),
        State(
            "confirm_rut",
            "confirm_rut",
            ("rut:ok", "rut:edit"),
            "rut_not_a_rut",
            frozenset({"rut:ok", "rut:edit"}),
        ),
        _step(1, "g:1:next", "g:1:back", offers=("g:1:next",)),
        _step(3, "g:3:next", "g:3:back"),
        _step(5, "g:5:next", "g:5:back", offers=("g:5:had", "pb:5:boxes:firm")),
        _step(6, "g:6:save", "g:6:mismatch", "g:6:back"),
        _step(7, "g:7:yes", "g:7:no", "g:7:back", offers=("g:7:yes",)),
        State(
            "confirm_repeat",
            "confirm_repeat",
            ("rep:no", "rep:yes"),
            "use_buttons",
            frozenset({"rep:yes", "rep:no"}),
        ),
    )
}


async def _complete_once(bot: Harness) -> None:
    await bot.reach_step(7, rut=SHOWN_RUT)
    await bot.press("g:7:yes")
    assert bot.last_text() == bot.deps.guide.message("done", company_rut=SHOWN_RUT)
    assert button_data(bot.request.last(CLIENT)) == ["st:another"]


async def _open_invitation(bot: Harness) -> None:
    """The firm invites the client's company and the client opens the link."""
    await bot.say(
        f"/invitar {SHOWN_RUT} Juana", user=FIRM_MEMBER, chat_id=FIRM_CHAT, chat_type="group"
    )
    [(token,)] = bot.db_rows("SELECT token FROM invitations WHERE company_rut = ?", (RUT,))
    await bot.say(f"/start {token}")


async def _reach(bot: Harness, state: State) -> None:
    if state.name == "ask_device":
        await bot.say("/start")
    elif state.name == "ask_device_invited":
        await _open_invitation(bot)
    elif state.name == "ask_rut":
        await bot.say("/start")
        await bot.press("dev:pc")
    elif state.name == "confirm_rut":
        await bot.say("/start")
        await bot.say(SHOWN_RUT)
    elif state.step is not None:
        await bot.reach_step(state.step, rut=SHOWN_RUT)
    else:
        await _complete_once(bot)
        await bot.say("/start")
        await bot.say(RUT)
        await bot.press("rut:ok")
    await _assert_shows(bot, state)
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == state.stored
    invited = state.name in ("ask_device_invited", "confirm_rut", "confirm_repeat")
    assert conversation.candidate_rut == (RUT if invited else None)


async def _prompt(bot: Harness, state: State) -> str:
    """What `state` asks, as the guide words it."""
    guide = bot.deps.guide
    if state.stored == "ask_device":
        return guide.message("ask_device")
    if state.stored == "ask_rut":
        return guide.message("ask_rut")
    if state.stored == "confirm_rut":
        return guide.message("rut_confirm", company_rut=SHOWN_RUT)
    if state.step is not None:
        return guide.step(state.step, RUT)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.completed_at is not None
    completed = local_date(authorization.completed_at, bot.settings.timezone)
    return guide.message("already_done", company_rut=SHOWN_RUT, completed_date=completed)


async def _assert_shows(bot: Harness, state: State) -> None:
    """The last message asks what `state` asks, with the buttons to answer it."""
    assert bot.last_text() == await _prompt(bot, state)
    assert set(state.buttons) <= set(button_data(bot.request.last(CLIENT)))


def _message(bot: Harness, key: str, **values: object) -> str:
    return bot.deps.guide.message(key, **values)


def _callback_answers(bot: Harness, since: int) -> list[Call]:
    return [c for c in bot.request.calls[since:] if c.method == "answerCallbackQuery"]


def _to_the_firm(bot: Harness, since: int) -> list[Call]:
    return [
        call
        for call in bot.request.calls[since:]
        if call.method.startswith("send") and int(call.params["chat_id"]) in FIRM_CHATS
    ]


def _assert_nothing_too_long(bot: Harness) -> None:
    for call in bot.request.calls:
        if call.method == "sendMessage":
            assert 0 < len(str(call.params["text"])) <= 4096
        if call.method == "sendPhoto":
            assert 0 < len(call.text) <= 1024
        if call.method == "answerCallbackQuery" and call.params.get("text"):
            assert len(str(call.params["text"])) <= 200


Send = Callable[[Harness], Awaitable[None]]


async def _sticker(bot: Harness) -> None:
    await bot.send("sticker")


async def _voice(bot: Harness) -> None:
    await bot.send("voice")


async def _document(bot: Harness) -> None:
    await bot.send("document")


# Photos are not "unexpected": they are proofs at step 7 and problem reports elsewhere
# (tests/client/test_problems.py).
MEDIA: dict[str, Send] = {
    "sticker": _sticker,
    "voice": _voice,
    "document": _document,
}


@pytest.mark.parametrize("state_name", STATES)
@pytest.mark.parametrize("kind", MEDIA)
async def test_media_is_answered_and_the_question_repeated(
    bot: Harness, state_name: str, kind: str
) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = bot.db_snapshot()
    sent_before = len(bot.texts())

    await MEDIA[kind](bot)

    new = bot.texts()[sent_before:]
    assert new == [_message(bot, "unexpected_input"), await _prompt(bot, state)]
    assert len(new[0]) < 200
    await _assert_shows(bot, state)
    assert bot.db_snapshot() == before
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
async def test_very_long_text_is_answered_briefly(bot: Harness, state_name: str) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = bot.db_snapshot()
    sent_before = len(bot.texts())

    await bot.say(LONG_TEXT)

    new = bot.texts()[sent_before:]
    assert new and new[0] == _message(bot, state.typed_text_answer) and len(new[0]) < 300
    assert LONG_TEXT[:40] not in "".join(new)
    if state.typed_text_answer == "rut_not_a_rut":
        # Where a RUT is taken, the answer itself asks for the RUT again.
        assert new == [new[0]]
    else:
        assert new == [new[0], await _prompt(bot, state)]
        await _assert_shows(bot, state)
    assert bot.db_snapshot() == before
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
async def test_unknown_command_is_answered_and_the_question_repeated(
    bot: Harness, state_name: str
) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = bot.db_snapshot()
    sent_before = len(bot.texts())

    await bot.say("/foo")

    new = bot.texts()[sent_before:]
    assert new == [_message(bot, "unknown_command"), await _prompt(bot, state)]
    await _assert_shows(bot, state)
    assert bot.db_snapshot() == before
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
@pytest.mark.parametrize("text", [SHOWN_RUT, "77.777.777-7", "hola", "/foo", LONG_TEXT])
async def test_edited_messages_get_no_reply(bot: Harness, state_name: str, text: str) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = bot.db_snapshot()
    calls_before = len(bot.request.calls)

    await bot.feed(message_update(CLIENT, text, edited=True))

    assert bot.request.calls[calls_before:] == []
    assert bot.db_snapshot() == before


@pytest.mark.parametrize("command", ["/start", "/ayuda", "/help", "/cancelar", "/cancel"])
@pytest.mark.parametrize("state_name", ["ask_device", "step_3"])
async def test_edited_commands_get_no_reply(bot: Harness, state_name: str, command: str) -> None:
    await _reach(bot, STATES[state_name])
    before = bot.db_snapshot()
    calls_before = len(bot.request.calls)

    await bot.feed(message_update(CLIENT, command, edited=True))

    assert bot.request.calls[calls_before:] == []
    assert bot.db_snapshot() == before


GROUP_INPUTS = ["text", "long", "/start", "/foo", "/cancelar", "/ayuda", "sticker", "photo"]


@pytest.mark.parametrize("state_name", STATES)
@pytest.mark.parametrize("what", GROUP_INPUTS)
async def test_messages_from_a_foreign_group_get_no_reply(
    bot: Harness, state_name: str, what: str
) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = bot.db_snapshot()
    calls_before = len(bot.request.calls)

    where: dict[str, Any] = {"chat_id": GROUP, "chat_type": "group"}
    if what in ("sticker", "photo"):
        await bot.send(what, **where)
    else:
        text = {"text": SHOWN_RUT, "long": LONG_TEXT}.get(what, what)
        await bot.say(text, **where)

    assert bot.request.calls[calls_before:] == []
    assert bot.db_snapshot() == before
    assert await bot.repository.conversations.conversation(GROUP, CLIENT) is None


async def test_a_group_cannot_start_a_conversation(bot: Harness) -> None:
    calls_before = len(bot.request.calls)
    await bot.say("/start", chat_id=GROUP, chat_type="group")
    await bot.say(SHOWN_RUT, chat_id=GROUP, chat_type="group")
    await bot.feed(message_update(CLIENT, "/start", chat_id=GROUP, chat_type="supergroup"))
    assert bot.request.calls[calls_before:] == []
    assert bot.db_rows("SELECT * FROM conversations") == []


# --- stale and forged buttons -----------------------------------------------------------


@pytest.mark.parametrize("state_name", STATES)
async def test_stale_and_forged_buttons_change_nothing(bot: Harness, state_name: str) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = bot.db_snapshot()
    # A short notice on the button, then the question the client is really at.
    notice = (
        _message(bot, "stale_button", step=state.step)
        if state.step is not None
        else _message(bot, "stale_button_no_step")
    )
    prompt = await _prompt(bot, state)
    assert state.forged

    for data in state.forged:
        calls_before = len(bot.request.calls)
        sent_before = len(bot.texts())

        await bot.press(data)

        answers = _callback_answers(bot, calls_before)
        assert [answer.params.get("text") for answer in answers] == [notice], data
        assert bot.texts()[sent_before:] == [prompt], data
        assert set(state.buttons) <= set(button_data(bot.request.last(CLIENT))), data
        assert _to_the_firm(bot, calls_before) == [], data
        assert bot.db_snapshot() == before, data
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
async def test_another_company_pressed_anywhere_asks_for_the_rut_and_keeps_progress(
    bot: Harness, state_name: str
) -> None:
    # "Autorizar otra empresa" stays on the "¡Listo!" message of an earlier completion.
    await _reach(bot, STATES[state_name])
    before = bot.db_snapshot()
    sent_before = len(bot.texts())

    await bot.press("st:another")

    assert bot.texts()[sent_before:] == [_message(bot, "ask_rut")]
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "ask_rut"
    assert conversation.candidate_rut is None
    after = bot.db_snapshot()
    for table in before.keys() - {"conversations"}:
        assert after[table] == before[table], table
    # The next RUT typed is taken as usual.
    await bot.say("11.111.111-1")
    assert bot.last_text() == _message(bot, "rut_confirm", company_rut="11.111.111-1")


# --- text at a guide step, commands anywhere --------------------------------------------


@pytest.mark.parametrize("step", [1, 3, 5, 6, 7])
@pytest.mark.parametrize("text", ["listo", "ya lo hice", SHOWN_RUT, "sí"])
async def test_text_at_a_step_asks_to_use_the_buttons(bot: Harness, step: int, text: str) -> None:
    state = STATES[f"step_{step}"]
    await _reach(bot, state)
    before = bot.db_snapshot()
    sent_before = len(bot.texts())
    await bot.say(text)
    assert bot.texts()[sent_before:] == [
        _message(bot, "use_buttons"),
        bot.deps.guide.step(step, RUT),
    ]
    await _assert_shows(bot, state)
    assert bot.db_snapshot() == before


@pytest.mark.parametrize("command", ["/cancelar", "/cancel"])
async def test_cancel_mid_step_ends_and_keeps_the_authorization(bot: Harness, command: str) -> None:
    await bot.reach_step(3, rut=SHOWN_RUT)
    authorization = await bot.repository.authorizations.authorization(RUT)
    await bot.say(command)
    assert bot.last_text() == _message(bot, "cancelled")
    assert await bot.repository.conversations.conversation(CLIENT, CLIENT) is None
    assert await bot.repository.authorizations.authorization(RUT) == authorization
    assert authorization is not None and authorization.step == 3
    assert authorization.completed_at is None
    # Once cancelled, buttons and text no longer move anything.
    before = bot.db_snapshot()
    calls_before = len(bot.request.calls)
    await bot.press("g:3:next")
    [answer] = _callback_answers(bot, calls_before)
    assert answer.params.get("text") == _message(bot, "stale_button_no_step")
    assert bot.last_text() == _message(bot, "no_conversation")
    await bot.say("hola")
    assert bot.last_text() == _message(bot, "no_conversation")
    assert await bot.repository.authorizations.authorization(RUT) == authorization
    assert bot.db_snapshot() == before


async def test_cancel_and_cancelar_say_the_same(bot: Harness) -> None:
    answers = []
    for command in ("/cancelar", "/cancel"):
        await bot.say("/start")
        await bot.say(command)
        answers.append(bot.last_text())
        await bot.say(command)  # nothing left to cancel
        answers.append(bot.last_text())
    cancelled, nothing = _message(bot, "cancelled"), _message(bot, "nothing_to_cancel")
    assert answers == [cancelled, nothing, cancelled, nothing]
    assert cancelled != nothing


@pytest.mark.parametrize(
    "state_name", ["none", "ask_device", "ask_rut", "confirm_rut", "step_3", "step_7"]
)
async def test_help_and_ayuda_say_the_same(bot: Harness, state_name: str) -> None:
    if state_name != "none":
        await _reach(bot, STATES[state_name])
    before = bot.db_snapshot()
    replies = []
    for command in ("/ayuda", "/help"):
        sent_before = len(bot.texts())
        await bot.say(command)
        replies.append(bot.texts()[sent_before:])
        assert bot.db_snapshot() == before
    assert replies[0] == replies[1]
    if state_name == "none":
        assert replies[0] == [_message(bot, "help")]
    else:
        state = STATES[state_name]
        assert replies[0] == [_message(bot, "help"), await _prompt(bot, state)]
        await _assert_shows(bot, state)


async def _never_started(bot: Harness) -> None:
    pass


async def _cancelled(bot: Harness) -> None:
    await bot.reach_step(2, rut=SHOWN_RUT)
    await bot.say("/cancelar")


async def _cancelled_while_asked_the_device(bot: Harness) -> None:
    await bot.say("/start")
    await bot.say("/cancelar")


async def _finished(bot: Harness) -> None:
    await _complete_once(bot)


HISTORIES = [_never_started, _cancelled, _cancelled_while_asked_the_device, _finished]
# Without a conversation only the buttons that start one (st:*, rem:stop) and the deletion
# buttons (del:*) mean something; the forged ones, and any step's or problem's, do not.
WITHOUT_A_CONVERSATION = (*FORGED, "g:5:next", "pb:3", "pb:3:login", "pb:3:login:firm")


@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize(
    "send",
    [
        lambda bot: bot.say("hola"),
        lambda bot: bot.say(SHOWN_RUT),
        lambda bot: bot.say(LONG_TEXT),
        lambda bot: bot.send("sticker"),
        lambda bot: bot.send("voice"),
        lambda bot: bot.send("document"),
    ],
    ids=["hola", "rut", "long", "sticker", "voice", "document"],
)
async def test_without_a_conversation_the_client_is_pointed_to_start(
    bot: Harness, history: Send, send: Send
) -> None:
    await history(bot)
    before = bot.db_snapshot()
    assert await bot.repository.conversations.conversation(CLIENT, CLIENT) is None
    sent_before = len(bot.texts())
    await send(bot)
    new = bot.texts()[sent_before:]
    assert new == [_message(bot, "no_conversation")] and len(new[0]) < 200
    assert bot.db_snapshot() == before


@pytest.mark.parametrize("history", HISTORIES)
async def test_buttons_without_a_conversation_change_nothing(bot: Harness, history: Send) -> None:
    await history(bot)
    before = bot.db_snapshot()
    for data in WITHOUT_A_CONVERSATION:
        calls_before = len(bot.request.calls)
        sent_before = len(bot.texts())

        await bot.press(data)

        new = bot.texts()[sent_before:]
        answers = [answer.params.get("text") for answer in _callback_answers(bot, calls_before)]
        if history is _finished and STEP_BUTTON.fullmatch(data):
            # A real step's button after completing: the client hears it is done.
            assert new == [_message(bot, "already_completed", company_rut=SHOWN_RUT)], data
            assert answers == [None], data
        else:
            assert new == [_message(bot, "no_conversation")], data
            assert answers == [_message(bot, "stale_button_no_step")], data
        assert _to_the_firm(bot, calls_before) == [], data
        assert bot.db_snapshot() == before, data


async def test_unknown_command_without_a_conversation(bot: Harness) -> None:
    await bot.say("/foo")
    assert bot.texts() == [_message(bot, "unknown_command"), _message(bot, "no_conversation")]
    assert await bot.repository.conversations.conversation(CLIENT, CLIENT) is None


# --- the error handler ------------------------------------------------------------------

# Steps are photos. A Telegram error that is not a BadRequest loses the photo whether it is
# uploaded or sent again by its file_id (a BadRequest on a stored file_id is taken as a
# refused id and uploaded again instead: tests/client/test_guidance.py).
LOST_PHOTO = NetworkError("boom")


async def test_failed_step_message_is_reported_and_the_stored_step_still_works(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(3, rut=SHOWN_RUT)
    sent_before = len(bot.texts())
    bot.request.fail_next("sendPhoto", LOST_PHOTO)
    with caplog.at_level(logging.INFO):
        await bot.press("g:3:next")

    # The step was stored before it was sent: the client is shown it after the notice.
    new = bot.texts()[sent_before:]
    assert new == [_message(bot, "error"), guide.step(4, RUT)]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 4
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "guide"

    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors and any(record.exc_info for record in errors)
    logged = caplog.text
    assert "boom" in logged  # the failure itself is logged ...
    for private in ("Juana", "juana_pyme", RUT, SHOWN_RUT, "76086428", TOKEN):
        assert private not in logged  # ... but nothing about the client, nor the token
    assert TOKEN.split(":")[1] not in logged

    # The client can carry on from the stored step, as its buttons show it.
    await bot.say("/start")
    assert bot.last_text() == _message(bot, "restart_offer", step=4)
    await bot.press("st:keep")
    assert bot.last_text() == guide.step(4, RUT)
    await bot.press("g:4:next")
    assert bot.last_text() == guide.step(5, RUT)
    moved = await bot.repository.authorizations.authorization(RUT)
    assert moved is not None and moved.step == 5
    _assert_nothing_too_long(bot)


async def test_failed_error_notice_is_only_logged(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.reach_step(2, rut=SHOWN_RUT)
    bot.request.fail_next("sendPhoto", LOST_PHOTO)
    bot.request.fail_next("sendMessage", BadRequest("boom"))
    with caplog.at_level(logging.WARNING):
        await bot.press("g:2:next")
    assert "could not tell chat" in caplog.text
    assert "Juana" not in caplog.text and TOKEN not in caplog.text
    # The step is shown again after all, and its buttons work.
    assert bot.last_text() == bot.deps.guide.step(3, RUT)
    await bot.press("g:3:next")
    assert bot.last_text() == bot.deps.guide.step(4, RUT)


@pytest.mark.parametrize("entry", ["rut:ok", "rep:yes"])
async def test_failed_first_step_message_leaves_the_guide_usable(bot: Harness, entry: str) -> None:
    guide = bot.deps.guide
    await _reach(bot, STATES["confirm_repeat" if entry == "rep:yes" else "confirm_rut"])
    sent_before = len(bot.texts())
    bot.request.fail_next("sendPhoto", LOST_PHOTO)
    await bot.press(entry)
    assert bot.texts()[sent_before:] == [
        _message(bot, "who_can", company_rut=SHOWN_RUT),
        _message(bot, "error"),
        guide.step(1, RUT),
    ]
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "guide"
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 1

    await bot.say("/start")
    await bot.press("st:keep")
    assert bot.last_text() == guide.step(1, RUT)
    await bot.press("g:1:next")
    assert bot.last_text() == guide.step(2, RUT)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 2
