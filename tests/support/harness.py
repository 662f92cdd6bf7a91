"""The test harness: the real Application, a fake HTTP layer, a real SQLite file."""

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.domain.rut import parse_rut
from bot.domain.settings import Settings
from bot.guide.guide import local_datetime
from bot.services.notifications import describe_duration
from bot.services.screenshot_reader import ScreenshotReader
from bot.storage.repository import Repository
from bot.wiring.assembly import assemble
from tests.support.fake_telegram import (
    RecordingRequest,
    button_data,
    callback_update,
    message_update,
)

TOKEN = "123456789:AAHfakeTOKENfor-tests_0123456789abc"
FIRM_CHAT = -100_555
FIRM_MEMBER = 4242
CLIENT = 777_001
RUT = "76086428-5"  # the company a client authorizes unless a test says otherwise
SHOWN = "76.086.428-5"  # the same RUT as the bot shows it
# The client of most tests, as Telegram names the sender.
JUANA: dict[str, Any] = {"first_name": "Juana", "username": "juana_pyme"}
# The checkout: the tests read the README, the Dockerfile, the lock files, the packages.
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeClock:
    """A clock the tests move by hand."""

    moment: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 15, 0, tzinfo=UTC))

    def now(self) -> datetime:
        """Return the current fake instant."""
        return self.moment

    def advance(self, **delta: float) -> None:
        """Move time forward."""
        self.moment += timedelta(**delta)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for tests, independent of the machine's environment and .env."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "telegram_api_url": "http://127.0.0.1:9",
        "firm_chat_ids": f"{FIRM_CHAT},{FIRM_MEMBER}",
        "database_path": tmp_path / "data" / "authorizations.sqlite3",
        "quiet_hours": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def db_rows(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one query straight against the bot's SQLite file and return every row."""
    with closing(sqlite3.connect(settings.database_path)) as db:
        return db.execute(sql, params).fetchall()


def db_snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, each table's rows in a fixed order.

    Leaves out the poller's own markers of processed updates: every update adds one, and
    they say nothing of what a client or the firm gave.
    """
    tables = [
        row[0]
        for row in db_rows(
            settings, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
        if row[0] != "processed_updates"
    ]
    return {
        table: sorted(db_rows(settings, f"SELECT * FROM {table}"), key=repr)  # noqa: S608
        for table in tables
    }


class Harness:
    """One running bot process, as far as the tests are concerned."""

    def __init__(
        self,
        settings: Settings,
        clock: FakeClock,
        request: RecordingRequest | None = None,
        *,
        rate_limit: bool = False,
        reader: ScreenshotReader | None = None,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.clock = clock
        self.request = request if request is not None else RecordingRequest()
        self.rate_limit = rate_limit
        self.repository: Repository
        self.app: Application[Any, Any, Any, Any, Any, Any]

    async def boot(self) -> "Harness":
        """Open the database and initialize the Application (as startup does)."""
        built = await assemble(
            self.settings,
            clock=self.clock,
            request=self.request,
            rate_limit=self.rate_limit,
            reader=self.reader,
        )
        self.assembly = built
        self.deps, self.app, self.repository = built.deps, built.application, built.deps.repository
        self.poller = built.poller()
        await self.app.initialize()
        return self

    async def close(self) -> None:
        """Shut the bot down as the process does (the assembly's one shutdown sequence)."""
        await self.assembly.close()

    async def abandon(self) -> None:
        """Drop the process as SIGKILL would: no shutdown, only the file handle released."""
        await self.repository.close()

    async def feed(self, raw: dict[str, Any]) -> None:
        """Process one raw update through the poller, as polling does (one commit)."""
        assert await self.poller.handle(Update.de_json(raw, self.app.bot))

    async def say(self, text: str, user: int = CLIENT, **kwargs: Any) -> None:
        """The client sends a text message."""
        await self.feed(message_update(user, text, **kwargs))

    async def send(self, kind: str, user: int = CLIENT, **kwargs: Any) -> None:
        """The client sends a sticker, photo, voice or document."""
        await self.feed(message_update(user, kind=kind, **kwargs))

    async def press(self, data: str, user: int = CLIENT, **kwargs: Any) -> None:
        """The client presses an inline button."""
        await self.feed(callback_update(user, data, **kwargs))

    async def steps_from(
        self,
        first: int,
        last: int,
        *,
        user: int = CLIENT,
        first_name: str = "Juana",
        username: str | None = "juana_pyme",
    ) -> None:
        """The client presses on from guide step `first` until step `last` is shown."""
        for current in range(first, last):
            action = "save" if current == 6 else "next"
            await self.press(
                f"g:{current}:{action}", user=user, first_name=first_name, username=username
            )

    async def reach_step(
        self,
        step: int,
        *,
        user: int = CLIENT,
        rut: str = RUT,
        first_name: str = "Juana",
        username: str | None = "juana_pyme",
    ) -> None:
        """Walk a client from /start (typing `rut`) to guide step `step` and check it is shown."""
        sender: dict[str, Any] = {"user": user, "first_name": first_name, "username": username}
        await self.say("/start", **sender)
        await self.say(rut, **sender)
        await self.press("rut:ok", **sender)
        await self.steps_from(1, step, **sender)
        assert self.last_text(user) == self.deps.guide.step(step, parse_rut(rut))

    async def run_jobs(self, *names: str) -> None:
        """Run jobs once, in order, as the job queue would (by default the periodic ones:
        reminders, the digest, the retention purge, then the firm's outbox)."""
        assert self.app.job_queue is not None
        for name in names or ("reminders", "daily-digest", "data-retention", "firm-outbox"):
            [job] = self.app.job_queue.get_jobs_by_name(name)
            await job.run(self.app)

    def db_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one query straight against this bot's SQLite file and return every row."""
        return db_rows(self.settings, sql, params)

    def db_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table in this bot's SQLite file."""
        return db_snapshot(self.settings)

    def texts(self, chat_id: int = CLIENT) -> list[str]:
        """What the bot said to a chat, in order."""
        return self.request.texts(chat_id)

    def last_text(self, chat_id: int = CLIENT) -> str:
        """The last thing the bot said to a chat."""
        return self.texts(chat_id)[-1]


# --- helpers shared by the client-flow suites (problems, privacy, faults) -------------------


async def reach_help_step(
    bot: Harness, step: int, *, user: int = CLIENT, shown: str = SHOWN, who: dict[str, Any] = JUANA
) -> None:
    """Walk a client from /start to `step` and check it offers the problem button there."""
    await bot.reach_step(step, user=user, rut=shown, **who)
    assert f"pb:{step}" in button_data(bot.request.last(user))


def new_texts(bot: Harness, mark: int, chat: int) -> list[str]:
    """What the bot said to `chat` since `mark` calls were recorded (a photo's caption)."""
    return [
        call.text
        for call in bot.request.calls[mark:]
        if call.method in ("sendMessage", "sendPhoto") and int(call.params["chat_id"]) == chat
    ]


def handoff_ids(bot: Harness, chat: int) -> list[int]:
    """Message ids, in a firm chat, of the bot's messages that belong to a handoff."""
    rows = bot.db_rows(
        "SELECT message_id FROM outbox WHERE chat_id = ? AND handoff_id IS NOT NULL ORDER BY id",
        (chat,),
    )
    assert all(row[0] is not None for row in rows), rows
    return [int(row[0]) for row in rows]


def completion_notice(
    bot: Harness, *, shown: str = SHOWN, completed_at: datetime | None = None
) -> str:
    """The firm's notice that Juana completed `shown`, started and finished at `completed_at`
    (by default the clock's now: the clock did not move, so it took no time)."""
    return bot.deps.guide.message(
        "firm_completed",
        company_rut=shown,
        client_name="Juana",
        client_username="@juana_pyme",
        client_id=CLIENT,
        completed_at=local_datetime(completed_at or bot.clock.now(), bot.settings.timezone),
        duration=describe_duration(timedelta(0)),
    )


def traces(bot: Harness, *needles: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Every row, in any table, with a cell containing one of `needles`."""
    return [
        (table, row)
        for table, rows in bot.db_snapshot().items()
        for row in rows
        if any(needle in str(cell) for cell in row for needle in needles)
    ]
