"""Telegram failing under the bot: every fault injected through the fake HTTP layer.

What must hold after each fault: the step stored in SQLite and the ConversationHandler's
own state agree, the client can carry on with the buttons of the step they are really at,
and nothing the firm must hear about is lost (the outbox delivers it, once).
"""

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ConversationHandler

from tests.conftest import CLIENT, FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings
from tests.fake_telegram import RecordingRequest, button_data

RUT = "76086428-5"
SHOWN = "76.086.428-5"
ERROR_NOTICE = "Algo falló"
DONE = "¡Listo!"
TOO_OLD = "Query is too old and response timeout expired or query id is invalid"


# --- helpers ------------------------------------------------------------------------------


def conversation_handler(bot: Harness) -> ConversationHandler[Any]:
    """The authorization ConversationHandler registered in the real Application."""
    found = [
        handler
        for handlers in bot.app.handlers.values()
        for handler in handlers
        if isinstance(handler, ConversationHandler)
    ]
    assert len(found) == 1
    return found[0]


async def assert_agree(bot: Harness, user: int = CLIENT) -> str | None:
    """The ConversationHandler's state for the client equals the state in the database."""
    stored = await bot.repository.conversation(user, user)
    in_memory = conversation_handler(bot)._conversations.get((user, user))
    expected = stored.state if stored is not None else None
    assert in_memory == expected, (in_memory, expected)
    return expected


async def stored_step(bot: Harness, rut: str = RUT) -> int:
    authorization = await bot.repository.authorization(rut)
    assert authorization is not None
    return authorization.step


async def reach(bot: Harness, start: int) -> None:
    """Bring the client to guide step `start`, or (0) to the RUT's confirmation."""
    if start == 0:
        await bot.say("/start")
        await bot.say(SHOWN)
    else:
        await bot.reach_step(start, rut=SHOWN)


def new_texts(bot: Harness, before: int, chat: int = CLIENT) -> list[str]:
    return bot.texts(chat)[before:]


async def press_failing(
    bot: Harness,
    caplog: pytest.LogCaptureFixture,
    start: int,
    press: str,
    method: str,
    error: TelegramError,
) -> list[str]:
    """From `start` (see `reach`), press `press` while the next `method` call fails.

    Warnings are captured in `caplog`; return what the bot said to the client meanwhile.
    """
    await reach(bot, start)
    before = len(bot.texts())
    bot.request.fail_next(method, error)
    with caplog.at_level(logging.WARNING):
        await bot.press(press)
    return new_texts(bot, before)


def fail_in_chat(
    request: RecordingRequest, method: str, chat_id: int, error: TelegramError, times: int = 1
) -> None:
    """Like `fail_next`, but only calls of `method` addressed to `chat_id` fail."""
    pending = [error] * times
    original = request.do_request

    async def do_request(*args: Any, **kwargs: Any) -> tuple[int, bytes]:
        url = kwargs.get("url", args[0] if args else "")
        data = kwargs.get("request_data", args[2] if len(args) > 2 else None)
        params = data.parameters if data is not None else {}
        addressed = int(params.get("chat_id", 0)) == chat_id
        if pending and url.rsplit("/", 1)[-1] == method and addressed:
            raise pending.pop(0)
        return await original(*args, **kwargs)

    request.do_request = do_request  # type: ignore[method-assign]


def outbox_rows(bot: Harness) -> list[tuple[Any, ...]]:
    return bot.db_rows(
        "SELECT chat_id, sent_at IS NOT NULL, attempts, message_id IS NOT NULL FROM outbox "
        "ORDER BY id",
    )


async def run_outbox_job(bot: Harness) -> None:
    assert bot.app.job_queue is not None
    [job] = bot.app.job_queue.get_jobs_by_name("firm-outbox")
    await job.run(bot.app)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


# --- a lost step message ------------------------------------------------------------------

