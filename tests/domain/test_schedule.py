"""Tests for the pure reminder scheduling rules."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.schedule import (
    LaterOption,
    LaterWhen,
    QuietHours,
    defer_past_quiet_hours,
    later_option,
    next_daily_at,
    parse_delays,
    parse_local_time,
    parse_quiet_hours,
    remind_later_options,
    reminder_due_at,
)

SCL = ZoneInfo("America/Santiago")
NIGHT = QuietHours(21, 9)
ZONES = [
    SCL,
    ZoneInfo("UTC"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("Asia/Kolkata"),
]


def local(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """Build an aware Santiago datetime from wall-clock fields."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SCL)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """Build an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_santiago_dst_dates_are_the_ones_the_tests_assume() -> None:
    assert utc(2026, 4, 5, 2, 59).astimezone(SCL).utcoffset() == timedelta(hours=-3)
    assert utc(2026, 4, 5, 3, 0).astimezone(SCL).utcoffset() == timedelta(hours=-4)
    assert utc(2026, 9, 6, 3, 59).astimezone(SCL).utcoffset() == timedelta(hours=-4)
    assert utc(2026, 9, 6, 4, 0).astimezone(SCL).utcoffset() == timedelta(hours=-3)


# parse_delays


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d,3d,7d", (timedelta(days=1), timedelta(days=3), timedelta(days=7))),
        ("30s, 2m,1h", (timedelta(seconds=30), timedelta(minutes=2), timedelta(hours=1))),
        (" 1d , 3d ", (timedelta(days=1), timedelta(days=3))),
        ("90M,2H,1D", (timedelta(minutes=90), timedelta(hours=2), timedelta(days=1))),
        ("23h,1d", (timedelta(hours=23), timedelta(days=1))),
        ("5m", (timedelta(minutes=5),)),
        ("", ()),
        ("   ", ()),
    ],
)
def test_parse_delays_accepts(text: str, expected: tuple[timedelta, ...]) -> None:
    assert parse_delays(text) == expected


@pytest.mark.parametrize(
    ("text", "bad_item"),
    [
        ("abc", "abc"),
        ("0d", "0d"),
        ("-1d", "-1d"),
        ("1w", "1w"),
        ("1.5h", "1.5h"),
        ("1 d", "1 d"),
        ("1d,,3d", ""),
        ("1d,", ""),
        ("3d,1d", "1d"),
        ("1d,1d", "1d"),
        ("1d,24h", "24h"),
        ("99999999999999d", "99999999999999d"),
    ],
)
def test_parse_delays_rejects_naming_the_item(text: str, bad_item: str) -> None:
    with pytest.raises(ValueError, match=rf"^invalid delay {bad_item!r}: ") as error:
        parse_delays(text)
    assert bad_item in str(error.value)


def test_parse_delays_explains_the_format() -> None:
    with pytest.raises(ValueError) as error:
        parse_delays("abc")
    assert str(error.value) == "invalid delay 'abc': use a number followed by s, m, h or d"


# quiet hours


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21-9", QuietHours(21, 9)),
        ("0-6", QuietHours(0, 6)),
        (" 22 - 7 ", QuietHours(22, 7)),
        ("23-0", QuietHours(23, 0)),
        ("", None),
        ("  ", None),
    ],
)
def test_parse_quiet_hours_accepts(text: str, expected: QuietHours | None) -> None:
    assert parse_quiet_hours(text) == expected


@pytest.mark.parametrize("text", ["25-3", "3-24", "9-9", "x", "21", "21-", "-1-9", "21:00-9"])
def test_parse_quiet_hours_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quiet hours"):
        parse_quiet_hours(text)


def test_quiet_hours_cannot_be_built_invalid() -> None:
    with pytest.raises(ValueError, match="start equals end"):
        QuietHours(9, 9)
    with pytest.raises(ValueError, match="from 0 to 23"):
        QuietHours(21, 24)


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [
        (20, 59, False),
        (21, 0, True),
        (23, 59, True),
        (0, 0, True),
        (8, 59, True),
        (9, 0, False),
        (14, 0, False),
    ],
)
def test_contains_across_midnight(hour: int, minute: int, inside: bool) -> None:
    assert NIGHT.contains(local(2026, 3, 10, hour, minute)) is inside


