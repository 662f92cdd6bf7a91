"""Security: the token stays secret, the firm's side stays the firm's, SQL stays parameterized.

Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
"""

import ast
import asyncio
import html
import io
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import NetworkError

from bot.guide.guide import local_datetime
from bot.services.notifications import describe_duration
from bot.wiring.logging_setup import configure_logging
from tests.support.fake_telegram import Call, button_data, callback_update
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, ROOT, TOKEN, Harness

SECRET = TOKEN.split(":", 1)[1]
API = "http://127.0.0.1:9"
OTHER_TOKEN = "987654321:AAOtherBotSecret_xyz-0123456789"

RUT = "76086428-5"
SHOWN = "76.086.428-5"
RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
OTHER = 777_002  # a second client
INTRUDER = 31_337  # a stranger writing to the bot privately
FIRM_USER = 5150  # a member of the firm's group, here writing to the bot privately
LINK = re.compile(r"https://t\.me/sii_test_bot\?start=[A-Za-z0-9_-]+")


# --- helpers ------------------------------------------------------------------------------


async def complete(bot: Harness, shown: str = SHOWN, user: int = CLIENT, **who: Any) -> None:
    await bot.reach_step(7, rut=shown, user=user, **who)
    await bot.press("g:7:yes", user=user, **who)
    assert bot.last_text(user) == bot.deps.guide.message("done", company_rut=shown)


async def firm_say(bot: Harness, text: str) -> None:
    await bot.say(text, user=FIRM_USER, chat_id=FIRM_CHAT, chat_type="group", first_name="Carla")


def firm_callback(user: int, data: str | None, chat: int = FIRM_CHAT) -> dict[str, Any]:
    raw = callback_update(user, data or "", first_name="Carla", username="contadora")
    if data is None:
        del raw["callback_query"]["data"]
    raw["callback_query"]["message"]["chat"] = {"id": chat, "type": "group", "title": "Firma"}
    return raw


def dump(bot: Harness) -> list[str]:
    """Every row of every table, and the schema: what 'nothing written' compares.

    The poller's own markers of processed updates are left out (every update adds one).
    """
    with closing(sqlite3.connect(bot.settings.database_path)) as db:
        return [line for line in db.iterdump() if '"processed_updates" VALUES' not in line]


def schema(bot: Harness) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(bot.settings.database_path)) as db:
        rows = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        version = db.execute("PRAGMA user_version").fetchall()
    return rows + version


def replies(bot: Harness, chat: int) -> list[tuple[str, list[str]]]:
    """Everything sent to a chat: texts (or captions) with their buttons' data."""
    return [(call.text, button_data(call)) for call in bot.request.sent(chat)]


def all_text(calls: list[Call]) -> str:
    return "\n".join(str(call.params) for call in calls)


# === the token ===========================================================================


@pytest.fixture
def redacted_log() -> Iterator[io.StringIO]:
    """Logging exactly as the bot configures it, at DEBUG, captured from its own handler."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    names = ("httpx", "httpcore", "apscheduler", "telegram", "aiosqlite")
    saved_levels = {name: logging.getLogger(name).level for name in names}
    configure_logging("DEBUG", TOKEN)
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


class _FailureWatcher(logging.Handler):
    """Wakes a test up when a log message starting with `prefix` is emitted."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.seen.set()