# (step reached first, button pressed, state stored afterwards, step stored afterwards,
#  the button of the new place that must then work, what it shows)
TRANSITIONS = [
    pytest.param(3, "g:3:next", "guide", 4, "g:4:next", "Paso 5 de 7", id="next"),
    pytest.param(4, "g:4:back", "guide", 3, "g:3:next", "Paso 4 de 7", id="back"),
    pytest.param(1, "g:1:back", "confirm_rut", 1, "rut:ok", "Paso 1 de 7", id="back-to-rut"),
    pytest.param(6, "g:6:mismatch", "guide", 5, "g:5:next", "Paso 6 de 7", id="mismatch"),
    pytest.param(4, "g:4:listed", "guide", 6, "g:6:save", "Paso 7 de 7", id="listed"),
]


@pytest.mark.parametrize(
    "error", [NetworkError("Bad Gateway"), TimedOut("Timed out")], ids=["network", "timeout"]
)
@pytest.mark.parametrize(("start", "press", "state", "step", "then", "shows"), TRANSITIONS)
async def test_lost_step_message_leaves_database_and_handler_in_agreement(
    bot: Harness,
    error: TelegramError,
    start: int,
    press: str,
    state: str,
    step: int,
    then: str,
    shows: str,
) -> None:
    await bot.reach_step(start, rut=SHOWN)
    bot.request.fail_next("sendMessage", error)

    await bot.press(press)

    # The failure is reported, then the stored question is shown again with its buttons.
    assert ERROR_NOTICE in bot.texts()[-2]
    assert ERROR_NOTICE not in bot.last_text()
    assert await assert_agree(bot) == state
    assert await stored_step(bot) == step
    # The client's next press of the new place's button works.
    await bot.press(then)
    assert shows in bot.last_text()
    await assert_agree(bot)


async def test_lost_rut_confirmation_keeps_the_candidate(bot: Harness) -> None:
    await bot.say("/start")
    bot.request.fail_next("sendMessage", TimedOut("Timed out"))
    await bot.say(SHOWN)
    # The failure is reported, then the stored question is shown again with its buttons.
    assert ERROR_NOTICE in bot.texts()[-2]
    assert ERROR_NOTICE not in bot.last_text()
    assert await assert_agree(bot) == "confirm_rut"
    await bot.press("rut:ok")
    assert "Paso 1 de 7" in bot.last_text()
    assert await assert_agree(bot) == "guide"


@pytest.mark.parametrize("error", [NetworkError("Connection reset"), TimedOut()])
async def test_after_a_lost_step_message_start_and_seguir_show_the_stored_step(
    bot: Harness, error: TelegramError
) -> None:
    await bot.reach_step(4, rut=SHOWN)
    bot.request.fail_next("sendMessage", error)
    await bot.press("g:4:next")
    assert await stored_step(bot) == 5

    await bot.say("/start")
    assert "Vas en el paso 5 de 7" in bot.last_text()
    assert button_data(bot.request.last(CLIENT)) == ["st:keep", "st:over"]
    await bot.press("st:keep")
    assert "Paso 5 de 7" in bot.last_text()
    assert "g:5:next" in button_data(bot.request.last(CLIENT))
    await bot.press("g:5:next")
    assert "Paso 6 de 7" in bot.last_text()
    assert await stored_step(bot) == 6
    assert await assert_agree(bot) == "guide"


async def test_lost_done_message_still_records_once_and_the_firm_hears_once(
    bot: Harness,
) -> None:
    await bot.reach_step(7, rut=SHOWN)
    fail_in_chat(bot.request, "sendMessage", CLIENT, TimedOut())

    await bot.press("g:7:yes")

    # The completion is committed and the firm told, though "¡Listo!" was lost.
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.completed_at is not None
    # The failure is reported, then the stored question is shown again with its buttons.
    assert ERROR_NOTICE in bot.texts()[-2]
    assert ERROR_NOTICE not in bot.last_text()
    assert await assert_agree(bot) is None
    await run_outbox_job(bot)
    assert len(bot.texts(FIRM_CHAT)) == len(bot.texts(FIRM_MEMBER)) == 1
    assert SHOWN in bot.texts(FIRM_CHAT)[0]
    # Pressing again does not complete twice.
    await bot.press("g:7:yes")
    assert "ya quedó registrada" in bot.last_text()
    assert len(bot.texts(FIRM_CHAT)) == 1
    assert [row[1:] for row in outbox_rows(bot)] == [(1, 1, 1), (1, 1, 1)]


