"""Many things at once: clients finishing side by side while reminders go out.

python-telegram-bot processes updates one by one by default, but `process_update` may be
called concurrently (bot.services.polling does so, one chain per chat). Here a hundred clients run
their whole flow at the same time, through one Application and one SQLite connection,
while the reminder sweeper sends due reminders to other clients.

Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
Steps are sent as photos (sendPhoto), every other message as text (sendMessage).
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

from bot.guide.guide import local_datetime
from bot.services.notifications import describe_duration
from bot.services.reminders import ReminderSweeper
from tests.support.fake_telegram import Call, button_data, callback_update, message_update
from tests.support.harness import FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings

FINISHERS = 100
WAITING = 60
FINISHER_BASE = 810_000  # user ids of the clients who complete
WAITING_BASE = 820_000  # user ids of the clients who stopped at step 2 yesterday
LOCK_ERRORS = ("database is locked", "within a transaction", "database table is locked")


def company(user: int) -> str:
    """A distinct valid company RUT per client, compact."""
    number = str(60_000_000 + user % 1_000_000)
    return f"{number}-{stdnum_rut.calc_check_digit(number)}"


def is_reminder(call: Call) -> bool:
    return "rem:stop" in button_data(call)


def sent_to(bot: Harness, chat: int) -> list[Call]:
    """Every message sent to a chat (texts and photos), in order."""
    return bot.request.sent(chat)


def done(bot: Harness, user: int) -> str:
    """The "¡Listo!" message of a client's company."""
    return bot.deps.guide.message("done", company_rut=stdnum_rut.format(company(user)))


async def firm_notice(bot: Harness, user: int) -> str:
    """The firm's completion notice for a client's company, as it must read."""
    authorization = await bot.repository.authorizations.authorization(company(user))
    assert authorization is not None and authorization.completed_at is not None
    return bot.deps.guide.message(
        "firm_completed",
        company_rut=stdnum_rut.format(company(user)),
        client_name=f"C{user}",
        client_username="@juana_pyme",
        client_id=user,
        completed_at=local_datetime(authorization.completed_at, bot.settings.timezone),
        duration=describe_duration(authorization.completed_at - authorization.started_at),
    )


def in_memory_states(bot: Harness, user: int) -> list[object]:
    """The client's state in every copy kept in memory (a ConversationHandler's, if any).

    Where the database is the only copy (conversations.client.router), there is none to disagree.
    """
    key = (user, user)
    return [
        h._conversations.get(key)
        for handlers in bot.app.handlers.values()
        for h in handlers
        if isinstance(h, ConversationHandler)
    ]


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
    await feed(bot, callback_update(user, "dev:pc", first_name=f"C{user}"))
    await feed(bot, message_update(user, company(user), first_name=f"C{user}"))
    await feed(bot, callback_update(user, "rut:ok", first_name=f"C{user}"))
    await bot.steps_from(1, step, user=user, first_name=f"C{user}")


