"""/resumen and the digest's picture: where every client stands, drawn and in numbers.

Driven through the real Application; the numbers are checked against the database, and the
PNG against the one bot.formats.progress_chart draws for them. Wording comes from the guide.
"""

import logging
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from stdnum.cl import rut as stdnum_rut
from telegram.error import NetworkError

from bot.domain.settings import Settings
from bot.formats.progress_chart import ProgressCounts, progress_png
from bot.guide.guide import Guide
from bot.services import digest
from bot.storage.repository import ClientInfo
from tests.support.harness import FIRM_CHAT, FIRM_MEMBER, Harness, make_settings

SCL = ZoneInfo("America/Santiago")
FIRM_USER = 5150
OTHER = 777_002
_numbers = iter(range(70_000_001, 70_100_000))
_chats = iter(range(900_001, 901_000))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A digest at 09:00 (Santiago), no reminders to get in the way."""
    return make_settings(tmp_path, digest_time="09:00", reminder_schedule="")


def new_rut() -> str:
    number = next(_numbers)
    return f"{number}-{stdnum_rut.calc_check_digit(str(number))}"


async def started(bot: Harness, step: int = 1) -> tuple[str, int]:
    """A client who began a company's authorization and reached `step`; (company, chat)."""
    rut, chat = new_rut(), next(_chats)
    client = ClientInfo(chat, chat, f"Cliente {chat}", None)
    await bot.repository.authorizations.start_guide(client, rut, "guide", bot.clock.now(), None)
    if step > 1:
        assert await bot.repository.authorizations.move_to_step(rut, 1, step, bot.clock.now())
    return rut, chat


async def completed(bot: Harness, count: int = 1) -> None:
    """`count` companies complete now."""
    for _ in range(count):
        rut, chat = await started(bot)
        client = ClientInfo(chat, chat, f"Cliente {chat}", None)
        done = await bot.repository.authorizations.complete(rut, 1, client, bot.clock.now(), "", ())
        assert done is not None


async def practice(bot: Harness) -> None:
    """Seventeen companies in every situation, completions spread over fourteen weeks."""
    await completed(bot)  # 24-11-2026: older than the twelve weeks drawn
    bot.clock.advance(days=70)  # Tuesday 02-02-2027
    await completed(bot, 2)
    bot.clock.advance(days=14)  # 16-02-2027
    await completed(bot)
    bot.clock.advance(days=14)  # Tuesday 02-03-2027
    await completed(bot, 3)
    for step in (1, 1, 3, 7):
        await started(bot, step)
    for _ in range(3):
        await bot.say(f"/invitar {new_rut()}", user=FIRM_MEMBER)
    _, quiet = await started(bot, 2)
    await bot.repository.reminders.opt_out(quiet, bot.clock.now())
    _, gone = await started(bot, 4)
    await bot.repository.reminders.mark_blocked(gone, bot.clock.now())
    _, both = await started(bot, 5)  # asked for no reminders, then blocked: opted out
    await bot.repository.reminders.opt_out(both, bot.clock.now())
    await bot.repository.reminders.mark_blocked(both, bot.clock.now())
    bot.request.clear()


def counts_in_database(bot: Harness) -> ProgressCounts:
    """Where the companies stand, counted straight from the database file."""

    def count(where: str) -> int:
        [(n,)] = bot.db_rows(f"SELECT COUNT(*) FROM authorizations WHERE {where}")  # noqa: S608
        return int(n)

    open_ = "completed_at IS NULL AND opted_out_at IS NULL AND blocked_at IS NULL"
    steps = [count(f"{open_} AND step = {n}") for n in range(1, 8)]
    return ProgressCounts(
        completed=count("completed_at IS NOT NULL"),
        by_step=(steps[0], steps[1], steps[2], steps[3], steps[4], steps[5], steps[6]),
        not_started=count(f"{open_} AND step = 0"),
        opted_out=count("completed_at IS NULL AND opted_out_at IS NOT NULL"),
        blocked=count("completed_at IS NULL AND opted_out_at IS NULL AND blocked_at IS NOT NULL"),
    )


def labels(guide: Guide) -> dict[str, str]:
    keys = ("title", "status_title", "completed", "not_started", "opted_out", "blocked")
    found = {key: guide.button(f"chart_{key}") for key in (*keys, "weekly_title")}
    return found | {f"step_{n}": guide.button("chart_step", step=n) for n in range(1, 8)}


def caption(guide: Guide, counts: ProgressCounts, this_week: int, day: str) -> str:
    """The caption as the guide words it."""
    total = counts.completed + sum(counts.by_step) + counts.not_started
    total += counts.opted_out + counts.blocked
    return "\n".join(
        [
            guide.message("summary_title", date=day),
            guide.message("summary_total", total=total),
            guide.message("summary_completed", count=counts.completed),
            guide.message("summary_in_progress", count=sum(counts.by_step)),
            *(
                guide.message("summary_step", step=n, count=c)
                for n, c in enumerate(counts.by_step, start=1)
            ),
            guide.message("summary_not_started", count=counts.not_started),
            guide.message("summary_opted_out", count=counts.opted_out),
            guide.message("summary_blocked", count=counts.blocked),
            guide.message("summary_this_week", count=this_week),
        ]
    )


def photos(bot: Harness) -> list[tuple[int, str, bytes]]:
    """Each picture uploaded: (chat, caption, PNG bytes)."""
    sent = [c for c in bot.request.calls if c.method == "sendPhoto"]
    uploads = [files for method, files in bot.request.uploads if method == "sendPhoto"]
    assert len(sent) == len(uploads)
    result = []
    for call, files in zip(sent, uploads, strict=True):
        ((_, data, _),) = files.values()
        result.append((int(call.params["chat_id"]), call.text, data))
    return result


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


