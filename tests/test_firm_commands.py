"""The firm's commands and buttons, driven through the real Application.

Firm chats (tests.conftest): FIRM_CHAT, a group, and FIRM_MEMBER, a private chat.
"""

import csv
import io
import logging
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stdnum.cl import rut as stdnum_rut
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.menus import publish_command_menus
from bot.repository import ClientInfo
from tests.conftest import CLIENT, FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings
from tests.fake_telegram import button_data, buttons, callback_update

RUT = "76086428-5"
SHOWN = "76.086.428-5"
RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
FIRM_USER = 5150  # someone in the firm's group
INTRUDER = 31_337  # a stranger in a private chat with the bot
OTHER = 777_002  # a second client
FOREIGN_GROUP = -100_777  # a group the bot was added to that is not the firm's
LINK = re.compile(r"https://t\.me/sii_test_bot\?start=(\S+)")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UNKNOWN_COMMAND = "No conozco ese comando. Escribe /ayuda para ver los que hay."
INVALID_LINK = "ya no es válido"
ASK_RUT = "RUT de la empresa"

FIRM_COMMANDS = [
    "/invitar 76.086.428-5 Ana",
    "/pendientes",
    "/completadas",
    "/estado 76.086.428-5",
    "/exportar",
    "/recordar 76.086.428-5",
]


def make_rut(number: int) -> str:
    """A valid compact RUT for a company number."""
    return f"{number}-{stdnum_rut.calc_check_digit(str(number))}"


# --- driving the bot --------------------------------------------------------------------


async def firm_say(bot: Harness, text: str, chat: int = FIRM_CHAT) -> None:
    """Someone of the firm writes a command in a firm chat."""
    if chat == FIRM_MEMBER:
        await bot.say(text, user=FIRM_MEMBER, first_name="Socio", username="socio")
    else:
        await bot.say(
            text,
            user=FIRM_USER,
            chat_id=chat,
            chat_type="group",
            first_name="Carla",
            username="contadora",
        )


async def firm_press(bot: Harness, data: str, chat: int = FIRM_CHAT, message_id: int = 1) -> None:
    """Someone of the firm presses a button on a message in a firm chat."""
    if chat == FIRM_MEMBER:
        raw = callback_update(
            FIRM_MEMBER, data, message_id=message_id, first_name="Socio", username="socio"
        )
    else:
        raw = callback_update(
            FIRM_USER, data, message_id=message_id, first_name="Carla", username="contadora"
        )
        raw["callback_query"]["message"]["chat"] = {"id": chat, "type": "group", "title": "Firma"}
    await bot.feed(raw)


async def invite(bot: Harness, args: str) -> str:
    """/invitar from the firm's group; return the deep-link token."""
    await firm_say(bot, f"/invitar {args}")
    match = LINK.search(bot.texts(FIRM_CHAT)[-2])
    assert match is not None, bot.texts(FIRM_CHAT)[-2:]
    return match.group(1)


async def complete(bot: Harness, shown: str = SHOWN, user: int = CLIENT) -> int:
    """The client goes through the whole guide; return the completion's number."""
    await bot.reach_step(7, rut=shown, user=user)
    await bot.press("g:7:yes", user=user)
    return notice_number(bot)


def notice_number(bot: Harness) -> int:
    data = button_data(bot.request.last(FIRM_CHAT))
    match = re.fullmatch(r"vf:ok:([0-9]+)", data[0])
    assert match is not None, data
    assert data == [f"vf:ok:{match.group(1)}", f"vf:no:{match.group(1)}"]
    return int(match.group(1))


def calls(bot: Harness, method: str) -> list[Any]:
    return [c for c in bot.request.calls if c.method == method]


def answers(bot: Harness) -> list[dict[str, Any]]:
    return [c.params for c in calls(bot, "answerCallbackQuery")]