@pytest.mark.parametrize(
    ("hour", "inside"), [(23, False), (0, True), (3, True), (5, True), (6, False), (12, False)]
)
def test_contains_without_wrapping(hour: int, inside: bool) -> None:
    assert QuietHours(0, 6).contains(local(2026, 3, 10, hour, 30)) is inside


# defer_past_quiet_hours


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # Evening: deferred to next morning 09:00 -03.
        (local(2026, 3, 10, 22, 0), utc(2026, 3, 11, 12, 0)),
        # Early morning: deferred to the same morning.
        (local(2026, 3, 10, 8, 59, 59), utc(2026, 3, 10, 12, 0)),
        # Same instant expressed in UTC gives the same answer.
        (utc(2026, 3, 11, 1, 0), utc(2026, 3, 11, 12, 0)),
        # Outside quiet hours: unchanged, but in UTC.
        (local(2026, 3, 10, 12, 0), utc(2026, 3, 10, 15, 0)),
        (local(2026, 3, 10, 9, 0), utc(2026, 3, 10, 12, 0)),
        (local(2026, 3, 10, 20, 59), utc(2026, 3, 10, 23, 59)),
        # Night of the April fall-back: evening at -03, morning at -04.
        (local(2026, 4, 4, 22, 0), utc(2026, 4, 5, 13, 0)),
        # Night of the September spring-forward: evening at -04, morning at -03.
        (local(2026, 9, 5, 22, 0), utc(2026, 9, 6, 12, 0)),
    ],
)
def test_defer_with_night_quiet_hours(when: datetime, expected: datetime) -> None:
    result = defer_past_quiet_hours(when, NIGHT, SCL)
    assert result == expected
    assert result.tzinfo is UTC


def test_defer_without_quiet_hours_only_converts_to_utc() -> None:
    result = defer_past_quiet_hours(local(2026, 3, 10, 23, 0), None, SCL)
    assert result == utc(2026, 3, 11, 2, 0)
    assert result.tzinfo is UTC


def test_defer_to_an_ambiguous_end_uses_the_earlier_one() -> None:
    # 2026-04-04 23:00 happens twice in Santiago (-03, then -04): the first one wins.
    result = defer_past_quiet_hours(local(2026, 4, 4, 22, 30), QuietHours(22, 23), SCL)
    assert result == utc(2026, 4, 5, 2, 0)


def test_defer_to_a_missing_end_uses_the_end_of_the_gap() -> None:
    # 2026-09-06 00:00 does not exist in Santiago: clocks jump to 01:00 -03 (04:00 UTC).
    when = local(2026, 9, 5, 23, 30)
    assert when.astimezone(UTC) == utc(2026, 9, 6, 3, 30)
    assert defer_past_quiet_hours(when, QuietHours(21, 0), SCL) == utc(2026, 9, 6, 4, 0)


def test_defer_skips_a_day_whose_only_free_hour_is_missing() -> None:
    # Quiet 1-0 leaves only 00:00-01:00 free, which 2026-09-06 lacks; next free is 09-07 00:00.
    result = defer_past_quiet_hours(local(2026, 9, 5, 23, 30), QuietHours(1, 0), SCL)
    assert result == utc(2026, 9, 7, 3, 0)


def test_defer_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        defer_past_quiet_hours(datetime(2026, 3, 10, 22, 0), NIGHT, SCL)


@st.composite
def quiet_hours(draw: st.DrawFn) -> QuietHours:
    """Draw any valid quiet hours."""
    start = draw(st.integers(0, 23))
    end = draw(st.integers(0, 23).filter(lambda hour: hour != start))
    return QuietHours(start, end)


aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2040, 1, 1),
    timezones=st.sampled_from(ZONES),
)


@given(when=aware_datetimes, quiet=quiet_hours(), tz=st.sampled_from(ZONES))
def test_defer_property(when: datetime, quiet: QuietHours, tz: ZoneInfo) -> None:
    result = defer_past_quiet_hours(when, quiet, tz)
    # Compare in UTC: an ambiguous wall time never compares equal across zones (PEP 495).
    when = when.astimezone(UTC)
    assert result.tzinfo is UTC
    assert result >= when
    assert not quiet.contains(result.astimezone(tz))
    if quiet.contains(when.astimezone(tz)):
        # It is the end of the quiet period: one second earlier is still quiet.
        assert quiet.contains((result - timedelta(seconds=1)).astimezone(tz))
    else:
        assert result == when


