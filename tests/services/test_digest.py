"""The firm's daily digest: when it goes out, what it says, and how it is split."""

import itertools
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram.error import Forbidden

from bot.domain.rut import format_rut
from bot.domain.settings import Settings
from bot.guide.guide import load_guide
from bot.services.digest import LAST_DIGEST_KEY, pack_lines
from bot.storage.repository import ClientInfo
from bot.wiring.assembly import firm_facts
from tests.support.harness import FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings

SCL = ZoneInfo("America/Santiago")
LIMIT = 4096
# The packaged guide: the digest's wording is read from it, never copied here.
GUIDE = load_guide(None, firm_facts(make_settings(Path("unused"))))
HEADER = GUIDE.message("digest_header", date="")

ANA, BRUNO, CARLA, DIEGO, ELENA = 801, 802, 803, 804, 805
RUT_ANA = "79555666-4"
RUT_BRUNO = "76086428-5"
RUT_CARLA = "77111222-6"
RUT_DIEGO = "78333444-5"
RUT_ELENA = "96777888-5"


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """The UTC instant when Santiago's wall clock shows that time in 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=SCL).astimezone(UTC)


def move_to(clock: FakeClock, when: datetime) -> None:
    """Set the fake clock to a later instant."""
    assert when >= clock.moment, "time only moves forward"
    clock.moment = when


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A digest at 09:00 and a first reminder two hours after the client stops."""
    return make_settings(
        tmp_path, digest_time="09:00", reminder_schedule="2h,3d,7d", reminder_rate=30
    )


async def run_job(bot: Harness) -> None:
    """Run the periodic jobs once: reminders, digest, retention, firm outbox."""
    await bot.run_jobs()


def digests(bot: Harness, chat: int) -> list[str]:
    """The digest messages a firm chat received, in order (continuations included)."""
    texts = bot.texts(chat)
    starts = [i for i, text in enumerate(texts) if HEADER in text]
    if not starts:
        return []
    # A completion notice goes to the same chats: its title line tells it apart.
    blank = ("company_rut", "client_name", "client_username", "client_id", "completed_at")
    notice = GUIDE.message("firm_completed", **dict.fromkeys(blank, ""), duration="")
    notice = notice.split("\n")[0]
    return [t for t in texts[starts[0] :] if notice not in t]


def digest_count(bot: Harness, chat: int) -> int:
    return sum(HEADER in text for text in bot.texts(chat))


# --- pack_lines ---------------------------------------------------------------------------


def test_pack_lines_of_nothing_is_no_message() -> None:
    assert pack_lines([], 10) == []


def test_pack_lines_joins_what_fits() -> None:
    assert pack_lines(["a", "", "b"], 100) == ["a\n\nb"]


def test_pack_lines_fills_up_to_exactly_the_limit() -> None:
    assert pack_lines(["aaaa", "bbbbb"], 10) == ["aaaa\nbbbbb"]  # 4 + 1 + 5 = 10


def test_pack_lines_splits_one_over_the_limit_at_a_line_boundary() -> None:
    assert pack_lines(["aaaa", "bbbbbb", "c"], 10) == ["aaaa", "bbbbbb\nc"]


def test_pack_lines_never_exceeds_the_limit_even_with_an_overlong_line() -> None:
    messages = pack_lines(["short", "x" * 25, "tail"], 10)
    assert all(0 < len(m) <= 10 for m in messages)
    assert messages[0] == "short" and messages[-1] == "tail"


@given(
    st.lists(st.text(alphabet="ab <>é📋", min_size=0, max_size=40), max_size=60),
    st.integers(min_value=40, max_value=120),
)
def test_pack_lines_loses_no_line_and_uses_few_messages(lines: list[str], limit: int) -> None:
    messages = pack_lines(lines, limit)
    assert all(0 < len(m) <= limit for m in messages)
    # Every non-empty line survives, whole and in order (blank lines may fall at a split).
    assert [x for m in messages for x in m.split("\n") if x] == [x for x in lines if x]
    # Greedy: the next message's first line would not have fitted in the previous one.
    for before, after in itertools.pairwise(messages):
        assert len(before) + 1 + len(after.split("\n")[0]) > limit


# --- when it is sent ----------------------------------------------------------------------


async def test_first_run_only_records_the_time(bot: Harness) -> None:
    await run_job(bot)
    assert bot.texts(FIRM_CHAT) == [] and bot.texts(FIRM_MEMBER) == []
    stored = await bot.repository.bookkeeping.meta(LAST_DIGEST_KEY)
    assert stored is not None and datetime.fromisoformat(stored) == bot.clock.now()
    move_to(bot.clock, local(24, 23, 59))
    await run_job(bot)
    assert bot.texts(FIRM_CHAT) == []


