"""The client's data: /privacidad, deletion on request, retention, and what the logs keep.

Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.guide.guide import local_date
from bot.services.retention import LAST_PURGE_KEY, purge_if_due
from tests.support.fake_telegram import button_data, buttons, message_update
from tests.support.harness import (
    CLIENT,
    FIRM_CHAT,
    FIRM_MEMBER,
    JUANA,
    RUT,
    SHOWN,
    FakeClock,
    Harness,
    completion_notice,
    handoff_ids,
    make_settings,
    new_texts,
    reach_help_step,
    traces,
)

RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
RUT_C = "96790240-3"
SHOWN_C = "96.790.240-3"
OTHER = 777_002  # a second client
THIRD = 777_003
FIRM_USER = 5150  # someone in the firm's group
PEDRO: dict[str, Any] = {"first_name": "Pedro", "username": "pedro_b"}
ANA: dict[str, Any] = {"first_name": "Ana", "username": "ana_c"}

CLIENT_TABLES = ("authorizations", "events", "conversations", "reminders", "handoffs")

MakeBot = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_bot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[MakeBot]:
    """Boot a bot with settings overridden; shut down after the test."""
    booted: list[Harness] = []

    async def boot(**overrides: Any) -> Harness:
        harness = await Harness(make_settings(tmp_path, **overrides), clock).boot()
        booted.append(harness)
        return harness

    yield boot
    for harness in booted:
        await harness.close()


def rows_of(bot: Harness, rut: str, chat: int) -> dict[str, int]:
    """How many rows each client table holds for one company and its client's chat."""
    counts = {
        "authorizations": bot.db_rows(
            "SELECT COUNT(*) FROM authorizations WHERE company_rut = ?", (rut,)
        ),
        "events": bot.db_rows("SELECT COUNT(*) FROM events WHERE company_rut = ?", (rut,)),
        "conversations": bot.db_rows(
            "SELECT COUNT(*) FROM conversations WHERE chat_id = ?", (chat,)
        ),
        "reminders": bot.db_rows(
            "SELECT COUNT(*) FROM reminders WHERE chat_id = ? OR company_rut = ?",
            (chat, rut),
        ),
        "handoffs": bot.db_rows("SELECT COUNT(*) FROM handoffs WHERE chat_id = ?", (chat,)),
        "handoff outbox": bot.db_rows(
            "SELECT COUNT(*) FROM outbox AS o JOIN handoffs AS h ON h.id = o.handoff_id "
            "WHERE h.chat_id = ?",
            (chat,),
        ),
        "orphan handoff outbox": bot.db_rows(
            "SELECT COUNT(*) FROM outbox WHERE handoff_id IS NOT NULL "
            "AND handoff_id NOT IN (SELECT id FROM handoffs)",
        ),
    }
    return {table: int(found[0][0]) for table, found in counts.items()}


async def report(
    bot: Harness, step: int, key: str, *, user: int = CLIENT, who: dict[str, Any] = JUANA
) -> None:
    """The client tells the firm about problem `key` at `step`, which opens a handoff.

    Most problems are answered first and reach the firm only with "this did not help"; a
    problem the client describes in their own words reaches it at once.
    """
    await bot.press(f"pb:{step}", user=user, **who)
    await bot.press(f"pb:{step}:{key}", user=user, **who)
    problem = bot.deps.guide.problem(key)
    assert problem is not None
    if not problem.ask_text:
        await bot.press(f"pb:{step}:{key}:firm", user=user, **who)


async def firm_reply(bot: Harness, text: str, reply_to: int) -> None:
    """A firm member replies, in the firm's group, to the bot's message `reply_to`."""
    await bot.feed(
        message_update(
            FIRM_USER,
            text,
            chat_id=FIRM_CHAT,
            chat_type="group",
            first_name="Carla",
            reply_to=reply_to,
        )
    )