def replies(bot: Harness, chat: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """Everything sent to a chat: texts with their buttons."""
    return [(str(c.params["text"]), buttons(c)) for c in bot.request.sent(chat)]


async def pending_rows(bot: Harness, count: int) -> list[str]:
    """Store `count` unfinished authorizations, one minute apart; return their RUTs in order."""
    ruts = []
    for n in range(count):
        bot.clock.advance(minutes=1)
        # Numbers go down while time goes up: listing by RUT would be the wrong order.
        rut = make_rut(79_000_000 - n * 1_111)
        client = ClientInfo(10_000 + n, 10_000 + n, f"Cliente {n}", None)
        await bot.repository.start_guide(client, rut, "guide", bot.clock.now(), None)
        ruts.append(rut)
    return ruts


@pytest.fixture
async def quiet_bot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    """A booted bot with quiet hours from 21:00 to 09:00 (Santiago)."""
    harness = await Harness(make_settings(tmp_path, quiet_hours="21-9"), clock).boot()
    yield harness
    await harness.close()


# === access control =====================================================================


@pytest.mark.parametrize("command", FIRM_COMMANDS)
@pytest.mark.parametrize("mid_conversation", [False, True], ids=["idle", "mid-step"])
async def test_outside_the_firm_every_firm_command_is_an_unknown_command(
    bot: Harness, command: str, mid_conversation: bool
) -> None:
    # Something real to leak: a client at step 3 of the very company in the commands.
    await bot.reach_step(3, rut=SHOWN)
    await bot.repository.create_invitation(
        "tok-existing", RUT_B, "Beto", FIRM_CHAT, bot.clock.now(), bot.clock.now() + timedelta(1)
    )
    if mid_conversation:
        await bot.reach_step(2, rut="96.543.210-8", user=INTRUDER)
    bot.request.clear()
    before = bot.db_snapshot()

    await bot.say("/foo", user=INTRUDER)
    unknown = replies(bot, INTRUDER)
    assert unknown[0][0] == UNKNOWN_COMMAND
    expected_prompt = "Paso 2 de 7" if mid_conversation else "Escribe /start para comenzar"
    assert expected_prompt in unknown[-1][0]
    bot.request.clear()

    await bot.say(command, user=INTRUDER)
    assert replies(bot, INTRUDER) == unknown
    assert {c.method for c in bot.request.calls} == {"sendMessage"}
    assert bot.request.sent() == bot.request.sent(INTRUDER)  # nothing to the client or firm
    assert bot.db_snapshot() == before
    assert bot.db_rows("SELECT token FROM invitations") == [("tok-existing",)]


@pytest.mark.parametrize("command", FIRM_COMMANDS)
@pytest.mark.parametrize("user", [INTRUDER, FIRM_MEMBER], ids=["stranger", "firm-member"])
async def test_in_a_foreign_group_firm_commands_get_no_answer(
    bot: Harness, command: str, user: int
) -> None:
    await bot.reach_step(3, rut=SHOWN)
    bot.request.clear()
    before = bot.db_snapshot()
    await bot.say(command, user=user, chat_id=FOREIGN_GROUP, chat_type="group")
    await bot.say("/foo", user=user, chat_id=FOREIGN_GROUP, chat_type="group")
    assert bot.request.calls == []
    assert bot.db_snapshot() == before


async def test_forged_firm_buttons_from_outside_change_nothing(bot: Harness) -> None:
    number = await complete(bot)
    await pending_rows(bot, 20)  # two pages of pending
    bot.request.clear()
    before = bot.db_snapshot()
    forged = ["vf:ok:1", "pg:pend:2", f"vf:ok:{number}", f"vf:no:{number}", "pg:comp:1"]
    for data in forged:
        await bot.press(data, user=INTRUDER)
        await bot.press(data, user=CLIENT)  # the client whose completion it is, too
        raw = callback_update(INTRUDER, data)
        raw["callback_query"]["message"]["chat"] = {"id": FOREIGN_GROUP, "type": "group"}
        await bot.feed(raw)
    assert bot.db_snapshot() == before
    assert calls(bot, "editMessageText") == []
    assert bot.request.sent(FIRM_CHAT) == bot.request.sent(FIRM_MEMBER) == []
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert authorization.completed_at is not None and authorization.verified_at is None
    assert authorization.step == 7
    # Private presses got the ordinary stale-button answer; the foreign group nothing.
    assert len(answers(bot)) == 2 * len(forged)
    assert {int(c.params["chat_id"]) for c in bot.request.sent()} <= {INTRUDER, CLIENT}


async def test_firm_commands_work_in_both_firm_chats_and_with_the_bot_name(bot: Harness) -> None:
    await bot.repository.create_invitation(
        "tok", RUT, "Ana", FIRM_CHAT, bot.clock.now(), bot.clock.now() + timedelta(1)
    )
    await firm_say(bot, "/pendientes")
    await firm_say(bot, "/pendientes@sii_test_bot")
    await firm_say(bot, "/pendientes", chat=FIRM_MEMBER)
    for text in bot.texts(FIRM_CHAT) + bot.texts(FIRM_MEMBER):
        assert text.startswith("⏳ <b>Pendientes: 1</b>")
        assert f"<code>{SHOWN}</code> Ana" in text
    assert len(bot.texts(FIRM_CHAT)) == 2 and len(bot.texts(FIRM_MEMBER)) == 1


# === /invitar ===========================================================================


async def test_invite_without_arguments_shows_usage(bot: Harness) -> None:
    await firm_say(bot, "/invitar")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("invite_usage")]
    assert "Uso: /invitar RUT [nombre del cliente]" in bot.last_text(FIRM_CHAT)
    assert bot.db_rows("SELECT COUNT(*) FROM invitations") == [(0,)]


@pytest.mark.parametrize("argument", ["76.086.428-6", "hola", "123", "76086428-K Ana"])
async def test_invite_with_a_bad_rut_explains(bot: Harness, argument: str) -> None:
    await firm_say(bot, f"/invitar {argument}")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("invite_bad_rut")]
    assert "dígito verificador" in bot.last_text(FIRM_CHAT)
    assert bot.db_rows("SELECT COUNT(*) FROM invitations") == [(0,)]
    assert bot.db_rows("SELECT COUNT(*) FROM authorizations") == [(0,)]


async def test_invite_makes_a_private_link_and_a_message_to_forward(bot: Harness) -> None:
    token = await invite(bot, "76.086.428-5 Ana María")
    created, forward = bot.texts(FIRM_CHAT)
    link = f"https://t.me/sii_test_bot?start={token}"
    assert TOKEN.match(token) and len(token) >= 22  # unguessable
    assert "76086428" not in token and "086428" not in token
    assert created.startswith(
        f"🔗 Invitación para <code>{SHOWN}</code> (Ana María), válida hasta 08-12-2026 12:00:\n"
    )
    assert link in created
    assert forward.startswith("Hola 👋 Te escribe pymecontadores.tk.")
    assert forward.endswith(link)
    assert bot.db_rows(
        "SELECT company_rut, client_name, created_by, expires_at FROM invitations"
    ) == [
        (RUT, "Ana María", FIRM_CHAT, (bot.clock.now() + bot.settings.invitation_ttl).timestamp())
    ]
    # A second invitation gets another token.
    assert await invite(bot, "76.086.428-5") != token

    await firm_say(bot, "/pendientes")
    listing = bot.last_text(FIRM_CHAT)
    assert listing.split("\n") == [
        "⏳ <b>Pendientes: 1</b> (las más antiguas primero) – página 1 de 1",
        f"• <code>{SHOWN}</code> Ana María – invitado, sin abrir, últ. actividad 24-11-2026 "
        "12:00, 0 recordatorio(s)",
    ]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 0
    assert authorization.client_chat_id is None


