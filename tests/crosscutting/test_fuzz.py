"""Random sequences of updates against the real Application: nothing crashes, nothing leaks.

Each example boots a fresh bot (its own SQLite file in a temporary directory) and feeds it
1-25 updates: any Unicode text up to 5000 characters, commands with random payloads, media,
callback data of any bytes, edited messages, other users, foreign groups and the firm's
group. Valid RUTs, opening an invitation to the client's own company and "press a button the
bot just showed" are mixed in, so the guide often progresses and sometimes completes. After
every update the replies and the stored state are checked.

The two clients work on different companies: two people on the same company is a known
problem of its own (tests/crosscutting/test_concurrency.py), kept out of here so it does not
mask others.
"""

import asyncio
import json
import logging
import re
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update
from telegram.ext import ConversationHandler

from tests.support.fake_telegram import Call, buttons, callback_update, message_update
from tests.support.harness import (
    CLIENT,
    FIRM_CHAT,
    FIRM_MEMBER,
    FakeClock,
    Harness,
    db_rows,
    make_settings,
)

OTHER = 777_002
FIRM_USER = 5150
FOREIGN_GROUP = -100_987_654
CLIENTS = (CLIENT, OTHER)
RUTS = {CLIENT: "76.086.428-5", OTHER: "11.111.111-1"}
REPRESENTATIVE = "13.322.924-8"
FIRM_CHATS = {FIRM_CHAT, FIRM_MEMBER}
STATES = {"ask_device", "ask_rut", "confirm_rut", "confirm_repeat", "guide"}
# The buttons that move a client on, for the "forward" action.
FORWARD = re.compile(r"dev:pc|rut:ok|rep:yes|st:resume|st:keep|st:another|g:[1-7]:(next|save|yes)")
# Where the client is asked for the company's RUT (typing it is then the way forward).
RUT_QUESTIONS = (
    "ask_device",
    "ask_rut",
    "rut_not_a_rut",
    "rut_wrong_check_digit",
    "rut_is_representative",
)
PROBLEM_KEYS = [
    "phone",
    "nocert",
    "certlist",
    "certpass",
    "certexp",
    "login",
    "c28",
    "c41",
    "certwin",
    "whichrut",
    "listed",
    "boxes",
    "other",
    "z",
]
MAX_REPLIES = 4  # messages to the client's own chat for one update
MAX_SENDS = 6  # every message sent because of one client update (firm copies included)

# --- strategies -----------------------------------------------------------------------------