EXPECTED = ProgressCounts(
    completed=7, by_step=(2, 0, 1, 0, 0, 0, 1), not_started=3, opted_out=2, blocked=1
)


def expected_weeks() -> list[tuple[date, int]]:
    """The twelve Mondays up to 02-03-2027's week, with the completions made in each."""
    mondays = [date(2027, 3, 1) - timedelta(weeks=11 - n) for n in range(12)]
    made = {date(2027, 2, 1): 2, date(2027, 2, 15): 1, date(2027, 3, 1): 3}
    return [(monday, made.get(monday, 0)) for monday in mondays]


async def test_summary_is_one_picture_with_the_databases_numbers(bot: Harness) -> None:
    guide = bot.deps.guide
    await practice(bot)
    assert counts_in_database(bot) == EXPECTED

    await bot.say("/resumen", user=FIRM_USER, chat_id=FIRM_CHAT, chat_type="group")
    [(chat, text, png)] = photos(bot)
    assert chat == FIRM_CHAT
    assert text == caption(guide, EXPECTED, 3, "02-03-2027")
    assert png == progress_png(EXPECTED, expected_weeks(), labels=labels(guide))
    assert png_size(png) == (800, 1000)
    assert bot.request.sent(FIRM_CHAT) == [c for c in bot.request.calls if c.method == "sendPhoto"]


async def test_summary_of_an_empty_practice(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/resumen", user=FIRM_MEMBER)
    [(chat, text, png)] = photos(bot)
    empty = ProgressCounts(0, (0, 0, 0, 0, 0, 0, 0), 0, 0, 0)
    assert chat == FIRM_MEMBER
    assert text == caption(guide, empty, 0, "24-11-2026")
    mondays = [date(2026, 11, 23) - timedelta(weeks=11 - n) for n in range(12)]
    assert png == progress_png(empty, [(m, 0) for m in mondays], labels=labels(guide))


async def test_summary_counts_a_reopened_completion_as_in_progress(bot: Harness) -> None:
    await completed(bot)
    [(completion,)] = bot.db_rows("SELECT id FROM events WHERE kind = 'completed'")
    assert await bot.repository.firm.reopen(completion, "@contadora", bot.clock.now(), 3, None)
    await bot.say("/resumen", user=FIRM_MEMBER)
    [(_, text, _)] = photos(bot)
    reopened = ProgressCounts(0, (0, 0, 1, 0, 0, 0, 0), 0, 0, 0)
    assert counts_in_database(bot) == reopened
    assert text == caption(bot.deps.guide, reopened, 0, "24-11-2026")


async def test_summary_outside_the_firm_is_an_unknown_command(bot: Harness) -> None:
    await bot.say("/resumen", user=OTHER)
    assert photos(bot) == []
    assert bot.texts(OTHER)[0] == bot.deps.guide.message("unknown_command")


# --- the daily digest carries the same picture --------------------------------------------


async def run_job(bot: Harness) -> None:
    """Run the periodic jobs once: reminders, digest, retention, firm outbox."""
    await bot.run_jobs()


def at_nine(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=SCL).astimezone(UTC)


async def test_the_digest_sends_the_picture_to_every_firm_chat(bot: Harness) -> None:
    guide = bot.deps.guide
    await run_job(bot)  # first run: the first digest is tomorrow at nine
    await practice(bot)
    bot.clock.moment = at_nine(date(2027, 3, 3))
    await run_job(bot)

    sent = photos(bot)
    assert [chat for chat, _, _ in sent] == [FIRM_CHAT, FIRM_MEMBER]
    png = progress_png(EXPECTED, expected_weeks(), labels=labels(guide))
    for _, text, data in sent:
        assert text == caption(guide, EXPECTED, 3, "03-03-2027")
        assert data == png
    # The digest's text went out too, through the outbox as before.
    header = guide.message("digest_header", date="03-03-2027")
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert any(text.startswith(header) for text in bot.texts(chat))
    assert bot.db_rows("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]

    bot.request.clear()
    bot.request.uploads.clear()
    bot.clock.advance(hours=1)
    await run_job(bot)  # not due again: no second picture
    assert photos(bot) == []


async def test_a_picture_that_cannot_be_sent_is_logged_and_the_digest_still_goes(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await run_job(bot)
    bot.clock.moment = at_nine(date(2026, 11, 25))
    bot.request.fail_next("sendPhoto", NetworkError("connection reset"))
    with caplog.at_level(logging.WARNING, logger="bot.services.digest"):
        await run_job(bot)
    assert [chat for chat, _, _ in photos(bot)] == [FIRM_MEMBER]
    [warning] = [r for r in caplog.records if r.name == "bot.services.digest"]
    assert str(FIRM_CHAT) in warning.getMessage()
    header = bot.deps.guide.message("digest_header", date="25-11-2026")
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert any(text.startswith(header) for text in bot.texts(chat))


async def test_a_picture_that_cannot_be_drawn_is_logged_and_the_digest_still_goes(
    bot: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(digest, "progress_png", broken)
    await run_job(bot)
    bot.clock.moment = at_nine(date(2026, 11, 25))
    with caplog.at_level(logging.ERROR, logger="bot.services.digest"):
        await run_job(bot)
    assert photos(bot) == []
    assert [r.levelno for r in caplog.records if r.name == "bot.services.digest"] == [logging.ERROR]
    header = bot.deps.guide.message("digest_header", date="25-11-2026")
    assert any(text.startswith(header) for text in bot.texts(FIRM_CHAT))
