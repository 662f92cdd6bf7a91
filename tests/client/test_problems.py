"""Problems, handoffs to the firm and photos, driven through the real Application.

Firm chats (tests.support.harness): FIRM_CHAT, a group, and FIRM_MEMBER, a private chat. A firm
member answers a client by replying (Telegram reply) to the bot's message in a firm chat.

An answer to a problem only explains. The firm hears of a problem when the client presses
"pb:<step>:<key>:firm" under an answer ("it did not help"), picks the free-text problem, or
sends a photo at a step other than the last. Expected wording always comes from the guide in
effect (`bot.deps.guide`), never from copied Spanish.
"""

import html
import json
import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telegram.error import Forbidden

from bot.guide.guide import (
    DEFAULT_GUIDE_PATH,
    TOTAL_STEPS,
    Guide,
    Problem,
    load_guide,
    local_datetime,
)
from bot.wiring.assembly import firm_facts
from conversations.client.problems import MAX_CAPTION, MAX_RELAYED_TEXT
from conversations.firm.handoff import MAX_RELAYED_TEXT as MAX_FIRM_REPLY
from tests.support.fake_telegram import (
    Call,
    RecordingRequest,
    button_data,
    callback_update,
    message_update,
)
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
)

RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
OTHER = 777_002  # a second client
FIRM_USER = 5150  # someone in the firm's group
FIRM_USER_2 = 5151  # someone else in the firm's group
INTRUDER = 31_337  # a stranger in a private chat with the bot
FOREIGN_GROUP = -100_777  # a group the bot was added to that is not the firm's
FIRM_CHATS = (FIRM_CHAT, FIRM_MEMBER)

PEDRO: dict[str, Any] = {"first_name": "Pedro", "username": "pedro_b"}

# The guide as shipped, to enumerate every (step, problem) pair at collection time.
GUIDE = load_guide(None, firm_facts(make_settings(Path("unused"))))
STEPS = range(1, TOTAL_STEPS + 1)


def reachable(guide: Guide, step: int) -> list[Problem]:
    """The problems a client at `step` can reach: the step's menu, and the answers' menus."""
    top = guide.problems_at(step)
    return [*top, *(child for p in top for child in guide.problems_at(step, p.key))]


CASES = [(step, p.key) for step in STEPS for p in reachable(GUIDE, step)]
ALL_PROBLEMS = {p.key: p for step in STEPS for p in reachable(GUIDE, step)}
# The problems whose answer offers "Esto no me resolvió" (all but the free-text one).
ANSWERED = [(step, key) for step, key in CASES if not ALL_PROBLEMS[key].ask_text]
TYPED = [(step, key) for step, key in CASES if ALL_PROBLEMS[key].ask_text]
# The problems whose answer asks for a screenshot instead of taking the client's word.
PROOF = [(step, key) for step, key in CASES if ALL_PROBLEMS[key].ask_proof]

# Problem buttons a client at step 3 may still have, or forge: none of them does anything.
AT = 3
OFFERED_AT = {p.key for p in reachable(GUIDE, AT)}
NOT_OFFERED_AT = [key for key in ALL_PROBLEMS if key not in OFFERED_AT]
STALE_OR_FORGED = [
    *(f"pb:{step}" for step in (AT - 1, AT + 1, 9, 0)),  # another step's menu, or none
    # A real problem that is not offered at this step, its answer and its "talk to the firm".
    *(f"pb:{AT}:{key}{firm}" for key in NOT_OFFERED_AT for firm in ("", ":firm")),
    # The menu of the previous step, still on screen: answers and "talk to the firm".
    *(f"pb:{AT - 1}:{p.key}{firm}" for p in reachable(GUIDE, AT - 1) for firm in ("", ":firm")),
    *(f"pb:{AT + 1}:{p.key}:firm" for p in reachable(GUIDE, AT + 1)),
    # A screenshot asked for where no answer asks for one, or at another step.
    *(f"pb:{AT}:{key}:proof" for key in sorted(OFFERED_AT) if not ALL_PROBLEMS[key].ask_proof),
    *(f"pb:{AT + 1}:{p.key}:proof" for p in reachable(GUIDE, AT + 1) if p.ask_proof),
    f"pb:{AT}:zzz",  # no such problem
    f"pb:{AT}:zzz:firm",
    f"pb:{AT}:firm",
    f"pb:{AT}::firm",
    f"pb:{AT}:whichrut:frm",
    f"pb:{AT}:other:x",
    f"pb:{AT}:WHICHRUT",
    f"pb:{AT}:whichrut:firm:firm",
]


# --- a fake Telegram that also remembers the message ids it handed out -------------------


@dataclass
class IdRecordingRequest(RecordingRequest):
    """Like RecordingRequest, and keeps each answered message: (method, chat, message id)."""

    answered: list[tuple[str, int, int]] = field(default_factory=list)

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        result = super()._result(method, params)
        if isinstance(result, dict) and "message_id" in result and "chat" in result:
            self.answered.append((method, int(result["chat"]["id"]), int(result["message_id"])))
        return result

    def last_id(self, chat_id: int) -> int:
        """The message id of the last message the bot sent to a chat."""
        return [m for method, chat, m in self.answered if chat == chat_id][-1]


@pytest.fixture
async def bot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    """A booted bot whose fake Telegram remembers message ids."""
    harness = await Harness(make_settings(tmp_path), clock, IdRecordingRequest()).boot()
    yield harness
    await harness.close()


# --- helpers ------------------------------------------------------------------------------