async def test_digest_goes_out_once_a_day_at_nine(bot: Harness) -> None:
    await run_job(bot)  # 12:00 on the 24th: the first digest is due at 09:00 on the 25th
    await bot.reach_step(3, user=BRUNO, rut=RUT_BRUNO, first_name="Bruno")
    move_to(bot.clock, local(25, 8, 59))
    await run_job(bot)
    assert digest_count(bot, FIRM_CHAT) == 0

    move_to(bot.clock, local(25, 9))
    await run_job(bot)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert digest_count(bot, chat) == 1
        [digest] = digests(bot, chat)
        assert "25-11-2026" in digest
    for when in (local(25, 9), local(25, 9, 30), local(25, 20), local(26, 8, 59)):
        move_to(bot.clock, when)
        await run_job(bot)
        assert digest_count(bot, FIRM_CHAT) == 1

    move_to(bot.clock, local(26, 9))
    await run_job(bot)
    assert digest_count(bot, FIRM_CHAT) == digest_count(bot, FIRM_MEMBER) == 2
    rows = bot.db_rows(
        "SELECT chat_id, sent_at IS NOT NULL FROM outbox WHERE text LIKE ? ORDER BY id",
        (f"%{HEADER}%",),
    )
    assert rows == [(FIRM_CHAT, 1), (FIRM_MEMBER, 1)] * 2


async def test_a_restart_does_not_send_the_days_digest_again(
    settings: Settings, clock: FakeClock
) -> None:
    first = await Harness(settings, clock).boot()
    await run_job(first)
    move_to(clock, local(25, 9))
    await run_job(first)
    assert digest_count(first, FIRM_CHAT) == 1
    await first.abandon()

    clock.advance(minutes=5)
    second = await Harness(settings, clock).boot()
    try:
        await run_job(second)
        assert second.texts(FIRM_CHAT) == []
        move_to(clock, local(26, 9))
        await run_job(second)
        assert digest_count(second, FIRM_CHAT) == 1
    finally:
        await second.close()


async def test_after_downtime_one_digest_then_back_to_nine(bot: Harness) -> None:
    await run_job(bot)
    move_to(bot.clock, local(27, 11))  # down over three digest times
    await run_job(bot)
    assert digest_count(bot, FIRM_CHAT) == 1
    move_to(bot.clock, local(28, 8, 59))
    await run_job(bot)
    assert digest_count(bot, FIRM_CHAT) == 1
    move_to(bot.clock, local(28, 9))
    await run_job(bot)
    assert digest_count(bot, FIRM_CHAT) == 1 + 1


# --- what it says -------------------------------------------------------------------------


async def test_digest_lists_completed_pending_opted_out_and_blocked(bot: Harness) -> None:
    await run_job(bot)  # 12:00: first run
    # Bruno is the oldest, but active most recently.
    await bot.reach_step(1, user=BRUNO, rut=RUT_BRUNO, first_name="Bruno")
    move_to(bot.clock, local(24, 12, 30))
    await bot.reach_step(5, user=CARLA, rut=RUT_CARLA, first_name="Carla")
    move_to(bot.clock, local(24, 12, 45))
    await bot.press("g:1:next", user=BRUNO, first_name="Bruno")
    await bot.press("g:2:next", user=BRUNO, first_name="Bruno")
    move_to(bot.clock, local(24, 13))
    await bot.reach_step(7, user=ANA, rut=RUT_ANA, first_name="Ana")
    await bot.press("g:7:yes", user=ANA, first_name="Ana")
    move_to(bot.clock, local(24, 13, 10))
    await bot.reach_step(2, user=DIEGO, rut=RUT_DIEGO, first_name="Diego")
    await bot.press("rem:stop", user=DIEGO, first_name="Diego")
    move_to(bot.clock, local(24, 13, 20))
    await bot.reach_step(1, user=ELENA, rut=RUT_ELENA, first_name="Elena")

    move_to(bot.clock, local(24, 14, 30))  # Carla's first reminder
    await run_job(bot)
    move_to(bot.clock, local(24, 14, 45))  # Bruno's
    await run_job(bot)
    move_to(bot.clock, local(24, 15, 20))  # Elena's: she blocked the bot
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    await run_job(bot)
    assert len(bot.texts(FIRM_CHAT)) == 1  # only Ana's completion notice so far

    move_to(bot.clock, local(25, 9))
    await run_job(bot)

    def pending(rut: str, name: str, step: int, reminders: int, when: str) -> str:
        return GUIDE.message(
            "digest_pending_line",
            company_rut=format_rut(rut),
            client_name=name,
            progress=GUIDE.message("progress_step", step=step),
            reminders=reminders,
            when=when,
        )

    expected = "\n".join(
        [
            GUIDE.message("digest_header", date="25-11-2026"),
            "",
            GUIDE.message("digest_completed", count=1),
            GUIDE.message(
                "digest_completed_line",
                company_rut=format_rut(RUT_ANA),
                client_name="Ana",
                when="24-11-2026 13:00",
            ),
            "",
            GUIDE.message("digest_pending", count=2),
            pending(RUT_BRUNO, "Bruno", 3, 1, "24-11-2026 12:45"),
            pending(RUT_CARLA, "Carla", 5, 1, "24-11-2026 12:30"),
            "",
            GUIDE.message("digest_opted_out", count=1),
            pending(RUT_DIEGO, "Diego", 2, 0, "24-11-2026 13:10"),
            "",
            GUIDE.message("digest_blocked", count=1),
            pending(RUT_ELENA, "Elena", 1, 0, "24-11-2026 13:20"),
        ]
    )
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert digests(bot, chat) == [expected]

    move_to(bot.clock, local(26, 9))  # nothing completed since the last digest
    await run_job(bot)
    second = digests(bot, FIRM_CHAT)[-1]
    assert GUIDE.message("digest_header", date="26-11-2026") in second
    none = GUIDE.message("digest_none")
    assert GUIDE.message("digest_completed", count=0) + "\n" + none in second
    assert format_rut(RUT_ANA) not in second
    assert GUIDE.message("digest_pending", count=2) in second