# The job is run by hand, outside a running application: PTB warns about that.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBUserWarning")
async def test_the_token_never_reaches_the_logs_nor_any_chat(
    bot: Harness, redacted_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{API}/bot{TOKEN}/sendMessage"
    # A whole flow, with a network failure whose text carries the request URL.
    await bot.reach_step(3, rut=SHOWN)
    # Step 4 is lost on its way (steps are photos).
    bot.request.fail_next("sendPhoto", NetworkError(f"httpx.ConnectError: {url} ({TOKEN})"))
    await bot.press("g:3:next")
    assert bot.texts()[-2:] == [bot.deps.guide.message("error"), bot.deps.guide.step(4, RUT)]
    await bot.say("/start")
    await bot.press("st:keep")
    await bot.steps_from(4, 7)
    await bot.press("g:7:yes")

    # A handler that raises (outside the conversation: the application's error handler).
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"boom-handler token={TOKEN} url={url} other={API}/bot{OTHER_TOKEN}/x")

    monkeypatch.setattr(bot.repository.firm, "pending", broken)
    await bot.say("/pendientes", user=FIRM_MEMBER, first_name="Socio")

    # A background job that raises.
    monkeypatch.setattr(bot.repository.outbox, "unsent_outbox", broken)
    assert bot.app.job_queue is not None
    [job] = bot.app.job_queue.get_jobs_by_name("firm-outbox")
    await job.run(bot.app)
    monkeypatch.undo()

    # Something printing the Application (whose Bot's repr carries the token).
    logging.getLogger("bot.test").warning("state: app=%r", bot.app)

    # Polling failing with the URL in the error.
    bot.request.fail_next("getUpdates", NetworkError(f"Bad Gateway at {API}/bot{TOKEN}/getUpdates"))
    poller = bot.assembly.poller(["message", "callback_query"])
    watcher = _FailureWatcher("getUpdates failed")
    polling_log = logging.getLogger("bot.services.polling")
    polling_log.addHandler(watcher)
    try:
        polling = asyncio.create_task(poller.run())
        await asyncio.wait_for(watcher.seen.wait(), timeout=5)
    finally:
        polling_log.removeHandler(watcher)
    poller.stop()
    await asyncio.wait_for(polling, timeout=5)

    logged = redacted_log.getvalue()
    # The failures were all logged (with their tracebacks) ...
    assert "boom-handler" in logged and "background task failed" in logged
    assert "getUpdates failed" in logged and "Traceback" in logged
    assert "[REDACTED]" in logged
    # ... but never the token, its secret part, nor another bot's token in a URL.
    assert TOKEN not in logged and SECRET not in logged
    assert OTHER_TOKEN.split(":")[1] not in logged
    # Nothing sent to any chat carries the token or the failures' texts.
    sent = all_text(bot.request.calls)
    assert SECRET not in sent and "boom-handler" not in sent and "ConnectError" not in sent
    # The settings never print it; python-telegram-bot's Bot does (repr: "ExtBot[token=…]"),
    # so anything logging it is covered by the redaction, as shown above.
    for holder in (bot.settings, bot.deps.settings):
        assert SECRET not in repr(holder) and SECRET not in str(holder)
    assert TOKEN in repr(bot.app.bot)
    assert f"app={bot.app!r}" not in logged and "ExtBot[token=[REDACTED]]" in logged


# === the firm's commands from outside ====================================================

FIRM_COMMANDS = [
    "/invitar 76.086.428-5 Ana",
    "/invitar",
    "/pendientes",
    "/pendientes@sii_test_bot",
    "/PENDIENTES",
    "/completadas",
    "/completadas desde 2026-11-01",
    "/estado 76.086.428-5",
    "/recordar 76.086.428-5",
    "/recordar 76.086.428-5 ahora",
    "/exportar",
    "/cerrar",
]


@pytest.mark.parametrize("command", FIRM_COMMANDS)
@pytest.mark.parametrize("sender", [INTRUDER, FIRM_USER], ids=["stranger", "firm-user-private"])
async def test_firm_commands_outside_the_firm_are_unknown_commands_and_write_nothing(
    bot: Harness, command: str, sender: int
) -> None:
    # Something to leak: a client mid-guide, a completed company, an invitation.
    await bot.reach_step(3, rut=SHOWN)
    await complete(bot, SHOWN_B, user=OTHER, first_name="Beto")
    await firm_say(bot, "/invitar 96.543.210-8 Carla")
    before = dump(bot)
    bot.request.clear()

    await bot.say("/xyz", user=sender, first_name="Extraño")
    unknown = replies(bot, sender)
    guide = bot.deps.guide
    assert unknown == [
        (guide.message("unknown_command"), []),
        (guide.message("no_conversation"), []),
    ]
    bot.request.clear()

    await bot.say(command, user=sender, first_name="Extraño")

    assert replies(bot, sender) == unknown
    assert {call.method for call in bot.request.calls} == {"sendMessage"}
    assert bot.request.sent() == bot.request.sent(sender)
    assert dump(bot) == before


# === buttons checked against who presses them ============================================


