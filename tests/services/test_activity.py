"""The activity throttle (bot/services/reminders.py) remembers only chats active just now."""

from datetime import UTC, datetime, timedelta

from bot.services.reminders import ActivityThrottle

START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SCHEDULE = (timedelta(hours=24), timedelta(hours=72))


def test_a_chat_is_recorded_once_per_window() -> None:
    throttle = ActivityThrottle(SCHEDULE)
    assert throttle.should_record(1, START)
    assert not throttle.should_record(1, START + timedelta(seconds=30))
    assert throttle.should_record(1, START + ActivityThrottle.MAX_WINDOW)


def test_chats_not_seen_within_the_window_are_forgotten() -> None:
    throttle = ActivityThrottle(SCHEDULE)
    for chat in range(10_000):
        throttle.should_record(chat, START)
    assert len(throttle) == 10_000
    later = START + ActivityThrottle.MAX_WINDOW + timedelta(seconds=1)
    assert throttle.should_record(10_000, later)
    assert len(throttle) == 1
    # A chat forgotten is simply recorded again.
    assert throttle.should_record(5, later)
    assert len(throttle) == 2