async def test_an_empty_digest_says_none_everywhere(bot: Harness) -> None:
    await run_job(bot)
    move_to(bot.clock, local(25, 9))
    await run_job(bot)
    [digest] = digests(bot, FIRM_CHAT)
    assert digest.count(GUIDE.message("digest_none")) == 4
    assert GUIDE.message("digest_pending", count=0) in digest


async def test_no_digest_without_firm_chats(tmp_path: Path, clock: FakeClock) -> None:
    lonely = make_settings(tmp_path, firm_chat_ids="", reminder_rate=30)
    bot = await Harness(lonely, clock).boot()
    try:
        await run_job(bot)
        move_to(clock, local(25, 9))
        await run_job(bot)
        assert [c for c in bot.request.calls if c.method == "sendMessage"] == []
        assert await bot.repository.bookkeeping.meta(LAST_DIGEST_KEY) is None
    finally:
        await bot.close()


def _rut(number: int) -> str:
    """A valid compact RUT for `number` (computed here, not with the code under test)."""
    total, factor = 0, 2
    for digit in reversed(str(number)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    check = {10: "K", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    return f"{number}-{check}"


def test_the_rut_helper_matches_known_ruts() -> None:
    assert _rut(76086428) == "76086428-5"
    assert _rut(96777888) == "96777888-5"


async def test_three_hundred_pending_are_split_without_losing_a_line(bot: Harness) -> None:
    await run_job(bot)
    expected_lines = []
    for number in range(300):
        rut = _rut(60_000_000 + number * 1_013)
        name = f"Cliente de prueba número {number:03d} con nombre largo"
        client = ClientInfo(900_000 + number, 900_000 + number, name, None)
        await bot.repository.authorizations.start_guide(client, rut, "guide", bot.clock.now(), None)
        expected_lines.append(
            GUIDE.message(
                "digest_pending_line",
                company_rut=format_rut(rut),
                client_name=name,
                progress=GUIDE.message("progress_step", step=1),
                reminders=0,
                when=f"{bot.clock.now().astimezone(SCL):%d-%m-%Y %H:%M}",
            )
        )
        bot.clock.advance(minutes=1)

    move_to(bot.clock, local(25, 9))
    await run_job(bot)
    member_messages = digests(bot, FIRM_MEMBER)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        messages = digests(bot, chat)
        assert len(messages) > 1
        assert digest_count(bot, chat) == 1  # the header only once; the rest continue it
        for message in messages:
            assert 0 < len(message) <= LIMIT
            assert message.count("<b>") == message.count("</b>")
            assert message.count("<code>") == message.count("</code>")
        lines = [line for message in messages for line in message.split("\n") if line]
        pending = [line for line in lines if line.startswith("• <code>")]
        assert pending == expected_lines  # every one, once, oldest first
        assert GUIDE.message("digest_pending", count=300) in lines
        assert lines[0] == GUIDE.message("digest_header", date="25-11-2026")
        assert lines[-2:] == [
            GUIDE.message("digest_blocked", count=0),
            GUIDE.message("digest_none"),
        ]
    assert digests(bot, FIRM_CHAT) == member_messages


async def test_an_unopened_invitation_shows_as_invited_in_the_digest(bot: Harness) -> None:
    await run_job(bot)
    await bot.say(f"/invitar {format_rut(RUT_BRUNO)} Bruno Pérez", user=FIRM_MEMBER)
    assert "t.me/" in bot.last_text(FIRM_MEMBER)
    move_to(bot.clock, local(25, 9))
    await run_job(bot)
    [digest] = digests(bot, FIRM_CHAT)
    assert GUIDE.message("digest_pending", count=1) in digest
    [line] = [line for line in digest.split("\n") if format_rut(RUT_BRUNO) in line]
    assert "Bruno Pérez" in line
    assert GUIDE.message("progress_step", step=0) not in line
    assert GUIDE.message("progress_invited") in line
