"""Problems, handoffs to the firm and photos, driven through the real Application.

Firm chats (tests.conftest): FIRM_CHAT, a group, and FIRM_MEMBER, a private chat. A firm
member answers a client by replying (Telegram reply) to the bot's message in a firm chat.
"""

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telegram.error import Forbidden

from bot.main import firm_facts
from conversations.guide import load_guide
from tests.conftest import CLIENT, FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings
from tests.fake_telegram import (
    BOT_USER,
    Call,
    RecordingRequest,
    button_data,
    buttons,
    callback_update,
    message_update,
)

RUT = "76086428-5"
SHOWN = "76.086.428-5"
RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
REPRESENTATIVE_RUT = "13322924-8"
OTHER = 777_002  # a second client
FIRM_USER = 5150  # someone in the firm's group
FIRM_USER_2 = 5151  # someone else in the firm's group
INTRUDER = 31_337  # a stranger in a private chat with the bot
FOREIGN_GROUP = -100_777  # a group the bot was added to that is not the firm's

JUANA: dict[str, Any] = {"first_name": "Juana", "username": "juana_pyme"}
PEDRO: dict[str, Any] = {"first_name": "Pedro", "username": "pedro_b"}

MENU = "🆘 ¿Qué pasa? Elige lo más parecido 👇"
NOTIFIED = (
    "📨 Le avisé a pymecontadores.tk: te responderán por aquí. "
    "Mientras, puedes seguir con los botones."
)
FORWARDED = "✅ Se lo pasé a pymecontadores.tk."
FIRM_PREFIX = "💬 <b>pymecontadores.tk</b>:\n"
SENT = "✅ Enviado al cliente."
CLOSED = "Esa consulta ya está cerrada."
NOT_HANDOFF = "Ese mensaje no es una consulta de un cliente."
USE_BUTTONS = "Para seguir, usa los botones del mensaje 👇"
ERROR = "Algo falló de nuestro lado"

# The guide as shipped, to enumerate every (step, problem) pair at collection time.
GUIDE = load_guide(None, firm_facts(make_settings(Path("unused"))))
CASES = [(step, p.key) for step in range(1, 8) for p in GUIDE.problems_at(step)]

# A distinctive part of each problem's answer (formatted with the step).
PHRASES: dict[str, list[str]] = {
    "nocert": [
        "<b>certificado digital</b>",
        "Nunca te pediremos el archivo del certificado, su clave ni tu Clave Tributaria.",
    ],
    "phone": ["desde el celular no funciona", GUIDE.portal_url],
    "login": ["<b>33 o 39</b>", "<b>35, 36 o 37</b>", "<b>52</b>"],
    "noauth": ["<b>representante legal</b>", "<b>Administrador</b>"],
    "whichrut": [f"<code>{RUT}</code>", f"<code>{REPRESENTATIVE_RUT}</code>"],
    "listed": ["<b>Modificar</b>", "Luego sigue en el paso 6."],
    "boxes": ["otros nombres de permisos", "☑️ <b>"],
    "other": ["✍️ Cuéntame en un mensaje qué pasa y se lo paso a pymecontadores.tk."],
}


def answer_buttons(key: str, step: int) -> list[str]:
    """The buttons each problem's answer must offer."""
    extra = {
        "nocert": ["later:menu"],
        "phone": ["later:menu"],
        "listed": [f"g:{step}:listed"],
    }.get(key, [])
    return [*extra, "st:keep"]


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


def new_texts(bot: Harness, mark: int, chat: int) -> list[str]:
    return [
        str(c.params["text"])
        for c in new_calls(bot, mark, "sendMessage")
        if int(c.params["chat_id"]) == chat
    ]


def handoff_ids(bot: Harness, chat: int) -> list[int]:
    """Message ids, in a firm chat, of the bot's messages that belong to a handoff."""
    rows = bot.db_rows(
        "SELECT message_id FROM outbox WHERE chat_id = ? AND handoff_id IS NOT NULL ORDER BY id",
        (chat,),
    )
    assert all(row[0] is not None for row in rows), rows
    return [int(row[0]) for row in rows]