async def finish(bot: Harness, user: int) -> None:
    """A whole flow, ending with a double tap on the final button.

    One chat's updates run in order, as bot.services.polling runs them; chats run side by side.
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
        notices = [call.text for call in sent_to(bot, chat)]
        assert len(notices) == FINISHERS
        for user in finishers:
            assert notices.count(await firm_notice(bot, user)) == 1, user

    for user in finishers:
        replies = [call.text for call in sent_to(bot, user)]
        assert replies.count(done(bot, user)) == 1, user
        assert not any(is_reminder(call) for call in sent_to(bot, user)), user
        assert await bot.repository.conversations.conversation(user, user) is None
        assert all(state is None for state in in_memory_states(bot, user)), user

    # The reminders reached the clients who were due, once each.
    assert results[0] == WAITING
    for user in waiting:
        assert sum(is_reminder(call) for call in sent_to(bot, user)) == 1, user
        stored = await bot.repository.conversations.conversation(user, user)
        assert stored is not None and stored.state == "guide", user
        assert all(state == "guide" for state in in_memory_states(bot, user)), user
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
        authorization = await bot.repository.authorizations.authorization(company(user))
        assert authorization is not None and authorization.step == 4
        # The presses that lost the race show where the client is (the poller never runs
        # one chat's updates side by side, but nothing may break if they are).
        step_4 = bot.deps.guide.step(4, company(user))
        steps = [call.text for call in sent_to(bot, user)]
        assert steps == [step_4] * 3, steps
        assert all(call.method == "sendPhoto" for call in sent_to(bot, user))
    moves = bot.db_rows("SELECT COUNT(*) FROM events WHERE kind = 'step' AND step = 4")
    assert moves == [(len(users),)]


async def test_concurrent_taps_on_saved_yes_complete_once(crowd: Harness) -> None:
    bot = crowd
    users = [FINISHER_BASE + i for i in range(10)]
    for user in users:
        await walk_to_step(bot, user, 7)
    bot.request.clear()

    # "Sí, apareció", tapped three times by each client at once.
    await asyncio.gather(
        *(
            feed(bot, callback_update(user, "g:7:yes", first_name=f"C{user}"))
            for user in users
            for _ in range(3)
        )
    )

    for user in users:
        already = bot.deps.guide.message(
            "already_completed", company_rut=stdnum_rut.format(company(user))
        )
        replies = sorted(call.text for call in sent_to(bot, user))
        assert replies == sorted([done(bot, user), already, already]), user
        assert await bot.repository.conversations.conversation(user, user) is None
    per_company = bot.db_rows(
        "SELECT company_rut, COUNT(*) FROM events WHERE kind = 'completed' GROUP BY 1"
    )
    assert sorted(per_company) == sorted((company(user), 1) for user in users)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        notices = [call.text for call in sent_to(bot, chat)]
        assert sorted(notices) == sorted([await firm_notice(bot, user) for user in users])


async def _confirming(bot: Harness, user: int, entry: str) -> None:
    """Bring a client to the question `entry` answers: the RUT, or repeating a completion."""
    if entry == "rep:yes":
        await finish(bot, user)
    await feed(bot, message_update(user, "/start", first_name=f"C{user}"))
    await feed(bot, message_update(user, company(user), first_name=f"C{user}"))
    if entry == "rep:yes":
        await feed(bot, callback_update(user, "rut:ok", first_name=f"C{user}"))
    stored = await bot.repository.conversations.conversation(user, user)
    assert stored is not None
    assert stored.state == ("confirm_repeat" if entry == "rep:yes" else "confirm_rut")


@pytest.mark.parametrize("entry", ["rut:ok", "rep:yes"])
async def test_concurrent_taps_on_the_confirmation_start_the_guide_once(
    crowd: Harness, entry: str
) -> None:
    bot = crowd
    users = [FINISHER_BASE + i for i in range(10)]
    for user in users:
        await _confirming(bot, user, entry)
    [(last_event,)] = bot.db_rows("SELECT COALESCE(MAX(id), 0) FROM events")
    bot.request.clear()

    # "Sí, es correcto" (or "Repetir de todas formas") tapped three times at once.
    await asyncio.gather(
        *(
            feed(bot, callback_update(user, entry, first_name=f"C{user}"))
            for user in users
            for _ in range(3)
        )
    )

    # The guide started once per client (one 'started' event), not once per tap.
    started = bot.db_rows(
        "SELECT company_rut, COUNT(*) FROM events WHERE kind = 'started' AND id > ? GROUP BY 1",
        (last_event,),
    )
    assert sorted(started) == sorted((company(user), 1) for user in users)
    for user in users:
        authorization = await bot.repository.authorizations.authorization(company(user))
        assert authorization is not None and authorization.step == 1
        assert authorization.completed_at is None
        stored = await bot.repository.conversations.conversation(user, user)
        assert stored is not None and stored.state == "guide"
        # Who can do it and step 1 once; the taps that lost the race show step 1 again.
        who_can = bot.deps.guide.message("who_can", company_rut=stdnum_rut.format(company(user)))
        step_1 = bot.deps.guide.step(1, company(user))
        replies = sorted(call.text for call in sent_to(bot, user))
        assert replies == sorted([who_can, step_1, step_1, step_1]), user


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
    done_at = next(i for i, call in enumerate(calls) if call.text == done(bot, second))
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
    assert sent_to(bot, ANA)[-1].text == bot.deps.guide.message("done", company_rut="76.086.428-5")


async def test_the_firm_notice_names_the_client_who_completed(crowd: Harness) -> None:
    bot = crowd
    await _both_on_one_company(bot)
    notice = sent_to(bot, FIRM_CHAT)[-1].text
    assert "Ana" in notice and str(ANA) in notice
    authorization = await bot.repository.authorizations.authorization(SHARED)
    assert authorization is not None and authorization.client_chat_id == ANA


async def test_completion_ends_every_conversation_and_reminder_of_that_company(
    crowd: Harness,
) -> None:
    bot = crowd
    await _both_on_one_company(bot)
    beto = await bot.repository.conversations.conversation(BETO, BETO)
    stranded = beto is not None and beto.state == "guide" and beto.company_rut == SHARED
    bot.clock.advance(days=2)
    before = len(sent_to(bot, BETO))
    await bot.deps.sweeper.sweep(bot.app.bot)
    reminded = any(is_reminder(call) for call in sent_to(bot, BETO)[before:])
    assert (stranded, reminded) == (False, False)
