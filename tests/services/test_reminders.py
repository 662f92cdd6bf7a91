"""Reminders bring back clients who stopped: schedule, quiet hours, opt-out, crashes, later.

Expected wording comes from the guide in effect (`bot.deps.guide`); the "remind me later"
choices are named by `bot.domain.schedule.remind_later_options`.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from stdnum.cl.rut import calc_check_digit
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.domain.clock import from_timestamp
from bot.domain.schedule import LaterOption, remind_later_options
from bot.domain.settings import Settings
from bot.guide.guide import local_date, local_datetime
from bot.services.reminders import ReminderSweeper, next_after
from bot.storage.repository import DueReminder, ReminderKind
from tests.support.fake_telegram import Call, button_data, buttons
from tests.support.harness import CLIENT, FIRM_CHAT, FakeClock, Harness, db_rows, make_settings

RUT = "76086428-5"
SHOWN_RUT = "76.086.428-5"
OTHER_CLIENT = 777_002
OTHER_RUT = "77111222-6"
OTHER_SHOWN = "77.111.222-6"
SCL = ZoneInfo("America/Santiago")
REMINDER_BUTTONS = ["st:resume", "rem:stop"]
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # FakeClock's start: 12:00 in Santiago


def local(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    """The UTC instant when Santiago's wall clock shows that time in 2026."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=SCL).astimezone(UTC)


