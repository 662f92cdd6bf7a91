"""Pure scheduling rules for reminders: delays, quiet hours and local wall times."""

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

_DELAY = re.compile(r"([0-9]+)([smhd])", re.IGNORECASE)
_QUIET_HOURS = re.compile(r"\s*([0-9]{1,2})\s*-\s*([0-9]{1,2})\s*")
_LOCAL_TIME = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_TONIGHT_AT = time(20, 0)
_TONIGHT_OFFERED_BEFORE = time(19, 0)
_TOMORROW_AT = time(9, 0)


def parse_delays(text: str) -> tuple[timedelta, ...]:
    """Parse a REMINDER_SCHEDULE like '1d,3d,7d' or '30s, 2m,1h'."""
    if not text.strip():
        return ()
    delays: list[timedelta] = []
    previous = ""
    for raw in text.split(","):
        item = raw.strip()
        match = _DELAY.fullmatch(item)
        if match is None:
            raise ValueError(f"invalid delay {item!r}: use a number followed by s, m, h or d")
        amount = int(match.group(1))
        if amount == 0:
            raise ValueError(f"invalid delay {item!r}: it must be greater than zero")
        try:
            delay = timedelta(seconds=amount * _UNIT_SECONDS[match.group(2).lower()])
        except OverflowError:
            raise ValueError(f"invalid delay {item!r}: it is too long") from None
        if delays and delay <= delays[-1]:
            raise ValueError(
                f"invalid delay {item!r}: it must be longer than {previous!r} before it"
            )
        delays.append(delay)
        previous = item
    return tuple(delays)


@dataclass(frozen=True)
class QuietHours:
    """Local hours [start, end) when no reminder is sent; wraps midnight when start > end."""

    start: int
    end: int

    def __post_init__(self) -> None:
        """Reject hours outside 0-23 and empty periods."""
        if not (0 <= self.start <= 23 and 0 <= self.end <= 23):
            raise ValueError(f"invalid quiet hours {self.start}-{self.end}: hours go from 0 to 23")
        if self.start == self.end:
            raise ValueError(f"invalid quiet hours {self.start}-{self.end}: start equals end")

    def contains(self, local: datetime) -> bool:
        """Return whether the local wall time `local` falls inside the quiet hours."""
        if self.start < self.end:
            return self.start <= local.hour < self.end
        return local.hour >= self.start or local.hour < self.end


def parse_quiet_hours(text: str) -> QuietHours | None:
    """Parse QUIET_HOURS like '21-9'; empty or blank means no quiet hours."""
    if not text.strip():
        return None
    match = _QUIET_HOURS.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid quiet hours {text!r}: use two hours from 0 to 23, like '21-9'")
    return QuietHours(int(match.group(1)), int(match.group(2)))


