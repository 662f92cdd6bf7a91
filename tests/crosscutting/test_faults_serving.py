"""Faults that must not stop the bot serving everyone: updates it cannot read, a database
refusing writes, one slow chat, one chat failing for the reminders.

The real Poller runs against the recording fake (getUpdates served with Telegram's offset
semantics); storage faults come from real files: a second connection holding SQLite's write
lock, and a small tmpfs filled to the last byte.
"""

import asyncio
import logging
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram.error import TimedOut
from telegram.ext import Application

from bot.domain.settings import Settings
from bot.services.polling import Poller
from tests.support.fake_telegram import callback_update, message_update
from tests.support.faulty_telegram import FaultyHarness, FaultyTelegram
from tests.support.harness import CLIENT, FIRM_CHAT, FakeClock, Harness, make_settings

OTHER = 777_002
THIRD = 777_003
SHOWN = "76.086.428-5"


@pytest.fixture
async def bot(settings: Settings, clock: FakeClock) -> AsyncIterator[FaultyHarness]:
    """A booted bot talking to a FaultyTelegram."""
    harness = await FaultyHarness(settings, clock, FaultyTelegram()).boot()
    yield harness
    await harness.close()


# --- helpers ------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `condition()` holds, failing the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def polling(
    bot: FaultyHarness, **options: Any
) -> AsyncIterator[tuple[Poller, asyncio.Task[None]]]:
    """Run the real Poller in the background; stop it (and check it stopped) afterwards."""
    poller = bot.assembly.poller(**options)
    task = asyncio.create_task(poller.run())
    try:
        yield poller, task
    finally:
        poller.stop()
        with suppress(Exception):
            await asyncio.wait_for(task, timeout=15)


def alive(task: asyncio.Task[None]) -> None:
    """The poller is still running (it did not die of an exception)."""
    if task.done():
        raise AssertionError(f"the poller stopped: {task.exception()!r}")


def answered(bot: FaultyHarness, chat: int) -> int:
    return len(bot.texts(chat))


def count_of(bot: FaultyHarness, text: str, chat: int = CLIENT) -> int:
    return bot.texts(chat).count(text)


def poll_update(user: int, update_id: int | None = None) -> dict[str, Any]:
    """A client forwards a poll as a newer Bot API sends it, which PTB 22.8 cannot read."""
    raw = message_update(user, "x", update_id=update_id)
    message = raw["message"]
    del message["text"]
    message["poll"] = {
        "id": "poll-1",
        "question": "¿Cuál es mi clave secreta del SII?",
        "options": [{"text": "clave-secreta-1234", "voter_count": 0}],  # no persistent_id
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": False,
    }
    return raw


# --- 1. an update the library cannot parse; an update whose processing raises -----------


async def test_an_update_the_library_cannot_read_is_skipped_and_the_rest_are_served(
    bot: FaultyHarness, caplog: pytest.LogCaptureFixture
) -> None:
    guide = bot.deps.guide
    bad = bot.request.queue_update(poll_update(CLIENT))
    bot.request.queue_update(message_update(CLIENT, "/start"))
    bot.request.queue_update(message_update(OTHER, "/start", first_name="Pedro"))
    with caplog.at_level(logging.WARNING, logger="bot.services.polling"):
        async with polling(bot) as (_, task):
            await until(lambda: answered(bot, CLIENT) == 2 and answered(bot, OTHER) == 2)
            # Telegram is told to move past all three, the unreadable one included.
            await until(lambda: bad in bot.request.acknowledged, within=3)
            alive(task)
    assert bot.texts(CLIENT) == [guide.message("welcome"), guide.message("ask_device")]
    assert bot.texts(OTHER) == [guide.message("welcome"), guide.message("ask_device")]
    assert bot.request.told_offset == max(u for u in bot.request.acknowledged) + 1
    [record] = [r for r in caplog.records if "could not be read" in r.getMessage()]
    logged = record.getMessage()
    assert str(bad) in logged and "message" in logged
    # Only the id and the type: nothing of what the client sent.
    everything = " ".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "secreta" not in everything and "Juana" not in everything