def stored_step(bot: Harness, rut: str = RUT) -> int:
    [(step,)] = bot.db_rows("SELECT step FROM authorizations WHERE company_rut = ?", (rut,))
    return int(step)


def new_calls(bot: Harness, mark: int, method: str | None = None) -> list[Call]:
    return [c for c in bot.request.calls[mark:] if method is None or c.method == method]


def new_sent(bot: Harness, mark: int, chat: int) -> list[Call]:
    """Messages (texts and photos) the bot sent to `chat` since `mark` calls were recorded."""
    return [
        c
        for c in new_calls(bot, mark)
        if c.method in ("sendMessage", "sendPhoto") and int(c.params["chat_id"]) == chat
    ]


def keyboard(call: Call) -> list[list[tuple[str, str]]]:
    """A message's inline keyboard, row by row, as (label, callback data or url)."""
    markup = call.params.get("reply_markup")
    if not markup:
        return []
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [
        [(str(b["text"]), str(b.get("callback_data") or b.get("url"))) for b in row]
        for row in markup["inline_keyboard"]
    ]


def answer_keyboard(guide: Guide, problem: Problem, step: int) -> list[list[tuple[str, str]]]:
    """The buttons a problem's answer offers at `step`, one a row, in order."""
    rows: list[list[tuple[str, str]]] = [
        [(guide.problem_label(child), f"pb:{step}:{child.key}")]
        for child in guide.problems_at(step, problem.key)
    ]
    if problem.ask_proof:
        rows.append([(guide.button("send_proof"), f"pb:{step}:{problem.key}:proof")])
    if problem.portal_button:
        rows.append([(guide.button("open_portal"), guide.portal_url)])
    if problem.offer_later:
        rows.append([(guide.button("remind_later"), "later:menu")])
    if not problem.ask_text:
        rows.append([(guide.button("not_solved"), f"pb:{step}:{problem.key}:firm")])
    rows.append([(guide.button("back_to_step", step=step), "st:keep")])
    return rows


def back_keyboard(guide: Guide, step: int) -> list[list[tuple[str, str]]]:
    return [[(guide.button("back_to_step", step=step), "st:keep")]]


def problem_of(bot: Harness, key: str) -> Problem:
    problem = bot.deps.guide.problem(key)
    assert problem is not None, key
    return problem


def promise(bot: Harness) -> str:
    """When the firm will answer a client who asks now, as the guide says it."""
    settings = bot.settings
    return bot.deps.guide.reply_promise(bot.clock.now(), settings.firm_hours, settings.timezone)


def notified(bot: Harness) -> str:
    """What a client who asked for the firm is told."""
    return bot.deps.guide.message("problem_notified", {"reply_when": promise(bot)})


def report_text(
    guide: Guide,
    problem: str,
    step: int,
    *,
    shown: str = SHOWN,
    name: str = "Juana",
    username: str | None = "juana_pyme",
    user: int = CLIENT,
) -> str:
    """The report each firm chat gets when a client asks for help."""
    return guide.message(
        "firm_problem_report",
        {"progress": guide.message("progress_step", step=step)},
        problem=problem,
        company_rut=shown,
        client_name=name,
        client_username=f"@{username}" if username else "",
        client_id=user,
    )


def relayed_to_firm(guide: Guide, text: str, *, name: str = "Juana", shown: str = SHOWN) -> str:
    """What the firm's chats read when a client writes during a handoff."""
    return guide.message("firm_client_message", client_name=name, company_rut=shown, text=text)


def from_firm(guide: Guide, text: str) -> str:
    """What a client reads when the firm replies."""
    return guide.message("client_firm_message", text=text)


async def open_answer(
    bot: Harness, step: int, key: str, *, user: int = CLIENT, who: dict[str, Any] = JUANA
) -> None:
    """The client opens the problem menu at `step` and picks `key`."""
    await bot.press(f"pb:{step}", user=user, **who)
    await bot.press(f"pb:{step}:{key}", user=user, **who)


async def ask_the_firm(
    bot: Harness, step: int, key: str, *, user: int = CLIENT, who: dict[str, Any] = JUANA
) -> None:
    """The client reads the answer to `key`, which does not help, and asks for the firm."""
    await open_answer(bot, step, key, user=user, who=who)
    await bot.press(f"pb:{step}:{key}:firm", user=user, **who)


def firm_update(
    text: str,
    *,
    chat: int = FIRM_CHAT,
    reply_to: int | None = None,
    replied_from: dict[str, Any] | None = None,
    user: int = FIRM_USER,
) -> dict[str, Any]:
    """A firm member's message in a firm chat, optionally a reply to `reply_to`."""
    replying = {"reply_to": reply_to, "replied_from": replied_from}
    if chat == FIRM_MEMBER:
        return message_update(FIRM_MEMBER, text, first_name="Socio", username="socio", **replying)
    if chat < 0:
        return message_update(
            user,
            text,
            chat_id=chat,
            chat_type="group",
            first_name="Carla",
            username="contadora",
            **replying,
        )
    return message_update(chat, text, first_name="Extraño", username="extrano", **replying)


async def firm_reply(bot: Harness, text: str, reply_to: int, chat: int = FIRM_CHAT) -> None:
    await bot.feed(firm_update(text, chat=chat, reply_to=reply_to))