async def test_invitation_lifecycle(bot: Harness) -> None:
    token = await invite(bot, "76.086.428-5 Ana")
    bot.clock.advance(minutes=5)

    await bot.say(f"/start {token}")
    welcome, confirm = bot.texts()
    assert "Hola, soy el asistente de <b>pymecontadores.tk</b>" in welcome
    assert confirm == f"¿El RUT de la empresa es <b>{SHOWN}</b>?"
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]
    assert bot.db_rows("SELECT used_by_chat FROM invitations") == [(CLIENT,)]

    await bot.press("rut:ok")
    assert "Paso 1 de 7" in bot.last_text()
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert (authorization.step, authorization.client_chat_id) == (1, CLIENT)
    assert authorization.invited_name == "Ana" and authorization.display_name == "Ana"
    assert authorization.client_name == "Juana"
    await firm_say(bot, "/pendientes")
    assert f"<code>{SHOWN}</code> Ana – paso 1 de 7, últ. actividad 24-11-2026 12:05" in (
        bot.last_text(FIRM_CHAT)
    )

    # The same chat may open its link again.
    await bot.press("g:1:next")
    bot.request.clear()
    await bot.say(f"/start {token}")
    assert INVALID_LINK not in "".join(bot.texts())
    assert bot.last_text() == f"¿El RUT de la empresa es <b>{SHOWN}</b>?"

    # Anyone else gets the ordinary start, asked for the RUT.
    await bot.say(f"/start {token}", user=OTHER)
    invalid, welcome_other, ask = bot.texts(OTHER)
    assert invalid == bot.deps.guide.message("invite_invalid")
    assert INVALID_LINK in invalid
    assert "Hola, soy el asistente" in welcome_other
    assert ASK_RUT in ask
    conversation = await bot.repository.conversation(OTHER, OTHER)
    assert conversation is not None
    assert (conversation.state, conversation.candidate_rut) == ("ask_rut", None)
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.client_chat_id == CLIENT
    assert bot.db_rows("SELECT used_by_chat FROM invitations") == [(CLIENT,)]
    await bot.press("rut:ok", user=OTHER)  # no candidate: nothing starts
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.client_chat_id == CLIENT


async def test_an_expired_invitation_falls_back_to_asking_the_rut(bot: Harness) -> None:
    fresh = await invite(bot, f"{SHOWN_B} Beto")
    stale = await invite(bot, "76.086.428-5 Ana")
    bot.clock.advance(seconds=bot.settings.invitation_ttl.total_seconds() - 60)
    await bot.say(f"/start {fresh}", user=OTHER)
    assert bot.last_text(OTHER) == f"¿El RUT de la empresa es <b>{SHOWN_B}</b>?"

    bot.clock.advance(seconds=61)
    await bot.say(f"/start {stale}")
    invalid, _, ask = bot.texts()
    assert INVALID_LINK in invalid and ASK_RUT in ask
    assert bot.db_rows("SELECT used_by_chat FROM invitations WHERE company_rut = ?", (RUT,)) == [
        (None,)
    ]
    await bot.press("rut:ok")
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 0


@pytest.mark.parametrize(
    "payload",
    [
        secrets.token_urlsafe(24),
        "x" * 70,
        "A" * 64,
        "a b",
        "../../etc/passwd",
        "'; DROP TABLE invitations; --",
        "%00",
        "ÑÑÑ",
        "SWAPCASE",
        "TRUNCATED",
    ],
)
async def test_unknown_and_forged_tokens_fall_back_to_asking_the_rut(
    bot: Harness, payload: str
) -> None:
    token = await invite(bot, "76.086.428-5 Ana")
    if payload == "SWAPCASE":
        payload = token.swapcase()
    elif payload == "TRUNCATED":
        payload = token[:-1]
    await bot.say(f"/start {payload}")
    invalid, welcome, ask = bot.texts()
    assert invalid == bot.deps.guide.message("invite_invalid")
    assert "Hola, soy el asistente" in welcome
    assert ASK_RUT in ask
    assert bot.db_rows("SELECT token, used_by_chat FROM invitations") == [(token, None)]
    conversation = await bot.repository.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "ask_rut"
    assert conversation.candidate_rut is None


async def test_an_invitation_for_one_company_never_completes_another(bot: Harness) -> None:
    token_a = await invite(bot, "76.086.428-5 Ana")
    await invite(bot, f"{SHOWN_B} Beto")
    # The client first typed company B's RUT (its confirm buttons still on screen) ...
    await bot.say("/start")
    await bot.say(SHOWN_B)
    assert SHOWN_B in bot.last_text()
    # ... then opened company A's link: confirming now means A.
    await bot.say(f"/start {token_a}")
    assert bot.last_text() == f"¿El RUT de la empresa es <b>{SHOWN}</b>?"
    await bot.press("rut:ok")
    await bot.press("rut:ok")  # the old B message's button: stale now
    await bot.steps_from(1, 7)
    await bot.press("g:7:yes")
    assert "¡Listo!" in bot.texts()[-1] and SHOWN in bot.texts()[-1]

    a = await bot.repository.authorization(RUT)
    b = await bot.repository.authorization(RUT_B)
    assert a is not None and a.completed_at is not None and a.display_name == "Ana"
    assert b is not None and b.completed_at is None and b.step == 0
    assert b.client_chat_id is None
    notice = bot.last_text(FIRM_CHAT)
    assert f"<code>{SHOWN}</code>" in notice and SHOWN_B not in notice
    assert "Cliente: Ana @juana_pyme" in notice
    assert bot.db_rows("SELECT COUNT(*) FROM events WHERE company_rut = ?", (RUT_B,)) == [(1,)]