async def reach_step(
    bot: Harness, step: int, *, user: int = CLIENT, shown: str = SHOWN, who: dict[str, Any] = JUANA
) -> None:
    """Walk a client from /start to `step`, where the problem button is offered."""
    await bot.reach_step(step, user=user, rut=shown, **who)
    assert f"pb:{step}" in button_data(bot.request.last(user))


async def report(
    bot: Harness, step: int, key: str, *, user: int = CLIENT, who: dict[str, Any] = JUANA
) -> None:
    """The client opens the problem menu at `step` and picks `key`."""
    await bot.press(f"pb:{step}", user=user, **who)
    await bot.press(f"pb:{step}:{key}", user=user, **who)


def firm_update(
    text: str,
    *,
    chat: int = FIRM_CHAT,
    reply_to: int | None = None,
    replied_from: dict[str, Any] | None = None,
    user: int = FIRM_USER,
) -> dict[str, Any]:
    """A firm member's message in a firm chat, optionally a reply to `reply_to`."""
    if chat == FIRM_MEMBER:
        raw = message_update(FIRM_MEMBER, text, first_name="Socio", username="socio")
    elif chat < 0:
        raw = message_update(
            user, text, chat_id=chat, chat_type="group", first_name="Carla", username="contadora"
        )
    else:
        raw = message_update(chat, text, first_name="Extraño", username="extrano")
    if reply_to is not None:
        raw["message"]["reply_to_message"] = {
            "message_id": reply_to,
            "date": 0,
            "chat": raw["message"]["chat"],
            "from": replied_from or BOT_USER,
            "text": "…",
        }
    return raw


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