def _rows_of(bot: Harness, chat: int, company: str) -> list[Any]:
    """Everything stored about one client and their company."""
    return [
        bot.db_rows("SELECT * FROM authorizations WHERE company_rut = ?", (company,)),
        bot.db_rows("SELECT * FROM conversations WHERE chat_id = ?", (chat,)),
        bot.db_rows("SELECT * FROM reminders WHERE chat_id = ?", (chat,)),
        bot.db_rows("SELECT * FROM events WHERE company_rut = ? ORDER BY id", (company,)),
        bot.db_rows("SELECT * FROM handoffs WHERE chat_id = ?", (chat,)),
        bot.db_rows("SELECT * FROM outbox ORDER BY id"),
    ]


A_BUTTONS = [
    "g:5:next",
    "g:5:back",
    "g:5:listed",
    "g:5:had",
    "g:6:save",
    "g:6:mismatch",
    "g:7:yes",
    "g:7:no",
    "g:7:back5",
    "pb:5",
    "pb:5:listed",
    "pb:5:listed:firm",
    "pb:5:boxes:firm",
    "pb:5:other",
    "rut:ok",
    "rut:edit",
    "rep:yes",
    "st:keep",
    "st:resume",
    "del:no",
]


async def test_a_client_pressing_another_clients_buttons_moves_only_their_own(
    bot: Harness,
) -> None:
    await bot.reach_step(5, rut=SHOWN)  # A, at step 5 of company A
    await bot.reach_step(2, rut=SHOWN_B, user=OTHER, first_name="Beto")  # B at step 2 of B
    a_before = _rows_of(bot, CLIENT, RUT)
    bot.request.clear()

    for data in A_BUTTONS:
        await bot.press(data, user=OTHER, first_name="Beto")

    assert _rows_of(bot, CLIENT, RUT) == a_before
    assert bot.request.sent(CLIENT) == []
    assert {int(c.params["chat_id"]) for c in bot.request.calls if "chat_id" in c.params} <= {OTHER}
    assert SHOWN not in all_text(bot.request.calls)
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]  # nor opened one for B
    b = await bot.repository.authorizations.authorization(RUT_B)
    assert b is not None and b.step == 2 and b.client_chat_id == OTHER
    # B's own button still works, on B's company only.
    await bot.press("g:2:next", user=OTHER, first_name="Beto")
    assert bot.last_text(OTHER) == bot.deps.guide.step(3, RUT_B)
    assert _rows_of(bot, CLIENT, RUT) == a_before


FIRM_BUTTONS = [
    "vf:ok:{n}",
    "vf:no:{n}",
    "vf:ok:1",
    "vf:ok:999999999999999999",
    "vf:ok:{n} OR 1=1",
    "pg:pend:1",
    "pg:pend:2",
    "pg:comp:1",
    "pg:comp:1:2026-11-01",
]


@pytest.mark.parametrize(
    "presser", [INTRUDER, FIRM_USER, CLIENT], ids=["stranger", "firm-user", "client"]
)
async def test_firm_buttons_from_non_firm_chats_change_and_reveal_nothing(
    bot: Harness, presser: int
) -> None:
    await complete(bot)
    await bot.reach_step(2, rut=SHOWN_B, user=OTHER, first_name="Beto")
    [notice] = bot.request.sent(FIRM_CHAT)
    number = button_data(notice)[0].split(":")[2]
    before = dump(bot)
    bot.request.clear()

    for template in FIRM_BUTTONS:
        await bot.press(template.format(n=number), user=presser, first_name="Extraño")

    assert dump(bot) == before
    methods = {call.method for call in bot.request.calls}
    assert methods <= {"sendMessage", "answerCallbackQuery", "editMessageReplyMarkup"}
    assert bot.request.sent() == bot.request.sent(presser)
    shown = [str(value) for call in bot.request.calls for value in call.params.values()]
    if presser != CLIENT:
        leaked = all_text(bot.request.calls)
        for secret in (SHOWN, SHOWN_B, RUT, RUT_B, "Juana", "Beto"):
            assert secret not in leaked
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert authorization.completed_at is not None and authorization.verified_at is None

    # Nothing of what the firm's listings show reached the presser (the client may see
    # their own company and name, not the listings' lines).
    bot.request.clear()
    await firm_say(bot, "/pendientes")
    await firm_say(bot, "/completadas")
    listings = [text.split("\n") for text in bot.texts(FIRM_CHAT)]
    assert len(listings) == 2 and all(len(lines) == 2 for lines in listings)
    for line in (line for lines in listings for line in lines):
        assert not any(line in text for text in shown)