async def test_an_unreadable_update_in_a_restart_batch_does_not_replay_the_others(
    bot: FaultyHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # One readable update was processed before a crash (its marker in its handler's commit);
    # the batch comes again with a bad one.
    done = message_update(CLIENT, "/start")
    await bot.feed(done)
    before = bot.texts(CLIENT)
    bot.request.queue_update(done)
    bot.request.queue_update(poll_update(OTHER))
    with caplog.at_level(logging.WARNING, logger="bot.services.polling"):
        async with polling(bot) as (_, task):
            await until(lambda: len(bot.request.acknowledged) == 2)
            alive(task)
    # Not applied twice (no second welcome): the client is only shown where they are, in
    # case the first answer never went out.
    assert bot.texts(CLIENT) == [*before, bot.deps.guide.message("ask_device")]
    assert len([r for r in caplog.records if "could not be read" in r.getMessage()]) == 1


async def test_an_update_whose_processing_raises_does_not_stop_the_poller(
    bot: FaultyHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    guide = bot.deps.guide
    poison = bot.request.queue_update(message_update(CLIENT, "/start"))
    bot.request.queue_update(message_update(CLIENT, "/ayuda"))
    bot.request.queue_update(message_update(OTHER, "/start", first_name="Pedro"))
    real = Application.process_update

    async def process_update(self: Any, update: Any) -> None:
        if getattr(update, "update_id", None) == poison:
            raise RuntimeError("a bug outside every handler")
        await real(self, update)

    monkeypatch.setattr(Application, "process_update", process_update)
    with caplog.at_level(logging.ERROR, logger="bot.services.polling"):
        async with polling(bot) as (_, task):
            await until(lambda: answered(bot, CLIENT) == 1 and answered(bot, OTHER) == 2)
            await until(lambda: len(bot.request.acknowledged) == 3, within=3)
            alive(task)
    assert bot.texts(CLIENT) == [guide.message("help")]
    [failed] = [r for r in caplog.records if "failed outside its handlers" in r.getMessage()]
    assert str(poison) in failed.getMessage()


# --- 2. the database refusing writes in the middle of a batch ------------------------------


@pytest.fixture
async def quick_bot(settings: Settings, clock: FakeClock) -> AsyncIterator[FaultyHarness]:
    """A bot whose database gives up on a held lock after 0.2 s instead of 5 s."""
    harness = await FaultyHarness(settings, clock, FaultyTelegram()).boot()
    await harness.repository.database.connection.execute("PRAGMA busy_timeout = 200")
    yield harness
    await harness.close()


@asynccontextmanager
async def write_lock(settings: Settings) -> AsyncIterator[None]:
    """Another program holds SQLite's write lock (BEGIN IMMEDIATE) until the block ends."""
    with closing(sqlite3.connect(settings.database_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


async def test_a_locked_database_leaves_the_update_unacknowledged_until_it_writes_again(
    quick_bot: FaultyHarness, caplog: pytest.LogCaptureFixture
) -> None:
    bot, guide = quick_bot, quick_bot.deps.guide
    first = bot.request.queue_update(message_update(CLIENT, "/start"))
    async with polling(bot) as (_, task):
        await until(lambda: first in bot.request.acknowledged)
        confirmed = bot.request.told_offset
        assert confirmed == first + 1
        async with write_lock(bot.settings):
            rut = bot.request.queue_update(message_update(CLIENT, SHOWN))
            other = bot.request.queue_update(message_update(OTHER, "/ayuda", first_name="Pedro"))
            await until(lambda: count_of(bot, guide.message("error")) == 1)
            await asyncio.sleep(2.0)  # several retries of the marker and the offset
            alive(task)
            # Neither is acknowledged while their markers cannot be written.
            assert rut not in bot.request.acknowledged and other not in bot.request.acknowledged
            told = bot.request.told_offset
            assert confirmed is not None and told is not None and told <= rut
        await until(lambda: other in bot.request.acknowledged and rut in bot.request.acknowledged)
        assert bot.request.told_offset == other + 1
        # One "inténtelo de nuevo" for the update that failed, not one per retry.
        assert count_of(bot, guide.message("error")) == 1
        # The client does as told and it works.
        bot.request.queue_update(message_update(CLIENT, SHOWN))
        confirm = guide.message("rut_confirm", company_rut=SHOWN)
        await until(lambda: bot.last_text(CLIENT) == confirm)
        alive(task)
    assert any("not recorded" in r.getMessage() for r in caplog.records)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB filesystem of its own (tmpfs), unmounted afterwards; skipped where not root."""
    where = tmp_path / "small"
    if not _mount_tmpfs(where, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte; return the filler file."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 512, 1):
            with suppress(OSError):
                while True:
                    os.write(descriptor, b"\0" * size)
    finally:
        os.close(descriptor)
    return filler


async def test_a_full_disk_leaves_updates_unacknowledged_and_the_bot_resumes(
    small_disk: Path, clock: FakeClock
) -> None:
    settings = make_settings(small_disk, database_path=small_disk / "bot.sqlite3")
    bot = await FaultyHarness(settings, clock, FaultyTelegram()).boot()
    guide = bot.deps.guide
    try:
        first = bot.request.queue_update(message_update(CLIENT, "/start"))
        async with polling(bot) as (_, task):
            await until(lambda: first in bot.request.acknowledged)
            filler = fill(small_disk)
            rut = bot.request.queue_update(message_update(CLIENT, SHOWN))
            await until(lambda: count_of(bot, guide.message("error")) == 1)
            await asyncio.sleep(2.0)
            alive(task)
            assert rut not in bot.request.acknowledged
            filler.unlink()  # space again
            await until(lambda: rut in bot.request.acknowledged, within=10)
            assert count_of(bot, guide.message("error")) == 1
            bot.request.queue_update(message_update(CLIENT, SHOWN))
            confirm = guide.message("rut_confirm", company_rut=SHOWN)
            await until(lambda: bot.last_text(CLIENT) == confirm)
            alive(task)
    finally:
        await bot.close()


# --- 3. one slow chat must not freeze everyone ----------------------------------------------


async def test_other_chats_are_answered_while_one_chat_waits(bot: FaultyHarness) -> None:
    guide = bot.deps.guide
    gate = bot.request.hold("sendMessage", CLIENT)  # Telegram makes this chat wait
    slow = bot.request.queue_update(message_update(CLIENT, "/start"))
    async with polling(bot) as (poller, task):
        await until(lambda: bot.request.held("sendMessage", CLIENT) == 1)
        # Fetched after the slow chat's update, answered while it still waits.
        fast = bot.request.queue_update(message_update(OTHER, "/start", first_name="Pedro"))
        await until(lambda: answered(bot, OTHER) == 2, within=3)
        later = bot.request.queue_update(message_update(THIRD, "/ayuda", first_name="Ana"))
        await until(lambda: answered(bot, THIRD) == 1, within=3)
        await until(lambda: poller.backlog == 1)  # only the slow one is left
        assert answered(bot, CLIENT) == 0
        # Done, but not acknowledged: an update before them is not.
        assert slow not in bot.request.acknowledged
        assert fast not in bot.request.acknowledged and later not in bot.request.acknowledged
        assert bot.request.told_offset in (None, slow)
        gate.set()
        await until(lambda: answered(bot, CLIENT) == 2)
        await until(lambda: later in bot.request.acknowledged)
        alive(task)
    assert bot.texts(CLIENT) == [guide.message("welcome"), guide.message("ask_device")]
    assert bot.request.told_offset == later + 1


async def test_a_chats_updates_stay_in_order_while_it_waits(bot: FaultyHarness) -> None:
    guide = bot.deps.guide
    gate = bot.request.hold("sendMessage", CLIENT)
    bot.request.queue_update(message_update(CLIENT, "/start"))
    async with polling(bot) as (_, task):
        await until(lambda: bot.request.held("sendMessage", CLIENT) == 1)
        bot.request.queue_update(message_update(CLIENT, SHOWN))
        bot.request.queue_update(message_update(OTHER, "/ayuda", first_name="Pedro"))
        await until(lambda: answered(bot, OTHER) == 1, within=3)
        await asyncio.sleep(0.2)
        # The RUT waits behind the /start of the same chat.
        assert bot.request.held("sendMessage", CLIENT) == 1
        gate.set()
        confirm = guide.message("rut_confirm", company_rut=SHOWN)
        await until(lambda: bot.texts(CLIENT)[-1:] == [confirm])
        alive(task)
    assert bot.texts(CLIENT) == [guide.message("welcome"), guide.message("ask_device"), confirm]


async def test_a_stop_while_a_chat_is_stuck_returns_within_the_grace_period(
    bot: FaultyHarness,
) -> None:
    bot.request.hold("sendMessage", CLIENT)  # never released
    stuck = bot.request.queue_update(message_update(CLIENT, "/start"))
    async with polling(bot, stop_grace=0.5) as (poller, task):
        await until(lambda: bot.request.held("sendMessage", CLIENT) == 1)
        other = bot.request.queue_update(message_update(OTHER, "/ayuda", first_name="Pedro"))
        await until(lambda: answered(bot, OTHER) == 1, within=3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        poller.stop()
        await asyncio.wait_for(task, timeout=5)
        assert loop.time() - started < 3
    # Both come again after the restart. Each one's marker was written with its handler's
    # changes (the stuck one had stored its new state before its answer hung), so the next
    # run applies neither twice; it shows the stuck client where they are.
    assert stuck not in bot.request.acknowledged and other not in bot.request.acknowledged
    assert bot.request.told_offset == stuck
    assert bot.db_rows("SELECT update_id FROM processed_updates") == [(stuck,), (other,)]


# --- 4. one failing chat must not starve the reminders --------------------------------------


async def test_a_chat_answering_500_is_put_off_and_the_sweep_goes_on(bot: FaultyHarness) -> None:
    await bot.reach_step(3)
    bot.clock.advance(seconds=1)
    await bot.reach_step(2, user=OTHER, rut="77111222-6", first_name="Pedro")
    bot.clock.advance(seconds=1)
    await bot.reach_step(2, user=THIRD, rut="96790240-3", first_name="Ana")
    bot.clock.advance(days=1)
    # Juana's chat is the most overdue (she stopped first) and always answers 500.
    bot.request.answer_error("sendMessage", 500, "Internal Server Error", chat_id=CLIENT, times=50)
    reminder = bot.deps.guide.message("reminder_step", step=2, company_rut="77.111.222-6")

    async def sweep() -> int:
        return await bot.deps.sweeper.sweep(bot.app.bot)

    assert await sweep() == 2
    assert bot.last_text(OTHER) == reminder
    due = {
        chat: due_at
        for chat, due_at in bot.db_rows("SELECT chat_id, due_at FROM reminders ORDER BY due_at")
    }
    now = bot.clock.now().timestamp()
    assert due[CLIENT] == now + 60  # put off a minute
    # Each failure doubles the wait: 1, 2, 4 minutes …
    for minutes in (2, 4, 8):
        bot.clock.advance(seconds=due[CLIENT] - bot.clock.now().timestamp())
        assert await sweep() == 0
        [(due_at,)] = bot.db_rows("SELECT due_at FROM reminders WHERE chat_id = ?", (CLIENT,))
        assert due_at == bot.clock.now().timestamp() + minutes * 60
        due[CLIENT] = due_at
    # … up to an hour, and the reminder is still there for when the chat works again.
    bot.request.stop_errors()
    bot.clock.advance(seconds=due[CLIENT] - bot.clock.now().timestamp())
    assert await sweep() == 1
    assert bot.last_text(CLIENT) == bot.deps.guide.message(
        "reminder_step", step=3, company_rut=SHOWN
    )


async def test_the_backoff_of_a_failing_chat_is_capped(bot: FaultyHarness) -> None:
    await bot.reach_step(3)
    bot.clock.advance(days=1)
    bot.request.answer_error("sendMessage", 500, "Internal Server Error", chat_id=CLIENT, times=99)
    waits = []
    for _ in range(9):
        assert await bot.deps.sweeper.sweep(bot.app.bot) == 0
        [(due_at,)] = bot.db_rows("SELECT due_at FROM reminders WHERE chat_id = ?", (CLIENT,))
        waits.append(round(due_at - bot.clock.now().timestamp()))
        bot.clock.advance(seconds=due_at - bot.clock.now().timestamp())
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


async def test_several_chats_failing_in_a_row_stop_the_sweep(bot: FaultyHarness) -> None:
    chats = [CLIENT, OTHER, THIRD, 777_004]
    ruts = ["76086428-5", "77111222-6", "96790240-3", "11111111-1"]
    for chat, rut in zip(chats, ruts, strict=True):
        await bot.reach_step(2, user=chat, rut=rut)
        bot.clock.advance(seconds=1)
    bot.clock.advance(days=1)
    bot.request.answer_error("sendMessage", 500, "Internal Server Error", times=3)
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 0
    # Telegram itself looks broken: the fourth is left for the next sweep, untouched.
    rows = dict(bot.db_rows("SELECT chat_id, due_at FROM reminders"))
    assert rows[777_004] < bot.clock.now().timestamp()
    assert all(rows[chat] > bot.clock.now().timestamp() for chat in chats[:3])
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 1


async def test_a_backed_off_reminder_keeps_its_schedule_after_it_goes_through(
    bot: FaultyHarness,
) -> None:
    await bot.reach_step(3)
    start = bot.clock.now()
    bot.clock.advance(days=1)
    bot.request.answer_error("sendMessage", 500, "Internal Server Error", chat_id=CLIENT)
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 0
    bot.clock.advance(minutes=1)
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 1
    [(sequence, due_at)] = bot.db_rows("SELECT sequence, due_at FROM reminders")
    # The next one keeps the schedule's 2-day gap after the one that went out late.
    assert sequence == 1
    assert due_at == (start + timedelta(days=3, minutes=1)).timestamp()


async def test_a_chat_timing_out_twice_is_put_off_and_the_others_go_out(bot: FaultyHarness) -> None:
    await bot.reach_step(3)
    bot.clock.advance(seconds=1)
    await bot.reach_step(2, user=OTHER, rut="77111222-6", first_name="Pedro")
    bot.clock.advance(days=1)
    # No answer at all: Telegram may be unreachable for everyone, so the sweep pauses …
    bot.request.fail_next("sendMessage", TimedOut())
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 0
    assert (
        len(
            bot.db_rows("SELECT 1 FROM reminders WHERE due_at <= ?", (bot.clock.now().timestamp(),))
        )
        == 2
    )
    # … but the same chat failing again is put off, and the sweep goes on.
    bot.clock.advance(minutes=1)
    bot.request.fail_next("sendMessage", TimedOut())
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 1
    assert bot.last_text(OTHER) == bot.deps.guide.message(
        "reminder_step", step=2, company_rut="77.111.222-6"
    )
    [(due_at,)] = bot.db_rows("SELECT due_at FROM reminders WHERE chat_id = ?", (CLIENT,))
    assert due_at == bot.clock.now().timestamp() + 120


# --- replies Telegram could not take ---------------------------------------------------------


async def test_replies_lost_in_an_outage_are_sent_once_telegram_answers_again(
    bot: FaultyHarness,
) -> None:
    guide = bot.deps.guide
    first = bot.request.queue_update(message_update(CLIENT, "/start"))
    async with polling(bot) as (_, task):
        await until(lambda: first in bot.request.acknowledged)
        # The RUT is stored, and then Telegram answers 500 to everything sent for a while.
        bot.request.answer_error("sendMessage", 500, "Internal Server Error", times=6)
        rut = bot.request.queue_update(message_update(CLIENT, SHOWN))
        confirm = guide.message("rut_confirm", company_rut=SHOWN)
        await until(lambda: count_of(bot, confirm) == 1, within=10)
        alive(task)
        # Acknowledged only once the client had the question.
        await until(lambda: rut in bot.request.acknowledged)
    [(state, candidate)] = bot.db_rows("SELECT state, candidate_rut FROM conversations")
    assert (state, candidate) == ("confirm_rut", "76086428-5")
    assert count_of(bot, confirm) == 1


async def test_a_429_on_one_chat_delays_only_that_chat(tmp_path: Path, clock: FakeClock) -> None:
    from telegram.error import RetryAfter

    bot = await FaultyHarness(
        make_settings(tmp_path), clock, FaultyTelegram(), rate_limit=True
    ).boot()
    try:
        guide = bot.deps.guide
        bot.request.fail_next("sendMessage", RetryAfter(timedelta(seconds=2)))  # this chat: wait
        slow = bot.request.queue_update(message_update(CLIENT, "/start"))
        async with polling(bot) as (_, task):
            await until(lambda: not bot.request.faults["sendMessage"])
            bot.request.queue_update(message_update(OTHER, "/start", first_name="Pedro"))
            # The other client is answered while the first one's reply waits out its 429.
            await until(lambda: answered(bot, OTHER) == 2, within=1.5)
            assert answered(bot, CLIENT) == 0
            await until(lambda: answered(bot, CLIENT) == 2, within=5)
            await until(lambda: slow in bot.request.acknowledged)
            alive(task)
        assert bot.texts(CLIENT) == [guide.message("welcome"), guide.message("ask_device")]
    finally:
        await bot.close()


async def test_a_paced_firm_group_never_delays_the_clients_listo(bot: FaultyHarness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7, rut=SHOWN)
    gate = bot.request.hold("sendMessage", FIRM_CHAT)  # the group's 20-a-minute pace
    done = guide.message("done", company_rut=SHOWN)
    async with polling(bot) as (_, task):
        bot.request.queue_update(callback_update(CLIENT, "g:7:yes"))
        await until(lambda: count_of(bot, done) == 1, within=3)
        other = bot.request.queue_update(message_update(OTHER, "/start", first_name="Pedro"))
        await until(lambda: answered(bot, OTHER) == 2, within=3)
        assert bot.texts(FIRM_CHAT) == []  # still held: the notice waits, nobody else does
        gate.set()
        await until(lambda: len(bot.texts(FIRM_CHAT)) == 1, within=5)
        await until(lambda: other in bot.request.acknowledged)
        alive(task)


async def test_two_processes_on_one_database_route_by_the_stored_state(
    settings: Settings, clock: FakeClock
) -> None:
    # An overlapping deploy: the old and the new process both answer the same client.
    old = await Harness(settings, clock).boot()
    new = await Harness(settings, clock).boot()
    try:
        await old.reach_step(2)
        for number, process in zip(range(2, 7), [new, old, new, old, new], strict=True):
            action = "save" if number == 6 else "next"
            await process.press(f"g:{number}:{action}")
            assert process.last_text() == process.deps.guide.step(number + 1, "76086428-5")
        [(step,)] = old.db_rows("SELECT step FROM authorizations")
        assert step == 7
    finally:
        await new.close()
        await old.close()


async def test_a_failed_spinner_answer_never_cancels_the_press(bot: FaultyHarness) -> None:
    from telegram.error import NetworkError

    await bot.reach_step(3)
    bot.request.fail_next("answerCallbackQuery", NetworkError("Internal Server Error"))
    await bot.press("g:3:next")
    assert bot.last_text() == bot.deps.guide.step(4, "76086428-5")
    assert bot.deps.guide.message("error") not in bot.texts()