def plain(text: str) -> str:
    """A Telegram HTML text as Telegram counts it: tags parsed away, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def assert_report(text: str, label: str, step: int, shown: str = SHOWN, **who: Any) -> None:
    name, username, user = (
        who.get("name", "Juana"),
        who.get("username", "juana_pyme"),
        who.get("user", CLIENT),
    )
    assert text.startswith(f"🆘 <b>Problema: {html.escape(label)}</b>"), text
    assert f"Empresa: <code>{shown}</code>" in text
    assert f"Cliente: {name} @{username} (id <code>{user}</code>)" in text
    assert f"Va en: paso {step} de 7" in text


def assert_no_error(bot: Harness, *chats: int) -> None:
    for chat in chats or (CLIENT,):
        assert not any(ERROR in t for t in bot.texts(chat)), bot.texts(chat)


# --- the problems of each step ------------------------------------------------------------


def test_the_guide_lists_the_expected_problems_per_step() -> None:
    expected = {
        1: ["nocert", "phone", "other"],
        2: ["nocert", "phone", "login", "noauth", "other"],
        3: ["phone", "noauth", "whichrut", "other"],
        4: ["noauth", "listed", "other"],
        5: ["whichrut", "listed", "boxes", "other"],
        6: ["other"],
        7: ["other"],
    }
    assert {s: [p.key for p in GUIDE.problems_at(s)] for s in range(1, 8)} == expected
    assert len(CASES) == 21


@pytest.mark.parametrize(("step", "key"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
async def test_each_problem_at_each_of_its_steps(bot: Harness, step: int, key: str) -> None:
    guide = bot.deps.guide
    problem = guide.problem(key)
    assert problem is not None
    await reach_step(bot, step)

    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}")
    [menu] = [c for c in new_calls(bot, mark, "sendMessage")]
    assert int(menu.params["chat_id"]) == CLIENT
    assert menu.params["text"] == MENU
    assert button_data(menu) == [f"pb:{step}:{p.key}" for p in guide.problems_at(step)] + [
        "st:keep"
    ]
    assert [b["text"] for b in buttons(menu)] == [p.label for p in guide.problems_at(step)] + [
        f"⬅️ Volver al paso {step}"
    ]
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]
    assert stored_step(bot) == step

    mark = len(bot.request.calls)
    await bot.press(f"pb:{step}:{key}")
    to_client = [c for c in new_calls(bot, mark, "sendMessage") if c.params["chat_id"] == CLIENT]
    answer = to_client[0]
    for phrase in PHRASES[key]:
        assert phrase in answer.params["text"], (phrase, answer.params["text"])
    assert button_data(answer) == answer_buttons(key, step)
    if problem.ask_text:
        assert [c.params["text"] for c in to_client] == [answer.params["text"]]
    else:
        assert [c.params["text"] for c in to_client[1:]] == [NOTIFIED]

    # Both firm chats get the report, with who, which company, where and what.
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        [text] = new_texts(bot, mark, chat)
        assert_report(text, problem.label, step)

    # Nothing moved; the handoff and the firm's copies are stored.
    assert stored_step(bot) == step
    [(handoff, chat_id, user_id, rut, at, label, closed)] = bot.db_rows(
        "SELECT id, chat_id, user_id, company_rut, step, problem, closed_at FROM handoffs",
    )
    assert (chat_id, user_id, rut, at, label, closed) == (
        CLIENT,
        CLIENT,
        RUT,
        step,
        problem.label,
        None,
    )
    outbox = bot.db_rows("SELECT chat_id, handoff_id, sent_at IS NOT NULL FROM outbox ORDER BY id")
    assert outbox == [(FIRM_CHAT, handoff, 1), (FIRM_MEMBER, handoff, 1)]
    assert bot.db_rows("SELECT kind, step FROM events ORDER BY id DESC LIMIT 1") == [
        ("problem", step)
    ]
    assert_no_error(bot)


@pytest.mark.parametrize("step", [4, 5])
async def test_listed_moves_on_to_step_6(bot: Harness, step: int) -> None:
    await reach_step(bot, step)
    await report(bot, step, "listed")
    mark = len(bot.request.calls)
    await bot.press(f"g:{step}:listed")
    [text] = new_texts(bot, mark, CLIENT)
    assert text.startswith("<b>Paso 6 de 7</b>")
    assert stored_step(bot) == 6


async def test_back_from_the_menu_repeats_the_step(bot: Harness) -> None:
    await reach_step(bot, 3)
    await bot.press("pb:3")
    mark = len(bot.request.calls)
    await bot.press("st:keep")
    [text] = new_texts(bot, mark, CLIENT)
    assert text.startswith("<b>Paso 3 de 7</b>")
    assert stored_step(bot) == 3


@pytest.mark.parametrize(
    "data",
    [
        "pb:2",  # the menu of an earlier step
        "pb:4",  # of a later step
        "pb:2:nocert",  # a problem from an old menu
        "pb:2:login",  # a problem of another step, in that step's menu
        "pb:3:login",  # a real problem that does not happen at this step
        "pb:3:zzz",  # no such problem
        "pb:9",  # no such step
        "pb:0",
        "pb:3:other:x",
        "pb:3:NOCERT",
    ],
)
async def test_stale_or_forged_problem_buttons_change_nothing(bot: Harness, data: str) -> None:
    await reach_step(bot, 3)
    mark = len(bot.request.calls)
    await bot.press(data)
    [answer] = new_calls(bot, mark, "answerCallbackQuery")
    assert answer.params.get("text") == "Ese botón ya no corresponde: vas en el paso 3 de 7."
    [text] = new_texts(bot, mark, CLIENT)
    assert text.startswith("<b>Paso 3 de 7</b>")
    assert new_texts(bot, mark, FIRM_CHAT) == new_texts(bot, mark, FIRM_MEMBER) == []
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]
    assert bot.db_rows("SELECT COUNT(*) FROM outbox") == [(0,)]
    assert stored_step(bot) == 3


async def test_problem_button_without_a_conversation_is_stale(bot: Harness) -> None:
    await bot.press("pb:1:other")
    assert bot.texts() == ["👋 Hola. Escribe /start para comenzar."]
    assert bot.texts(FIRM_CHAT) == []
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]


# --- "Otro" and the client's words --------------------------------------------------------


async def test_other_then_free_text_reaches_both_firm_chats(bot: Harness) -> None:
    await reach_step(bot, 4)
    await report(bot, 4, "other")
    mark = len(bot.request.calls)
    await bot.say("No veo el botón <Ingresar> & no sé qué hacer", **JUANA)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        [text] = new_texts(bot, mark, chat)
        assert text.startswith(f"💬 <b>Juana</b> (<code>{SHOWN}</code>):\n"), text
        assert "No veo el botón &lt;Ingresar&gt; &amp; no sé qué hacer" in text
    assert new_texts(bot, mark, CLIENT) == [FORWARDED]
    [(handoff,)] = bot.db_rows("SELECT id FROM handoffs")
    assert bot.db_rows("SELECT chat_id, handoff_id FROM outbox WHERE id > 2 ORDER BY id") == [
        (FIRM_CHAT, handoff),
        (FIRM_MEMBER, handoff),
    ]
    assert stored_step(bot) == 4


@pytest.mark.parametrize("chunk", ["x", "ñ<&> "])
async def test_a_very_long_text_is_relayed_truncated(bot: Harness, chunk: str) -> None:
    await reach_step(bot, 2)
    await report(bot, 2, "other")
    long_text = (chunk * 5000)[:5000]
    mark = len(bot.request.calls)
    await bot.say(long_text, **JUANA)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        [text] = new_texts(bot, mark, chat)
        shown = plain(text)
        assert len(shown) < 4096
        assert len(text) < 4096 or chunk != "x"
        assert long_text[:3000] in shown
        assert long_text not in shown
        assert "…" in shown
    assert new_texts(bot, mark, CLIENT) == [FORWARDED]
    assert_no_error(bot)


# --- two-way relay ------------------------------------------------------------------------


async def test_the_firm_and_the_client_talk_through_the_bot(bot: Harness) -> None:
    await reach_step(bot, 2)
    await report(bot, 2, "login")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    [report_in_private] = handoff_ids(bot, FIRM_MEMBER)

    # A member of the firm's group replies to the report.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Hola Juana, ¿qué código <ves>?", report_in_group)
    assert new_texts(bot, mark, CLIENT) == [f"{FIRM_PREFIX}Hola Juana, ¿qué código &lt;ves&gt;?"]
    [ack] = new_calls(bot, mark, "sendMessage")[1:]
    assert ack.params == {**ack.params, "chat_id": FIRM_CHAT, "text": SENT}
    assert ack.params["reply_parameters"]["message_id"] > 0
    assert new_texts(bot, mark, FIRM_MEMBER) == []

    # The other firm chat replies to its own copy.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Soy el socio.", report_in_private, chat=FIRM_MEMBER)
    assert new_texts(bot, mark, CLIENT) == [f"{FIRM_PREFIX}Soy el socio."]
    assert new_texts(bot, mark, FIRM_MEMBER) == [SENT]
    assert new_texts(bot, mark, FIRM_CHAT) == []

    # The client answers with free text: it goes back to both firm chats.
    mark = len(bot.request.calls)
    await bot.say("Dice 39", **JUANA)
    assert new_texts(bot, mark, CLIENT) == [FORWARDED]
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        [text] = new_texts(bot, mark, chat)
        assert text.startswith(f"💬 <b>Juana</b> (<code>{SHOWN}</code>):\nDice 39")

    # Replying to the client's relayed message reaches the client too.
    relayed = handoff_ids(bot, FIRM_CHAT)[-1]
    assert relayed != report_in_group
    mark = len(bot.request.calls)
    await firm_reply(bot, "Usa el certificado, no la clave.", relayed)
    assert new_texts(bot, mark, CLIENT) == [f"{FIRM_PREFIX}Usa el certificado, no la clave."]
    assert new_texts(bot, mark, FIRM_CHAT) == [SENT]
    assert stored_step(bot) == 2
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]
    assert_no_error(bot, CLIENT, FIRM_CHAT, FIRM_MEMBER)


async def test_cerrar_closes_the_handoff(bot: Harness) -> None:
    await reach_step(bot, 3)
    await report(bot, 3, "noauth")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)

    mark = len(bot.request.calls)
    await firm_reply(bot, "/cerrar", report_in_group)
    assert new_texts(bot, mark, FIRM_CHAT) == ["🔒 Consulta cerrada por @contadora."]
    assert new_texts(bot, mark, CLIENT) == [
        "🔒 pymecontadores.tk cerró la consulta. Si necesitas algo más, usa «🆘 Tengo un problema»."
    ]
    [(closed_at, closed_by)] = bot.db_rows("SELECT closed_at, closed_by FROM handoffs")
    assert closed_at is not None and closed_by == "@contadora"

    # Replies to the closed handoff's messages, from either chat, go nowhere.
    mark = len(bot.request.calls)
    await firm_reply(bot, "¿Sigues ahí?", report_in_group)
    await firm_reply(bot, "¿Hola?", handoff_ids(bot, FIRM_MEMBER)[0], chat=FIRM_MEMBER)
    await firm_reply(bot, "/cerrar", report_in_group)
    assert new_texts(bot, mark, FIRM_CHAT) == [CLOSED, CLOSED]
    assert new_texts(bot, mark, FIRM_MEMBER) == [CLOSED]
    assert new_texts(bot, mark, CLIENT) == []

    # The client's text is no longer relayed: it gets the usual answer.
    mark = len(bot.request.calls)
    await bot.say("¿Me ayudan?", **JUANA)
    texts = new_texts(bot, mark, CLIENT)
    assert texts[0] == USE_BUTTONS
    assert texts[1].startswith("<b>Paso 3 de 7</b>")
    assert new_texts(bot, mark, FIRM_CHAT) == new_texts(bot, mark, FIRM_MEMBER) == []

    # A new problem opens a new handoff; the old report stays closed.
    await report(bot, 3, "whichrut")
    rows = bot.db_rows("SELECT id, closed_at IS NULL FROM handoffs ORDER BY id")
    assert [open_ for _, open_ in rows] == [0, 1]
    new_report = handoff_ids(bot, FIRM_CHAT)[-1]
    mark = len(bot.request.calls)
    await firm_reply(bot, "Viejo", report_in_group)
    await firm_reply(bot, "Nuevo", new_report)
    assert new_texts(bot, mark, FIRM_CHAT) == [CLOSED, SENT]
    assert new_texts(bot, mark, CLIENT) == [f"{FIRM_PREFIX}Nuevo"]
    assert_no_error(bot, CLIENT, FIRM_CHAT, FIRM_MEMBER)


async def test_cerrar_from_the_private_firm_chat_and_without_a_reply(bot: Harness) -> None:
    await reach_step(bot, 1)
    await report(bot, 1, "phone")
    mark = len(bot.request.calls)
    await bot.feed(firm_update("/cerrar", chat=FIRM_CHAT))
    assert new_texts(bot, mark, FIRM_CHAT) == [
        "Para cerrar una consulta, responde a su mensaje con /cerrar."
    ]
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]
    await firm_reply(bot, "/cerrar", handoff_ids(bot, FIRM_MEMBER)[0], chat=FIRM_MEMBER)
    assert bot.last_text(FIRM_MEMBER) == "🔒 Consulta cerrada por @socio."
    assert bot.db_rows("SELECT closed_by FROM handoffs") == [("@socio",)]


async def test_replies_to_bot_messages_that_are_not_handoffs(bot: Harness) -> None:
    # A completion notice (in the outbox, but no handoff).
    await reach_step(bot, 7)
    await bot.press("g:7:yes", **JUANA)
    [(notice,)] = bot.db_rows(
        "SELECT message_id FROM outbox WHERE chat_id = ? AND ref IS NOT NULL",
        (FIRM_CHAT,),
    )
    mark = len(bot.request.calls)
    await firm_reply(bot, "¡Gracias Juana!", notice)
    assert new_texts(bot, mark, FIRM_CHAT) == [
        "Ese mensaje no es una consulta de un cliente. Para contestarle a un cliente, "
        "responde al mensaje de su consulta."
    ]
    assert new_texts(bot, mark, CLIENT) == []

    # A /pendientes listing (sent directly, never in the outbox).
    await bot.feed(firm_update("/pendientes"))
    assert isinstance(bot.request, IdRecordingRequest)
    listing = bot.request.last_id(FIRM_CHAT)
    mark = len(bot.request.calls)
    await firm_reply(bot, "Ok", listing)
    [text] = new_texts(bot, mark, FIRM_CHAT)
    assert text.startswith(NOT_HANDOFF)
    assert new_texts(bot, mark, CLIENT) == []

    # /cerrar on something that is not a handoff.
    mark = len(bot.request.calls)
    await firm_reply(bot, "/cerrar", notice)
    assert new_texts(bot, mark, FIRM_CHAT) == [
        "Para cerrar una consulta, responde a su mensaje con /cerrar."
    ]


async def test_firm_members_talking_among_themselves_get_no_answer(bot: Harness) -> None:
    await reach_step(bot, 2)
    await report(bot, 2, "login")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    colleague = {"id": FIRM_USER_2, "is_bot": False, "first_name": "Ana"}
    mark = len(bot.request.calls)
    # A reply to a colleague's message (whatever its id) is none of the bot's business.
    for message_id in (report_in_group, 123):
        await bot.feed(firm_update("¿Lo ves tú?", reply_to=message_id, replied_from=colleague))
    assert new_calls(bot, mark) == []
    assert bot.db_rows("SELECT closed_at FROM handoffs") == [(None,)]


async def test_replies_from_chats_that_are_not_the_firms_are_not_relayed(bot: Harness) -> None:
    await reach_step(bot, 2)
    await report(bot, 2, "login")
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
    await reach_step(bot, 2)
    await reach_step(bot, 5, user=OTHER, shown=SHOWN_B, who=PEDRO)
    await report(bot, 2, "login")
    await report(bot, 5, "boxes", user=OTHER, who=PEDRO)
    report_a, report_b = handoff_ids(bot, FIRM_CHAT)
    assert_report(
        bot.texts(FIRM_CHAT)[-1],
        "Veo otras casillas",
        5,
        SHOWN_B,
        name="Pedro",
        username="pedro_b",
        user=OTHER,
    )

    mark = len(bot.request.calls)
    await firm_reply(bot, "Para Pedro", report_b)
    await firm_reply(bot, "Para Juana", report_a)
    assert new_texts(bot, mark, OTHER) == [f"{FIRM_PREFIX}Para Pedro"]
    assert new_texts(bot, mark, CLIENT) == [f"{FIRM_PREFIX}Para Juana"]

    mark = len(bot.request.calls)
    await bot.say("Soy Pedro", user=OTHER, **PEDRO)
    await bot.say("Soy Juana", **JUANA)
    pedro_msg, juana_msg = new_texts(bot, mark, FIRM_CHAT)
    assert pedro_msg.startswith(f"💬 <b>Pedro</b> (<code>{SHOWN_B}</code>):\nSoy Pedro")
    assert juana_msg.startswith(f"💬 <b>Juana</b> (<code>{SHOWN}</code>):\nSoy Juana")
    relayed_b, relayed_a = handoff_ids(bot, FIRM_CHAT)[-2:]

    mark = len(bot.request.calls)
    await firm_reply(bot, "Sólo Pedro", relayed_b)
    await firm_reply(bot, "/cerrar", relayed_a)
    assert new_texts(bot, mark, OTHER) == [f"{FIRM_PREFIX}Sólo Pedro"]
    assert new_texts(bot, mark, CLIENT) == [
        "🔒 pymecontadores.tk cerró la consulta. Si necesitas algo más, usa «🆘 Tengo un problema»."
    ]
    assert not any("Juana" in t for t in bot.texts(OTHER))
    assert not any("Pedro" in t for t in bot.texts(CLIENT))
    # Pedro's handoff is still open: his words still go to the firm.
    mark = len(bot.request.calls)
    await bot.say("¿Y ahora?", user=OTHER, **PEDRO)
    assert new_texts(bot, mark, OTHER) == [FORWARDED]
    assert bot.db_rows("SELECT chat_id, closed_at IS NULL FROM handoffs ORDER BY chat_id") == [
        (CLIENT, 0),
        (OTHER, 1),
    ]


async def test_a_client_who_blocked_the_bot(bot: Harness) -> None:
    await reach_step(bot, 3)
    await report(bot, 3, "whichrut")
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(1,)]
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    mark = len(bot.request.calls)
    await firm_reply(bot, "¿Sigues ahí?", report_in_group)
    assert new_texts(bot, mark, CLIENT) == []
    assert new_texts(bot, mark, FIRM_CHAT) == [
        "🚫 El cliente bloqueó el bot: no se le puede escribir."
    ]
    [(blocked_at,)] = bot.db_rows("SELECT blocked_at FROM authorizations")
    assert blocked_at is not None
    assert bot.db_rows("SELECT kind FROM events ORDER BY id DESC LIMIT 1") == [("blocked",)]
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(0,)]
    assert_no_error(bot, FIRM_CHAT)


# --- photos -------------------------------------------------------------------------------


async def test_a_photo_at_step_7_is_the_proof_sent_with_the_completion(bot: Harness) -> None:
    await reach_step(bot, 7)
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    texts = new_texts(bot, mark, CLIENT)
    assert texts[0].startswith("📸 ¡Gracias!")
    assert texts[1].startswith("<b>Paso 7 de 7</b>")
    assert len(texts) == 2
    assert new_calls(bot, mark, "sendPhoto") == []
    assert bot.db_rows("SELECT proof_file_id, step FROM authorizations") == [("ph-large", 7)]
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]

    mark = len(bot.request.calls)
    await bot.press("g:7:yes", **JUANA)
    photos = new_calls(bot, mark, "sendPhoto")
    assert [int(c.params["chat_id"]) for c in photos] == [FIRM_CHAT, FIRM_MEMBER]
    assert new_texts(bot, mark, FIRM_CHAT) == []
    for call in photos:
        assert call.params["photo"] == "ph-large"
        caption = call.params["caption"]
        assert caption.startswith("✅ <b>Autorización completada</b>")
        assert f"Empresa: <code>{SHOWN}</code>" in caption
        assert "Cliente: Juana @juana_pyme" in caption
        assert call.params["parse_mode"] == "HTML"
    [(completion,)] = bot.db_rows("SELECT id FROM events WHERE kind = 'completed'")
    assert button_data(photos[0]) == [f"vf:ok:{completion}", f"vf:no:{completion}"]
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
    for call in edits:
        assert call.params["caption"].startswith("✅ <b>Autorización completada</b>")
        assert "✅ Verificado en SII por @contadora" in call.params["caption"]
        assert "reply_markup" not in call.params or not button_data(call)
    assert new_calls(bot, mark, "editMessageText") == []
    assert bot.db_rows("SELECT verified_by FROM authorizations") == [("@contadora",)]


async def test_a_completion_without_proof_is_a_text_notice(bot: Harness) -> None:
    await reach_step(bot, 7)
    mark = len(bot.request.calls)
    await bot.press("g:7:yes", **JUANA)
    assert new_calls(bot, mark, "sendPhoto") == []
    [text] = new_texts(bot, mark, FIRM_CHAT)
    assert text.startswith("✅ <b>Autorización completada</b>")


@pytest.mark.parametrize("step", [1, 3, 6])
async def test_a_photo_at_another_step_is_a_problem_report(bot: Harness, step: int) -> None:
    await reach_step(bot, step)
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    photos = new_calls(bot, mark, "sendPhoto")
    assert [int(c.params["chat_id"]) for c in photos] == [FIRM_CHAT, FIRM_MEMBER]
    for call in photos:
        assert call.params["photo"] == "ph-large"
        assert_report(call.params["caption"], "Envió una foto", step)
    assert new_texts(bot, mark, FIRM_CHAT) == new_texts(bot, mark, FIRM_MEMBER) == []
    texts = new_texts(bot, mark, CLIENT)
    assert texts[0] == "📸 Se la envié a pymecontadores.tk, que te responderá por aquí."
    assert texts[1].startswith(f"<b>Paso {step} de 7</b>")
    assert len(texts) == 2
    assert bot.db_rows("SELECT step, proof_file_id FROM authorizations") == [(step, None)]
    [(handoff, problem, at)] = bot.db_rows("SELECT id, problem, step FROM handoffs")
    assert (problem, at) == ("Envió una foto", step)
    assert bot.db_rows("SELECT chat_id, handoff_id, photo_file_id FROM outbox ORDER BY id") == [
        (FIRM_CHAT, handoff, "ph-large"),
        (FIRM_MEMBER, handoff, "ph-large"),
    ]

    # The firm can answer by replying to the photo.
    mark = len(bot.request.calls)
    await firm_reply(bot, "Eso es el paso 4", handoff_ids(bot, FIRM_CHAT)[0])
    assert new_texts(bot, mark, CLIENT) == [f"{FIRM_PREFIX}Eso es el paso 4"]
    assert_no_error(bot)


async def test_the_caption_of_a_photo_reaches_the_firm(bot: Harness) -> None:
    await reach_step(bot, 2)
    mark = len(bot.request.calls)
    await bot.feed(photo_update(caption="Me sale este error al entrar"))
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        received = [
            str(c.params.get("caption") or c.params.get("text"))
            for c in new_calls(bot, mark)
            if c.method in ("sendPhoto", "sendMessage") and int(c.params["chat_id"]) == chat
        ]
        assert any("Me sale este error al entrar" in text for text in received), received


async def test_a_photo_right_after_completing_names_the_company(bot: Harness) -> None:
    await reach_step(bot, 7)
    await bot.press("g:7:yes", **JUANA)
    mark = len(bot.request.calls)
    await bot.feed(photo_update())
    photos = new_calls(bot, mark, "sendPhoto")
    assert [int(c.params["chat_id"]) for c in photos] == [FIRM_CHAT, FIRM_MEMBER]
    for call in photos:
        assert f"<code>{SHOWN}</code>" in call.params["caption"], call.params["caption"]


async def test_names_are_escaped_in_what_the_firm_reads(bot: Harness) -> None:
    odd: dict[str, Any] = {"first_name": "<b>Ana & Co</b>", "username": None}
    await bot.say("/start", user=OTHER, **odd)
    await bot.say(SHOWN_B, user=OTHER, **odd)
    await bot.press("rut:ok", user=OTHER, **odd)
    await report(bot, 1, "other", user=OTHER, who=odd)
    await bot.say("hola", user=OTHER, **odd)
    report_text, relayed = bot.texts(FIRM_CHAT)[-2:]
    assert f"Cliente: &lt;b&gt;Ana &amp; Co&lt;/b&gt; (id <code>{OTHER}</code>)" in " ".join(
        report_text.split()
    )
    assert relayed.startswith(f"💬 <b>&lt;b&gt;Ana &amp; Co&lt;/b&gt;</b> (<code>{SHOWN_B}</code>)")
    assert "<b>Ana" not in report_text + relayed


async def test_a_long_firm_reply_is_cut_to_fit_and_a_photo_reply_is_explained(
    bot: Harness,
) -> None:
    await reach_step(bot, 2)
    await report(bot, 2, "other")
    [report_in_group] = handoff_ids(bot, FIRM_CHAT)
    await firm_reply(bot, "x" * 5000, report_in_group)
    relayed = bot.last_text(CLIENT)
    assert relayed.startswith("💬 <b>pymecontadores.tk</b>") and relayed.endswith("…")
    assert len(relayed) <= 4096
    assert "Enviado" in bot.last_text(FIRM_CHAT)

    photo = firm_update("", reply_to=report_in_group)
    del photo["message"]["text"]
    photo["message"]["photo"] = [
        {"file_id": "firmphoto", "file_unique_id": "fp", "width": 90, "height": 90}
    ]
    before = len(bot.texts(CLIENT))
    await bot.feed(photo)
    assert "solo puedo pasarle texto" in bot.last_text(FIRM_CHAT)
    assert len(bot.texts(CLIENT)) == before