@pytest.mark.parametrize("stranger", [INTRUDER, OTHER], ids=["no-data", "own-data"])
async def test_delete_yes_by_someone_else_deletes_nothing_of_the_client(
    bot: Harness, stranger: int
) -> None:
    await complete(bot, SHOWN_B)  # the client finished one company ...
    await bot.reach_step(3, rut=SHOWN)  # ... and is mid-way with another
    if stranger == OTHER:
        await bot.reach_step(2, rut="96.543.210-8", user=OTHER, first_name="Beto", username="beto")
    mine = [_rows_of(bot, CLIENT, RUT), _rows_of(bot, CLIENT, RUT_B)]
    firm_before = len(bot.request.sent(FIRM_CHAT))

    # Usernames are unique in Telegram: the stranger's is their own (deletion finds a client
    # by every identity, @username included).
    await bot.press("del:yes", user=stranger, first_name="Beto", username="beto")

    assert bot.last_text(stranger) == bot.deps.guide.message("delete_done")
    after = [_rows_of(bot, CLIENT, RUT), _rows_of(bot, CLIENT, RUT_B)]
    if stranger == OTHER:  # the firm's copy of the deletion notice is queued in the outbox
        for before_rows, after_rows in zip(mine, after, strict=True):
            assert before_rows[:5] == after_rows[:5]
        assert (
            await bot.repository.authorizations.authorization("96543210-8") is None
        )  # B's own: gone
    else:
        assert after == mine
        assert len(bot.request.sent(FIRM_CHAT)) == firm_before
    assert (await bot.repository.authorizations.authorization(RUT)) is not None
    await bot.press("g:3:next")
    assert bot.last_text() == bot.deps.guide.step(4, RUT)


@pytest.mark.parametrize("data", ["st:over", "st:keep", "st:resume", "rem:stop", "del:yes"])
async def test_client_buttons_pressed_in_a_firm_group_start_nothing_there(
    bot: Harness, data: str
) -> None:
    await bot.feed(firm_callback(FIRM_USER, data))
    await firm_say(bot, "hola a todos, reunión a las 3")
    assert await bot.repository.conversations.conversation(FIRM_CHAT, FIRM_USER) is None
    assert bot.request.sent(FIRM_CHAT) == []


@pytest.mark.parametrize("data", [None, ""], ids=["absent", "empty"])
async def test_a_firm_press_without_data_is_ignored(
    bot: Harness, caplog: pytest.LogCaptureFixture, data: str | None
) -> None:
    await complete(bot)
    bot.request.clear()
    with caplog.at_level(logging.ERROR):
        await bot.feed(firm_callback(FIRM_USER, data))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert bot.request.sent(FIRM_CHAT) == []


# === SQL: everything parameterized =======================================================

INJECTIONS = [
    "'; DROP TABLE authorizations; --",
    "76086428-5' OR '1'='1",
    "76086428-5'; DELETE FROM events; --",
    "1' UNION SELECT token FROM invitations --",
    'Robert"); DROP TABLE conversations;--',
]


@pytest.mark.parametrize("text", INJECTIONS)
async def test_sql_shaped_rut_input_is_refused_and_touches_nothing(bot: Harness, text: str) -> None:
    await complete(bot, SHOWN_B, user=OTHER, first_name="Beto")
    await bot.say("/start")
    shape = schema(bot)
    before = dump(bot)

    await bot.say(text)

    guide = bot.deps.guide
    refusals = {guide.message("rut_not_a_rut"), guide.message("rut_wrong_check_digit")}
    assert bot.last_text() in refusals
    assert button_data(bot.request.last(CLIENT)) == []
    assert schema(bot) == shape
    assert dump(bot) == before


