"""What an operator runs into: presses always answered, blocks recorded, groups told their id."""

import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest, Forbidden

from bot.domain.settings import Settings
from bot.services.alerts import FAILURES_TO_ALERT
from bot.services.notifications import MAX_ATTEMPTS
from bot.storage.backup import list_backups
from tests.support.fake_telegram import BOT_USER, RecordingRequest, callback_update, message_update
from tests.support.harness import (
    CLIENT,
    FIRM_CHAT,
    FIRM_MEMBER,
    RUT,
    FakeClock,
    Harness,
    make_settings,
)

FOREIGN_GROUP = -100_999


def pressed_in(chat_id: int, data: str, user: int = CLIENT) -> dict[str, Any]:
    """A button pressed on a message in another chat (a group)."""
    raw = callback_update(user, data)
    raw["callback_query"]["message"]["chat"] = {"id": chat_id, "type": "supergroup", "title": "G"}
    return raw


def membership(chat: dict[str, Any], old: str, new: str, update_id: int) -> dict[str, Any]:
    """The bot's own membership of a chat changed."""
    user = {"id": CLIENT, "is_bot": False, "first_name": "Juana"}
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": chat,
            "from": user,
            "date": 1_790_000_000,
            "old_chat_member": {"user": BOT_USER, "status": old},
            "new_chat_member": {"user": BOT_USER, "status": new, "until_date": 0},
        },
    }


def answers(bot: Harness) -> list[Any]:
    return [c for c in bot.request.calls if c.method == "answerCallbackQuery"]


@pytest.mark.parametrize(
    ("chat", "data"),
    [(FOREIGN_GROUP, "g:3:next"), (FOREIGN_GROUP, "vf:ok:1"), (FIRM_CHAT, "g:3:next")],
    ids=["foreign-group", "foreign-group-firm-button", "client-button-in-firm-group"],
)
async def test_a_press_nobody_serves_is_still_answered(bot: Harness, chat: int, data: str) -> None:
    await bot.feed(pressed_in(chat, data))
    assert len(answers(bot)) == 1
    assert bot.request.sent() == []
    assert bot.db_rows("SELECT COUNT(*) FROM conversations") == [(0,)]


async def test_a_press_whose_handler_fails_is_answered(bot: Harness) -> None:
    await bot.reach_step(3)
    bot.request.clear()

    async def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    bot.deps.authorizations.move_to_step = broken  # type: ignore[method-assign]
    await bot.press("g:3:next")
    assert answers(bot)
    # The client is told, and shown where they still are.
    assert bot.texts()[-2:] == [bot.deps.guide.message("error"), bot.deps.guide.step(3, RUT)]


async def test_a_client_blocking_the_bot_is_recorded_and_not_counted_as_activity(
    bot: Harness,
) -> None:
    await bot.reach_step(2)
    [(before,)] = bot.db_rows("SELECT last_activity_at FROM authorizations")
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(1,)]
    bot.clock.advance(hours=5)
    bot.request.clear()
    private = {"id": CLIENT, "type": "private", "first_name": "Juana"}
    await bot.feed(membership(private, "member", "kicked", 990_001))
    assert bot.request.calls == []
    [(blocked, activity)] = bot.db_rows("SELECT blocked_at, last_activity_at FROM authorizations")
    assert blocked == bot.clock.now().timestamp()
    assert activity == before
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(0,)]


async def test_added_to_a_group_the_bot_tells_its_chat_id_and_nothing_else(
    bot: Harness,
) -> None:
    bot.request.clear()
    group = {"id": FOREIGN_GROUP, "type": "supergroup", "title": "Contabilidad"}
    await bot.feed(membership(group, "left", "member", 990_002))
    assert bot.texts(FOREIGN_GROUP) == [
        bot.deps.guide.message("group_chat_id", chat_id=FOREIGN_GROUP)
    ]
    assert [c.method for c in bot.request.calls] == ["sendMessage"]
    # Removed from it: nothing to say.
    await bot.feed(membership(group, "member", "left", 990_003))
    assert len(bot.request.calls) == 1


# --- alerts that need a person -------------------------------------------------------------


class RefusingGroup(RecordingRequest):
    """Telegram as it answers once the bot was removed from the firm's group."""

    async def do_request(self, url: str, method: str, request_data: Any = None, **kw: Any) -> Any:
        """Refuse every message to the firm's group; answer the rest as usual."""
        params = request_data.parameters if request_data is not None else {}
        if url.endswith("/sendMessage") and int(params.get("chat_id", 0)) == FIRM_CHAT:
            raise Forbidden("Forbidden: bot was kicked from the supergroup chat")
        return await super().do_request(url, method, request_data, **kw)


