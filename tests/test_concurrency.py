"""Many things at once: clients finishing side by side while reminders go out.

python-telegram-bot processes updates one by one by default, but `process_update` may be
called concurrently (bot.polling does so, one chain per chat). Here a hundred clients run
their whole flow at the same time, through one Application and one SQLite connection,
while the reminder sweeper sends due reminders to other clients.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stdnum.cl import rut as stdnum_rut
from telegram import Update
from telegram.ext import ConversationHandler

from bot.reminders import ReminderSweeper
from tests.conftest import FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings
from tests.fake_telegram import Call, button_data, callback_update, message_update

FINISHERS = 100
WAITING = 60
FINISHER_BASE = 810_000  # user ids of the clients who complete
WAITING_BASE = 820_000  # user ids of the clients who stopped at step 2 yesterday
DONE = "¡Listo!"
LOCK_ERRORS = ("database is locked", "within a transaction", "database table is locked")


def company(user: int) -> str:
    """A distinct valid company RUT per client, compact."""
    number = str(60_000_000 + user % 1_000_000)
    return f"{number}-{stdnum_rut.calc_check_digit(number)}"


def is_reminder(call: Call) -> bool:
    return call.method == "sendMessage" and "rem:stop" in button_data(call)


def sent_to(bot: Harness, chat: int) -> list[Call]:
    return [
        call
        for call in bot.request.calls
        if call.method == "sendMessage" and int(call.params["chat_id"]) == chat
    ]


def conversation_handler(bot: Harness) -> ConversationHandler[Any]:
    [handler] = [
        h
        for handlers in bot.app.handlers.values()
        for h in handlers
        if isinstance(h, ConversationHandler)
    ]
    return handler


class Records(logging.Handler):
    """Every warning or error logged anywhere while the crowd runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        out = []
        for record in self.records:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" | {record.exc_info[1]!r}"
            out.append(text)
        return out


@pytest.fixture
async def crowd(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    """A bot pacing reminders at the fastest allowed rate."""
    harness = await Harness(make_settings(tmp_path, reminder_rate=30), clock).boot()
    yield harness
    await harness.close()


async def feed(bot: Harness, raw: dict[str, Any]) -> None:
    await bot.app.process_update(Update.de_json(raw, bot.app.bot))


async def walk_to_step(bot: Harness, user: int, step: int) -> None:
    """One client's updates from /start to the given step, in order."""
    await feed(bot, message_update(user, "/start", first_name=f"C{user}"))
    await feed(bot, message_update(user, company(user), first_name=f"C{user}"))
    await feed(bot, callback_update(user, "rut:ok", first_name=f"C{user}"))
    await bot.steps_from(1, step, user=user, first_name=f"C{user}")


async def finish(bot: Harness, user: int) -> None:
    """A whole flow, ending with a double tap on the final button.

    One chat's updates run in order, as bot.polling runs them; chats run side by side.
    """
    await walk_to_step(bot, user, 7)
    await feed(bot, callback_update(user, "g:7:yes", first_name=f"C{user}"))
    await feed(bot, callback_update(user, "g:7:yes", first_name=f"C{user}"))


async def retry_firm_notices(bot: Harness, times: int = 20) -> None:
    """The outbox retry job firing again and again while notices are being delivered."""
    assert bot.app.job_queue is not None
    [job] = bot.app.job_queue.get_jobs_by_name("firm-outbox")
    for _ in range(times):
        await job.run(bot.app)
        await asyncio.sleep(0.01)


async def test_a_hundred_completions_at_once_while_reminders_are_swept(crowd: Harness) -> None:
    bot = crowd
    waiting = [WAITING_BASE + i for i in range(WAITING)]
    finishers = [FINISHER_BASE + i for i in range(FINISHERS)]
    # Yesterday, other clients stopped at step 2: their first reminder is due now.
    for user in waiting:
        await walk_to_step(bot, user, 2)
    bot.clock.advance(days=1, minutes=1)
    bot.request.clear()

    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                bot.deps.sweeper.sweep(bot.app.bot),
                retry_firm_notices(bot),
                *(finish(bot, user) for user in finishers),
                return_exceptions=True,
            ),
            timeout=60,
        )
    finally:
        root.removeHandler(records)

    failures = [result for result in results if isinstance(result, BaseException)]
    assert failures == []
    assert [t for t in records.texts() if any(lock in t for lock in LOCK_ERRORS)] == []
    assert [r.getMessage() for r in records.records if r.levelno >= logging.ERROR] == []

    # Every completion recorded exactly once.
    per_company = bot.db_rows(
        "SELECT company_rut, COUNT(*) FROM events WHERE kind = 'completed' GROUP BY 1"
    )
    assert sorted(per_company) == sorted((company(user), 1) for user in finishers)
    completed = bot.db_rows("SELECT COUNT(*) FROM authorizations WHERE completed_at IS NOT NULL")
    assert completed == [(FINISHERS,)]

    # One notice per completion per firm chat, delivered once.
    firm_chats = len(bot.settings.firm_chat_ids)
    assert bot.db_rows("SELECT COUNT(*) FROM outbox") == [(FINISHERS * firm_chats,)]
    assert bot.db_rows(
        "SELECT sent_at IS NOT NULL, attempts, COUNT(*) FROM outbox GROUP BY 1, 2"
    ) == [(1, 1, FINISHERS * firm_chats)]
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        notices = [str(call.params["text"]) for call in sent_to(bot, chat)]
        assert len(notices) == FINISHERS
        for user in finishers:
            shown = stdnum_rut.format(company(user))
            assert sum(f"<code>{shown}</code>" in notice for notice in notices) == 1

    handler = conversation_handler(bot)
    for user in finishers:
        replies = [str(call.params["text"]) for call in sent_to(bot, user)]
        assert sum(DONE in text for text in replies) == 1, user
        assert not any(is_reminder(call) for call in sent_to(bot, user)), user
        assert await bot.repository.conversation(user, user) is None
        assert (user, user) not in handler._conversations

    # The reminders reached the clients who were due, once each.
    assert results[0] == WAITING
    for user in waiting:
        assert sum(is_reminder(call) for call in sent_to(bot, user)) == 1, user
        assert handler._conversations.get((user, user)) == "guide"
    assert bot.db_rows("PRAGMA integrity_check") == [("ok",)]