def _utc(moment: datetime) -> datetime:
    """Return the aware `moment` in UTC; naive datetimes are refused."""
    if moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def _at_local(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """Return when `tz` shows `wall` on `day` (aware UTC): earlier if twice, gap end if never."""
    naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
    candidates = [naive.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [c for c in candidates if c.astimezone(tz).replace(tzinfo=None) == naive]
    if real:
        return min(real)
    # Spring-forward gap: the clocks jump past `naive` at some whole second between the two
    # candidates; find that first instant whose local wall time is already after `naive`.
    low = math.floor(min(candidates).timestamp())
    high = math.ceil(max(candidates).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) > naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def defer_past_quiet_hours(when: datetime, quiet: QuietHours | None, tz: ZoneInfo) -> datetime:
    """Return `when`, or the end of the quiet period containing it (aware UTC)."""
    when_utc = _utc(when)
    local = when_utc.astimezone(tz)
    if quiet is None or not quiet.contains(local):
        return when_utc
    # Usually today's or tomorrow's `end`:00; a DST gap swallowing that hour can push it a day.
    for days in range(4):
        candidate = _at_local(local.date() + timedelta(days=days), time(quiet.end), tz)
        if candidate > when_utc and not quiet.contains(candidate.astimezone(tz)):
            return candidate
    raise AssertionError(f"no end of quiet hours found after {when_utc.isoformat()}")


def reminder_due_at(
    last_activity: datetime, delays: tuple[timedelta, ...], sent: int
) -> datetime | None:
    """Return when reminder number `sent` (0-based) falls due, or None when all were sent."""
    if sent < 0:
        raise ValueError(f"invalid number of sent reminders: {sent}")
    if sent >= len(delays):
        return None
    return _utc(last_activity) + delays[sent]


class LaterWhen(StrEnum):
    """How a 'remind me later' time is named to the client (the words are the guide's)."""

    IN_AN_HOUR = "in_an_hour"
    TONIGHT = "tonight"
    TODAY = "today"
    TOMORROW = "tomorrow"
    ON_DATE = "on_date"


@dataclass(frozen=True)
class LaterOption:
    """A 'remind me later' choice: callback key, when it fires, and how to name that time."""

    key: str
    at: datetime
    when: LaterWhen


def remind_later_options(
    now: datetime, tz: ZoneInfo, quiet: QuietHours | None
) -> list[LaterOption]:
    """Offer the client the times they can pick for a 'remind me later'."""
    now_utc = _utc(now)
    today = now_utc.astimezone(tz).date()
    wanted = [("1h", LaterWhen.IN_AN_HOUR, now_utc + timedelta(hours=1))]
    if now_utc.astimezone(tz).time() < _TONIGHT_OFFERED_BEFORE:
        wanted.append(("tonight", LaterWhen.TONIGHT, _at_local(today, _TONIGHT_AT, tz)))
    tomorrow = today + timedelta(days=1)
    wanted.append(("tomorrow", LaterWhen.TOMORROW, _at_local(tomorrow, _TOMORROW_AT, tz)))
    deferred = [
        (key, named, at, defer_past_quiet_hours(at, quiet, tz)) for key, named, at in wanted
    ]
    options: list[LaterOption] = []
    for index, (key, named, at, when) in enumerate(deferred):
        if when != at:
            # Quiet hours moved it: never promise "en 1 hora" for tomorrow morning. Drop it
            # where a later option offers that same time, else say when it really is.
            if any(other == when for *_, other in deferred[index + 1 :]):
                continue
            named = _day_of(when, now_utc, tz)
        options.append(LaterOption(key, when, named))
    return options


def _day_of(moment: datetime, now: datetime, tz: ZoneInfo) -> LaterWhen:
    """Name a local time by its day relative to today."""
    days = (moment.astimezone(tz).date() - now.astimezone(tz).date()).days
    return {0: LaterWhen.TODAY, 1: LaterWhen.TOMORROW}.get(days, LaterWhen.ON_DATE)


def later_option(
    key: str, now: datetime, tz: ZoneInfo, quiet: QuietHours | None
) -> LaterOption | None:
    """Return the option with that key (recomputed from now), or None if unknown/not offered."""
    return next((o for o in remind_later_options(now, tz, quiet) if o.key == key), None)


def parse_local_time(text: str) -> time:
    """Parse 'HH:MM' (24 h) for settings such as DIGEST_TIME; ValueError when malformed."""
    match = _LOCAL_TIME.fullmatch(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"invalid time {text!r}: use HH:MM in 24-hour format, like '09:30'")
    return time(int(match.group(1)), int(match.group(2)))


def next_daily_at(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """Return the next instant strictly after `now` when local wall time is `at` (aware UTC)."""
    now_utc = _utc(now)
    today = now_utc.astimezone(tz).date()
    for days in range(3):
        candidate = _at_local(today + timedelta(days=days), at, tz)
        if candidate > now_utc:
            return candidate
    raise AssertionError(f"no {at.isoformat()} found after {now_utc.isoformat()}")


_FIRM_HOURS = re.compile(r"\s*([0-9]{1,2})(?::([0-9]{2}))?\s*-\s*([0-9]{1,2})(?::([0-9]{2}))?\s*")
# The firm answers Monday to Friday (date.weekday() 0-4).
_WORKDAYS = range(5)


@dataclass(frozen=True)
class FirmHours:
    """When the firm answers clients: [opens, closes) local time, Monday to Friday."""

    opens: time
    closes: time

    def __post_init__(self) -> None:
        """Reject an empty or overnight opening."""
        if self.opens >= self.closes:
            raise ValueError(
                f"invalid firm hours {self.opens:%H:%M}-{self.closes:%H:%M}: "
                "the opening must come before the closing"
            )

    def is_open(self, local: datetime) -> bool:
        """Return whether the firm is answering at local wall time `local`."""
        return local.weekday() in _WORKDAYS and self.opens <= local.time() < self.closes


def parse_firm_hours(text: str) -> FirmHours | None:
    """Parse FIRM_HOURS like '9-18' or '8:30-17:30'; empty or blank means no hours given."""
    if not text.strip():
        return None
    match = _FIRM_HOURS.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid firm hours {text!r}: use opening-closing hours, like '9-18'")
    hour_a, minute_a, hour_b, minute_b = (int(part or 0) for part in match.groups())
    if hour_a > 23 or hour_b > 24 or minute_a > 59 or minute_b > 59:
        raise ValueError(f"invalid firm hours {text!r}: hours go from 0 to 24")
    closes = time(23, 59, 59) if (hour_b, minute_b) == (24, 0) else time(hour_b, minute_b)
    return FirmHours(time(hour_a, minute_a), closes)


def next_opening(now: datetime, hours: FirmHours, tz: ZoneInfo) -> datetime | None:
    """Return when the firm next opens (aware UTC), or None while it is open at `now`."""
    now_utc = _utc(now)
    local = now_utc.astimezone(tz)
    if hours.is_open(local):
        return None
    for days in range(8):
        day = local.date() + timedelta(days=days)
        if day.weekday() in _WORKDAYS:
            candidate = _at_local(day, hours.opens, tz)
            if candidate > now_utc:
                return candidate
    raise AssertionError(f"no opening found after {now_utc.isoformat()}")