# === /pendientes ========================================================================


async def test_pending_lists_oldest_first_with_step_reminders_and_marks(bot: Harness) -> None:
    clock = bot.clock
    await bot.reach_step(4, rut=SHOWN_B)  # oldest: 12:00
    clock.advance(minutes=10)
    await bot.reach_step(2, rut=SHOWN, user=OTHER)  # 12:10, then opts out
    await bot.press("rem:stop", user=OTHER)
    clock.advance(minutes=10)
    blocked = make_rut(12_345_678)
    client = ClientInfo(555, 555, "Bruno", "bruno")
    await bot.repository.start_guide(client, blocked, "guide", clock.now(), None)  # 12:20
    await bot.repository.mark_blocked(555, clock.now())
    clock.advance(minutes=10)
    await invite(bot, f"{stdnum_rut.format(make_rut(9_876_543))} Zoe")  # 12:30
    clock.advance(minutes=10)
    await firm_say(bot, f"/recordar {SHOWN_B}")  # 12:40
    assert bot.last_text(FIRM_CHAT) == "📨 Recordatorio enviado a Juana."

    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        "⏳ <b>Pendientes: 4</b> (las más antiguas primero) – página 1 de 1",
        f"• <code>{SHOWN_B}</code> Juana – paso 4 de 7, últ. actividad 24-11-2026 12:00, "
        "1 recordatorio(s)",
        f"• <code>{SHOWN}</code> Juana – paso 2 de 7, últ. actividad 24-11-2026 12:10, "
        "0 recordatorio(s) 🔕 no quiere recordatorios",
        "• <code>12.345.678-5</code> Bruno – paso 1 de 7, últ. actividad 24-11-2026 12:20, "
        "0 recordatorio(s) 🚫 bloqueó el bot",
        "• <code>9.876.543-3</code> Zoe – invitado, sin abrir, últ. actividad 24-11-2026 12:30, "
        "0 recordatorio(s)",
    ]
    assert buttons(bot.request.last(FIRM_CHAT)) == []


async def test_pending_with_nothing_pending(bot: Harness) -> None:
    await complete(bot)
    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT) == "No hay nada que mostrar."


async def test_pending_pages_through_forty(bot: Harness) -> None:
    ruts = await pending_rows(bot, 40)
    await firm_say(bot, "/pendientes")
    first = bot.request.last(FIRM_CHAT)
    assert first.params["text"].startswith(
        "⏳ <b>Pendientes: 40</b> (las más antiguas primero) – página 1 de 3"
    )
    assert [(b["text"], b["callback_data"]) for b in buttons(first)] == [
        ("Siguiente ▶️", "pg:pend:2")
    ]
    pages = [first.params["text"]]

    await firm_press(bot, "pg:pend:2", message_id=77)
    edit = calls(bot, "editMessageText")[-1]
    assert (edit.params["chat_id"], edit.params["message_id"]) == (FIRM_CHAT, 77)
    assert "página 2 de 3" in edit.params["text"]
    assert [(b["text"], b["callback_data"]) for b in buttons(edit)] == [
        ("◀️ Anterior", "pg:pend:1"),
        ("Siguiente ▶️", "pg:pend:3"),
    ]
    pages.append(edit.params["text"])

    await firm_press(bot, "pg:pend:3", chat=FIRM_MEMBER, message_id=78)
    edit = calls(bot, "editMessageText")[-1]
    assert (edit.params["chat_id"], edit.params["message_id"]) == (FIRM_MEMBER, 78)
    assert "página 3 de 3" in edit.params["text"]
    assert button_data(edit) == ["pg:pend:2"]
    pages.append(edit.params["text"])

    assert len(calls(bot, "editMessageText")) == 2
    assert len(bot.request.sent(FIRM_CHAT)) == 1  # pages replace the message, not add
    assert len(answers(bot)) == 2
    listed = [
        line.split("<code>")[1].split("</code>")[0]
        for page in pages
        for line in page.split("\n")[1:]
    ]
    assert [len(page.split("\n")) - 1 for page in pages] == [15, 15, 10]
    assert listed == [stdnum_rut.format(rut) for rut in ruts]  # oldest first, each once

    # Back to page 1 shows the first page again.
    await firm_press(bot, "pg:pend:1")
    assert calls(bot, "editMessageText")[-1].params["text"] == pages[0]
    # A double tap on the same page: Telegram says "not modified", which is no failure.
    bot.request.fail_next(
        "editMessageText",
        BadRequest(
            "Message is not modified: specified new message content and reply markup "
            "are exactly the same"
        ),
    )
    bot.request.clear()
    await firm_press(bot, "pg:pend:1")
    assert bot.request.sent() == []
    assert len(answers(bot)) == 1


# === /completadas =======================================================================


async def _completions(bot: Harness) -> None:
    """Four completions around Santiago's midnight of 24-11-2026 (UTC-3)."""
    moments = [
        ("11111111-1", datetime(2026, 11, 22, 15, 0, tzinfo=UTC)),  # 22-11 12:00
        ("22222222-2", datetime(2026, 11, 24, 2, 30, tzinfo=UTC)),  # 23-11 23:30
        ("33333333-3", datetime(2026, 11, 24, 3, 30, tzinfo=UTC)),  # 24-11 00:30
        ("44444444-4", datetime(2026, 11, 24, 15, 0, tzinfo=UTC)),  # 24-11 12:00
    ]
    for n, (rut, moment) in enumerate(moments):
        bot.clock.moment = moment
        client = ClientInfo(900 + n, 900 + n, f"Cliente {n}", None)
        await bot.repository.start_guide(client, rut, "guide", moment, None)
        done = await bot.repository.complete(rut, 1, client, moment, lambda a, c: ("", ""), ())
        assert done is not None