NAMES = [
    ("Ana'); DROP TABLE authorizations; --", "o'hara\"--"),
    ("x' OR '1'='1", "x' OR '1'='1"),
    ('Robert"; DELETE FROM events; --', "bobby_tables"),
    ("<b>Jefa</b> & Cía «Ñandú» 😀 漢字 \u202eRTL", None),
    ("%s %d {0} {company_rut} \\x00? ?", "q%s"),
]


@pytest.mark.parametrize(("first_name", "username"), NAMES)
async def test_quote_laden_unicode_names_are_stored_verbatim(
    bot: Harness, first_name: str, username: str | None
) -> None:
    shape = schema(bot)
    await complete(bot, first_name=first_name, username=username)

    assert schema(bot) == shape
    assert bot.db_rows(
        "SELECT client_name, client_username FROM authorizations WHERE company_rut = ?",
        (RUT,),
    ) == [(first_name, username)]
    kinds = [row[0] for row in bot.db_rows("SELECT kind FROM events ORDER BY id")]
    assert kinds == ["started", *["step"] * 6, "completed"]
    notice = bot.last_text(FIRM_CHAT)
    # The guide escapes each value for Telegram's HTML: the names show as typed.
    assert notice == bot.deps.guide.message(
        "firm_completed",
        company_rut=SHOWN,
        client_name=first_name,
        client_username=f"@{username}" if username else "",
        client_id=CLIENT,
        completed_at=local_datetime(bot.clock.now(), bot.settings.timezone),
        duration=describe_duration(timedelta(0)),
    )
    assert html.escape(first_name) in notice
    assert "<b>Jefa</b>" not in notice


INVITED = [
    'O\'Higgins "Bernardo"; DROP TABLE invitations; --',
    "x' OR '1'='1",
    "Ana'); DELETE FROM authorizations; --",
    "Ñuñoa 😀 «comillas» ‘curvas’",
]


@pytest.mark.parametrize("name", INVITED)
async def test_invitation_names_with_quotes_are_stored_verbatim(bot: Harness, name: str) -> None:
    await bot.reach_step(2, rut=SHOWN_B, user=OTHER, first_name="Beto")
    shape = schema(bot)

    await firm_say(bot, f"/invitar {SHOWN} {name}")

    created, forward = bot.texts(FIRM_CHAT)[-2:]
    match = LINK.search(created)
    assert match is not None
    expires = bot.clock.now() + bot.settings.invitation_ttl
    assert created == bot.deps.guide.message(
        "invite_created",
        company_rut=SHOWN,
        client_name=name,
        link=match.group(0),
        expires=local_datetime(expires, bot.settings.timezone),
    )
    assert html.escape(name) in created
    assert forward == bot.deps.guide.message("invite_forward", link=match.group(0))
    assert schema(bot) == shape
    assert bot.db_rows("SELECT client_name, company_rut FROM invitations") == [(name, RUT)]
    assert bot.db_rows("SELECT invited_name FROM authorizations WHERE company_rut = ?", (RUT,)) == [
        (name,)
    ]
    assert bot.db_rows("SELECT COUNT(*) FROM authorizations") == [(2,)]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/estado 76086428-5' OR '1'='1", "status_usage"),
        ("/recordar 76086428-5'; DELETE FROM reminders; --", "remind_usage"),
        ("/completadas desde 2026-01-01' OR 1=1 --", "completed_usage"),
        ("/invitar '; DROP TABLE invitations; --", "invite_bad_rut"),
    ],
)
async def test_sql_shaped_firm_arguments_get_the_usage_and_touch_nothing(
    bot: Harness, command: str, answer: str
) -> None:
    await bot.reach_step(2, rut=SHOWN)
    before = dump(bot)
    bot.request.clear()
    await firm_say(bot, command)
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message(answer)]
    assert dump(bot) == before


# --- static: no SQL built from strings ---------------------------------------------------

EXECUTE_METHODS = {"execute", "executemany", "executescript", "execute_fetchall", "execute_insert"}
STRING_METHODS = {"strip", "lstrip", "rstrip", "split", "upper", "lower"}