# --- flood control with the rate limiter on -----------------------------------------------


@pytest.fixture
async def limited(tmp_path: Path, clock: FakeClock) -> Any:
    """The harness, with python-telegram-bot's AIORateLimiter on as in production."""
    harness = await Harness(make_settings(tmp_path), clock, rate_limit=True).boot()
    yield harness
    await harness.close()


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_retry_after_on_a_step_message_is_waited_out_and_sent_once(
    limited: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bot = limited
    await bot.reach_step(2, rut=SHOWN)
    before = len(bot.texts())
    bot.request.fail_next("sendMessage", RetryAfter(1))

    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        await bot.press("g:2:next")
    elapsed = time.monotonic() - started

    assert elapsed >= 1.0  # the flood wait was honoured, not skipped
    new = new_texts(bot, before)
    assert len(new) == 1 and "Paso 3 de 7" in new[0]  # sent exactly once, no error notice
    assert errors_logged(caplog) == []
    assert await stored_step(bot) == 3
    assert await assert_agree(bot) == "guide"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_retry_after_on_a_firm_notice_is_waited_out_and_delivered_once(
    limited: Harness,
) -> None:
    bot = limited
    await bot.reach_step(7, rut=SHOWN)
    fail_in_chat(bot.request, "sendMessage", FIRM_CHAT, RetryAfter(1))

    await bot.press("g:7:yes")

    assert DONE in bot.last_text()
    assert len(bot.texts(FIRM_CHAT)) == len(bot.texts(FIRM_MEMBER)) == 1
    await run_outbox_job(bot)
    assert len(bot.texts(FIRM_CHAT)) == len(bot.texts(FIRM_MEMBER)) == 1
    assert [row[1:] for row in outbox_rows(bot)] == [(1, 1, 1), (1, 1, 1)]


# --- the client blocked the bot -----------------------------------------------------------


async def test_forbidden_on_a_reply_is_logged_and_the_state_stays_consistent(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.reach_step(2, rut=SHOWN)
    before = len(bot.texts())
    blocked = Forbidden("Forbidden: bot was blocked by the user")
    bot.request.fail_next("sendMessage", blocked, times=2)  # the step and the error notice

    with caplog.at_level(logging.INFO):
        await bot.press("g:2:next")  # no exception escapes

    assert new_texts(bot, before) == []
    assert "blocked by the user" in caplog.text
    assert "could not tell chat" in caplog.text
    assert "Juana" not in caplog.text and "juana_pyme" not in caplog.text
    assert await stored_step(bot) == 3
    assert await assert_agree(bot) == "guide"
    # Unblocked, the client carries on from the stored step.
    await bot.press("g:3:next")
    assert "Paso 4 de 7" in bot.last_text()
    assert await assert_agree(bot) == "guide"


# --- editing the pressed message fails ----------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Bad Request: message is not modified: specified new message content and reply "
        "markup are exactly the same as a current content and reply markup of the message",
        "Message to edit not found",
        "Message can't be edited",
    ],
    ids=["not-modified", "not-found", "cant-edit"],
)
@pytest.mark.parametrize(
    ("start", "press", "shows"),
    [(0, "rut:ok", "Paso 1 de 7"), (2, "g:2:next", "Paso 3 de 7"), (6, "g:6:save", "Paso 7 de 7")],
    ids=["rut", "next", "save"],
)
async def test_a_failed_keyboard_removal_is_ignored_and_the_step_advances(
    bot: Harness,
    caplog: pytest.LogCaptureFixture,
    message: str,
    start: int,
    press: str,
    shows: str,
) -> None:
    new = await press_failing(
        bot, caplog, start, press, "editMessageReplyMarkup", BadRequest(message)
    )
    assert len(new) == 1 and shows in new[0]
    assert errors_logged(caplog) == []
    assert await assert_agree(bot) == "guide"