short_text = st.text(max_size=60)
long_text = st.builds(
    lambda piece, length: (piece * (length // len(piece) + 1))[:length],
    st.text(min_size=1, max_size=12),
    st.integers(1, 5000),
)
any_text = st.one_of(short_text, long_text)

commands = st.one_of(
    st.sampled_from(
        [
            "/start",
            "/cancelar",
            "/cancel",
            "/ayuda",
            "/help",
            "/privacidad",
            "/borrar_mis_datos",
            "/pendientes",
            "/completadas",
            "/estado 76.086.428-5",
            "/invitar 76.086.428-5 Ana",
            "/recordar 76.086.428-5 ahora",
            "/exportar",
            "/cerrar",
            "/start@sii_test_bot",
        ]
    ),
    st.builds(lambda payload: f"/start {payload}", st.text(min_size=1, max_size=80)),
    st.builds(
        lambda payload: f"/start {payload}", st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
    ),
    st.from_regex(r"/[a-z_]{1,12}", fullmatch=True),
    st.builds(lambda word, rest: f"/{word} {rest}", st.sampled_from(["start", "x"]), any_text),
)

number = st.integers(-3, 10**6).map(str)
valid_looking = st.one_of(
    st.sampled_from(
        [
            "dev:pc",
            "dev:phone",
            "rut:ok",
            "rut:edit",
            "pass:on",
            "rep:yes",
            "rep:no",
            "st:keep",
            "st:over",
            "st:resume",
            "st:another",
            "later:menu",
            "later:1h",
            "later:tonight",
            "later:tomorrow",
            "rem:stop",
            "del:yes",
            "del:no",
            "pg:pend:1",
            "pg:comp:1:2026-11-24",
        ]
    ),
    st.builds(
        "g:{}:{}".format,
        st.integers(-1, 9),
        st.sampled_from(
            ["next", "back", "save", "mismatch", "yes", "no", "back5", "listed", "had", "x"]
        ),
    ),
    st.builds("pb:{}:{}".format, st.integers(0, 8), st.sampled_from(PROBLEM_KEYS)),
    st.builds("pb:{}:{}:firm".format, st.integers(0, 8), st.sampled_from(PROBLEM_KEYS)),
    st.builds("pb:{}:{}:proof".format, st.integers(0, 8), st.sampled_from(PROBLEM_KEYS)),
    st.builds("pb:{}".format, st.integers(0, 8)),
    st.builds("later:{}".format, st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)),
    st.builds("vf:ok:{}".format, number),
    st.builds("vf:no:{}".format, number),
    st.builds("pg:pend:{}".format, number),
    st.builds("pg:comp:{}".format, number),
)
random_data = st.one_of(
    st.text(max_size=64).filter(lambda data: len(data.encode()) <= 64),
    st.binary(max_size=64).map(lambda raw: raw.decode("utf-8", errors="replace")),
)
# The buttons of the guidance flow, pressed often, wherever the client is: where they do not
# belong they are stale or forged.
flow_buttons = st.one_of(
    st.sampled_from(["dev:pc", "dev:phone", "pass:on", "st:another"]),
    st.builds("g:{}:had".format, st.integers(1, 7)),
    st.builds("pb:{}:{}:firm".format, st.integers(1, 7), st.sampled_from(PROBLEM_KEYS)),
    st.builds("pb:{}:{}:proof".format, st.integers(1, 7), st.sampled_from(PROBLEM_KEYS)),
)
callback_data = st.one_of(valid_looking, random_data)
# The firm presses anything too: client buttons and presses without data included.
firm_callback_data = callback_data

client = st.sampled_from(CLIENTS)
actions = st.one_of(
    st.tuples(st.just("text"), client, any_text),
    st.tuples(st.just("rut"), client, st.sampled_from(["own", "compact", "prefixed", "rep"])),
    st.tuples(st.just("command"), client, commands),
    st.tuples(st.just("media"), client, st.sampled_from(["sticker", "photo", "voice", "document"])),
    st.tuples(st.just("press"), client, callback_data),
    st.tuples(st.just("press"), client, flow_buttons),
    st.tuples(st.just("shown"), client, st.integers(0, 20)),
    st.tuples(st.just("forward"), client, st.just(0)),
    st.tuples(st.just("forward"), client, st.just(0)),
    st.tuples(st.just("invited"), client, st.just(0)),
    st.tuples(st.just("edited"), client, st.one_of(any_text, commands)),
    st.tuples(
        st.just("foreign"), st.sampled_from([*CLIENTS, FIRM_USER]), st.one_of(any_text, commands)
    ),
    st.tuples(st.just("firm"), st.just(FIRM_USER), st.one_of(commands, short_text)),
    st.tuples(st.just("firm_shown"), st.just(FIRM_USER), st.integers(0, 20)),
    st.tuples(st.just("firm_press"), st.just(FIRM_USER), firm_callback_data),
    st.tuples(st.just("tick"), st.just(0), st.sampled_from([1, 90, 24 * 60 + 1, 3 * 24 * 60])),
)


# --- turning an action into an update ---------------------------------------------------------


def _callback_data(call: Call) -> list[str]:
    return [b["callback_data"] for b in buttons(call) if "callback_data" in b]


def _last_keyboard(bot: Harness, chat: int) -> list[str]:
    """The callback data of the last keyboard the bot showed in a chat."""
    for call in reversed(bot.request.calls):
        shows = call.method in ("sendMessage", "sendPhoto", "editMessageText")
        if shows and int(call.params.get("chat_id", 0)) == chat and _callback_data(call):
            return _callback_data(call)
    return []


def _rut_text(user: int, how: str) -> str:
    shown = RUTS[user]
    return {
        "own": shown,
        "compact": shown.replace(".", ""),
        "prefixed": f"RUT: {shown}",
        "rep": REPRESENTATIVE,
    }[how]


def _latest_invitation(bot: Harness, user: int) -> str | None:
    """The newest invitation to the client's own company (the firm's, or one passed on)."""
    rows = bot.db_rows(
        "SELECT token FROM invitations WHERE company_rut = ? ORDER BY created_at DESC, rowid DESC",
        (RUTS[user].replace(".", ""),),
    )
    return str(rows[0][0]) if rows else None


def _firm_callback(data: str) -> dict[str, Any]:
    raw = callback_update(FIRM_USER, data, first_name="Carla", username="contadora")
    raw["callback_query"]["message"]["chat"] = {"id": FIRM_CHAT, "type": "group", "title": "Firma"}
    return raw


def build_update(bot: Harness, action: tuple[str, int, Any]) -> dict[str, Any] | None:
    """The raw update an action stands for (None for a clock tick)."""
    kind, user, value = action
    if kind == "text":
        return message_update(user, value)
    if kind == "rut":
        return message_update(user, _rut_text(user, value))
    if kind == "command":
        return message_update(user, value)
    if kind == "media":
        return message_update(user, kind=value)
    if kind == "press":
        return callback_update(user, value)
    if kind == "shown":
        keyboard = _last_keyboard(bot, user)
        return callback_update(user, keyboard[value % len(keyboard)] if keyboard else "g:1:next")
    if kind == "forward":
        onward = [data for data in _last_keyboard(bot, user) if FORWARD.fullmatch(data)]
        if onward:
            return callback_update(user, onward[0])
        texts = bot.texts(user)
        guide = bot.deps.guide
        asked = bool(texts) and texts[-1] in [guide.message(key) for key in RUT_QUESTIONS]
        return message_update(user, RUTS[user] if asked else "/start")
    if kind == "invited":
        token = _latest_invitation(bot, user)
        return message_update(user, f"/start {token}" if token else "/start")
    if kind == "edited":
        return message_update(user, value, edited=True)
    if kind == "foreign":
        return message_update(user, value, chat_id=FOREIGN_GROUP, chat_type="group")
    if kind == "firm":
        return message_update(user, value, chat_id=FIRM_CHAT, chat_type="group", first_name="Carla")
    if kind == "firm_shown":
        keyboard = _last_keyboard(bot, FIRM_CHAT)
        return _firm_callback(keyboard[value % len(keyboard)] if keyboard else "pg:pend:1")
    if kind == "firm_press":
        return _firm_callback(value)
    assert kind == "tick"
    return None


# --- checks ---------------------------------------------------------------------------------


class ErrorRecords(logging.Handler):
    """Collects every ERROR logged anywhere (bot.services.errors logs one per crashed handler)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _markup_data(markup: Any) -> list[str]:
    if isinstance(markup, str):
        markup = json.loads(markup)
    if not markup or "inline_keyboard" not in markup:
        return []
    return [
        b["callback_data"] for row in markup["inline_keyboard"] for b in row if "callback_data" in b
    ]


def check_calls(
    calls: list[Call], action: tuple[str, int, Any], update: dict[str, Any] | None
) -> None:
    """What one update made the bot send is sane and goes only where it may."""
    for call in calls:
        params = call.params
        if call.method == "sendMessage":
            assert 0 < len(str(params["text"])) <= 4096, call
        if call.method == "editMessageText":
            assert 0 < len(str(params["text"])) <= 4096, call
        if call.method in ("sendPhoto", "sendDocument") and params.get("caption"):
            assert len(str(params["caption"])) <= 1024, call
        if call.method == "answerCallbackQuery" and params.get("text"):
            assert len(str(params["text"])) <= 200, call
        for data in _markup_data(params.get("reply_markup")):
            assert 1 <= len(data.encode()) <= 64, data

    kind, user, _ = action
    sends = [c for c in calls if c.method in ("sendMessage", "sendPhoto", "sendDocument")]
    if kind in ("foreign",) or (kind == "edited"):
        assert calls == [], (action, calls)
    if update is not None and kind in (
        "text",
        "rut",
        "command",
        "media",
        "press",
        "shown",
        "forward",
        "invited",
    ):
        own = [c for c in sends if int(c.params["chat_id"]) == user]
        assert len(own) <= MAX_REPLIES, [c.text for c in own]
        assert len(sends) <= MAX_SENDS, [c.text for c in sends]
        # A client's update never makes the bot write to another client.
        assert {int(c.params["chat_id"]) for c in sends} <= {user, *FIRM_CHATS}, action


def check_database(path: Path) -> None:
    """The stored state is one the bot can resume from."""
    with closing(sqlite3.connect(path)) as db:
        conversations = db.execute(
            "SELECT chat_id, user_id, state, company_rut, candidate_rut FROM conversations"
        ).fetchall()
        for chat_id, user_id, state, company_rut, candidate_rut in conversations:
            assert state in STATES, (chat_id, state)
            if state == "guide":
                assert company_rut is not None
                found = db.execute(
                    "SELECT 1 FROM authorizations WHERE company_rut = ?", (company_rut,)
                ).fetchone()
                assert found is not None, (chat_id, company_rut)
            if state in ("confirm_rut", "confirm_repeat"):
                assert candidate_rut is not None, (chat_id, state)
            if state == "ask_device" and candidate_rut is not None:
                # Asked where they read with a company in mind: it came from an invitation
                # this chat opened.
                opened = db.execute(
                    "SELECT 1 FROM invitations WHERE company_rut = ? AND used_by_chat = ?",
                    (candidate_rut, chat_id),
                ).fetchone()
                assert opened is not None, (chat_id, candidate_rut)
            assert chat_id > 0 and user_id > 0  # never a group
        steps = db.execute("SELECT company_rut, step FROM authorizations").fetchall()
        for company_rut, step in steps:
            assert 0 <= step <= 7, (company_rut, step)
        stranded = db.execute(
            "SELECT a.company_rut, c.chat_id FROM authorizations AS a JOIN conversations AS c "
            "ON c.chat_id = a.client_chat_id AND c.company_rut = a.company_rut "
            "WHERE a.completed_at IS NOT NULL AND c.state = 'guide'"
        ).fetchall()
        assert stranded == [], stranded
        outbox = {row[0] for row in db.execute("SELECT chat_id FROM outbox")}
        assert outbox <= FIRM_CHATS, outbox


async def check_handler_agrees(bot: Harness) -> None:
    """Any copy of the states kept in memory (a ConversationHandler's) equals the database's.

    Where the database is the only copy (conversations.client.router), there is nothing to disagree.
    """
    copies = [
        h._conversations
        for handlers in bot.app.handlers.values()
        for h in handlers
        if isinstance(h, ConversationHandler)
    ]
    for user in CLIENTS:
        stored = await bot.repository.conversations.conversation(user, user)
        for in_memory in copies:
            state = in_memory.get((user, user))
            assert state == (stored.state if stored else None), (user, state, stored)


# --- the property -----------------------------------------------------------------------------


async def run_example(directory: Path, sequence: list[tuple[str, int, Any]]) -> None:
    bot = await Harness(make_settings(directory, reminder_rate=30), FakeClock()).boot()
    errors = ErrorRecords()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        for action in sequence:
            before = len(bot.request.calls)
            update = build_update(bot, action)
            if update is None:
                bot.clock.advance(minutes=action[2])
                await bot.deps.sweeper.sweep(bot.app.bot)
                await bot.deps.notifier.deliver_pending(bot.app.bot)
            else:
                await bot.app.process_update(Update.de_json(update, bot.app.bot))
            assert errors.records == [], (
                action,
                [(r.getMessage(), r.exc_info and repr(r.exc_info[1])) for r in errors.records],
            )
            check_calls(bot.request.calls[before:], action, update)
            check_database(bot.settings.database_path)
        await check_handler_agrees(bot)
    finally:
        root.removeHandler(errors)
        await bot.close()


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    prelude=st.tuples(
        st.tuples(st.integers(0, 11), st.booleans()), st.tuples(st.integers(0, 11), st.booleans())
    ),
    sequence=st.integers(1, 25).flatmap(lambda n: st.lists(actions, min_size=n, max_size=n)),
)
def test_random_updates_never_crash_overflow_or_corrupt_the_state(
    prelude: tuple[tuple[int, bool], tuple[int, bool]], sequence: list[tuple[str, int, Any]]
) -> None:
    # The prelude puts each client somewhere along the way first (0: never came, 1: asked
    # where they read, 2: asked for the RUT (invited: confirming it), 3: confirming it,
    # 4-10: at step 1-7, 11: completed), by /start or by the firm's invitation, checked like
    # the rest.
    with tempfile.TemporaryDirectory(prefix="fuzz-") as directory:
        asyncio.run(run_example(Path(directory), walk(prelude) + sequence))


def walk(levels: tuple[tuple[int, bool], tuple[int, bool]]) -> list[tuple[str, int, Any]]:
    """The updates that bring each client to a level of the prelude."""
    steps: list[tuple[str, int, Any]] = []
    for user, (level, invited) in zip(CLIENTS, levels, strict=True):
        if level >= 1 and invited:
            steps.append(("firm", FIRM_USER, f"/invitar {RUTS[user]} Cliente {user}"))
            steps.append(("invited", user, 0))
        elif level >= 1:
            steps.append(("command", user, "/start"))
        if level >= 2:
            steps.append(("press", user, "dev:pc"))
        if level >= 3:
            steps.append(("rut", user, "own"))
        steps.extend(("forward", user, 0) for _ in range(max(0, level - 3)))
    return steps


# Guard the harness of the property itself: a plain completion passes every check.
def test_the_checks_accept_a_whole_authorization() -> None:
    sequence: list[tuple[str, int, Any]] = [
        ("command", CLIENT, "/start"),
        ("forward", CLIENT, 0),  # "on the computer"
        ("forward", CLIENT, 0),  # the RUT, typed
        *[("forward", CLIENT, 0)] * 8,  # rut:ok, then steps 1-6 and 7's "yes"
        ("tick", 0, 3 * 24 * 60),
        ("firm_shown", FIRM_USER, 1),  # "No aparece": the firm reopens it
        ("forward", CLIENT, 0),  # the client's "Continuar"
        # The other client is invited by the firm, opens it and goes straight on.
        ("firm", FIRM_USER, "/invitar 11.111.111-1 Beto"),
        ("invited", OTHER, 0),
        *[("forward", OTHER, 0)] * 9,  # "on the computer", rut:ok, steps 1-6 and 7's "yes"
        ("forward", OTHER, 0),  # "another company": the RUT is asked
    ]
    with tempfile.TemporaryDirectory(prefix="fuzz-") as directory:
        asyncio.run(run_example(Path(directory), sequence))
        config = make_settings(Path(directory))
        rows = db_rows(config, "SELECT company_rut, kind FROM events ORDER BY id")
        states = db_rows(config, "SELECT chat_id, state FROM conversations")
    kinds = {(company, kind) for company, kind in rows}
    assert {
        ("76086428-5", "completed"),
        ("76086428-5", "rejected"),
        ("11111111-1", "invitation_opened"),
        ("11111111-1", "completed"),
    } <= kinds
    assert sorted(states) == [(CLIENT, "guide"), (OTHER, "ask_rut")]