class SqlSources:
    """Decides whether an expression can only be SQL text written in the source.

    Safe: string literals, concatenations (+) of safe parts, module constants built from
    them (also inside tuples and dicts, indexed by anything), loop and comprehension
    variables over safe iterables, locals assigned safe values, string methods like
    .strip()/.split() of safe values, and function parameters whose every call site
    passes a safe value. Anything else (f-strings, % and .format(), unknown names) is not.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.module: dict[str, list[ast.expr]] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.module.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
            ):
                self.module.setdefault(node.target.id, []).append(node.value)
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.owner: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for each in ast.walk(tree):
            if isinstance(each, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions[each.name] = each
                for inner in ast.walk(each):
                    self.owner[id(inner)] = each  # innermost wins: walk visits outer first

    def function_of(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        return self.owner.get(id(node))

    def safe(self, expr: ast.expr, seen: frozenset[tuple[int, str]] = frozenset()) -> bool:
        if isinstance(expr, ast.Constant):
            return isinstance(expr.value, str)
        if isinstance(expr, ast.BinOp):
            return (
                isinstance(expr.op, ast.Add)
                and self.safe(expr.left, seen)
                and self.safe(expr.right, seen)
            )
        if isinstance(expr, ast.Call):
            func = expr.func
            return (
                isinstance(func, ast.Attribute)
                and func.attr in STRING_METHODS
                and self.safe(func.value, seen)
            )
        if isinstance(expr, ast.Subscript):
            return self.safe(expr.value, seen)
        if isinstance(expr, ast.Tuple | ast.List | ast.Set):
            return all(self.safe(element, seen) for element in expr.elts)
        if isinstance(expr, ast.Dict):
            return all(self.safe(value, seen) for value in expr.values)
        if isinstance(expr, ast.ListComp | ast.GeneratorExp):
            return self.safe(expr.elt, seen)
        if isinstance(expr, ast.IfExp):
            return self.safe(expr.body, seen) and self.safe(expr.orelse, seen)
        if isinstance(expr, ast.Name):
            return self.safe_name(expr, seen)
        return False  # JoinedStr (f-string), %-formatting, .format(), anything else

    def safe_name(self, name: ast.Name, seen: frozenset[tuple[int, str]]) -> bool:
        function = self.function_of(name)
        key = (id(function), name.id)
        if key in seen:
            return True  # already being checked further up
        seen = seen | {key}
        if function is not None:
            sources = self.local_sources(function, name.id)
            if sources is not None:
                return bool(sources) and all(self.safe(source, seen) for source in sources)
            params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
            if name.id in params or name.id in [a.arg for a in function.args.kwonlyargs]:
                return self.safe_parameter(function, name.id, seen)
        values = self.module.get(name.id, [])
        return bool(values) and all(self.safe(value, seen) for value in values)

    @staticmethod
    def local_sources(
        function: ast.FunctionDef | ast.AsyncFunctionDef, name: str
    ) -> list[ast.expr] | None:
        """What a local name is bound to in a function (None: not a local)."""
        found: list[ast.expr] = []
        bound = False
        for node in ast.walk(function):
            if isinstance(node, ast.Assign):
                if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                    bound = True
                    found.append(node.value)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                if isinstance(node.target, ast.Name) and node.target.id == name:
                    bound = True
                    if isinstance(node, ast.AugAssign) or node.value is None:
                        return []  # x += ...: built up, not safe
                    found.append(node.value)
            elif (
                isinstance(node, ast.For | ast.AsyncFor | ast.comprehension)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
            ):
                bound = True
                found.append(node.iter)
        return found if bound else None

    def safe_parameter(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        name: str,
        seen: frozenset[tuple[int, str]],
    ) -> bool:
        params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
        is_method = bool(params) and params[0] in ("self", "cls")
        calls = [
            node
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == function.name)
                or (isinstance(node.func, ast.Attribute) and node.func.attr == function.name)
            )
        ]
        if not calls:
            return False
        index = params.index(name) if name in params else None
        for call in calls:
            given = [kw.value for kw in call.keywords if kw.arg == name]
            if not given and index is not None:
                position = index - (1 if is_method and isinstance(call.func, ast.Attribute) else 0)
                if position < len(call.args):
                    given = [call.args[position]]
            if not given:
                defaults = function.args.defaults
                offset = len(params) - len(defaults)
                if index is not None and index >= offset:
                    given = [defaults[index - offset]]
            if not given or not all(self.safe(argument, seen) for argument in given):
                return False
        return True


def sql_calls(tree: ast.Module) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in EXECUTE_METHODS
    ]


def is_user_version_pragma(call: ast.Call, sources: SqlSources) -> bool:
    """`f"PRAGMA user_version = {number}"` with `number` looping over a range(): an int."""
    text = call.args[0] if call.args else None
    if not isinstance(text, ast.JoinedStr) or len(text.values) != 2:
        return False
    prefix, value = text.values
    if not (isinstance(prefix, ast.Constant) and prefix.value == "PRAGMA user_version = "):
        return False
    if not (isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name)):
        return False
    function = sources.function_of(call)
    assert function is not None
    loops = [
        node
        for node in ast.walk(function)
        if isinstance(node, ast.For)
        and isinstance(node.target, ast.Name)
        and node.target.id == value.value.id
    ]
    return len(loops) == 1 and (
        isinstance(loops[0].iter, ast.Call)
        and isinstance(loops[0].iter.func, ast.Name)
        and loops[0].iter.func.id == "range"
    )


def unsafe_sql(source: str) -> tuple[list[int], list[int], int]:
    """(lines of unsafe execute calls, lines of the allowed pragma, execute calls checked)."""
    tree = ast.parse(source)
    sources = SqlSources(tree)
    unsafe, pragma = [], []
    calls = sql_calls(tree)
    for call in calls:
        if is_user_version_pragma(call, sources):
            pragma.append(call.lineno)
        elif not call.args or not sources.safe(call.args[0]):
            unsafe.append(call.lineno)
    return unsafe, pragma, len(calls)


def test_every_sql_statement_is_source_text_and_values_are_parameters() -> None:
    # The repository is made of stores (bot/storage/) sharing SQL constants and helpers:
    # check them as one source, so every constant and every caller is seen.
    # The migrations (schema.py) and the backup's own PRAGMAs are checked apart.
    modules = sorted((ROOT / "bot" / "storage").glob("*.py"))
    storage = "\n".join(
        module.read_text(encoding="utf-8")
        for module in modules
        if module.name not in ("schema.py", "backup.py")
    )
    migrations = (ROOT / "bot" / "storage" / "schema.py").read_text(encoding="utf-8")

    unsafe, pragma, checked = unsafe_sql(storage)
    assert unsafe == [] and pragma == []
    assert checked >= 40  # the checker really saw the repository's statements

    unsafe, pragma, checked = unsafe_sql(migrations)
    assert unsafe == []
    # The one exception: the migration's version number, an int from range(), in a PRAGMA
    # (PRAGMA takes no parameters).
    assert len(pragma) == 1 and checked >= 5


def test_the_sql_checker_catches_string_built_sql() -> None:
    bad = """