async def test_not_modified_on_the_final_press_still_completes(bot: Harness) -> None:
    await bot.reach_step(7, rut=SHOWN)
    bot.request.fail_next("editMessageReplyMarkup", BadRequest("Message is not modified"))
    await bot.press("g:7:yes")
    assert DONE in bot.last_text()
    assert len(bot.texts(FIRM_CHAT)) == 1


# --- answering the button press fails -----------------------------------------------------


# Answering a press only stops the button's spinner; the press itself still counts. A press
# answered late (the bot was busy, or the update is redelivered after a restart) is normal.
@pytest.mark.parametrize(
    ("start", "press", "shows", "step"),
    [
        (0, "rut:ok", "Paso 1 de 7", 1),
        (3, "g:3:next", "Paso 4 de 7", 4),
        (3, "g:3:back", "Paso 2 de 7", 2),
        (7, "g:7:yes", DONE, 7),
        (5, "g:2:next", "Paso 5 de 7", 5),  # a stale button still shows where the client is
        (4, "pb:4", "", 4),  # the problem menu
    ],
    ids=["rut", "next", "back", "complete", "stale", "problem-menu"],
)
async def test_too_old_query_still_handles_the_press(
    bot: Harness, caplog: pytest.LogCaptureFixture, start: int, press: str, shows: str, step: int
) -> None:
    new = await press_failing(bot, caplog, start, press, "answerCallbackQuery", BadRequest(TOO_OLD))
    assert new and shows in new[-1]
    assert not any(ERROR_NOTICE in text for text in new)
    assert await stored_step(bot) == step
    assert errors_logged(caplog) == []
    await assert_agree(bot)


@pytest.mark.parametrize(
    ("press", "shows"),
    [("later:menu", "¿Cuándo te lo recuerdo?"), ("rem:stop", "no te enviaré más recordatorios")],
    ids=["later-menu", "stop-reminders"],
)
async def test_too_old_query_on_reminder_buttons_still_handles_the_press(
    bot: Harness, caplog: pytest.LogCaptureFixture, press: str, shows: str
) -> None:
    new = await press_failing(bot, caplog, 3, press, "answerCallbackQuery", BadRequest(TOO_OLD))
    assert new and shows in new[-1]
    assert not any(ERROR_NOTICE in text for text in new)
    assert errors_logged(caplog) == []


# --- firm notices through the outbox ------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 3], ids=["once", "thrice"])
async def test_firm_notice_network_error_is_retried_by_the_outbox_job_once(
    bot: Harness, failures: int
) -> None:
    await bot.reach_step(7, rut=SHOWN)
    fail_in_chat(bot.request, "sendMessage", FIRM_CHAT, NetworkError("Bad Gateway"), failures)

    await bot.press("g:7:yes")

    assert DONE in bot.last_text()  # the client is not bothered with the firm's delivery
    assert bot.texts(FIRM_CHAT) == []
    # Order is kept: the second chat waits behind the first; nothing counted as an attempt.
    assert bot.texts(FIRM_MEMBER) == []
    assert [row[1:] for row in outbox_rows(bot)] == [(0, 0, 0), (0, 0, 0)]

    for _ in range(failures + 2):
        await run_outbox_job(bot)

    for chat in (FIRM_CHAT, FIRM_MEMBER):
        [notice] = bot.texts(chat)
        assert SHOWN in notice and "Autorización completada" in notice
    rows = outbox_rows(bot)
    assert [row[0] for row in rows] == [FIRM_CHAT, FIRM_MEMBER]
    assert [row[1:] for row in rows] == [(1, 1, 1), (1, 1, 1)]