# reminder_due_at


def test_reminder_due_at_follows_the_schedule() -> None:
    delays = (timedelta(days=1), timedelta(days=3))
    last = local(2026, 3, 10, 12, 0)
    assert reminder_due_at(last, delays, 0) == utc(2026, 3, 11, 15, 0)
    assert reminder_due_at(last, delays, 1) == utc(2026, 3, 13, 15, 0)
    assert reminder_due_at(last, delays, 2) is None
    assert reminder_due_at(last, (), 0) is None


def test_reminder_due_at_adds_real_elapsed_time_across_dst() -> None:
    result = reminder_due_at(local(2026, 4, 4, 12, 0), (timedelta(days=1),), 0)
    assert result == utc(2026, 4, 5, 15, 0)
    assert result is not None and result.tzinfo is UTC
    assert result.astimezone(SCL).hour == 11


def test_reminder_due_at_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="sent reminders"):
        reminder_due_at(utc(2026, 3, 10, 12, 0), (timedelta(days=1),), -1)


# remind-later options


def test_options_in_the_morning() -> None:
    assert remind_later_options(local(2026, 3, 10, 10, 0), SCL, NIGHT) == [
        LaterOption("1h", utc(2026, 3, 10, 14, 0), LaterWhen.IN_AN_HOUR),
        LaterOption("tonight", utc(2026, 3, 10, 23, 0), LaterWhen.TONIGHT),
        LaterOption("tomorrow", utc(2026, 3, 11, 12, 0), LaterWhen.TOMORROW),
    ]


def test_options_at_half_past_seven_drop_tonight() -> None:
    assert remind_later_options(local(2026, 3, 10, 19, 30), SCL, NIGHT) == [
        LaterOption("1h", utc(2026, 3, 10, 23, 30), LaterWhen.IN_AN_HOUR),
        LaterOption("tomorrow", utc(2026, 3, 11, 12, 0), LaterWhen.TOMORROW),
    ]


def test_options_late_at_night_drop_one_hour_deferred_to_the_same_nine() -> None:
    assert remind_later_options(local(2026, 3, 10, 23, 30), SCL, NIGHT) == [
        LaterOption("tomorrow", utc(2026, 3, 11, 12, 0), LaterWhen.TOMORROW),
    ]


def test_an_hour_deferred_to_this_morning_says_when() -> None:
    assert remind_later_options(local(2026, 3, 10, 7, 0), SCL, NIGHT)[0] == LaterOption(
        "1h", utc(2026, 3, 10, 12, 0), LaterWhen.TODAY
    )


def test_options_all_deferred_to_one_time_keep_one() -> None:
    options = remind_later_options(local(2026, 3, 10, 23, 30), SCL, QuietHours(0, 10))
    assert options == [LaterOption("tomorrow", utc(2026, 3, 11, 13, 0), LaterWhen.TOMORROW)]


def test_options_without_quiet_hours_are_not_deferred() -> None:
    options = remind_later_options(local(2026, 3, 10, 23, 30), SCL, None)
    assert [(o.key, o.at) for o in options] == [
        ("1h", utc(2026, 3, 11, 3, 30)),
        ("tomorrow", utc(2026, 3, 11, 12, 0)),
    ]


@pytest.mark.parametrize(
    ("hour", "minute", "offered"), [(0, 0, True), (18, 59, True), (19, 0, False), (19, 1, False)]
)
def test_tonight_is_offered_only_before_seven(hour: int, minute: int, offered: bool) -> None:
    keys = [o.key for o in remind_later_options(local(2026, 3, 10, hour, minute), SCL, NIGHT)]
    assert keys == (["1h", "tonight", "tomorrow"] if offered else ["1h", "tomorrow"])


def test_tonight_inside_quiet_hours_is_not_offered_twice() -> None:
    options = remind_later_options(local(2026, 3, 10, 10, 0), SCL, QuietHours(19, 9))
    assert [o.key for o in options] == ["1h", "tomorrow"]
    assert options[1] == LaterOption("tomorrow", utc(2026, 3, 11, 12, 0), LaterWhen.TOMORROW)