async def test_completed_lists_newest_first_and_since_a_local_date(bot: Harness) -> None:
    await _completions(bot)
    await firm_say(bot, "/completadas")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        "✅ <b>Completadas: 4</b> – página 1 de 1",
        "• <code>44.444.444-4</code> Cliente 3 – 24-11-2026 12:00",
        "• <code>33.333.333-3</code> Cliente 2 – 24-11-2026 00:30",
        "• <code>22.222.222-2</code> Cliente 1 – 23-11-2026 23:30",
        "• <code>11.111.111-1</code> Cliente 0 – 22-11-2026 12:00",
    ]
    since = [
        "✅ <b>Completadas: 2</b> desde 24-11-2026 – página 1 de 1",
        "• <code>44.444.444-4</code> Cliente 3 – 24-11-2026 12:00",
        "• <code>33.333.333-3</code> Cliente 2 – 24-11-2026 00:30",
    ]
    await firm_say(bot, "/completadas desde 2026-11-24")
    assert bot.last_text(FIRM_CHAT).split("\n") == since
    await firm_say(bot, "/completadas DESDE 2026-11-24")
    assert bot.last_text(FIRM_CHAT).split("\n") == since
    await firm_say(bot, "/completadas 2026-11-24")
    assert bot.last_text(FIRM_CHAT).split("\n") == since
    await firm_say(bot, "/completadas desde 2026-11-25")
    assert bot.last_text(FIRM_CHAT) == "No hay nada que mostrar."


async def test_completed_shows_verified_ones(bot: Harness) -> None:
    number = await complete(bot)
    await firm_press(bot, f"vf:ok:{number}")
    await firm_say(bot, "/completadas")
    assert bot.last_text(FIRM_CHAT).split("\n")[1] == (
        f"• <code>{SHOWN}</code> Juana – 24-11-2026 12:00 ✔️ verificada"
    )


@pytest.mark.parametrize(
    "arguments",
    [
        "desde 2026-13-01",
        "desde 2026-02-30",
        "desde ayer",
        "desde",
        "hasta 2026-11-24",
        "desde 2026-11-24 extra",
        "24-11-2026",
        "desde 2026-11-24:1",
    ],
)
async def test_completed_with_a_bad_date_shows_usage(bot: Harness, arguments: str) -> None:
    await _completions(bot)
    await firm_say(bot, f"/completadas {arguments}")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("completed_usage")]
    assert bot.last_text(FIRM_CHAT).startswith("Uso: /completadas [desde AAAA-MM-DD]")


async def test_completed_pages_keep_the_date(bot: Harness) -> None:
    for n in range(16):
        rut = make_rut(50_000_000 + n)
        client = ClientInfo(900 + n, 900 + n, f"Cliente {n}", None)
        bot.clock.advance(minutes=1)
        await bot.repository.start_guide(client, rut, "guide", bot.clock.now(), None)
        await bot.repository.complete(rut, 1, client, bot.clock.now(), lambda a, c: ("", ""), ())
    await firm_say(bot, "/completadas desde 2026-11-24")
    first = bot.request.last(FIRM_CHAT)
    assert "Completadas: 16</b> desde 24-11-2026 – página 1 de 2" in first.params["text"]
    assert button_data(first) == ["pg:comp:2:2026-11-24"]
    await firm_press(bot, "pg:comp:2:2026-11-24")
    edit = calls(bot, "editMessageText")[-1]
    lines = edit.params["text"].split("\n")
    assert lines[0] == "✅ <b>Completadas: 16</b> desde 24-11-2026 – página 2 de 2"
    assert lines[1] == "• <code>50.000.000-7</code> Cliente 0 – 24-11-2026 12:01"
    assert len(lines) == 2
    assert button_data(edit) == ["pg:comp:1:2026-11-24"]


# === /estado ============================================================================


async def test_status_shows_the_whole_history(bot: Harness) -> None:
    token = await invite(bot, "76.086.428-5 Ana")
    bot.clock.advance(minutes=1)
    await bot.say(f"/start {token}")
    await bot.press("rut:ok")
    bot.clock.advance(minutes=2)
    await bot.steps_from(1, 3)
    bot.clock.advance(minutes=30)
    await firm_say(bot, "/recordar 76.086.428-5")
    bot.clock.advance(minutes=5)
    await bot.steps_from(3, 7)
    await bot.press("g:7:yes")
    number = notice_number(bot)
    bot.clock.advance(minutes=10)
    await firm_press(bot, f"vf:ok:{number}")
    bot.request.clear()

    await firm_say(bot, "/estado 76086428-5")
    (text,) = bot.texts(FIRM_CHAT)
    assert text.split("\n") == [
        f"📄 <b>Historial de <code>{SHOWN}</code></b>",
        "Cliente: Ana @juana_pyme",
        "Estado: completada el 24-11-2026 12:38, verificada por @contadora",
        "",
        "• 24-11-2026 12:00 – invitado por la firma",
        "• 24-11-2026 12:01 – abrió la invitación",
        "• 24-11-2026 12:01 – comenzó (paso 1)",
        "• 24-11-2026 12:03 – paso 2",
        "• 24-11-2026 12:03 – paso 3",
        "• 24-11-2026 12:33 – recordatorio enviado",
        "• 24-11-2026 12:38 – paso 4",
        "• 24-11-2026 12:38 – paso 5",
        "• 24-11-2026 12:38 – paso 6",
        "• 24-11-2026 12:38 – paso 7",
        "• 24-11-2026 12:38 – completó ✅",
        "• 24-11-2026 12:48 – verificada en SII por @contadora",
    ]
    # Any spelling of the RUT works.
    await firm_say(bot, "/estado 76.086.428-5", chat=FIRM_MEMBER)
    assert bot.texts(FIRM_MEMBER) == [text]