async def test_concurrent_presses_of_one_client_never_skip_or_double_a_step(
    crowd: Harness,
) -> None:
    bot = crowd
    users = [FINISHER_BASE + i for i in range(20)]
    for user in users:
        await walk_to_step(bot, user, 3)
    bot.request.clear()

    # Each client taps "next" at step 3 three times at once (a laggy phone), all clients
    # at the same time.
    await asyncio.gather(
        *(feed(bot, callback_update(user, "g:3:next")) for user in users for _ in range(3))
    )

    for user in users:
        authorization = await bot.repository.authorization(company(user))
        assert authorization is not None and authorization.step == 4
        # The presses that lost the race show where the client is (the poller never runs
        # one chat's updates side by side, but nothing may break if they are).
        steps = [str(c.params["text"]) for c in sent_to(bot, user)]
        assert steps and all("Paso 4 de 7" in text for text in steps), steps
    moves = bot.db_rows("SELECT COUNT(*) FROM events WHERE kind = 'step' AND step = 4")
    assert moves == [(len(users),)]


# --- known races ----------------------------------------------------------------------------


async def test_a_reminder_read_before_the_client_completes_is_not_sent_after(
    crowd: Harness,
) -> None:
    bot = crowd
    first, second = FINISHER_BASE, FINISHER_BASE + 1
    await walk_to_step(bot, first, 2)
    bot.clock.advance(minutes=1)
    await walk_to_step(bot, second, 2)
    bot.clock.advance(days=1, minutes=5)  # both reminders due; the first one's first

    completed = False

    async def pace(_: float) -> None:
        # While the sweeper paces after its first send, the second client finishes.
        nonlocal completed
        if not completed:
            completed = True
            await bot.steps_from(2, 7, user=second)
            await feed(bot, callback_update(second, "g:7:yes"))

    sweeper = ReminderSweeper(bot.settings, bot.repository, bot.deps.guide, bot.clock, sleep=pace)
    await sweeper.sweep(bot.app.bot)

    calls = sent_to(bot, second)
    done_at = next(i for i, call in enumerate(calls) if DONE in str(call.params["text"]))
    assert not any(is_reminder(call) for call in calls[done_at:])


# --- two people working on the same company ---------------------------------------------------

ANA, BETO = 830_001, 830_002
SHARED = "76086428-5"


async def _both_on_one_company(bot: Harness) -> None:
    """Ana starts the company's guide, then Beto starts the same company; Ana finishes it."""
    for user, name in ((ANA, "Ana"), (BETO, "Beto")):
        await feed(bot, message_update(user, "/start", first_name=name, username=None))
        await feed(bot, message_update(user, "76.086.428-5", first_name=name, username=None))
        await feed(bot, callback_update(user, "rut:ok", first_name=name, username=None))
    await bot.steps_from(1, 7, user=ANA, first_name="Ana", username=None)
    await feed(bot, callback_update(ANA, "g:7:yes", first_name="Ana", username=None))
    assert DONE in str(sent_to(bot, ANA)[-1].params["text"])


async def test_the_firm_notice_names_the_client_who_completed(crowd: Harness) -> None:
    bot = crowd
    await _both_on_one_company(bot)
    notice = str(sent_to(bot, FIRM_CHAT)[-1].params["text"])
    assert "Ana" in notice and str(ANA) in notice
    authorization = await bot.repository.authorization(SHARED)
    assert authorization is not None and authorization.client_chat_id == ANA


async def test_completion_ends_every_conversation_and_reminder_of_that_company(
    crowd: Harness,
) -> None:
    bot = crowd
    await _both_on_one_company(bot)
    beto = await bot.repository.conversation(BETO, BETO)
    stranded = beto is not None and beto.state == "guide" and beto.company_rut == SHARED
    bot.clock.advance(days=2)
    before = len(sent_to(bot, BETO))
    await bot.deps.sweeper.sweep(bot.app.bot)
    reminded = any(is_reminder(call) for call in sent_to(bot, BETO)[before:])
    assert (stranded, reminded) == (False, False)