def test_options_on_dst_days_use_each_days_offset() -> None:
    april = remind_later_options(local(2026, 4, 4, 10, 0), SCL, NIGHT)
    assert [o.at for o in april] == [
        utc(2026, 4, 4, 14, 0),
        utc(2026, 4, 4, 23, 0),
        utc(2026, 4, 5, 13, 0),
    ]
    september = remind_later_options(local(2026, 9, 5, 10, 0), SCL, NIGHT)
    assert [o.at for o in september] == [
        utc(2026, 9, 5, 15, 0),
        utc(2026, 9, 6, 0, 0),
        utc(2026, 9, 6, 12, 0),
    ]


def test_later_option_recomputes_by_key() -> None:
    now = local(2026, 3, 10, 19, 30)
    assert later_option("1h", now, SCL, NIGHT) == LaterOption(
        "1h", utc(2026, 3, 10, 23, 30), LaterWhen.IN_AN_HOUR
    )
    assert later_option("tomorrow", now, SCL, NIGHT) == LaterOption(
        "tomorrow", utc(2026, 3, 11, 12, 0), LaterWhen.TOMORROW
    )
    assert later_option("tonight", now, SCL, NIGHT) is None
    assert later_option("nope", now, SCL, NIGHT) is None


# parse_local_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:30", time(9, 30)), ("9:05", time(9, 5)), ("00:00", time(0, 0)), ("23:59", time(23, 59))],
)
def test_parse_local_time_accepts(text: str, expected: time) -> None:
    assert parse_local_time(text) == expected


@pytest.mark.parametrize("text", ["24:00", "12:60", "930", "", "ab:cd", "12:5", "12:345", "-1:00"])
def test_parse_local_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_local_time(text)


# next_daily_at


@pytest.mark.parametrize(
    ("now", "at", "expected"),
    [
        (local(2026, 3, 10, 8, 0), time(9, 0), utc(2026, 3, 10, 12, 0)),
        # Strictly after: exactly at 09:00 means tomorrow.
        (local(2026, 3, 10, 9, 0), time(9, 0), utc(2026, 3, 11, 12, 0)),
        # Across the April fall-back: 09:00 -03 then 09:00 -04.
        (local(2026, 4, 4, 10, 0), time(9, 0), utc(2026, 4, 5, 13, 0)),
        # Across the September spring-forward: 09:00 -04 then 09:00 -03.
        (local(2026, 9, 5, 10, 0), time(9, 0), utc(2026, 9, 6, 12, 0)),
        # Ambiguous 23:30 on 2026-04-04: the earlier (-03) one.
        (local(2026, 4, 4, 12, 0), time(23, 30), utc(2026, 4, 5, 2, 30)),
        # Already past that first 23:30: not the repeated one, the next day's.
        (utc(2026, 4, 5, 2, 45), time(23, 30), utc(2026, 4, 6, 3, 30)),
        # Missing 00:30 on 2026-09-06: the end of the gap, 01:00 -03.
        (local(2026, 9, 5, 12, 0), time(0, 30), utc(2026, 9, 6, 4, 0)),
        (utc(2026, 9, 6, 4, 0), time(0, 30), utc(2026, 9, 7, 3, 30)),
    ],
)
def test_next_daily_at(now: datetime, at: time, expected: datetime) -> None:
    result = next_daily_at(now, at, SCL)
    assert result == expected
    assert result.tzinfo is UTC


@given(now=aware_datetimes, at=st.times(), tz=st.sampled_from(ZONES))
def test_next_daily_at_property(now: datetime, at: time, tz: ZoneInfo) -> None:
    result = next_daily_at(now, at, tz)
    now = now.astimezone(UTC)
    assert now < result <= now + timedelta(hours=26)
    shown = result.astimezone(tz).time()
    # Either the wall time itself or, when it was skipped by a DST gap, the end of that gap.
    assert (
        shown == at
        or result.astimezone(tz).utcoffset()
        != (result - timedelta(seconds=1)).astimezone(tz).utcoffset()
    )