async def test_status_of_an_unknown_company_and_usage(bot: Harness) -> None:
    await firm_say(bot, f"/estado {SHOWN_B}")
    assert bot.last_text(FIRM_CHAT) == f"No hay registros de <code>{SHOWN_B}</code>."
    for wrong in ("/estado", "/estado 76.086.428-6", "/estado hola"):
        await firm_say(bot, wrong)
        assert bot.last_text(FIRM_CHAT) == bot.deps.guide.message("status_usage")
    assert bot.last_text(FIRM_CHAT).startswith("Uso: /estado RUT")


async def test_status_of_a_long_history_comes_in_several_messages(bot: Harness) -> None:
    await bot.reach_step(2, rut=SHOWN)
    for _ in range(120):
        await bot.repository.count_reminder(RUT, bot.clock.now(), "@" + "x" * 30)
    bot.request.clear()
    await firm_say(bot, "/estado 76.086.428-5")
    texts = bot.texts(FIRM_CHAT)
    assert len(texts) >= 2
    assert all(len(text) <= 4096 for text in texts)
    lines = [line for text in texts for line in text.split("\n")]
    assert sum("recordatorio enviado" in line for line in lines) == 120
    assert texts[0].startswith(f"📄 <b>Historial de <code>{SHOWN}</code></b>")


# === /exportar ==========================================================================


async def test_export_sends_a_csv_that_excel_reads(bot: Harness) -> None:
    token = await invite(bot, '76.086.428-5 =HYPERLINK("http://evil.example/?x=1","clic")')
    bot.clock.advance(minutes=1)
    await bot.say(f"/start {token}", first_name='José "Pepe" Núñez; Ltda', username=None)
    await bot.press("rut:ok", first_name='José "Pepe" Núñez; Ltda', username=None)
    await bot.steps_from(1, 3)
    bot.clock.advance(minutes=1)
    await invite(bot, f"{SHOWN_B} Núñez; Pérez")
    bot.clock.advance(minutes=1)
    third = make_rut(96_543_210)
    client = ClientInfo(OTHER, OTHER, "=1+2", "otro")
    await bot.repository.start_guide(client, third, "guide", bot.clock.now(), None)
    await bot.repository.complete(third, 1, client, bot.clock.now(), lambda a, c: ("", ""), ())
    await bot.repository.count_reminder(RUT, bot.clock.now(), "@contadora")
    bot.request.clear()

    await firm_say(bot, "/exportar")
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_CHAT
    assert sent.params["caption"] == "📎 3 autorizaciones"
    ((method, files),) = bot.request.uploads
    assert method == "sendDocument"
    ((filename, data, mime),) = files.values()
    assert mime == "text/csv"
    assert filename == "autorizaciones-2026-11-24.csv"
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 4 and b";" in data.split(b"\r\n")[0]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0][:3] == ["rut_empresa", "cliente", "nombre_dado_por_la_firma"]
    assert len(rows[0]) == 15
    assert rows[1] == [
        SHOWN,
        'José "Pepe" Núñez; Ltda',
        '\'=HYPERLINK("http://evil.example/?x=1","clic")',
        "",
        str(CLIENT),
        "3",
        "pendiente",
        "24-11-2026 12:01",
        "24-11-2026 12:01",
        "",
        "",
        "",
        "1",
        "",
        "",
    ]
    assert rows[2][:7] == [SHOWN_B, "", "Núñez; Pérez", "", "", "0", "invitada"]
    assert rows[3][:7] == [
        stdnum_rut.format(third),
        "'=1+2",
        "",
        "otro",
        str(OTHER),
        "1",
        "completada",
    ]
    assert rows[3][9] == "24-11-2026 12:03"
    assert len(rows) == 4


async def test_export_with_nothing_stored(bot: Harness) -> None:
    await firm_say(bot, "/exportar", chat=FIRM_MEMBER)
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_MEMBER
    assert sent.params["caption"] == "📎 0 autorizaciones"
    ((_, files),) = bot.request.uploads
    ((_, data, _),) = files.values()
    text = data.decode("utf-8-sig")
    assert text.startswith("rut_empresa;cliente;") and text.count("\r\n") == 1


# === /recordar ==========================================================================


async def test_remind_sends_the_client_a_reminder_and_counts_it(bot: Harness) -> None:
    await bot.reach_step(3, rut=SHOWN)
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5")
    (reminder,) = bot.request.sent(CLIENT)
    assert "paso 3 de 7" in reminder.params["text"] and SHOWN in reminder.params["text"]
    assert button_data(reminder) == ["st:resume", "rem:stop"]
    assert bot.texts(FIRM_CHAT) == ["📨 Recordatorio enviado a Juana."]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.reminders_sent == 1
    events = await bot.repository.events(RUT)
    assert (events[-1].kind, events[-1].actor) == ("reminder", "@contadora")
    # The client's Continuar shows the step.
    await bot.press("st:resume")
    assert "Paso 3 de 7" in bot.last_text()


async def test_remind_in_quiet_hours_waits_until_nine_unless_now(quiet_bot: Harness) -> None:
    bot = quiet_bot
    await bot.reach_step(3, rut=SHOWN)
    bot.clock.moment = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 23:00 in Santiago
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.request.sent(CLIENT) == []
    assert bot.texts(FIRM_CHAT) == [
        "🌙 Es horario de silencio: lo enviaré a las 09:00. Para enviarlo ya: "
        "/recordar 76086428-5 ahora"
    ]
    nine = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 09:00 in Santiago
    assert bot.db_rows("SELECT chat_id, kind, due_at FROM reminders") == [
        (CLIENT, "later", nine.timestamp())
    ]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.reminders_sent == 0

    await firm_say(bot, "/recordar 76.086.428-5 AHORA")
    (reminder,) = bot.request.sent(CLIENT)
    assert "paso 3 de 7" in reminder.params["text"]
    assert bot.last_text(FIRM_CHAT) == "📨 Recordatorio enviado a Juana."

    # At 09:00 the deferred one goes out by itself.
    bot.clock.moment = nine
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 1
    assert len(bot.request.sent(CLIENT)) == 2
    assert "paso 3 de 7" in bot.last_text()
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.reminders_sent == 2