def photo_update(user: int = CLIENT) -> dict[str, Any]:
    """A photo as Telegram sends it: several sizes, the largest last."""
    raw = message_update(user, kind="photo", **JUANA)
    raw["message"]["photo"] = [
        {"file_id": "ph-small", "file_unique_id": "u1", "width": 90, "height": 60},
        {"file_id": "ph-medium", "file_unique_id": "u2", "width": 320, "height": 213},
        {"file_id": "ph-large", "file_unique_id": "u3", "width": 1280, "height": 853},
    ]
    return raw


def done(bot: Harness, shown: str = SHOWN) -> str:
    """The "¡Listo!" message for a company."""
    return bot.deps.guide.message("done", company_rut=shown)


def delete_done(bot: Harness) -> str:
    """The client's confirmation that their data is gone."""
    return bot.deps.guide.message("delete_done")


def firm_deleted(bot: Harness, *shown: str) -> str:
    """The firm's notice that a client deleted their data, naming the companies."""
    return bot.deps.guide.message("firm_data_deleted", companies=", ".join(shown))


async def complete(
    bot: Harness, *, user: int = CLIENT, shown: str = SHOWN, who: dict[str, Any] = JUANA
) -> None:
    await reach_help_step(bot, 7, user=user, shown=shown, who=who)
    await bot.press("g:7:yes", user=user, **who)
    assert bot.last_text(user) == done(bot, shown)


async def delete_data(bot: Harness, user: int = CLIENT, who: dict[str, Any] = JUANA) -> None:
    await bot.say("/borrar_mis_datos", user=user, **who)
    await bot.press("del:yes", user=user, **who)


# --- /privacidad --------------------------------------------------------------------------


async def test_privacidad_explains_what_why_how_long_and_how_to_delete(bot: Harness) -> None:
    await bot.say("/privacidad", **JUANA)
    [text] = bot.texts()
    assert text == bot.deps.guide.message("privacy", retention_days=180)
    # Who keeps the data, for how long by default, and the command that deletes it.
    for fact in (bot.settings.firm_name, "180", "/borrar_mis_datos"):
        assert fact in text, fact