async def test_a_firm_chat_that_keeps_refusing_notices_raises_one_alert(
    tmp_path: Path, clock: FakeClock
) -> None:
    bot = await Harness(make_settings(tmp_path), clock, RefusingGroup()).boot()
    try:
        await bot.reach_step(7)
        await bot.press("g:7:yes")
        for _ in range(MAX_ATTEMPTS + 5):
            await bot.deps.notifier.deliver_pending(bot.app.bot)
        [(attempts,)] = bot.db_rows("SELECT attempts FROM outbox WHERE chat_id = ?", (FIRM_CHAT,))
        assert attempts == MAX_ATTEMPTS
        alert = bot.deps.guide.message("alert_outbox", chat_id=FIRM_CHAT, attempts=MAX_ATTEMPTS)
        assert bot.texts(FIRM_MEMBER).count(alert) == 1
        assert bot.settings.token not in alert and "Juana" not in alert
    finally:
        await bot.close()


async def test_repeated_failures_raise_one_alert_an_hour(bot: Harness) -> None:
    await bot.reach_step(3)

    async def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    bot.deps.authorizations.move_to_step = broken  # type: ignore[method-assign]
    for _ in range(FAILURES_TO_ALERT + 2):
        await bot.press("g:3:next")
    alert = bot.deps.guide.message("alert_failing", count=FAILURES_TO_ALERT, minutes=10)
    assert bot.texts(FIRM_MEMBER).count(alert) == 1
    bot.clock.advance(hours=1, minutes=1)
    for _ in range(FAILURES_TO_ALERT):
        await bot.press("g:3:next")
    assert bot.texts(FIRM_MEMBER).count(alert) == 2


async def test_a_database_that_refuses_writes_is_alerted_and_the_client_told_once(
    bot: Harness,
) -> None:
    await bot.reach_step(3)

    async def full(*_: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    bot.deps.authorizations.move_to_step = full  # type: ignore[method-assign]
    bot.request.clear()
    await bot.press("g:3:next")
    alert = bot.deps.guide.message("alert_database", problem="database or disk is full")
    assert bot.texts(FIRM_MEMBER) == [alert]
    assert bot.texts().count(bot.deps.guide.message("error")) == 1


async def test_the_daily_backup_job_writes_a_checked_copy_with_every_completion(
    bot: Harness,
) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    await bot.run_jobs("database-backup")
    [backup] = list_backups(bot.settings.database_path)
    with closing(sqlite3.connect(backup)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute(
            "SELECT company_rut FROM authorizations WHERE completed_at IS NOT NULL"
        ).fetchall() == [(RUT,)]


async def test_texts_to_the_firm_in_a_handoff_are_sent_as_html(bot: Harness) -> None:
    await bot.reach_step(4)
    await bot.press("pb:4:other")
    [(message_id,)] = bot.db_rows(
        "SELECT message_id FROM outbox WHERE chat_id = ? AND handoff_id IS NOT NULL", (FIRM_CHAT,)
    )
    bot.request.clear()
    await bot.feed(
        message_update(
            FIRM_MEMBER, "Hola", chat_id=FIRM_CHAT, chat_type="supergroup", reply_to=message_id
        )
    )
    sent = [c for c in bot.request.calls if c.method == "sendMessage"]
    assert [c.text for c in sent] == [
        bot.deps.guide.message("client_firm_message", text="Hola"),
        bot.deps.guide.message("firm_reply_sent"),
    ]
    assert all(c.params.get("parse_mode") == "HTML" for c in sent)


class FailingReplyThenReads(RecordingRequest):
    """The first reply to the client fails, and from then on SQLite refuses to read where
    anyone's conversation is (a real authorizer on the bot's own connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.database: Any = None

    async def do_request(self, url: str, method: str, request_data: Any = None, **kw: Any) -> Any:
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if (
            self.database is not None
            and name in ("sendMessage", "sendPhoto")
            and int(params.get("chat_id", 0)) == CLIENT
        ):
            database, self.database = self.database, None

            def deny(action: int, table: str | None, *_: Any) -> int:
                refused = action == sqlite3.SQLITE_READ and table == "conversations"
                return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

            # Installing it expires every prepared statement: the next read is checked.
            await database.read(lambda db: db.set_authorizer(deny))
            raise BadRequest("Bad Request: message is too long")
        return await super().do_request(url, method, request_data, **kw)


async def test_a_failure_whose_recovery_cannot_read_is_told_once(
    settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    request = FailingReplyThenReads()
    bot = await Harness(settings, clock, request).boot()
    try:
        await bot.reach_step(3)
        request.database = bot.repository.database
        with caplog.at_level(logging.ERROR):
            await bot.press("g:3:next")
        # Told once that something failed, though showing the stored state failed too.
        assert bot.texts().count(bot.deps.guide.message("error")) == 1
        assert any("could not show the stored state" in r.getMessage() for r in caplog.records)
        assert answers(bot)
    finally:
        await bot.repository.database.read(lambda db: db.set_authorizer(None))
        await bot.close()