async def by_rut(db, rut):
    await db.execute(f"SELECT * FROM a WHERE r = '{rut}'")
    await db.execute("SELECT * FROM a WHERE r = '%s'" % rut)
    await db.execute("SELECT * FROM a WHERE r = '{}'".format(rut))
    await db.execute("SELECT * FROM a WHERE r = " + rut)
    query = "DELETE FROM a WHERE r = " + rut
    await db.executemany(query, [])
    await run(db, "SELECT " + rut)
    await db.execute(f"PRAGMA user_version = {rut}")

async def run(db, sql):
    return await db.execute_fetchall(sql)
"""
    unsafe, pragma, _ = unsafe_sql(bad)
    assert unsafe == [3, 4, 5, 6, 8, 10, 13]
    assert pragma == []

    good = """
_BASE = "SELECT a FROM t "
_BY = {"x": "UPDATE t SET x = ? WHERE r = ?"}
async def fine(db, column, rut):
    await db.execute(_BASE + "WHERE r = ?", (rut,))
    await db.execute(_BY[column], (1, rut))
    for statement in ("DELETE FROM t WHERE r = ?", _BASE):
        await db.execute(statement, (rut,))
    await helper(db, "SELECT 1")
async def helper(db, sql):
    return await db.execute_fetchall(sql)
"""
    assert unsafe_sql(good)[:2] == ([], [])