def photo_update(user: int = CLIENT, caption: str | None = None) -> dict[str, Any]:
    """A photo as Telegram sends it: several sizes, the largest last."""
    raw = message_update(user, caption, kind="photo", **JUANA)
    raw["message"]["photo"] = [
        {"file_id": "ph-small", "file_unique_id": "u1", "width": 90, "height": 60},
        {"file_id": "ph-medium", "file_unique_id": "u2", "width": 320, "height": 213},
        {"file_id": "ph-large", "file_unique_id": "u3", "width": 1280, "height": 853},
    ]
    return raw


def photo_problem(guide: Guide, caption: str | None = None) -> str:
    """How a photo is named as the problem in the firm's report (with its caption)."""
    label = guide.message("problem_photo")
    return f"{label}: «{caption}»" if caption else label


def plain(text: str) -> str:
    """A Telegram HTML text as Telegram counts it: tags parsed away, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def assert_handoff_stored(bot: Harness, step: int, label: str) -> None:
    """One open handoff for the client at `step`, its report delivered to both firm chats."""
    [(handoff, chat_id, user_id, rut, at, problem, closed)] = bot.db_rows(
        "SELECT id, chat_id, user_id, company_rut, step, problem, closed_at FROM handoffs",
    )
    assert (chat_id, user_id, rut, at, problem, closed) == (CLIENT, CLIENT, RUT, step, label, None)
    outbox = bot.db_rows("SELECT chat_id, handoff_id, sent_at IS NOT NULL FROM outbox ORDER BY id")
    assert outbox == [(FIRM_CHAT, handoff, 1), (FIRM_MEMBER, handoff, 1)]


def assert_no_error(bot: Harness, *chats: int) -> None:
    guide = bot.deps.guide
    errors = {guide.message("error"), guide.message("firm_error")}
    for chat in chats or (CLIENT,):
        assert not errors & set(bot.texts(chat)), bot.texts(chat)


# --- the problems of each step ------------------------------------------------------------


def test_each_step_offers_the_problems_the_guide_file_lists_for_it() -> None:
    tables = tomllib.loads(DEFAULT_GUIDE_PATH.read_text(encoding="utf-8"))["problems"]
    for step in STEPS:
        listed = [p["key"] for p in tables if step in p["steps"] and "menu" not in p]
        assert [p.key for p in GUIDE.problems_at(step)] == listed, step
        for parent in listed:
            under = [p["key"] for p in tables if step in p["steps"] and p.get("menu") == parent]
            assert [p.key for p in GUIDE.problems_at(step, parent)] == under, (step, parent)
        # Whatever the step, the client can always describe their problem to the firm.
        assert [p.ask_text for p in GUIDE.problems_at(step)].count(True) == 1, step
    assert len(CASES) == sum(len(problem["steps"]) for problem in tables)
    assert ALL_PROBLEMS.keys() == {problem["key"] for problem in tables}


@pytest.mark.parametrize(("step", "key"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
async def test_each_problem_is_answered_at_each_of_its_steps(
    bot: Harness, step: int, key: str
) -> None:
    guide = bot.deps.guide
    problem = problem_of(bot, key)
    label = guide.problem_label(problem)
    await reach_help_step(bot, step)

    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}")
    [menu] = new_sent(bot, mark, CLIENT)
    assert menu.text == guide.message("problem_menu")
    assert keyboard(menu) == [
        *([(guide.problem_label(p), f"pb:{step}:{p.key}")] for p in guide.problems_at(step)),
        *back_keyboard(guide, step),
    ]
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]
    assert stored_step(bot) == step

    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}:{key}")
    [answer] = new_sent(bot, mark, CLIENT)
    assert answer.method == "sendMessage"
    assert answer.text == guide.problem_answer(problem, RUT, step)
    assert keyboard(answer) == answer_keyboard(guide, problem, step)
    assert stored_step(bot) == step
    assert_no_error(bot)
    if not problem.ask_text:
        # An answer only explains: the firm is not bothered.
        assert new_sent(bot, mark, FIRM_CHAT) == new_sent(bot, mark, FIRM_MEMBER) == []
        assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]
        assert bot.db_rows("SELECT COUNT(*) FROM outbox") == [(0,)]
        return

    # The free-text problem opens the handoff at once: the client's next words go to the firm.
    for chat in FIRM_CHATS:
        assert new_texts(bot, mark, chat) == [report_text(guide, label, step)]
    assert_handoff_stored(bot, step, label)


@pytest.mark.parametrize(("step", "key"), ANSWERED, ids=[f"{s}-{k}" for s, k in ANSWERED])
async def test_not_solved_tells_the_firm_at_each_step_of_each_problem(
    bot: Harness, step: int, key: str
) -> None:
    guide = bot.deps.guide
    label = guide.problem_label(problem_of(bot, key))
    await reach_help_step(bot, step)
    await open_answer(bot, step, key)

    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}:{key}:firm")
    [pressed] = new_calls(bot, mark, "answerCallbackQuery")
    assert pressed.params.get("text") is None  # not a "that button is stale" notice
    [told] = new_sent(bot, mark, CLIENT)
    assert told.text == notified(bot)
    assert keyboard(told) == back_keyboard(guide, step)

    # Both firm chats get the report: who, which company, where and what.
    for chat in FIRM_CHATS:
        assert new_texts(bot, mark, chat) == [report_text(guide, label, step)]

    # Nothing moved; the handoff and the firm's copies are stored.
    assert stored_step(bot) == step
    assert_handoff_stored(bot, step, label)
    assert bot.db_rows("SELECT kind, step FROM events ORDER BY id DESC LIMIT 1") == [
        ("problem", step)
    ]
    assert_no_error(bot)

    # The firm's reply reaches the client.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Le llamo en 5 minutos", handoff_ids(bot, FIRM_CHAT)[0])
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Le llamo en 5 minutos")]


@pytest.mark.parametrize(("step", "key"), PROOF, ids=[f"{s}-{k}" for s, k in PROOF])
async def test_already_listed_asks_for_a_screenshot_and_hands_off_never_completing(
    bot: Harness, step: int, key: str
) -> None:
    guide = bot.deps.guide
    problem = problem_of(bot, key)
    label = guide.problem_label(problem)
    await reach_help_step(bot, step)
    await open_answer(bot, step, key)

    # Asked for the screenshot: the firm has the problem at once, whatever comes next.
    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}:{key}:proof")
    [told] = new_sent(bot, mark, CLIENT)
    assert told.text == guide.message("proof_asked", {"reply_when": promise(bot)})
    assert keyboard(told) == back_keyboard(guide, step)
    for chat in FIRM_CHATS:
        assert new_texts(bot, mark, chat) == [report_text(guide, label, step)]
    assert_handoff_stored(bot, step, label)

    # The screenshot goes to the firm under that problem; it is evidence, not a completion.
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    for chat in FIRM_CHATS:
        [photo] = new_sent(bot, mark, chat)
        assert photo.method == "sendPhoto" and photo.params["photo"] == "ph-large"
        assert photo.params["caption"] == report_text(
            guide, guide.button("problem_photo_for", problem=label), step
        )
    assert new_texts(bot, mark, CLIENT)[0] == guide.message(
        "photo_forwarded", {"reply_when": promise(bot)}
    )
    assert bot.db_rows("SELECT completed_at, step FROM authorizations") == [(None, step)]
    assert bot.db_rows("SELECT COUNT(*) FROM events WHERE kind = 'completed'") == [(0,)]
    assert_no_error(bot)


@pytest.mark.parametrize("old", ["had", "listed"])
async def test_the_old_already_listed_buttons_complete_nothing(bot: Harness, old: str) -> None:
    guide = bot.deps.guide
    [(step, key), *_] = PROOF
    await reach_help_step(bot, step)
    await open_answer(bot, step, key)
    before = bot.db_snapshot()
    mark = len(bot.request.calls)
    await bot.press(f"g:{step}:{old}")
    [notice] = new_calls(bot, mark, "answerCallbackQuery")
    assert notice.params.get("text") == guide.message("stale_button", step=step)
    assert new_texts(bot, mark, CLIENT) == [guide.step(step, RUT)]
    assert new_sent(bot, mark, FIRM_CHAT) == new_sent(bot, mark, FIRM_MEMBER) == []
    assert bot.db_snapshot() == before


async def test_back_from_the_menu_or_an_answer_repeats_the_step(bot: Harness) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, AT)
    await bot.press(f"pb:{AT}")
    mark = len(bot.request.calls)
    await bot.press("st:keep")
    assert new_texts(bot, mark, CLIENT) == [guide.step(AT, RUT)]

    await open_answer(bot, AT, "whichrut")
    mark = len(bot.request.calls)
    await bot.press("st:keep")
    assert new_texts(bot, mark, CLIENT) == [guide.step(AT, RUT)]
    assert stored_step(bot) == AT
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == []


@pytest.mark.parametrize("data", STALE_OR_FORGED)
async def test_stale_or_forged_problem_buttons_change_nothing(bot: Harness, data: str) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, AT)
    before = bot.db_snapshot()
    mark = len(bot.request.calls)
    await bot.press(data)
    [answer] = new_calls(bot, mark, "answerCallbackQuery")
    assert answer.params.get("text") == guide.message("stale_button", step=AT)
    assert new_texts(bot, mark, CLIENT) == [guide.step(AT, RUT)]
    assert new_sent(bot, mark, FIRM_CHAT) == new_sent(bot, mark, FIRM_MEMBER) == []
    assert bot.db_snapshot() == before


async def test_not_solved_from_a_step_the_client_left_changes_nothing(bot: Harness) -> None:
    guide = bot.deps.guide
    [key, *_] = [k for s, k in ANSWERED if s == AT - 1]
    step = AT - 1
    await reach_help_step(bot, step)
    await open_answer(bot, step, key)
    await bot.press(f"g:{step}:next")
    before = bot.db_snapshot()
    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}:{key}:firm")
    [answer] = new_calls(bot, mark, "answerCallbackQuery")
    assert answer.params.get("text") == guide.message("stale_button", step=step + 1)
    assert new_texts(bot, mark, CLIENT) == [guide.step(step + 1, RUT)]
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == []
    assert bot.db_snapshot() == before


@pytest.mark.parametrize("data", ["pb:1", "pb:1:other", "pb:1:phone:firm"])
async def test_problem_button_without_a_conversation_is_stale(bot: Harness, data: str) -> None:
    guide = bot.deps.guide
    await bot.press(data)
    assert bot.texts() == [guide.message("no_conversation")]
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == []
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]


# --- the free-text problem and the client's words -----------------------------------------


async def test_other_then_free_text_reaches_both_firm_chats(bot: Harness) -> None:
    guide = bot.deps.guide
    [(step, key), *_] = [(s, k) for s, k in TYPED if s == 4]
    await reach_help_step(bot, step)
    await open_answer(bot, step, key)
    mark = len(bot.request.calls)
    words = "No veo el botón <Ingresar> & no sé qué hacer"
    await bot.say(words, **JUANA)
    for chat in FIRM_CHATS:
        assert new_texts(bot, mark, chat) == [relayed_to_firm(guide, words)]
    assert new_texts(bot, mark, CLIENT) == [guide.message("client_message_forwarded")]
    [(handoff,)] = bot.db_rows("SELECT id FROM handoffs")
    assert bot.db_rows("SELECT chat_id, handoff_id FROM outbox WHERE id > 2 ORDER BY id") == [
        (FIRM_CHAT, handoff),
        (FIRM_MEMBER, handoff),
    ]
    assert stored_step(bot) == step


@pytest.mark.parametrize("chunk", ["x", "ñ<&> "])
async def test_a_very_long_text_is_relayed_truncated(bot: Harness, chunk: str) -> None:
    await reach_help_step(bot, 2)
    await open_answer(bot, 2, "other")
    long_text = (chunk * 5000)[:5000]
    mark = len(bot.request.calls)
    await bot.say(long_text, **JUANA)
    for chat in FIRM_CHATS:
        [text] = new_texts(bot, mark, chat)
        shown = plain(text)
        assert len(shown) < 4096
        assert len(text) < 4096 or chunk != "x"
        assert long_text[:3000] in shown
        assert long_text not in shown
        assert text == relayed_to_firm(bot.deps.guide, long_text[:MAX_RELAYED_TEXT] + "…")
    assert new_texts(bot, mark, CLIENT) == [bot.deps.guide.message("client_message_shortened")]
    assert_no_error(bot)


async def test_text_after_an_answer_alone_is_not_relayed(bot: Harness) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, AT)
    await open_answer(bot, AT, "whichrut")
    mark = len(bot.request.calls)
    await bot.say("Sigo sin entender", **JUANA)
    assert new_texts(bot, mark, CLIENT) == [guide.message("use_buttons"), guide.step(AT, RUT)]
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == []


# --- two-way relay ------------------------------------------------------------------------


async def test_the_firm_and_the_client_talk_through_the_bot(bot: Harness) -> None:
    guide = bot.deps.guide
    sent = guide.message("firm_reply_sent")
    await reach_help_step(bot, 2)
    await ask_the_firm(bot, 2, "login")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    [report_in_private] = handoff_ids(bot, FIRM_MEMBER)

    # A member of the firm's group replies to the report.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Hola Juana, ¿qué código <ve>?", report_in_group)
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Hola Juana, ¿qué código <ve>?")]
    [ack] = new_calls(bot, mark, "sendMessage")[1:]
    assert ack.params == {**ack.params, "chat_id": FIRM_CHAT, "text": sent}
    assert ack.params["reply_parameters"]["message_id"] > 0
    assert new_texts(bot, mark, FIRM_MEMBER) == []

    # The other firm chat replies to its own copy.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Soy el socio.", report_in_private, chat=FIRM_MEMBER)
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Soy el socio.")]
    assert new_texts(bot, mark, FIRM_MEMBER) == [sent]
    assert new_texts(bot, mark, FIRM_CHAT) == []

    # The client answers with free text: it goes back to both firm chats.
    mark = len(bot.request.calls)
    await bot.say("Dice 39", **JUANA)
    assert new_texts(bot, mark, CLIENT) == [guide.message("client_message_forwarded")]
    for chat in FIRM_CHATS:
        assert new_texts(bot, mark, chat) == [relayed_to_firm(guide, "Dice 39")]

    # Replying to the client's relayed message reaches the client too.
    relayed = handoff_ids(bot, FIRM_CHAT)[-1]
    assert relayed != report_in_group
    mark = len(bot.request.calls)
    await firm_reply(bot, "Use el certificado, no la clave.", relayed)
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Use el certificado, no la clave.")]
    assert new_texts(bot, mark, FIRM_CHAT) == [sent]
    assert stored_step(bot) == 2
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]
    assert_no_error(bot, CLIENT, FIRM_CHAT, FIRM_MEMBER)


async def test_cerrar_closes_the_handoff(bot: Harness) -> None:
    guide = bot.deps.guide
    closed = guide.message("firm_reply_closed")
    await reach_help_step(bot, AT)
    await ask_the_firm(bot, AT, "c41")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)

    mark = len(bot.request.calls)
    await firm_reply(bot, "/cerrar", report_in_group)
    assert new_texts(bot, mark, FIRM_CHAT) == [
        guide.message("firm_handoff_closed", actor="@contadora")
    ]
    assert new_texts(bot, mark, CLIENT) == [guide.message("client_handoff_closed")]
    [(closed_at, closed_by)] = bot.db_rows("SELECT closed_at, closed_by FROM handoffs")
    assert closed_at is not None and closed_by == "@contadora"

    # Replies to the closed handoff's messages, from either chat, go nowhere.
    mark = len(bot.request.calls)
    await firm_reply(bot, "¿Sigue ahí?", report_in_group)
    await firm_reply(bot, "¿Hola?", handoff_ids(bot, FIRM_MEMBER)[0], chat=FIRM_MEMBER)
    await firm_reply(bot, "/cerrar", report_in_group)
    assert new_texts(bot, mark, FIRM_CHAT) == [closed, closed]
    assert new_texts(bot, mark, FIRM_MEMBER) == [closed]
    assert new_texts(bot, mark, CLIENT) == []

    # The client's text is no longer relayed: it gets the usual answer.
    mark = len(bot.request.calls)
    await bot.say("¿Me ayudan?", **JUANA)
    assert new_texts(bot, mark, CLIENT) == [guide.message("use_buttons"), guide.step(AT, RUT)]
    assert new_texts(bot, mark, FIRM_CHAT) == new_texts(bot, mark, FIRM_MEMBER) == []

    # Asking for the firm again opens a new handoff; the old report stays closed.
    await ask_the_firm(bot, AT, "whichrut")
    rows = bot.db_rows("SELECT id, closed_at IS NULL FROM handoffs ORDER BY id")
    assert [open_ for _, open_ in rows] == [0, 1]
    new_report = handoff_ids(bot, FIRM_CHAT)[-1]
    mark = len(bot.request.calls)
    await firm_reply(bot, "Viejo", report_in_group)
    await firm_reply(bot, "Nuevo", new_report)
    assert new_texts(bot, mark, FIRM_CHAT) == [closed, guide.message("firm_reply_sent")]
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Nuevo")]
    assert_no_error(bot, CLIENT, FIRM_CHAT, FIRM_MEMBER)


async def test_cerrar_from_the_private_firm_chat_and_without_a_reply(bot: Harness) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, 1)
    await ask_the_firm(bot, 1, "phone")
    mark = len(bot.request.calls)
    await bot.feed(firm_update("/cerrar", chat=FIRM_CHAT))
    assert new_texts(bot, mark, FIRM_CHAT) == [guide.message("firm_close_usage")]
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]
    await firm_reply(bot, "/cerrar", handoff_ids(bot, FIRM_MEMBER)[0], chat=FIRM_MEMBER)
    assert bot.last_text(FIRM_MEMBER) == guide.message("firm_handoff_closed", actor="@socio")
    assert bot.db_rows("SELECT closed_by FROM handoffs") == [("@socio",)]


async def test_replies_to_bot_messages_that_are_not_handoffs(bot: Harness) -> None:
    guide = bot.deps.guide
    not_handoff = guide.message("firm_reply_not_handoff")
    # A completion notice (in the outbox, but no handoff).
    await reach_help_step(bot, 7)
    await bot.press("g:7:yes", **JUANA)
    [(notice,)] = bot.db_rows(
        "SELECT message_id FROM outbox WHERE chat_id = ? AND ref IS NOT NULL",
        (FIRM_CHAT,),
    )
    mark = len(bot.request.calls)
    await firm_reply(bot, "¡Gracias Juana!", notice)
    assert new_texts(bot, mark, FIRM_CHAT) == [not_handoff]
    assert new_texts(bot, mark, CLIENT) == []

    # A /pendientes listing (sent directly, never in the outbox).
    await bot.feed(firm_update("/pendientes"))
    assert isinstance(bot.request, IdRecordingRequest)
    listing = bot.request.last_id(FIRM_CHAT)
    mark = len(bot.request.calls)
    await firm_reply(bot, "Ok", listing)
    assert new_texts(bot, mark, FIRM_CHAT) == [not_handoff]
    assert new_texts(bot, mark, CLIENT) == []

    # /cerrar on something that is not a handoff.
    mark = len(bot.request.calls)
    await firm_reply(bot, "/cerrar", notice)
    assert new_texts(bot, mark, FIRM_CHAT) == [guide.message("firm_close_usage")]


async def test_firm_members_talking_among_themselves_get_no_answer(bot: Harness) -> None:
    await reach_help_step(bot, 2)
    await ask_the_firm(bot, 2, "login")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    colleague = {"id": FIRM_USER_2, "is_bot": False, "first_name": "Ana"}
    mark = len(bot.request.calls)
    # A reply to a colleague's message (whatever its id) is none of the bot's business.
    for message_id in (report_in_group, 123):
        await bot.feed(firm_update("¿Lo ves tú?", reply_to=message_id, replied_from=colleague))
    assert new_calls(bot, mark) == []
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]


async def test_replies_from_chats_that_are_not_the_firms_are_not_relayed(bot: Harness) -> None:
    await reach_help_step(bot, 2)
    await ask_the_firm(bot, 2, "login")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)

    # A foreign group, replying to a bot message with the same id: ignored entirely.
    mark = len(bot.request.calls)
    await bot.feed(firm_update("Hola Juana", chat=FOREIGN_GROUP, reply_to=report_in_group))
    await bot.feed(firm_update("/cerrar", chat=FOREIGN_GROUP, reply_to=report_in_group))
    assert new_calls(bot, mark) == []

    # A stranger in a private chat: never reaches the client or the firm.
    mark = len(bot.request.calls)
    await bot.feed(firm_update("Hola Juana", chat=INTRUDER, reply_to=report_in_group))
    await bot.feed(firm_update("/cerrar", chat=INTRUDER, reply_to=report_in_group))
    assert new_texts(bot, mark, CLIENT) == []
    assert new_texts(bot, mark, FIRM_CHAT) == new_texts(bot, mark, FIRM_MEMBER) == []
    assert not any("Juana" in t for t in new_texts(bot, mark, INTRUDER))
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]


async def test_two_clients_never_see_each_others_handoff(bot: Harness) -> None:
    guide = bot.deps.guide
    forwarded = guide.message("client_message_forwarded")
    await reach_help_step(bot, 2)
    await reach_help_step(bot, 5, user=OTHER, shown=SHOWN_B, who=PEDRO)
    await ask_the_firm(bot, 2, "login")
    await ask_the_firm(bot, 5, "boxes", user=OTHER, who=PEDRO)
    report_a, report_b = handoff_ids(bot, FIRM_CHAT)
    assert bot.texts(FIRM_CHAT)[-2:] == [
        report_text(guide, guide.problem_label(problem_of(bot, "login")), 2),
        report_text(
            guide,
            guide.problem_label(problem_of(bot, "boxes")),
            5,
            shown=SHOWN_B,
            name="Pedro",
            username="pedro_b",
            user=OTHER,
        ),
    ]

    mark = len(bot.request.calls)
    await firm_reply(bot, "Para Pedro", report_b)
    await firm_reply(bot, "Para Juana", report_a)
    assert new_texts(bot, mark, OTHER) == [from_firm(guide, "Para Pedro")]
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Para Juana")]

    mark = len(bot.request.calls)
    await bot.say("Soy Pedro", user=OTHER, **PEDRO)
    await bot.say("Soy Juana", **JUANA)
    assert new_texts(bot, mark, FIRM_CHAT) == [
        relayed_to_firm(guide, "Soy Pedro", name="Pedro", shown=SHOWN_B),
        relayed_to_firm(guide, "Soy Juana"),
    ]
    relayed_b, relayed_a = handoff_ids(bot, FIRM_CHAT)[-2:]

    mark = len(bot.request.calls)
    await firm_reply(bot, "Sólo Pedro", relayed_b)
    await firm_reply(bot, "/cerrar", relayed_a)
    assert new_texts(bot, mark, OTHER) == [from_firm(guide, "Sólo Pedro")]
    assert new_texts(bot, mark, CLIENT) == [guide.message("client_handoff_closed")]
    assert not any("Juana" in t for t in bot.texts(OTHER))
    assert not any("Pedro" in t for t in bot.texts(CLIENT))
    # Pedro's handoff is still open: his words still go to the firm.
    mark = len(bot.request.calls)
    await bot.say("¿Y ahora?", user=OTHER, **PEDRO)
    assert new_texts(bot, mark, OTHER) == [forwarded]
    assert bot.db_rows("SELECT chat_id, closed_at IS NULL FROM handoffs ORDER BY chat_id") == [
        (CLIENT, 0),
        (OTHER, 1),
    ]


async def test_a_client_who_blocked_the_bot(bot: Harness) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, AT)
    await ask_the_firm(bot, AT, "whichrut")
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(1,)]
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    mark = len(bot.request.calls)
    await firm_reply(bot, "¿Sigue ahí?", report_in_group)
    assert new_texts(bot, mark, CLIENT) == []
    # The firm is told with the guide's "blocked" notice (whatever name it gives the client).
    [told] = new_texts(bot, mark, FIRM_CHAT)
    before, after = guide.message("remind_blocked", client_name="\0").split("\0")
    assert told.startswith(before) and told.endswith(after), told
    assert len(told) > len(before) + len(after)
    [(blocked_at,)] = bot.db_rows("SELECT blocked_at FROM authorizations")
    assert blocked_at is not None
    assert bot.db_rows("SELECT kind FROM events ORDER BY id DESC LIMIT 1") == [("blocked",)]
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(0,)]
    assert_no_error(bot, FIRM_CHAT)


# --- photos -------------------------------------------------------------------------------


async def test_a_photo_at_step_7_is_the_proof_sent_with_the_completion(bot: Harness) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, 7)
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    assert new_texts(bot, mark, CLIENT) == [guide.message("proof_received"), guide.step(7, RUT)]
    assert new_sent(bot, mark, FIRM_CHAT) == new_sent(bot, mark, FIRM_MEMBER) == []
    assert bot.db_rows("SELECT proof_file_id, step FROM authorizations") == [("ph-large", 7)]
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]

    mark = len(bot.request.calls)
    await bot.press("g:7:yes", **JUANA)
    for chat in FIRM_CHATS:
        [call] = new_sent(bot, mark, chat)
        assert call.method == "sendPhoto"
        assert call.params["photo"] == "ph-large"
        assert call.text == completion_notice(bot)
        assert call.params["parse_mode"] == "HTML"
    [(completion,)] = bot.db_rows("SELECT id FROM events WHERE kind = 'completed'")
    assert button_data(new_sent(bot, mark, FIRM_CHAT)[0]) == [
        f"vf:ok:{completion}",
        f"vf:no:{completion}",
    ]
    notices = bot.db_rows(
        "SELECT chat_id, message_id, photo_file_id FROM outbox WHERE ref = ? ORDER BY id",
        (completion,),
    )
    assert [(c, p) for c, _, p in notices] == [(FIRM_CHAT, "ph-large"), (FIRM_MEMBER, "ph-large")]

    # Verifying edits the captions (they are photos), dropping the buttons.
    raw = callback_update(
        FIRM_USER,
        f"vf:ok:{completion}",
        message_id=notices[0][1],
        first_name="Carla",
        username="contadora",
    )
    raw["callback_query"]["message"]["chat"] = {"id": FIRM_CHAT, "type": "group", "title": "F"}
    mark = len(bot.request.calls)
    await bot.feed(raw)
    edits = new_calls(bot, mark, "editMessageCaption")
    assert [(int(c.params["chat_id"]), c.params["message_id"]) for c in edits] == [
        (FIRM_CHAT, notices[0][1]),
        (FIRM_MEMBER, notices[1][1]),
    ]
    verified = guide.message(
        "firm_verified",
        actor="@contadora",
        when=local_datetime(bot.clock.now(), bot.settings.timezone),
    )
    for call in edits:
        assert call.params["caption"] == f"{completion_notice(bot)}\n\n{verified}"
        assert "reply_markup" not in call.params or not button_data(call)
    assert new_calls(bot, mark, "editMessageText") == []
    assert bot.db_rows("SELECT verified_by FROM authorizations") == [("@contadora",)]


async def test_a_completion_without_proof_is_a_text_notice(bot: Harness) -> None:
    await reach_help_step(bot, 7)
    mark = len(bot.request.calls)
    await bot.press("g:7:yes", **JUANA)
    for chat in FIRM_CHATS:
        [notice] = new_sent(bot, mark, chat)
        assert notice.method == "sendMessage"
        assert notice.text == completion_notice(bot)


@pytest.mark.parametrize("step", [1, 3, 6])
async def test_a_photo_at_another_step_is_a_problem_report(bot: Harness, step: int) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, step)
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    for chat in FIRM_CHATS:
        [call] = new_sent(bot, mark, chat)
        assert call.method == "sendPhoto"
        assert call.params["photo"] == "ph-large"
        assert call.text == report_text(guide, photo_problem(guide), step)
    texts = new_texts(bot, mark, CLIENT)
    assert texts == [
        guide.message("photo_forwarded", {"reply_when": promise(bot)}),
        guide.step(step, RUT),
    ]
    assert bot.db_rows("SELECT step, proof_file_id FROM authorizations") == [(step, None)]
    [(handoff, problem, at)] = bot.db_rows("SELECT id, problem, step FROM handoffs")
    assert (problem, at) == (photo_problem(guide), step)
    assert bot.db_rows("SELECT chat_id, handoff_id, photo_file_id FROM outbox ORDER BY id") == [
        (FIRM_CHAT, handoff, "ph-large"),
        (FIRM_MEMBER, handoff, "ph-large"),
    ]

    # The firm can answer by replying to the photo.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Eso es el paso 4", handoff_ids(bot, FIRM_CHAT)[0])
    assert new_texts(bot, mark, CLIENT) == [from_firm(guide, "Eso es el paso 4")]
    assert_no_error(bot)


@pytest.mark.parametrize(
    ("caption", "reported"),
    [
        ("Me sale este error al entrar", "Me sale este error al entrar"),
        ("<b>x</b> & " * 100, ("<b>x</b> & " * 100)[:MAX_CAPTION]),
    ],
    ids=["short", "long"],
)
async def test_the_caption_of_a_photo_reaches_the_firm(
    bot: Harness, caption: str, reported: str
) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, 2)
    mark = len(bot.request.calls)
    await bot.feed(photo_update(caption=caption))
    for chat in FIRM_CHATS:
        assert new_texts(bot, mark, chat) == [report_text(guide, photo_problem(guide, reported), 2)]
    assert bot.db_rows("SELECT problem FROM handoffs") == [(photo_problem(guide, reported),)]


async def test_a_photo_right_after_completing_names_the_company(bot: Harness) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, 7)
    await bot.press("g:7:yes", **JUANA)
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    for chat in FIRM_CHATS:
        [call] = new_sent(bot, mark, chat)
        assert call.method == "sendPhoto"
        assert call.text == guide.message("firm_proof", company_rut=SHOWN, client_name="Juana")
    assert new_texts(bot, mark, CLIENT) == [guide.message("proof_thanks")]
    assert bot.db_rows("SELECT proof_file_id FROM authorizations") == [("ph-large",)]
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]


async def test_names_are_escaped_in_what_the_firm_reads(bot: Harness) -> None:
    guide = bot.deps.guide
    odd: dict[str, Any] = {"first_name": "<b>Ana & Co</b>", "username": None}
    await bot.say("/start", user=OTHER, **odd)
    await bot.say(SHOWN_B, user=OTHER, **odd)
    await bot.press("rut:ok", user=OTHER, **odd)
    [(step, key), *_] = TYPED
    assert step == 1
    await open_answer(bot, step, key, user=OTHER, who=odd)
    await bot.say("hola", user=OTHER, **odd)
    report_in_group, relayed = bot.texts(FIRM_CHAT)[-2:]
    assert report_in_group == report_text(
        guide,
        guide.problem_label(problem_of(bot, key)),
        step,
        shown=SHOWN_B,
        name="<b>Ana & Co</b>",
        username=None,
        user=OTHER,
    )
    assert relayed == relayed_to_firm(guide, "hola", name="<b>Ana & Co</b>", shown=SHOWN_B)
    assert "<b>Ana" not in report_in_group + relayed


async def test_a_long_firm_reply_is_cut_to_fit_and_a_photo_reply_is_explained(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    await reach_help_step(bot, 2)
    await open_answer(bot, 2, "other")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    await firm_reply(bot, "x" * 5000, report_in_group)
    relayed = bot.last_text(CLIENT)
    assert relayed == from_firm(guide, "x" * MAX_FIRM_REPLY + "…")
    assert len(relayed) <= 4096
    assert bot.last_text(FIRM_CHAT) == guide.message("firm_reply_shortened")

    photo = firm_update("", reply_to=report_in_group)
    del photo["message"]["text"]
    photo["message"]["photo"] = [
        {"file_id": "firmphoto", "file_unique_id": "fp", "width": 90, "height": 90}
    ]
    before = len(bot.texts(CLIENT))
    await bot.feed(photo)
    assert bot.last_text(FIRM_CHAT) == guide.message("firm_reply_text_only")
    assert len(bot.texts(CLIENT)) == before
