"""Telegram failing under the bot: every fault injected through the fake HTTP layer.

What must hold after each fault: the step stored in SQLite and the ConversationHandler's
own state agree, the client can carry on with the buttons of the step they are really at,
and nothing the firm must hear about is lost (the outbox delivers it, once).

Steps are sent as photos (sendPhoto); every other message, the error notice included, as
text (sendMessage). Expected wording comes from the guide in effect (`bot.deps.guide`).
"""

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ConversationHandler

from bot.guide.guide import local_datetime
from bot.services.notifications import describe_duration
from tests.support.fake_telegram import RecordingRequest, button_data
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings

RUT = "76086428-5"
SHOWN = "76.086.428-5"
TOO_OLD = "Query is too old and response timeout expired or query id is invalid"


# --- helpers ------------------------------------------------------------------------------


async def assert_agree(bot: Harness, user: int = CLIENT) -> str | None:
    """The stored state is the only one: no handler keeps a copy of it in memory."""
    assert not [
        handler
        for handlers in bot.app.handlers.values()
        for handler in handlers
        if isinstance(handler, ConversationHandler)
    ]
    stored = await bot.repository.conversations.conversation(user, user)
    return stored.state if stored is not None else None


async def stored_step(bot: Harness, rut: str = RUT) -> int:
    authorization = await bot.repository.authorizations.authorization(rut)
    assert authorization is not None
    return authorization.step


async def reach(bot: Harness, start: int) -> None:
    """Bring the client to guide step `start`, or (0) to the RUT's confirmation."""
    if start == 0:
        await bot.say("/start")
        await bot.say(SHOWN)
        assert bot.last_text() == bot.deps.guide.message("rut_confirm", company_rut=SHOWN)
    else:
        await bot.reach_step(start, rut=SHOWN)


def new_texts(bot: Harness, before: int, chat: int = CLIENT) -> list[str]:
    return bot.texts(chat)[before:]


def step_text(bot: Harness, number: int) -> str:
    """Step `number` as the client must read it."""
    return bot.deps.guide.step(number, RUT)


def error_notice(bot: Harness) -> str:
    """What a client is told when handling their update failed."""
    return bot.deps.guide.message("error")


def done_text(bot: Harness) -> str:
    """The "¡Listo!" message for the company."""
    return bot.deps.guide.message("done", company_rut=SHOWN)


def firm_notice(bot: Harness, took: timedelta = timedelta(0)) -> str:
    """The firm's completion notice for Juana's company, completed now after `took`."""
    return bot.deps.guide.message(
        "firm_completed",
        company_rut=SHOWN,
        client_name="Juana",
        client_username="@juana_pyme",
        client_id=CLIENT,
        completed_at=local_datetime(bot.clock.now(), bot.settings.timezone),
        duration=describe_duration(took),
    )


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

# (step reached first, button pressed, the call lost, state stored afterwards, step stored
#  afterwards, the button of the new place that must then work, the step it then shows)
TRANSITIONS = [
    pytest.param(3, "g:3:next", "sendPhoto", "guide", 4, "g:4:next", 5, id="next"),
    pytest.param(4, "g:4:back", "sendPhoto", "guide", 3, "g:3:next", 4, id="back"),
    # Back from step 1 is the RUT's confirmation again: a text message.
    pytest.param(1, "g:1:back", "sendMessage", "confirm_rut", 1, "rut:ok", 1, id="back-to-rut"),
    pytest.param(6, "g:6:mismatch", "sendPhoto", "guide", 5, "g:5:next", 6, id="mismatch"),
    # The "data do not match" notice, sent before step 5, is lost instead.
    pytest.param(6, "g:6:mismatch", "sendMessage", "guide", 5, "g:5:next", 6, id="mismatch-notice"),
    # "Not seen" at step 7, then back to the permissions.
    pytest.param(7, "g:7:back5", "sendPhoto", "guide", 5, "g:5:next", 6, id="back-to-5"),
]