def move_to(clock: FakeClock, when: datetime) -> None:
    """Set the fake clock to a later instant."""
    assert when >= clock.moment, "time only moves forward"
    clock.moment = when


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The production schedule, no quiet hours, the fastest allowed pacing."""
    return make_settings(tmp_path, reminder_schedule="1d,3d,7d", reminder_rate=30)


@dataclass(frozen=True)
class Row:
    """One row of the reminders table."""

    chat_id: int
    company_rut: str | None
    kind: str
    sequence: int
    anchor_at: datetime
    due_at: datetime


def reminder_rows(settings: Settings) -> list[Row]:
    """Read the pending reminders straight from the SQLite file."""
    rows = db_rows(
        settings,
        "SELECT chat_id, company_rut, kind, sequence, anchor_at, due_at FROM reminders "
        "ORDER BY due_at",
    )
    return [Row(r[0], r[1], r[2], r[3], from_timestamp(r[4]), from_timestamp(r[5])) for r in rows]


def event_kinds(settings: Settings, company_rut: str) -> list[str]:
    """The history of one company, oldest first."""
    rows = db_rows(
        settings, "SELECT kind FROM events WHERE company_rut = ? ORDER BY id", (company_rut,)
    )
    return [row[0] for row in rows]


async def sweep(bot: Harness) -> list[Call]:
    """Run one sweep of the real sweeper; return the messages it sent."""
    before = len(bot.request.calls)
    count = await bot.deps.sweeper.sweep(bot.app.bot)
    sent = [call for call in bot.request.calls[before:] if call.method == "sendMessage"]
    assert count == len(sent)
    return sent


async def run_reminders_job(bot: Harness) -> None:
    """Run the periodic jobs once: reminders, digest, retention, firm outbox."""
    await bot.run_jobs()


def step_reminder(bot: Harness, step: int, shown: str = SHOWN_RUT) -> str:
    """The reminder of an unfinished step, as the client must read it."""
    return bot.deps.guide.message("reminder_step", step=step, company_rut=shown)


def assert_reminder_buttons(bot: Harness, call: Call) -> None:
    """A reminder offers to continue or to stop reminders, labelled as the guide says."""
    guide = bot.deps.guide
    assert button_data(call) == REMINDER_BUTTONS
    assert [b["text"] for b in buttons(call)] == [
        guide.button("continue"),
        guide.button("stop_reminders"),
    ]


def assert_step_reminder(
    bot: Harness, call: Call, step: int, chat_id: int = CLIENT, shown: str = SHOWN_RUT
) -> None:
    """A reminder of an unfinished step, with its two buttons."""
    assert int(call.params["chat_id"]) == chat_id
    assert call.text == step_reminder(bot, step, shown)
    assert_reminder_buttons(bot, call)


def step_text(bot: Harness, step: int, rut: str = RUT) -> str:
    """Step `step` of the guide, as the client must read it."""
    return bot.deps.guide.step(step, rut)


async def reminders_sent(bot: Harness, rut: str = RUT) -> int:
    authorization = await bot.repository.authorizations.authorization(rut)
    assert authorization is not None
    return authorization.reminders_sent


# --- next_after ---------------------------------------------------------------------------


def _due(
    kind: ReminderKind, sequence: int, anchor: datetime, company_rut: str | None = RUT
) -> DueReminder:
    return DueReminder(
        chat_id=CLIENT,
        user_id=CLIENT,
        company_rut=company_rut,
        kind=kind,
        sequence=sequence,
        anchor_at=anchor,
        due_at=anchor,
        step=3 if company_rut else None,
    )


@pytest.mark.parametrize(
    ("sequence", "sent_after", "expected_due", "expected_sequence"),
    [
        (0, timedelta(days=1), timedelta(days=3), 1),  # on time: the schedule itself
        (1, timedelta(days=3), timedelta(days=7), 2),
        (0, timedelta(days=1, minutes=5), timedelta(days=3, minutes=5), 1),  # gap kept
        (0, timedelta(days=10), timedelta(days=12), 1),  # after downtime: 3d - 1d later
        (1, timedelta(days=10), timedelta(days=14), 2),  # 7d - 3d later
    ],
)
def test_next_after_follows_the_schedule_keeping_its_gaps(
    settings: Settings,
    sequence: int,
    sent_after: timedelta,
    expected_due: timedelta,
    expected_sequence: int,
) -> None:
    following = next_after(_due(ReminderKind.AUTO, sequence, START), START + sent_after, settings)
    assert following.due == START + expected_due
    assert following.sequence == expected_sequence
    assert following.anchor == START


def test_next_after_the_last_scheduled_reminder_is_none(settings: Settings) -> None:
    following = next_after(_due(ReminderKind.AUTO, 2, START), START + timedelta(days=7), settings)
    assert following.due is None
    assert following.sequence == 3


def test_next_after_a_later_reminder_restarts_the_schedule(settings: Settings) -> None:
    sent = START + timedelta(hours=21)
    following = next_after(_due(ReminderKind.LATER, 0, START), sent, settings)
    assert (following.due, following.sequence, following.anchor) == (
        sent + timedelta(days=1),
        0,
        sent,
    )


def test_next_after_a_later_reminder_without_company_is_none(settings: Settings) -> None:
    sent = START + timedelta(hours=21)
    following = next_after(_due(ReminderKind.LATER, 0, START, company_rut=None), sent, settings)
    assert following.due is None


@pytest.mark.parametrize(
    ("schedule", "kind"), [("", ReminderKind.LATER), ("1d", ReminderKind.AUTO)]
)
def test_next_after_with_a_short_schedule_is_none(
    tmp_path: Path, schedule: str, kind: ReminderKind
) -> None:
    short = make_settings(tmp_path, reminder_schedule=schedule)
    following = next_after(_due(kind, 0, START), START + timedelta(days=1), short)
    assert following.due is None


# --- the automatic schedule -----------------------------------------------------------


async def test_each_scheduled_reminder_fires_exactly_once(bot: Harness) -> None:
    await bot.reach_step(3)
    t0 = bot.clock.now()
    assert reminder_rows(bot.settings) == [Row(CLIENT, RUT, "auto", 0, t0, t0 + timedelta(days=1))]

    for number, day in enumerate((1, 3, 7), start=1):
        move_to(bot.clock, t0 + timedelta(days=day, seconds=-1))
        assert await sweep(bot) == [], f"nothing before day {day}"
        bot.clock.advance(seconds=1)
        [reminder] = await sweep(bot)
        assert_step_reminder(bot, reminder, 3)
        assert await sweep(bot) == [], "a second sweep at the same time sends nothing"
        assert await reminders_sent(bot) == number
        assert bot.texts(FIRM_CHAT) == []

    assert reminder_rows(bot.settings) == []
    for day in (8, 30, 365):
        move_to(bot.clock, t0 + timedelta(days=day))
        assert await sweep(bot) == []
    assert await reminders_sent(bot) == 3
    assert event_kinds(bot.settings, RUT).count("reminder") == 3
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 3
    assert authorization.last_activity_at == t0  # reminders are not the client's activity


async def test_the_reminders_job_sends_due_reminders(bot: Harness) -> None:
    await bot.reach_step(2)
    bot.clock.advance(days=1)
    bot.request.clear()
    await run_reminders_job(bot)
    [reminder] = bot.request.sent(CLIENT)
    assert_step_reminder(bot, reminder, 2)
    await run_reminders_job(bot)
    assert len(bot.request.sent(CLIENT)) == 1


async def test_sweeper_paces_its_sends(bot: Harness) -> None:
    for number, rut in enumerate((RUT, OTHER_RUT, "78333444-5")):
        await bot.reach_step(2, user=CLIENT + number, rut=rut)
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    sweeper = ReminderSweeper(bot.settings, bot.repository, bot.deps.guide, bot.clock, sleep=record)
    bot.clock.advance(days=1)
    assert await sweeper.sweep(bot.app.bot) == 3
    assert pauses == [pytest.approx(1 / 30)] * 3
    assert await sweeper.sweep(bot.app.bot) == 0


async def test_a_sweep_already_running_is_not_doubled(bot: Harness) -> None:
    await bot.reach_step(2)
    sending, release = asyncio.Event(), asyncio.Event()

    async def wait(_: float) -> None:
        sending.set()  # the first reminder went out; the sweep now paces
        await release.wait()

    sweeper = ReminderSweeper(bot.settings, bot.repository, bot.deps.guide, bot.clock, sleep=wait)
    bot.clock.advance(days=1)
    first = asyncio.create_task(sweeper.sweep(bot.app.bot))
    await asyncio.wait_for(sending.wait(), timeout=5)
    assert await sweeper.sweep(bot.app.bot) == 0
    release.set()
    assert await first == 1
    assert bot.texts().count(step_reminder(bot, 2)) == 1


# --- quiet hours --------------------------------------------------------------------------


@pytest.mark.parametrize("first_sweep_after", [timedelta(0), timedelta(minutes=7)])
async def test_quiet_hours_defer_a_reminder_to_nine(
    tmp_path: Path, clock: FakeClock, first_sweep_after: timedelta
) -> None:
    quiet = make_settings(
        tmp_path, reminder_schedule="1d,3d,7d", quiet_hours="21-9", reminder_rate=30
    )
    move_to(clock, local(24, 22))
    bot = await Harness(quiet, clock).boot()
    try:
        await bot.reach_step(3)
        [row] = reminder_rows(quiet)
        assert row.due_at == local(25, 22)  # due at 22:00 local, inside quiet hours
        for when in (local(25, 22), local(25, 23, 30), local(26, 3), local(26, 8, 59, 59)):
            move_to(clock, when)
            assert await sweep(bot) == [], when.astimezone(SCL).isoformat()
        move_to(clock, local(26, 9) + first_sweep_after)
        [reminder] = await sweep(bot)
        assert_step_reminder(bot, reminder, 3)
        assert await sweep(bot) == []
        assert await reminders_sent(bot) == 1
    finally:
        await bot.close()


async def test_a_long_sweep_stops_when_quiet_hours_begin(tmp_path: Path, clock: FakeClock) -> None:
    quiet = make_settings(tmp_path, reminder_schedule="1h", quiet_hours="21-9", reminder_rate=30)
    move_to(clock, local(24, 19, 55))
    bot = await Harness(quiet, clock).boot()
    try:
        for n in range(4):
            number = str(20_000_000 + n)
            await bot.reach_step(2, user=CLIENT + n, rut=f"{number}-{calc_check_digit(number)}")
        move_to(clock, local(24, 20, 58))

        async def two_minutes_per_message(_: float) -> None:
            clock.advance(minutes=2)

        sweeper = ReminderSweeper(
            quiet, bot.repository, bot.deps.guide, clock, sleep=two_minutes_per_message
        )
        # The first goes out at 20:58; by the second it is 21:00 and quiet hours have begun.
        assert await sweeper.sweep(bot.app.bot) == 1
        # The one sent was the schedule's last; the other three wait for 09:00.
        assert len(reminder_rows(quiet)) == 3
    finally:
        await bot.close()


# --- activity resets the clock ------------------------------------------------------------


async def _send_sticker(bot: Harness) -> None:
    await bot.send("sticker")


async def _press_stale_button(bot: Harness) -> None:
    await bot.press("g:1:next")


async def _write_text(bot: Harness) -> None:
    await bot.say("hola, sigo después")


@pytest.mark.parametrize("act", [_send_sticker, _press_stale_button, _write_text])
async def test_activity_restarts_the_reminder_clock(
    bot: Harness, act: Callable[[Harness], Awaitable[None]]
) -> None:
    await bot.reach_step(3)
    t0 = bot.clock.now()
    move_to(bot.clock, t0 + timedelta(days=0.9))
    await act(bot)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.last_activity_at == bot.clock.now()
    assert authorization.step == 3
    [row] = reminder_rows(bot.settings)
    assert (row.kind, row.sequence, row.due_at) == ("auto", 0, t0 + timedelta(days=1.9))

    move_to(bot.clock, t0 + timedelta(days=1))
    assert await sweep(bot) == []
    move_to(bot.clock, t0 + timedelta(days=1.9, seconds=-1))
    assert await sweep(bot) == []
    move_to(bot.clock, t0 + timedelta(days=1.9))
    [reminder] = await sweep(bot)
    assert_step_reminder(bot, reminder, 3)


# --- what stops reminders -----------------------------------------------------------------


async def test_opt_out_stops_every_reminder_and_the_digest_lists_it(bot: Harness) -> None:
    await run_reminders_job(bot)  # first run: the digest starts counting from now
    await bot.reach_step(3)
    t0 = bot.clock.now()
    bot.clock.advance(days=1)
    [reminder] = await sweep(bot)
    assert "rem:stop" in button_data(reminder)
    bot.clock.advance(hours=1)
    await bot.press("rem:stop")
    assert bot.last_text() == bot.deps.guide.message("opted_out")
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.opted_out_at == bot.clock.now()
    assert authorization.reminders_sent == 1
    assert reminder_rows(bot.settings) == []
    assert event_kinds(bot.settings, RUT)[-1] == "opted_out"

    await bot.press("g:3:next")  # still working: activity reschedules nothing
    assert bot.last_text() == step_text(bot, 4)
    last_activity = bot.clock.now()
    assert reminder_rows(bot.settings) == []
    for day in (3, 7, 8, 30):
        move_to(bot.clock, t0 + timedelta(days=day))
        assert await sweep(bot) == []

    move_to(bot.clock, t0 + timedelta(days=31))
    await run_reminders_job(bot)
    guide, tz = bot.deps.guide, bot.settings.timezone
    header = guide.message("digest_header", date=local_date(bot.clock.now(), tz))
    [digest] = [t for t in bot.texts(FIRM_CHAT) if t.startswith(header)]
    pending = [guide.message("digest_pending", count=0), guide.message("digest_none")]
    assert "\n".join(pending) in digest
    opted_out = [
        guide.message("digest_opted_out", count=1),
        guide.message(
            "digest_pending_line",
            company_rut=SHOWN_RUT,
            client_name="Juana",
            progress=guide.message("progress_step", step=4),
            reminders=1,
            when=local_datetime(last_activity, tz),
        ),
    ]
    assert "\n".join(opted_out) in digest


async def test_opt_out_after_cancelling_still_records_it(bot: Harness) -> None:
    await bot.reach_step(3)
    bot.clock.advance(days=1)
    await sweep(bot)
    await bot.say("/cancelar")
    await bot.press("rem:stop")  # the button on the reminder, with no conversation open
    assert bot.last_text() == bot.deps.guide.message("opted_out")
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.opted_out_at == bot.clock.now()
    bot.clock.advance(days=30)
    assert await sweep(bot) == []


async def test_completion_stops_reminders(bot: Harness) -> None:
    await bot.reach_step(7)
    t0 = bot.clock.now()
    bot.clock.advance(days=1)
    [reminder] = await sweep(bot)
    assert_step_reminder(bot, reminder, 7)
    await bot.press("g:7:yes")
    assert bot.last_text() == bot.deps.guide.message("done", company_rut=SHOWN_RUT)
    assert reminder_rows(bot.settings) == []
    await bot.press("st:resume")  # the old reminder's button: nothing to resume now
    assert reminder_rows(bot.settings) == []
    for day in (3, 7, 30):
        move_to(bot.clock, t0 + timedelta(days=day))
        assert await sweep(bot) == []
    assert await reminders_sent(bot) == 1


async def test_cancel_stops_reminders_even_if_the_client_writes_again(bot: Harness) -> None:
    await bot.reach_step(3)
    t0 = bot.clock.now()
    bot.clock.advance(hours=2)
    await bot.say("/cancelar")
    assert bot.last_text() == bot.deps.guide.message("cancelled")
    assert reminder_rows(bot.settings) == []

    bot.clock.advance(hours=3)
    await bot.say("hola")
    assert bot.last_text() == bot.deps.guide.message("no_conversation")
    await bot.send("sticker")
    assert reminder_rows(bot.settings) == []
    for day in (1, 2, 3, 7, 30):
        move_to(bot.clock, t0 + timedelta(days=day))
        assert await sweep(bot) == []
    assert await reminders_sent(bot) == 0


# --- Telegram refusing or unreachable -----------------------------------------------------


async def test_blocked_bot_marks_the_client_and_never_retries(bot: Harness) -> None:
    await bot.reach_step(3)
    await bot.reach_step(2, user=OTHER_CLIENT, rut=OTHER_RUT, first_name="Pedro")
    t0 = bot.clock.now()
    move_to(bot.clock, t0 + timedelta(days=1))
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    [other] = await sweep(bot)  # the first one (CLIENT's) is refused; the sweep goes on
    assert_step_reminder(bot, other, 2, chat_id=OTHER_CLIENT, shown=OTHER_SHOWN)
    assert bot.request.faults["sendMessage"] == []

    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.blocked_at == bot.clock.now()
    assert authorization.reminders_sent == 0 and authorization.opted_out_at is None
    assert [row.chat_id for row in reminder_rows(bot.settings)] == [OTHER_CLIENT]
    assert event_kinds(bot.settings, RUT)[-1] == "blocked"

    for day in (1.5, 3, 7, 30):
        move_to(bot.clock, t0 + timedelta(days=day))
        for call in await sweep(bot):
            assert int(call.params["chat_id"]) != CLIENT
    assert bot.request.last(CLIENT).text == step_text(bot, 3)


async def test_a_blocked_client_who_writes_again_gets_reminders_again(bot: Harness) -> None:
    await bot.reach_step(3)
    bot.clock.advance(days=1)
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    assert await sweep(bot) == []
    bot.clock.advance(days=2)
    await bot.press("g:3:next")
    assert bot.last_text() == step_text(bot, 4)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.blocked_at is None
    [row] = reminder_rows(bot.settings)
    assert row.due_at == bot.clock.now() + timedelta(days=1)


async def test_network_error_keeps_the_reminder_for_the_next_sweep(bot: Harness) -> None:
    await bot.reach_step(3)
    await bot.reach_step(2, user=OTHER_CLIENT, rut=OTHER_RUT, first_name="Pedro")
    t0 = bot.clock.now()
    move_to(bot.clock, t0 + timedelta(days=1))
    bot.request.fail_next("sendMessage", NetworkError("connection reset by peer"))
    assert await sweep(bot) == []  # the sweep pauses: Telegram is unreachable
    assert await reminders_sent(bot) == 0
    rows = reminder_rows(bot.settings)
    assert [(r.chat_id, r.sequence, r.due_at) for r in rows] == [
        (CLIENT, 0, t0 + timedelta(days=1)),
        (OTHER_CLIENT, 0, t0 + timedelta(days=1)),
    ]

    bot.clock.advance(minutes=1)
    sent = await sweep(bot)
    assert sorted(int(call.params["chat_id"]) for call in sent) == [CLIENT, OTHER_CLIENT]
    assert await sweep(bot) == []
    assert await reminders_sent(bot) == 1
    assert await reminders_sent(bot, OTHER_RUT) == 1
    # Sent a minute late: the next keeps the schedule's 2-day gap after it.
    assert [r.due_at for r in reminder_rows(bot.settings)] == [
        t0 + timedelta(days=3, minutes=1)
    ] * 2


async def test_a_refused_reminder_is_not_counted_as_sent(bot: Harness) -> None:
    await bot.reach_step(3)
    bot.clock.advance(days=1)
    bot.request.fail_next("sendMessage", BadRequest("Chat not found"))
    assert await sweep(bot) == []
    assert reminder_rows(bot.settings) == []  # dropped: it would never go through
    assert "reminder" not in event_kinds(bot.settings, RUT)
    assert await reminders_sent(bot) == 0
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.blocked_at is None
    bot.clock.advance(days=30)
    assert await sweep(bot) == []


# --- crash and restart --------------------------------------------------------------------


async def test_a_reminder_scheduled_before_a_crash_is_sent_once_after(
    settings: Settings, clock: FakeClock
) -> None:
    first = await Harness(settings, clock).boot()
    await first.reach_step(3)
    t0 = clock.now()
    await first.abandon()

    clock.advance(days=1)
    second = await Harness(settings, clock).boot()
    try:
        [reminder] = await sweep(second)
        assert_step_reminder(second, reminder, 3)
        assert await sweep(second) == []
    finally:
        await second.close()

    third = await Harness(settings, clock).boot()
    try:
        assert await sweep(third) == []
        assert await reminders_sent(third) == 1
        move_to(clock, t0 + timedelta(days=3))
        [reminder] = await sweep(third)
        assert_step_reminder(third, reminder, 3)
        assert await reminders_sent(third) == 1 + 1
    finally:
        await third.close()


# --- Continuar ----------------------------------------------------------------------------


async def test_continue_resumes_at_the_stored_step(bot: Harness) -> None:
    await bot.reach_step(4)
    bot.clock.advance(days=1)
    await sweep(bot)
    bot.clock.advance(hours=5)
    await bot.press("st:resume")
    assert bot.last_text() == step_text(bot, 4)
    assert set(button_data(bot.request.last(CLIENT))) >= {"g:4:next", "g:4:back"}
    [row] = reminder_rows(bot.settings)
    assert (row.kind, row.sequence, row.due_at) == ("auto", 0, bot.clock.now() + timedelta(days=1))
    await bot.press("g:4:next")
    assert bot.last_text() == step_text(bot, 5)


async def test_continue_in_a_fresh_process_resumes_at_the_stored_step(
    settings: Settings, clock: FakeClock
) -> None:
    first = await Harness(settings, clock).boot()
    await first.reach_step(3)
    clock.advance(days=1)
    [reminder] = await sweep(first)
    assert button_data(reminder) == REMINDER_BUTTONS
    await first.abandon()

    second = await Harness(settings, clock).boot()
    try:
        await second.press("st:resume")
        assert second.last_text() == step_text(second, 3)
        await second.press("g:3:next")
        assert second.last_text() == step_text(second, 4)
        authorization = await second.repository.authorizations.authorization(RUT)
        assert authorization is not None and authorization.step == 4
    finally:
        await second.close()


async def test_continue_after_cancelling_resumes_at_the_stored_step(bot: Harness) -> None:
    await bot.reach_step(5)
    bot.clock.advance(days=1)
    await sweep(bot)
    await bot.say("/cancelar")
    assert await bot.repository.conversations.conversation(CLIENT, CLIENT) is None
    assert reminder_rows(bot.settings) == []

    await bot.press("st:resume")
    assert bot.last_text() == step_text(bot, 5)
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None
    assert (conversation.state, conversation.company_rut) == ("guide", RUT)
    [row] = reminder_rows(bot.settings)
    assert row.due_at == bot.clock.now() + timedelta(days=1)
    await bot.press("g:5:next")
    assert bot.last_text() == step_text(bot, 6)


# --- remind me later ----------------------------------------------------------------------

LATER_OPTIONS = ["later:1h", "later:tonight", "later:tomorrow"]
# Before a company is known, the later menu is offered while the RUT is asked (after "on the
# computer") and on the explanation of how to open the chat on the computer (on the phone).
BEFORE_THE_RUT = [
    pytest.param("dev:pc", "ask_rut", id="ask-rut"),
    pytest.param("dev:phone", "on_phone", id="on-phone"),
]


def later_options(bot: Harness) -> list[LaterOption]:
    """The "remind me later" choices a client is offered right now."""
    settings = bot.settings
    return remind_later_options(bot.clock.now(), settings.timezone, settings.quiet_hours)


def later_set(bot: Harness, key: str) -> str:
    """The confirmation of the choice `key`, picked right now."""
    [option] = [o for o in later_options(bot) if o.key == key.removeprefix("later:")]
    return bot.deps.guide.later_set(option, bot.settings.timezone)


async def open_before_the_rut(bot: Harness, device: str, shown: str) -> None:
    """/start, then answer where the client is reading: the message offering "later"."""
    await bot.say("/start")
    await bot.press(device)
    assert bot.last_text() == bot.deps.guide.message(shown)
    assert "later:menu" in button_data(bot.request.last(CLIENT))


@pytest.mark.parametrize(("device", "shown"), BEFORE_THE_RUT)
async def test_later_menu_before_the_rut_offers_three_times_at_noon(
    bot: Harness, device: str, shown: str
) -> None:
    await open_before_the_rut(bot, device, shown)
    await bot.press("later:menu")
    menu = bot.request.last(CLIENT)
    assert menu.text == bot.deps.guide.message("later_menu")
    assert button_data(menu) == LATER_OPTIONS
    options = later_options(bot)
    tz = bot.settings.timezone
    assert [b["text"] for b in buttons(menu)] == [
        bot.deps.guide.later_label(o, tz) for o in options
    ]
    # In an hour, tonight at 20:00 and tomorrow at 9:00.
    assert [o.at for o in options] == [local(24, 13), local(24, 20), local(25, 9)]


async def test_later_menu_at_a_step_offers_the_same_times(bot: Harness) -> None:
    await bot.reach_step(3)
    assert "later:menu" in button_data(bot.request.last(CLIENT))
    await bot.press("later:menu")
    assert button_data(bot.request.last(CLIENT)) == LATER_OPTIONS


async def test_tonight_is_not_offered_after_seven_pm(bot: Harness) -> None:
    move_to(bot.clock, local(24, 19, 30))
    await bot.reach_step(3)
    await bot.press("later:menu")
    assert button_data(bot.request.last(CLIENT)) == ["later:1h", "later:tomorrow"]
    await bot.press("later:tonight")  # an option offered earlier in the day
    assert bot.last_text() == bot.deps.guide.message("later_expired")
    assert button_data(bot.request.last(CLIENT)) == ["later:1h", "later:tomorrow"]
    assert [r.kind for r in reminder_rows(bot.settings)] == ["auto"]


@pytest.mark.parametrize(("device", "shown"), BEFORE_THE_RUT)
async def test_later_tomorrow_before_the_rut_reminds_once_at_nine(
    bot: Harness, device: str, shown: str
) -> None:
    await open_before_the_rut(bot, device, shown)
    await bot.press("later:menu")
    await bot.press("later:tomorrow")
    assert bot.last_text() == later_set(bot, "later:tomorrow")
    assert reminder_rows(bot.settings) == [Row(CLIENT, None, "later", 0, START, local(25, 9))]
    for when in (local(24, 13), local(24, 20), local(25, 8, 59, 59)):
        move_to(bot.clock, when)
        assert await sweep(bot) == []
    move_to(bot.clock, local(25, 9))
    [reminder] = await sweep(bot)
    assert reminder.text == bot.deps.guide.message("reminder_welcome")
    assert_reminder_buttons(bot, reminder)
    assert reminder_rows(bot.settings) == []
    for when in (local(25, 12), local(26, 9), local(30, 9)):
        move_to(bot.clock, when)
        assert await sweep(bot) == []


async def test_later_tomorrow_at_a_step_replaces_the_schedule(bot: Harness) -> None:
    await bot.reach_step(3)
    await bot.press("later:menu")
    await bot.press("later:tomorrow")
    assert bot.last_text() == later_set(bot, "later:tomorrow")
    assert [(r.kind, r.company_rut, r.due_at) for r in reminder_rows(bot.settings)] == [
        ("later", RUT, local(25, 9))
    ]
    assert event_kinds(bot.settings, RUT)[-1] == "remind_later"
    for when in (local(24, 13), local(24, 20), local(25, 8, 59, 59)):
        move_to(bot.clock, when)
        assert await sweep(bot) == []
    move_to(bot.clock, local(25, 9))
    [reminder] = await sweep(bot)
    assert_step_reminder(bot, reminder, 3)
    assert await reminders_sent(bot) == 1
    move_to(bot.clock, local(25, 12))  # when the automatic one would have come: gone
    assert await sweep(bot) == []
    [row] = reminder_rows(bot.settings)
    assert (row.kind, row.sequence, row.due_at) == ("auto", 0, local(26, 9))


async def test_later_in_one_hour(bot: Harness) -> None:
    await bot.reach_step(2)
    await bot.press("later:1h")
    assert bot.last_text() == later_set(bot, "later:1h")
    [row] = reminder_rows(bot.settings)
    assert (row.kind, row.due_at) == ("later", local(24, 13))
    move_to(bot.clock, local(24, 13))
    [reminder] = await sweep(bot)
    assert_step_reminder(bot, reminder, 2)


async def test_a_forged_later_option_shows_the_options_and_schedules_nothing(
    bot: Harness,
) -> None:
    await bot.say("/start")
    await bot.press("later:zzz")
    assert bot.last_text() == bot.deps.guide.message("later_expired")
    assert button_data(bot.request.last(CLIENT)) == LATER_OPTIONS
    assert reminder_rows(bot.settings) == []

    await bot.say(RUT)
    await bot.press("rut:ok")
    await bot.press("later:zzz")
    assert button_data(bot.request.last(CLIENT)) == LATER_OPTIONS
    [row] = reminder_rows(bot.settings)  # only the usual schedule after activity
    assert (row.kind, row.due_at) == ("auto", bot.clock.now() + timedelta(days=1))
    assert "remind_later" not in event_kinds(bot.settings, RUT)


async def test_a_chosen_reminder_survives_a_thank_you(bot: Harness) -> None:
    await open_before_the_rut(bot, "dev:phone", "on_phone")
    await bot.press("later:menu")
    await bot.press("later:tomorrow")
    assert bot.last_text() == later_set(bot, "later:tomorrow")
    await bot.say("gracias")
    assert [row.kind for row in reminder_rows(bot.settings)] == ["later"]
    move_to(bot.clock, local(25, 9))
    assert len(await sweep(bot)) == 1


async def test_in_one_hour_is_not_promised_when_quiet_hours_defer_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    quiet = make_settings(tmp_path, quiet_hours="21-9", reminder_rate=30)
    move_to(clock, local(24, 20, 30))
    bot = await Harness(quiet, clock).boot()
    try:
        await bot.reach_step(3)
        await bot.press("later:menu")
        # 21:30 is in quiet hours: "in 1 hour" would really be tomorrow's 9:00, offered as such.
        assert button_data(bot.request.last(CLIENT)) == ["later:tomorrow"]
        await bot.press("later:1h")  # from a menu shown earlier
        assert bot.last_text() == bot.deps.guide.message("later_expired")
        assert [r.kind for r in reminder_rows(quiet)] == ["auto"]
    finally:
        await bot.close()


# --- downtime -----------------------------------------------------------------------------


async def test_after_long_downtime_one_reminder_then_the_schedule_gaps(bot: Harness) -> None:
    await bot.reach_step(3)
    t0 = bot.clock.now()
    move_to(bot.clock, t0 + timedelta(days=10))
    [reminder] = await sweep(bot)  # three are overdue; only one is sent
    assert_step_reminder(bot, reminder, 3)
    assert await sweep(bot) == []
    [row] = reminder_rows(bot.settings)
    assert (row.sequence, row.due_at) == (1, t0 + timedelta(days=12))  # 3d - 1d after it

    move_to(bot.clock, t0 + timedelta(days=12, seconds=-1))
    assert await sweep(bot) == []
    move_to(bot.clock, t0 + timedelta(days=12))
    assert len(await sweep(bot)) == 1
    [row] = reminder_rows(bot.settings)
    assert (row.sequence, row.due_at) == (2, t0 + timedelta(days=16))  # 7d - 3d after it
    move_to(bot.clock, t0 + timedelta(days=16))
    assert len(await sweep(bot)) == 1
    assert reminder_rows(bot.settings) == []
    assert await reminders_sent(bot) == 3