async def test_a_deferred_firm_reminder_is_not_shown_as_the_clients_request(
    quiet_bot: Harness,
) -> None:
    bot = quiet_bot
    await bot.reach_step(3, rut=SHOWN)
    bot.clock.moment = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    await firm_say(bot, "/recordar 76.086.428-5")
    await firm_say(bot, "/estado 76.086.428-5")
    assert "pidió que se lo recordaran" not in bot.last_text(FIRM_CHAT)


async def test_remind_a_client_who_blocked_the_bot(bot: Harness) -> None:
    await bot.reach_step(3, rut=SHOWN)
    bot.request.clear()
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.request.sent(CLIENT) == []
    assert bot.texts(FIRM_CHAT) == ["🚫 Juana bloqueó el bot: no se le puede escribir."]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert authorization.blocked_at == bot.clock.now() and authorization.reminders_sent == 0
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(0,)]
    # Asked again: no attempt at all.
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5 ahora")
    assert [c.method for c in bot.request.calls] == ["sendMessage"]
    assert bot.texts(FIRM_CHAT) == ["🚫 Juana bloqueó el bot: no se le puede escribir."]
    await firm_say(bot, "/pendientes")
    assert "🚫 bloqueó el bot" in bot.last_text(FIRM_CHAT)


async def test_remind_when_telegram_fails(bot: Harness) -> None:
    await bot.reach_step(3, rut=SHOWN)
    bot.request.fail_next("sendMessage", NetworkError("connection reset"))
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.last_text(FIRM_CHAT) == bot.deps.guide.message("remind_failed")
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert authorization.reminders_sent == 0 and authorization.blocked_at is None


async def test_remind_without_a_client_completed_or_wrong(bot: Harness) -> None:
    await invite(bot, "76.086.428-5 Ana")
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.last_text(FIRM_CHAT) == (
        f"<code>{SHOWN}</code> aún no tiene un cliente con quien hablar "
        "(invitación sin abrir o sin registros)."
    )
    await firm_say(bot, f"/recordar {SHOWN_B}")
    assert bot.last_text(FIRM_CHAT).startswith(f"<code>{SHOWN_B}</code> aún no tiene un cliente")
    await complete(bot)
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.texts(FIRM_CHAT) == [f"<code>{SHOWN}</code> ya está completada."]
    assert bot.request.sent(CLIENT) == []
    for wrong in ("/recordar", "/recordar 76.086.428-6"):
        await firm_say(bot, wrong)
        assert bot.last_text(FIRM_CHAT) == bot.deps.guide.message("remind_usage")
    assert bot.last_text(FIRM_CHAT).startswith("Uso: /recordar RUT [ahora]")


# === verification =======================================================================


async def test_completion_notice_carries_verify_buttons_in_both_firm_chats(bot: Harness) -> None:
    number = await complete(bot)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        notice = bot.request.last(chat)
        assert [(b["text"], b["callback_data"]) for b in buttons(notice)] == [
            ("Verificado en SII ✅", f"vf:ok:{number}"),
            ("No aparece ❌", f"vf:no:{number}"),
        ]
    assert bot.db_rows("SELECT kind, company_rut FROM events WHERE id = ?", (number,)) == [
        ("completed", RUT)
    ]


async def test_verified_edits_both_notices_once(bot: Harness) -> None:
    number = await complete(bot)
    notices = await bot.repository.delivered_notices(number)
    assert [n.chat_id for n in notices] == [FIRM_CHAT, FIRM_MEMBER]
    originals = {chat: bot.last_text(chat) for chat in (FIRM_CHAT, FIRM_MEMBER)}
    bot.clock.advance(minutes=3)
    bot.request.clear()

    await firm_press(bot, f"vf:ok:{number}", message_id=notices[0].message_id)
    assert answers(bot) == [{"callback_query_id": answers(bot)[0]["callback_query_id"]}]
    edits = calls(bot, "editMessageText")
    assert [(e.params["chat_id"], e.params["message_id"]) for e in edits] == [
        (n.chat_id, n.message_id) for n in notices
    ]
    for edit in edits:
        assert edit.params["text"] == (
            originals[edit.params["chat_id"]]
            + "\n\n✅ Verificado en SII por @contadora el 24-11-2026 12:03."
        )
        assert "reply_markup" not in edit.params
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert authorization.verified_at == bot.clock.now()
    assert authorization.verified_by == "@contadora"

    # Again, and from the other firm chat: an alert, nothing recorded or edited twice.
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        bot.request.clear()
        bot.clock.advance(minutes=1)
        await firm_press(bot, f"vf:ok:{number}", chat=chat)
        (answer,) = answers(bot)
        assert answer["text"] == "Ya estaba verificado por @contadora."
        assert answer["show_alert"] is True
        assert calls(bot, "editMessageText") == []
    await firm_press(bot, f"vf:no:{number}", chat=FIRM_MEMBER)
    assert answers(bot)[-1]["text"] == "Ya estaba verificado por @contadora."
    after = await bot.repository.authorization(RUT)
    assert after == authorization
    kinds = [e.kind for e in await bot.repository.events(RUT)]
    assert kinds.count("verified") == 1 and "rejected" not in kinds