async def test_privacidad_shows_the_configured_retention_and_repeats_the_step(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot(data_retention_days=30)
    await reach_help_step(bot, 3)
    before = len(bot.texts())
    await bot.say("/privacidad", **JUANA)
    privacy, step = bot.texts()[before:]
    assert privacy == bot.deps.guide.message("privacy", retention_days=30)
    assert "30" in privacy and "180" not in privacy
    assert step == bot.deps.guide.step(3, RUT)


# --- /borrar_mis_datos --------------------------------------------------------------------


async def test_borrar_mis_datos_asks_first_and_no_keeps_everything(bot: Harness) -> None:
    await reach_help_step(bot, 3)
    await report(bot, 3, "whichrut")
    before = bot.db_snapshot()

    await bot.say("/borrar_mis_datos", **JUANA)
    guide = bot.deps.guide
    ask = bot.request.last(CLIENT)
    assert ask.text == guide.message("delete_confirm")
    assert button_data(ask) == ["del:yes", "del:no"]
    assert [b["text"] for b in buttons(ask)] == [
        guide.button("delete_yes"),
        guide.button("delete_no"),
    ]
    assert bot.db_snapshot() == before

    count = len(bot.texts())
    firm_count = len(bot.texts(FIRM_CHAT))
    await bot.press("del:no", **JUANA)
    no, step = bot.texts()[count:]
    assert no == guide.message("delete_cancelled")
    assert step == guide.step(3, RUT)
    assert bot.db_snapshot() == before
    assert len(bot.texts(FIRM_CHAT)) == firm_count


async def test_deleting_an_unfinished_authorization_removes_every_row(bot: Harness) -> None:
    # Juana: step 3, a problem, a message to the firm and its answer, a reminder.
    await reach_help_step(bot, 3)
    await report(bot, 3, "c41")
    await bot.say("No sé quién es el representante", **JUANA)
    report_in_group = handoff_ids(bot, FIRM_CHAT)[0]
    await firm_reply(bot, "Te escribo luego", report_in_group)
    # Pedro, another client, with his own problem: untouched.
    await reach_help_step(bot, 2, user=OTHER, shown=SHOWN_B, who=PEDRO)
    await report(bot, 2, "login", user=OTHER, who=PEDRO)
    assert rows_of(bot, RUT, CLIENT) == {
        "authorizations": 1,
        "events": 4,  # started, steps 2 and 3, the problem
        "conversations": 1,
        "reminders": 1,
        "handoffs": 1,
        "handoff outbox": 4,  # the report and the client's message, in both firm chats
        "orphan handoff outbox": 0,
    }
    pedro_before = rows_of(bot, RUT_B, OTHER)
    assert pedro_before["handoffs"] == 1 and pedro_before["handoff outbox"] == 2

    firm_count = len(bot.texts(FIRM_CHAT)), len(bot.texts(FIRM_MEMBER))
    await delete_data(bot)
    assert bot.last_text() == delete_done(bot)
    assert rows_of(bot, RUT, CLIENT) == dict.fromkeys(
        [*CLIENT_TABLES, "handoff outbox", "orphan handoff outbox"], 0
    )
    assert rows_of(bot, RUT_B, OTHER) == pedro_before
    assert traces(bot, "Juana", "juana_pyme", str(CLIENT)) == []
    # The unfinished authorization is gone entirely: the firm is told, without its RUT.
    unfinished = bot.deps.guide.message("firm_data_deleted_unfinished", count=1)
    assert bot.texts(FIRM_CHAT)[firm_count[0] :] == [unfinished]
    assert bot.texts(FIRM_MEMBER)[firm_count[1] :] == [unfinished]
    assert traces(bot, SHOWN, RUT) == []

    # The firm's reply to the old report no longer reaches anyone.
    mark = len(bot.request.calls)
    await firm_reply(bot, "¿Sigues ahí?", report_in_group)
    assert new_texts(bot, mark, CLIENT) == []
    assert new_texts(bot, mark, FIRM_CHAT) == [bot.deps.guide.message("firm_reply_not_handoff")]

    # Her next message is not relayed either: she starts over.
    mark = len(bot.request.calls)
    await bot.say("Hola", **JUANA)
    assert new_texts(bot, mark, CLIENT) == [bot.deps.guide.message("no_conversation")]
    assert new_texts(bot, mark, FIRM_CHAT) == []


async def test_deleting_a_completed_authorization_keeps_only_the_fact(bot: Harness) -> None:
    await reach_help_step(bot, 7)
    await bot.feed(photo_update())
    await bot.press("g:7:yes", **JUANA)
    [(completed_at,)] = bot.db_rows("SELECT completed_at FROM authorizations")
    assert completed_at is not None
    assert bot.db_rows("SELECT proof_file_id, client_name FROM authorizations") == [
        ("ph-large", "Juana")
    ]

    firm_count = len(bot.texts(FIRM_CHAT))
    await delete_data(bot)
    assert bot.last_text() == delete_done(bot)
    assert bot.db_rows(
        "SELECT company_rut, client_chat_id, client_user_id, client_name, client_username, "
        "invited_name, proof_file_id, step, completed_at FROM authorizations",
    ) == [(RUT, None, None, None, None, None, None, 7, completed_at)]
    assert bot.db_rows("SELECT kind FROM events ORDER BY id DESC LIMIT 2") == [
        ("data_deleted",),
        ("completed",),
    ]
    for table in ("conversations", "reminders", "handoffs"):
        assert bot.db_rows(f"SELECT COUNT(*) FROM {table}") == [(0,)]  # noqa: S608
    assert bot.texts(FIRM_CHAT)[firm_count:] == [firm_deleted(bot, SHOWN)]
    assert bot.last_text(FIRM_MEMBER) == firm_deleted(bot, SHOWN)


async def test_deleting_an_invited_completed_authorization_forgets_the_invited_name(
    bot: Harness,
) -> None:
    await bot.repository.firm.create_invitation(
        "tok123", RUT, "Juana Pérez", 4242, bot.clock.now(), bot.clock.now() + timedelta(days=14)
    )
    await complete(bot)
    assert bot.db_rows("SELECT invited_name FROM authorizations") == [("Juana Pérez",)]
    await delete_data(bot)
    assert bot.db_rows("SELECT invited_name, client_name FROM authorizations") == [(None, None)]


async def test_no_trace_of_the_client_is_left_after_deleting_a_completion(bot: Harness) -> None:
    await reach_help_step(bot, 7)
    await bot.feed(photo_update())
    await bot.press("g:7:yes", **JUANA)
    await delete_data(bot)
    assert traces(bot, "Juana", "juana_pyme", str(CLIENT), "ph-large") == []


async def test_deleting_with_nothing_stored_tells_the_firm_nothing(bot: Harness) -> None:
    await delete_data(bot)
    assert bot.texts() == [bot.deps.guide.message("delete_confirm"), delete_done(bot)]
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == []


async def test_after_deleting_an_unfinished_one_the_client_starts_fresh(bot: Harness) -> None:
    await reach_help_step(bot, 5)
    await delete_data(bot)
    count = len(bot.texts())
    await bot.say("/start", **JUANA)
    guide = bot.deps.guide
    # No offer to resume the unfinished authorization: it is gone.
    assert bot.texts()[count:] == [guide.message("welcome"), guide.message("ask_device")]
    await bot.say(SHOWN, **JUANA)
    await bot.press("rut:ok", **JUANA)
    assert bot.last_text() == guide.step(1, RUT)
    await bot.steps_from(1, 7, **JUANA)
    await bot.press("g:7:yes", **JUANA)
    assert bot.last_text() == done(bot)
    [(name, chat, step, completed)] = bot.db_rows(
        "SELECT client_name, client_chat_id, step, completed_at FROM authorizations"
    )
    assert (name, chat, step) == ("Juana", CLIENT, 7) and completed is not None
    # Only the new history: what was deleted does not come back.
    assert [k for (k,) in bot.db_rows("SELECT kind FROM events ORDER BY id")] == [
        "started",
        *["step"] * 6,
        "completed",
    ]
    assert bot.last_text(FIRM_CHAT) == completion_notice(bot)


async def test_after_deleting_a_completed_one_the_client_can_complete_again(
    bot: Harness, clock: FakeClock
) -> None:
    await complete(bot)
    first_completion = clock.now()
    await delete_data(bot)
    clock.advance(days=2)
    await bot.say("/start", **JUANA)
    await bot.say(SHOWN, **JUANA)
    await bot.press("rut:ok", **JUANA)
    assert bot.last_text() == bot.deps.guide.message(
        "already_done",
        company_rut=SHOWN,
        completed_date=local_date(first_completion, bot.settings.timezone),
    )
    await bot.press("rep:yes", **JUANA)
    await bot.steps_from(1, 7, **JUANA)
    await bot.press("g:7:yes", **JUANA)
    assert bot.last_text() == done(bot)
    [(name, chat, completed)] = bot.db_rows(
        "SELECT client_name, client_chat_id, completed_at FROM authorizations"
    )
    assert (name, chat) == ("Juana", CLIENT)
    assert completed == clock.now().timestamp()
    assert bot.last_text(FIRM_CHAT) == completion_notice(bot, completed_at=clock.now())


async def test_a_deleted_client_is_never_reminded(bot: Harness, clock: FakeClock) -> None:
    await reach_help_step(bot, 2)
    # She also asked to be reminded at a time of her choosing.
    await bot.press("later:menu", **JUANA)
    await bot.press(button_data(bot.request.last(CLIENT))[0], **JUANA)
    assert bot.db_rows("SELECT kind FROM reminders WHERE chat_id = ?", (CLIENT,)) == [("later",)]
    await reach_help_step(bot, 4, user=OTHER, shown=SHOWN_B, who=PEDRO)
    await delete_data(bot)
    assert bot.db_rows("SELECT chat_id FROM reminders") == [(OTHER,)]

    juana_before = len(bot.texts(CLIENT))
    sent = 0
    for _ in range(10):
        clock.advance(days=1)
        sent += await bot.deps.sweeper.sweep(bot.app.bot)
    assert len(bot.texts(CLIENT)) == juana_before
    reminder = bot.deps.guide.message("reminder_step", step=4, company_rut=SHOWN_B)
    pedro = [t for t in bot.texts(OTHER) if t == reminder]
    assert sent == len(pedro) == 3  # the default schedule, 1, 3 and 7 days: only Pedro's
    assert bot.db_rows("SELECT COUNT(*) FROM authorizations WHERE company_rut = ?", (RUT,)) == [
        (0,)
    ]


# --- retention ----------------------------------------------------------------------------


async def test_retention_purges_idle_unfinished_authorizations_once_a_day(
    make_bot: MakeBot, clock: FakeClock
) -> None:
    bot = await make_bot(data_retention_days=30)
    # Day 0: Juana stops at step 3 after reporting a problem; Ana completes.
    await reach_help_step(bot, 3)
    await report(bot, 3, "c41")
    await complete(bot, user=THIRD, shown=SHOWN_C, who=ANA)
    # Day 1.5: Pedro stops at step 2.
    clock.advance(days=1, hours=12)
    await reach_help_step(bot, 2, user=OTHER, shown=SHOWN_B, who=PEDRO)
    # Day 31: someone starts now, Juana has been idle 31 days, Pedro 29.5.
    clock.advance(days=29, hours=12)
    await reach_help_step(bot, 2, user=OTHER + 10, shown="12345678-5", who={"first_name": "Eva"})

    assert await purge_if_due(bot.settings, bot.repository, clock) == 1
    assert rows_of(bot, RUT, CLIENT) == dict.fromkeys(
        [*CLIENT_TABLES, "handoff outbox", "orphan handoff outbox"], 0
    )
    remaining = {row[0] for row in bot.db_rows("SELECT company_rut FROM authorizations")}
    assert remaining == {RUT_B, RUT_C, "12345678-5"}
    assert bot.db_rows(
        "SELECT completed_at IS NOT NULL, client_name FROM authorizations WHERE company_rut = ?",
        (RUT_C,),
    ) == [(1, "Ana")]
    assert bot.db_rows("SELECT value FROM meta WHERE key = ?", (LAST_PURGE_KEY,)) == [
        (clock.now().isoformat(),)
    ]

    # Day 31.75: Pedro is idle 30.25 days, but a purge ran less than a day ago.
    clock.advance(hours=18)
    assert await purge_if_due(bot.settings, bot.repository, clock) == 0
    assert bot.db_rows("SELECT COUNT(*) FROM authorizations WHERE company_rut = ?", (RUT_B,)) == [
        (1,)
    ]
    # Day 32: a day has passed, Pedro goes.
    clock.advance(hours=6, minutes=1)
    assert await purge_if_due(bot.settings, bot.repository, clock) == 1
    remaining = {row[0] for row in bot.db_rows("SELECT company_rut FROM authorizations")}
    assert remaining == {RUT_C, "12345678-5"}
    assert rows_of(bot, RUT_B, OTHER)["conversations"] == 0


async def test_retention_runs_in_the_reminders_job(make_bot: MakeBot, clock: FakeClock) -> None:
    bot = await make_bot(data_retention_days=30)
    await reach_help_step(bot, 4)
    await complete(bot, user=THIRD, shown=SHOWN_C, who=ANA)
    clock.advance(days=30, hours=23)
    await reach_help_step(bot, 2, user=OTHER, shown=SHOWN_B, who=PEDRO)
    clock.advance(hours=2)
    await bot.run_jobs()
    remaining = {row[0] for row in bot.db_rows("SELECT company_rut FROM authorizations")}
    assert remaining == {RUT_B, RUT_C}
    assert rows_of(bot, RUT, CLIENT) == dict.fromkeys(
        [*CLIENT_TABLES, "handoff outbox", "orphan handoff outbox"], 0
    )
    assert bot.db_rows("SELECT value FROM meta WHERE key = ?", (LAST_PURGE_KEY,)) == [
        (clock.now().isoformat(),)
    ]
    # The purged client comes back: she starts over, nothing offered from before.
    count = len(bot.texts())
    await bot.say("/start", **JUANA)
    guide = bot.deps.guide
    assert bot.texts()[count:] == [guide.message("welcome"), guide.message("ask_device")]


# --- logs ---------------------------------------------------------------------------------


async def test_logs_carry_ids_not_names_or_ruts(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await reach_help_step(bot, 2)
        await report(bot, 2, "login")
        await bot.say("Me sale el error 39, soy Juana", **JUANA)
        await firm_reply(bot, "Hola Juana, usa el certificado", handoff_ids(bot, FIRM_CHAT)[0])
        await bot.feed(photo_update())
        await firm_reply(bot, "/cerrar", handoff_ids(bot, FIRM_CHAT)[0])
        await bot.steps_from(2, 7, **JUANA)
        await bot.feed(photo_update())
        await bot.press("g:7:yes", **JUANA)
        await bot.say("/privacidad", **JUANA)
        await delete_data(bot)
    assert bot.last_text() == delete_done(bot)
    assert any("deleted its data" in r.getMessage() for r in caplog.records)
    assert any(str(CLIENT) in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        logged = " ".join(
            [record.getMessage(), str(record.args), record.exc_text or "", str(record.exc_info)]
        )
        for secret in ("Juana", "juana_pyme", "76086428", "76.086.428"):
            assert secret not in logged, (secret, record.name, logged)


async def test_retention_leaves_the_chats_other_company_alone(
    make_bot: MakeBot, clock: FakeClock
) -> None:
    bot = await make_bot(data_retention_days=30)
    # Juana left company A idle; a month later she works on company B from the same chat.
    await reach_help_step(bot, 3)
    await bot.say("/cancelar", **JUANA)
    clock.advance(days=31)
    await bot.say("/start", **JUANA)
    await bot.say(SHOWN_B, **JUANA)
    await bot.press("rut:ok", **JUANA)
    await bot.steps_from(1, 4, **JUANA)
    await report(bot, 4, "other")

    assert await purge_if_due(bot.settings, bot.repository, clock) == 1
    assert bot.db_rows("SELECT company_rut FROM authorizations") == [(RUT_B,)]
    assert bot.db_rows("SELECT state, company_rut FROM conversations") == [("guide", RUT_B)]
    assert bot.db_rows("SELECT company_rut FROM reminders") == [(RUT_B,)]
    assert bot.db_rows("SELECT company_rut FROM handoffs WHERE closed_at IS NULL") == [(RUT_B,)]
    await bot.press("g:4:next")
    assert bot.last_text() == bot.deps.guide.step(5, RUT_B)


async def test_a_completion_being_repeated_is_never_purged(
    make_bot: MakeBot, clock: FakeClock
) -> None:
    bot = await make_bot(data_retention_days=30)
    await complete(bot)
    await bot.say("/start", **JUANA)
    await bot.say(SHOWN, **JUANA)
    await bot.press("rut:ok", **JUANA)
    await bot.press("rep:yes", **JUANA)  # insists on repeating, then gives up
    clock.advance(days=45)

    assert await purge_if_due(bot.settings, bot.repository, clock) == 0
    kinds = [row[0] for row in bot.db_rows("SELECT kind FROM events WHERE company_rut = ?", (RUT,))]
    assert "completed" in kinds
