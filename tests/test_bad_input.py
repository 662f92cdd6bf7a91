"""Whatever a client sends that does not fit, the bot answers briefly and nothing moves."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from telegram.error import BadRequest

from bot.repository import Authorization, Conversation
from tests.conftest import CLIENT, TOKEN, Harness
from tests.fake_telegram import button_data, message_update

RUT = "76086428-5"
SHOWN_RUT = "76.086.428-5"
GROUP = -100_987_654  # a group the bot was added to that is not one of the firm's
LONG_TEXT = "hola " * 1000

MEDIA_ANSWER = "No puedo leer ese tipo de mensaje"
USE_BUTTONS = "usa los botones"
UNKNOWN_COMMAND = "No conozco ese comando"
NOT_A_RUT = "no parece un RUT"
START_HINT = "Escribe /start para comenzar"


@dataclass(frozen=True)
class State:
    """A place in the conversation, how it is shown, and its buttons."""

    name: str
    prompt: str
    buttons: list[str]
    typed_text_answer: str  # what a long typed text gets here


STATES = {
    "ask_rut": State("ask_rut", "escribe el <b>RUT de la empresa</b>", [], NOT_A_RUT),
    "confirm_rut": State(
        "confirm_rut",
        f"¿El RUT de la empresa es <b>{SHOWN_RUT}</b>?",
        ["rut:ok", "rut:edit"],
        NOT_A_RUT,
    ),
    "step_1": State("step_1", "Paso 1 de 7", ["g:1:next", "g:1:back"], USE_BUTTONS),
    "step_3": State("step_3", "Paso 3 de 7", ["g:3:next", "g:3:back"], USE_BUTTONS),
    "step_6": State("step_6", "Paso 6 de 7", ["g:6:save", "g:6:mismatch", "g:6:back"], USE_BUTTONS),
    "step_7": State("step_7", "Paso 7 de 7", ["g:7:yes", "g:7:no", "g:7:back"], USE_BUTTONS),
    "confirm_repeat": State(
        "confirm_repeat",
        f"<code>{SHOWN_RUT}</code> ya autorizó",
        ["rep:no", "rep:yes"],
        USE_BUTTONS,
    ),
}


async def _complete_once(bot: Harness) -> None:
    await bot.reach_step(7, rut=SHOWN_RUT)
    await bot.press("g:7:yes")
    assert "¡Listo!" in bot.last_text()


async def _reach(bot: Harness, state: State) -> None:
    if state.name == "ask_rut":
        await bot.say("/start")
    elif state.name == "confirm_rut":
        await bot.say("/start")
        await bot.say(SHOWN_RUT)
    elif state.name.startswith("step_"):
        await bot.reach_step(int(state.name.removeprefix("step_")), rut=SHOWN_RUT)
    else:
        await _complete_once(bot)
        await bot.say("/start")
        await bot.say(RUT)
        await bot.press("rut:ok")
    _assert_shows(bot, state)


def _assert_shows(bot: Harness, state: State) -> None:
    """The last message asks what `state` asks, with the buttons to answer it."""
    assert state.prompt in bot.last_text()
    if state.buttons:
        assert set(state.buttons) <= set(button_data(bot.request.last(CLIENT)))


async def _snapshot(bot: Harness) -> tuple[Conversation | None, Authorization | None]:
    return (
        await bot.repository.conversation(CLIENT, CLIENT),
        await bot.repository.authorization(RUT),
    )


def _assert_nothing_too_long(bot: Harness) -> None:
    for call in bot.request.calls:
        if call.method == "sendMessage":
            assert 0 < len(str(call.params["text"])) <= 4096
        if call.method == "answerCallbackQuery" and call.params.get("text"):
            assert len(str(call.params["text"])) <= 200


Send = Callable[[Harness], Awaitable[None]]


async def _sticker(bot: Harness) -> None:
    await bot.send("sticker")


async def _voice(bot: Harness) -> None:
    await bot.send("voice")


async def _document(bot: Harness) -> None:
    await bot.send("document")


async def _long_text(bot: Harness) -> None:
    await bot.say(LONG_TEXT)


async def _unknown_command(bot: Harness) -> None:
    await bot.say("/foo")


# Photos are not "unexpected": they are proofs at step 7 and problem reports elsewhere
# (tests/test_problems.py).
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
    before = await _snapshot(bot)
    sent_before = len(bot.texts())

    await MEDIA[kind](bot)

    new = bot.texts()[sent_before:]
    assert len(new) == 2
    assert MEDIA_ANSWER in new[0] and len(new[0]) < 200
    _assert_shows(bot, state)
    assert await _snapshot(bot) == before
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
async def test_very_long_text_is_answered_briefly(bot: Harness, state_name: str) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = await _snapshot(bot)
    sent_before = len(bot.texts())

    await _long_text(bot)

    new = bot.texts()[sent_before:]
    assert new and state.typed_text_answer in new[0] and len(new[0]) < 300
    assert LONG_TEXT[:40] not in "".join(new)
    if state.typed_text_answer == NOT_A_RUT:
        # Where a RUT is expected, the answer itself asks for the RUT again.
        assert new == [new[0]] and "RUT de la empresa" in new[0]
    else:
        _assert_shows(bot, state)
    assert await _snapshot(bot) == before
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
async def test_unknown_command_is_answered_and_the_question_repeated(
    bot: Harness, state_name: str
) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = await _snapshot(bot)
    sent_before = len(bot.texts())

    await _unknown_command(bot)

    new = bot.texts()[sent_before:]
    assert len(new) == 2
    assert UNKNOWN_COMMAND in new[0] and "/ayuda" in new[0]
    _assert_shows(bot, state)
    assert await _snapshot(bot) == before
    _assert_nothing_too_long(bot)


@pytest.mark.parametrize("state_name", STATES)
@pytest.mark.parametrize("text", [SHOWN_RUT, "77.777.777-7", "hola", "/foo", LONG_TEXT])
async def test_edited_messages_get_no_reply(bot: Harness, state_name: str, text: str) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = await _snapshot(bot)
    calls_before = len(bot.request.calls)

    await bot.feed(message_update(CLIENT, text, edited=True))

    assert bot.request.calls[calls_before:] == []
    assert await _snapshot(bot) == before


@pytest.mark.parametrize("command", ["/start", "/ayuda", "/help", "/cancelar", "/cancel"])
async def test_edited_commands_get_no_reply(bot: Harness, command: str) -> None:
    await _reach(bot, STATES["step_3"])
    before = await _snapshot(bot)
    calls_before = len(bot.request.calls)

    await bot.feed(message_update(CLIENT, command, edited=True))

    assert bot.request.calls[calls_before:] == []
    assert await _snapshot(bot) == before


GROUP_INPUTS = ["text", "long", "/start", "/foo", "/cancelar", "/ayuda", "sticker", "photo"]


@pytest.mark.parametrize("state_name", STATES)
@pytest.mark.parametrize("what", GROUP_INPUTS)
async def test_messages_from_a_foreign_group_get_no_reply(
    bot: Harness, state_name: str, what: str
) -> None:
    state = STATES[state_name]
    await _reach(bot, state)
    before = await _snapshot(bot)
    calls_before = len(bot.request.calls)

    where = {"chat_id": GROUP, "chat_type": "group"}
    if what in ("sticker", "photo"):
        await bot.send(what, **where)
    else:
        text = {"text": SHOWN_RUT, "long": LONG_TEXT}.get(what, what)
        await bot.say(text, **where)

    assert bot.request.calls[calls_before:] == []
    assert await _snapshot(bot) == before
    assert await bot.repository.conversation(GROUP, CLIENT) is None


async def test_a_group_cannot_start_a_conversation(bot: Harness) -> None:
    calls_before = len(bot.request.calls)
    await bot.say("/start", chat_id=GROUP, chat_type="group")
    await bot.say(SHOWN_RUT, chat_id=GROUP, chat_type="group")
    await bot.feed(message_update(CLIENT, "/start", chat_id=GROUP, chat_type="supergroup"))
    assert bot.request.calls[calls_before:] == []
    assert await bot.repository.conversation_states() == {}


# --- text at a guide step, commands anywhere --------------------------------------------


@pytest.mark.parametrize("step", [1, 3, 6, 7])
@pytest.mark.parametrize("text", ["listo", "ya lo hice", SHOWN_RUT, "sí"])
async def test_text_at_a_step_asks_to_use_the_buttons(bot: Harness, step: int, text: str) -> None:
    await bot.reach_step(step, rut=SHOWN_RUT)
    before = await _snapshot(bot)
    await bot.say(text)
    texts = bot.texts()
    assert USE_BUTTONS in texts[-2]
    _assert_shows(bot, STATES[f"step_{step}"])
    assert await _snapshot(bot) == before


@pytest.mark.parametrize("command", ["/cancelar", "/cancel"])
async def test_cancel_mid_step_ends_and_keeps_the_authorization(bot: Harness, command: str) -> None:
    await bot.reach_step(3, rut=SHOWN_RUT)
    _, authorization = await _snapshot(bot)
    await bot.say(command)
    assert "avance quedó guardado" in bot.last_text() and "/start" in bot.last_text()
    assert await bot.repository.conversation(CLIENT, CLIENT) is None
    assert await bot.repository.authorization(RUT) == authorization
    assert authorization is not None and authorization.step == 3
    assert authorization.completed_at is None
    # Once cancelled, buttons and text no longer move anything.
    await bot.press("g:3:next")
    await bot.say("hola")
    assert START_HINT in bot.last_text()
    assert await bot.repository.authorization(RUT) == authorization


async def test_cancel_and_cancelar_say_the_same(bot: Harness) -> None:
    answers = []
    for command in ("/cancelar", "/cancel"):
        await bot.say("/start")
        await bot.say(command)
        answers.append(bot.last_text())
        await bot.say(command)  # nothing left to cancel
        answers.append(bot.last_text())
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert answers[0] != answers[1]
    assert "No hay nada en curso" in answers[1]


@pytest.mark.parametrize("state_name", ["none", "ask_rut", "confirm_rut", "step_3", "step_7"])
async def test_help_and_ayuda_say_the_same(bot: Harness, state_name: str) -> None:
    if state_name != "none":
        await _reach(bot, STATES[state_name])
    before = await _snapshot(bot)
    replies = []
    for command in ("/ayuda", "/help"):
        sent_before = len(bot.texts())
        await bot.say(command)
        replies.append(bot.texts()[sent_before:])
        assert await _snapshot(bot) == before
    assert replies[0] == replies[1]
    assert "/cancelar" in replies[0][0] and "/start" in replies[0][0]
    if state_name == "none":
        assert len(replies[0]) == 1
    else:
        assert len(replies[0]) == 2
        _assert_shows(bot, STATES[state_name])


async def _never_started(bot: Harness) -> None:
    pass


async def _cancelled(bot: Harness) -> None:
    await bot.reach_step(2, rut=SHOWN_RUT)
    await bot.say("/cancelar")


async def _finished(bot: Harness) -> None:
    await _complete_once(bot)


@pytest.mark.parametrize("history", [_never_started, _cancelled, _finished])
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
    bot: Harness, history: Callable[[Harness], Awaitable[None]], send: Send
) -> None:
    await history(bot)
    before = await _snapshot(bot)
    sent_before = len(bot.texts())
    await send(bot)
    new = bot.texts()[sent_before:]
    assert len(new) == 1 and "/start" in new[0] and len(new[0]) < 200
    assert await _snapshot(bot) == before
    assert before[0] is None


async def test_unknown_command_without_a_conversation(bot: Harness) -> None:
    await bot.say("/foo")
    texts = bot.texts()
    assert UNKNOWN_COMMAND in texts[0]
    assert START_HINT in texts[-1]
    assert await bot.repository.conversation(CLIENT, CLIENT) is None


# --- the error handler ------------------------------------------------------------------


async def test_failed_step_message_is_reported_and_the_stored_step_still_works(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.reach_step(3, rut=SHOWN_RUT)
    sent_before = len(bot.texts())
    bot.request.fail_next("sendMessage", BadRequest("boom"))
    with caplog.at_level(logging.INFO):
        await bot.press("g:3:next")

    new = bot.texts()[sent_before:]
    assert len(new) == 2 and "Algo falló" in new[0]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step in (3, 4)
    assert f"Paso {authorization.step} de 7" in new[1]
    conversation = await bot.repository.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "guide"

    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors and any(record.exc_info for record in errors)
    logged = caplog.text
    assert "boom" in logged  # the failure itself is logged ...
    for private in ("Juana", "juana_pyme", RUT, SHOWN_RUT, "76086428", TOKEN):
        assert private not in logged  # ... but nothing about the client, nor the token
    assert TOKEN.split(":")[1] not in logged

    # The client can carry on from the stored step, as its buttons show it.
    stored = authorization.step
    await bot.say("/start")
    assert f"paso {stored} de 7" in bot.last_text()
    await bot.press("st:keep")
    assert f"Paso {stored} de 7" in bot.last_text()
    await bot.press(f"g:{stored}:next")
    assert f"Paso {stored + 1} de 7" in bot.last_text()
    moved = await bot.repository.authorization(RUT)
    assert moved is not None and moved.step == stored + 1
    _assert_nothing_too_long(bot)


async def test_failed_error_notice_is_only_logged(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.reach_step(2, rut=SHOWN_RUT)
    bot.request.fail_next("sendMessage", BadRequest("boom"), times=2)
    with caplog.at_level(logging.WARNING):
        await bot.press("g:2:next")
    assert "could not tell chat" in caplog.text
    assert "Juana" not in caplog.text and TOKEN not in caplog.text
    await bot.press("g:3:next")
    assert "Paso 4 de 7" in bot.last_text()


@pytest.mark.parametrize("entry", ["rut:ok", "rep:yes"])
async def test_failed_first_step_message_leaves_the_guide_usable(bot: Harness, entry: str) -> None:
    if entry == "rep:yes":
        await _reach(bot, STATES["confirm_repeat"])
    else:
        await _reach(bot, STATES["confirm_rut"])
    bot.request.fail_next("sendMessage", BadRequest("boom"))
    await bot.press(entry)
    assert "Algo falló" in bot.texts()[-2]
    assert "Paso 1 de 7" in bot.last_text()
    conversation = await bot.repository.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "guide"
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 1

    await bot.say("/start")
    await bot.press("st:keep")
    assert "Paso 1 de 7" in bot.last_text()
    await bot.press("g:1:next")
    assert "Paso 2 de 7" in bot.last_text()
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 2