async def test_not_found_reopens_at_step_three_and_a_new_completion_is_new(
    bot: Harness,
) -> None:
    number = await complete(bot)
    bot.clock.advance(hours=1)
    bot.request.clear()

    await firm_press(bot, f"vf:no:{number}", chat=FIRM_MEMBER)
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert (authorization.step, authorization.completed_at) == (3, None)
    assert authorization.verified_at is None
    edits = calls(bot, "editMessageText")
    assert {e.params["chat_id"] for e in edits} == {FIRM_CHAT, FIRM_MEMBER}
    for edit in edits:
        assert edit.params["text"].endswith(
            "\n\n❌ No aparece en el SII (marcado por @socio el 24-11-2026 13:00). "
            "Se le pidió al cliente revisarlo."
        )
        assert "reply_markup" not in edit.params
    (kind,) = bot.request.sent(CLIENT)
    assert "todavía no aparece ALEX BRITO MARDONES" in kind.params["text"]
    assert f"<code>{SHOWN}</code>" in kind.params["text"]
    assert [(b["text"], b["callback_data"]) for b in buttons(kind)] == [
        ("▶️ Continuar", "st:resume"),
        ("🔕 No recordar más", "rem:stop"),
    ]
    await bot.press("st:resume")
    assert "Paso 3 de 7" in bot.last_text()

    # The old notice's buttons no longer apply.
    bot.request.clear()
    for data in (f"vf:ok:{number}", f"vf:no:{number}"):
        await firm_press(bot, data)
    assert [a["text"] for a in answers(bot)] == [
        "Esta autorización ya cambió: revisa /estado 76086428-5"
    ] * 2
    assert all(a["show_alert"] for a in answers(bot))
    assert calls(bot, "editMessageText") == []
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None
    assert authorization.verified_at is None and authorization.step == 3

    # The client finishes again: a new notice with new buttons, which work.
    await bot.steps_from(3, 7)
    await bot.press("g:7:yes")
    again = notice_number(bot)
    assert again > number
    assert button_data(bot.request.last(FIRM_MEMBER)) == [f"vf:ok:{again}", f"vf:no:{again}"]
    assert len(bot.request.sent(FIRM_CHAT)) == 1
    await firm_press(bot, f"vf:ok:{again}")
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.verified_by == "@contadora"
    new_edits = [e for e in calls(bot, "editMessageText") if "Verificado" in e.params["text"]]
    assert len(new_edits) == 2
    kinds = [e.kind for e in await bot.repository.events(RUT)]
    assert kinds[-4:] == ["step", "step", "completed", "verified"]
    assert kinds.count("rejected") == 1


async def test_not_found_for_a_client_who_blocked_the_bot(bot: Harness) -> None:
    number = await complete(bot)
    bot.request.clear()
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    await firm_press(bot, f"vf:no:{number}")
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 3
    error = bot.deps.guide.message("error")
    assert error not in bot.texts(FIRM_CHAT) + bot.texts(FIRM_MEMBER)
    assert authorization.blocked_at == bot.clock.now()


async def test_a_reopened_authorization_is_reminded_again(bot: Harness) -> None:
    number = await complete(bot)
    await firm_press(bot, f"vf:no:{number}")
    due = bot.clock.now() + bot.settings.reminder_schedule[0]
    assert bot.db_rows("SELECT chat_id, company_rut, due_at FROM reminders") == [
        (CLIENT, RUT, due.timestamp())
    ]


async def test_verify_buttons_for_unknown_completions(bot: Harness) -> None:
    await complete(bot)
    first_event = bot.db_rows("SELECT MIN(id) FROM events")[0][0]
    bot.request.clear()
    for data in ("vf:ok:999999", f"vf:ok:{first_event}", "vf:no:0"):
        await firm_press(bot, data)
    assert [a.get("show_alert") for a in answers(bot)] == [True] * 3
    assert all(a["text"].startswith("Esta autorización ya cambió") for a in answers(bot))
    assert calls(bot, "editMessageText") == []
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.verified_at is None
    assert authorization.completed_at is not None


# === command menus ======================================================================


async def test_command_menus_for_clients_and_for_each_firm_chat(bot: Harness) -> None:
    bot.request.clear()
    assert await publish_command_menus(bot.app.bot, bot.deps.guide, bot.settings.firm_chat_ids)
    menus = calls(bot, "setMyCommands")
    assert len(menus) == 3
    client = list(bot.deps.guide.commands("client"))
    assert client[:3] == ["start", "ayuda", "cancelar"]
    firm = list(bot.deps.guide.commands("firm"))
    assert set(firm) >= {"invitar", "pendientes", "completadas", "estado", "recordar", "exportar"}
    assert menus[0].params["scope"] == {"type": "default"}
    assert [c["command"] for c in menus[0].params["commands"]] == client
    assert not set(firm) & set(client)
    for menu, chat in zip(menus[1:], (FIRM_CHAT, FIRM_MEMBER), strict=True):
        assert menu.params["scope"] == {"type": "chat", "chat_id": chat}
        assert [c["command"] for c in menu.params["commands"]] == client + firm
        assert all(c["description"] for c in menu.params["commands"])


async def test_command_menus_refused_is_only_a_warning(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.request.clear()
    bot.request.fail_next("setMyCommands", BadRequest("Bad Request: chat not found"))
    with caplog.at_level(logging.WARNING, logger="bot.menus"):
        result = await publish_command_menus(
            bot.app.bot, bot.deps.guide, bot.settings.firm_chat_ids
        )
    assert result is False
    warnings = [r for r in caplog.records if r.name == "bot.menus"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "command menus not set" in warnings[0].getMessage()
    assert "chat not found" in warnings[0].getMessage().lower()