@pytest.mark.parametrize(
    "error", [NetworkError("Bad Gateway"), TimedOut("Timed out")], ids=["network", "timeout"]
)
@pytest.mark.parametrize(
    ("start", "press", "method", "state", "step", "then", "shows"), TRANSITIONS
)
async def test_lost_step_message_leaves_database_and_handler_in_agreement(
    bot: Harness,
    error: TelegramError,
    start: int,
    press: str,
    method: str,
    state: str,
    step: int,
    then: str,
    shows: int,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(start, rut=SHOWN)
    bot.request.fail_next(method, error)

    await bot.press(press)

    # The failure is reported, then the stored question is shown again with its buttons.
    assert bot.texts()[-2] == error_notice(bot)
    reshown = (
        step_text(bot, step)
        if state == "guide"
        else guide.message("rut_confirm", company_rut=SHOWN)
    )
    assert bot.last_text() == reshown
    assert then in button_data(bot.request.last(CLIENT))
    assert await assert_agree(bot) == state
    assert await stored_step(bot) == step
    # The client's next press of the new place's button works.
    await bot.press(then)
    assert bot.last_text() == step_text(bot, shows)
    await assert_agree(bot)


async def test_lost_rut_confirmation_keeps_the_candidate(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/start")
    bot.request.fail_next("sendMessage", TimedOut("Timed out"))
    await bot.say(SHOWN)
    # The failure is reported, then the stored question is shown again with its buttons.
    assert bot.texts()[-2] == error_notice(bot)
    assert bot.last_text() == guide.message("rut_confirm", company_rut=SHOWN)
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]
    assert await assert_agree(bot) == "confirm_rut"
    await bot.press("rut:ok")
    assert bot.last_text() == step_text(bot, 1)
    assert await assert_agree(bot) == "guide"


async def test_lost_who_can_message_still_starts_the_guide(bot: Harness) -> None:
    # "Who can do it" goes before step 1: losing it leaves the client at step 1 all the same.
    await reach(bot, 0)
    bot.request.fail_next("sendMessage", NetworkError("Bad Gateway"))
    await bot.press("rut:ok")
    assert bot.texts()[-2:] == [error_notice(bot), step_text(bot, 1)]
    assert await stored_step(bot) == 1
    assert await assert_agree(bot) == "guide"
    await bot.press("g:1:next")
    assert bot.last_text() == step_text(bot, 2)


@pytest.mark.parametrize("error", [NetworkError("Connection reset"), TimedOut()])
async def test_after_a_lost_step_message_start_and_seguir_show_the_stored_step(
    bot: Harness, error: TelegramError
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(4, rut=SHOWN)
    bot.request.fail_next("sendPhoto", error)
    await bot.press("g:4:next")
    assert await stored_step(bot) == 5

    await bot.say("/start")
    assert bot.last_text() == guide.message("restart_offer", step=5)
    assert button_data(bot.request.last(CLIENT)) == ["st:keep", "st:over"]
    await bot.press("st:keep")
    assert bot.last_text() == step_text(bot, 5)
    assert "g:5:next" in button_data(bot.request.last(CLIENT))
    await bot.press("g:5:next")
    assert bot.last_text() == step_text(bot, 6)
    assert await stored_step(bot) == 6
    assert await assert_agree(bot) == "guide"


async def test_lost_done_message_still_records_once_and_the_firm_hears_once(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7, rut=SHOWN)
    fail_in_chat(bot.request, "sendMessage", CLIENT, TimedOut())

    await bot.press("g:7:yes")

    # The completion is committed and the firm told, though "¡Listo!" was lost.
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.completed_at is not None
    # The failure is reported; with the conversation over, there is no question to repeat.
    assert bot.texts()[-2:] == [error_notice(bot), guide.message("no_conversation")]
    assert await assert_agree(bot) is None
    await run_outbox_job(bot)
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == [firm_notice(bot)]
    # Pressing again does not complete twice.
    await bot.press("g:7:yes")
    assert bot.last_text() == guide.message("already_completed", company_rut=SHOWN)
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
    bot.request.fail_next("sendPhoto", RetryAfter(1))

    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        await bot.press("g:2:next")
    elapsed = time.monotonic() - started

    assert elapsed >= 1.0  # the flood wait was honoured, not skipped
    # Sent exactly once, with no error notice.
    assert new_texts(bot, before) == [step_text(bot, 3)]
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

    assert bot.last_text() == done_text(bot)
    notice = firm_notice(bot)
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == [notice]
    await run_outbox_job(bot)
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == [notice]
    assert [row[1:] for row in outbox_rows(bot)] == [(1, 1, 1), (1, 1, 1)]


# --- the client blocked the bot -----------------------------------------------------------


async def test_forbidden_on_a_reply_is_logged_and_the_state_stays_consistent(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.reach_step(2, rut=SHOWN)
    before = len(bot.texts())
    blocked = Forbidden("Forbidden: bot was blocked by the user")
    bot.request.fail_next("sendPhoto", blocked)  # the step
    bot.request.fail_next("sendMessage", blocked)  # the error notice

    with caplog.at_level(logging.INFO):
        await bot.press("g:2:next")  # no exception escapes

    assert new_texts(bot, before) == []
    assert bot.request.faults == {"sendPhoto": [], "sendMessage": []}  # both were tried
    assert "blocked by the user" in caplog.text
    assert "could not tell chat" in caplog.text
    assert "Juana" not in caplog.text and "juana_pyme" not in caplog.text
    assert await stored_step(bot) == 3
    assert await assert_agree(bot) == "guide"
    # Unblocked, the client carries on from the stored step.
    await bot.press("g:3:next")
    assert bot.last_text() == step_text(bot, 4)
    assert await assert_agree(bot) == "guide"


# --- a press is answered and moves on: no edit of the pressed message ----------------------


async def test_a_too_old_answer_on_the_final_press_still_completes(bot: Harness) -> None:
    await bot.reach_step(7, rut=SHOWN)
    bot.request.fail_next("answerCallbackQuery", BadRequest(TOO_OLD))
    await bot.press("g:7:yes")
    assert bot.last_text() == done_text(bot)
    assert len(bot.texts(FIRM_CHAT)) == 1


# --- answering the button press fails -----------------------------------------------------


def _expected_after(bot: Harness, shows: str | int) -> str:
    """The text a press must end with: a step's number, or a guide message's key."""
    if isinstance(shows, int):
        return step_text(bot, shows)
    if shows == "done":
        return done_text(bot)
    return bot.deps.guide.message(shows)


# Answering a press only stops the button's spinner; the press itself still counts. A press
# answered late (the bot was busy, or the update is redelivered after a restart) is normal.
@pytest.mark.parametrize(
    ("start", "press", "shows", "step"),
    [
        (0, "rut:ok", 1, 1),
        (3, "g:3:next", 4, 4),
        (3, "g:3:back", 2, 2),
        (7, "g:7:yes", "done", 7),
        (5, "g:2:next", 5, 5),  # a stale button still shows where the client is
        (4, "pb:4", "problem_menu", 4),
    ],
    ids=["rut", "next", "back", "complete", "stale", "problem-menu"],
)
async def test_too_old_query_still_handles_the_press(
    bot: Harness,
    caplog: pytest.LogCaptureFixture,
    start: int,
    press: str,
    shows: str | int,
    step: int,
) -> None:
    new = await press_failing(bot, caplog, start, press, "answerCallbackQuery", BadRequest(TOO_OLD))
    assert new and new[-1] == _expected_after(bot, shows)
    assert error_notice(bot) not in new
    assert await stored_step(bot) == step
    assert errors_logged(caplog) == []
    await assert_agree(bot)


@pytest.mark.parametrize(
    ("press", "shows"),
    [("later:menu", "later_menu"), ("rem:stop", "opted_out")],
    ids=["later-menu", "stop-reminders"],
)
async def test_too_old_query_on_reminder_buttons_still_handles_the_press(
    bot: Harness, caplog: pytest.LogCaptureFixture, press: str, shows: str
) -> None:
    new = await press_failing(bot, caplog, 3, press, "answerCallbackQuery", BadRequest(TOO_OLD))
    assert new == [bot.deps.guide.message(shows)]
    assert errors_logged(caplog) == []


# --- firm notices through the outbox ------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 3], ids=["once", "thrice"])
async def test_firm_notice_network_error_is_retried_by_the_outbox_job_once(
    bot: Harness, failures: int
) -> None:
    await bot.reach_step(7, rut=SHOWN)
    bot.clock.advance(minutes=3)
    fail_in_chat(bot.request, "sendMessage", FIRM_CHAT, NetworkError("Bad Gateway"), failures)

    await bot.press("g:7:yes")

    assert bot.last_text() == done_text(bot)  # the client is not bothered with the delivery
    assert bot.texts(FIRM_CHAT) == []
    # Order is kept: the second chat waits behind the first; nothing counted as an attempt.
    assert bot.texts(FIRM_MEMBER) == []
    assert [row[1:] for row in outbox_rows(bot)] == [(0, 0, 0), (0, 0, 0)]

    for _ in range(failures + 2):
        await run_outbox_job(bot)

    notice = firm_notice(bot, took=timedelta(minutes=3))
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert bot.texts(chat) == [notice]
    rows = outbox_rows(bot)
    assert [row[0] for row in rows] == [FIRM_CHAT, FIRM_MEMBER]
    assert [row[1:] for row in rows] == [(1, 1, 1), (1, 1, 1)]
