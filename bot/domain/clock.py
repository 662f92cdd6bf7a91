"""The source of "now", injectable so tests can control time."""

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time."""

    def now(self) -> datetime:
        """Return the current instant, timezone-aware."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        return datetime.now(UTC)


def to_timestamp(moment: datetime) -> float:
    """Convert an aware datetime to the epoch seconds stored in SQLite."""
    return moment.timestamp()


def from_timestamp(value: float) -> datetime:
    """Convert stored epoch seconds back to an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)
