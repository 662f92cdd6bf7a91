"""The firm's commands and buttons, driven through the real Application.

Firm chats (tests.support.harness): FIRM_CHAT, a group, and FIRM_MEMBER, a private chat.
Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
"""

import csv
import io
import logging
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stdnum.cl import rut as stdnum_rut
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.guide.guide import Guide
from bot.services.menus import publish_command_menus
from bot.services.notifications import describe_duration
from bot.storage.repository import ClientInfo
from tests.support.fake_telegram import button_data, buttons, callback_update
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings

RUT = "76086428-5"
SHOWN = "76.086.428-5"
RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
FIRM_USER = 5150  # someone in the firm's group
INTRUDER = 31_337  # a stranger in a private chat with the bot
OTHER = 777_002  # a second client
FOREIGN_GROUP = -100_777  # a group the bot was added to that is not the firm's
LINK = re.compile(r"https://t\.me/sii_test_bot\?start=([A-Za-z0-9_-]+)")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

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


async def firm_press(
    bot: Harness,
    data: str,
    chat: int = FIRM_CHAT,
    message_id: int = 1,
    *,
    first_name: str = "Carla",
    username: str | None = "contadora",
) -> None:
    """Someone of the firm presses a button on a message in a firm chat."""
    if chat == FIRM_MEMBER:
        raw = callback_update(
            FIRM_MEMBER, data, message_id=message_id, first_name="Socio", username="socio"
        )
    else:
        raw = callback_update(
            FIRM_USER, data, message_id=message_id, first_name=first_name, username=username
        )
        raw["callback_query"]["message"]["chat"] = {"id": chat, "type": "group", "title": "Firma"}
    await bot.feed(raw)


async def invite(bot: Harness, args: str) -> str:
    """/invitar from the firm's group; return the deep-link token."""
    await firm_say(bot, f"/invitar {args}")
    match = LINK.search(bot.texts(FIRM_CHAT)[-2])
    assert match is not None, bot.texts(FIRM_CHAT)[-2:]
    return match.group(1)


async def open_invitation(bot: Harness, token: str, user: int = CLIENT, **who: Any) -> None:
    """A client opens a deep link and says they are at the computer."""
    await bot.say(f"/start {token}", user=user, **who)
    await bot.press("dev:pc", user=user, **who)


async def complete(bot: Harness, shown: str = SHOWN, user: int = CLIENT) -> int:
    """The client goes through the whole guide; return the completion's number."""
    await bot.reach_step(7, rut=shown, user=user)
    await bot.press("g:7:yes", user=user)
    assert bot.last_text(user) == bot.deps.guide.message("done", company_rut=shown)
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
    """Everything sent to a chat: texts (or captions) with their buttons."""
    return [(c.text, buttons(c)) for c in bot.request.sent(chat)]


def labelled(call: Any) -> list[tuple[str, str]]:
    """A message's buttons as (label, callback data)."""
    return [(b["text"], b["callback_data"]) for b in buttons(call)]


async def pending_rows(bot: Harness, count: int) -> list[str]:
    """Store `count` unfinished authorizations, one minute apart; return their RUTs in order."""
    ruts = []
    for n in range(count):
        bot.clock.advance(minutes=1)
        # Numbers go down while time goes up: listing by RUT would be the wrong order.
        rut = make_rut(79_000_000 - n * 1_111)
        client = ClientInfo(10_000 + n, 10_000 + n, f"Cliente {n}", None)
        await bot.repository.authorizations.start_guide(client, rut, "guide", bot.clock.now(), None)
        ruts.append(rut)
    return ruts


# --- what the firm should read, rendered from the guide ---------------------------------


def pending_title(guide: Guide, total: int, page: int = 1, pages: int = 1) -> str:
    return guide.message("pending_title", total=total, page=page, pages=pages)


def pending_line(
    guide: Guide,
    shown: str,
    name: str,
    when: str,
    *,
    step: int = 0,
    reminders: int = 0,
    marks: Sequence[str] = (),
) -> str:
    """One line of /pendientes; `step` 0 is an unopened invitation, `marks` are message keys."""
    progress = (
        guide.message("progress_step", step=step) if step else guide.message("progress_invited")
    )
    rendered = {"progress": progress, "marks": "".join(guide.message(key) for key in marks)}
    return guide.message(
        "pending_line",
        rendered,
        company_rut=shown,
        client_name=name,
        when=when,
        reminders=reminders,
    )


def completed_title(
    guide: Guide, total: int, since: str | None = None, page: int = 1, pages: int = 1
) -> str:
    since_text = guide.message("completed_since", date=since) if since else ""
    return guide.message(
        "completed_title", {"since": since_text}, total=total, page=page, pages=pages
    )


def completed_line(guide: Guide, shown: str, name: str, when: str, verified: bool = False) -> str:
    mark = guide.message("completed_verified") if verified else ""
    return guide.message(
        "completed_line", {"verified": mark}, company_rut=shown, client_name=name, when=when
    )


def history_title(guide: Guide, name: str, username: str, state: str) -> list[str]:
    """The first lines of /estado for company SHOWN; `state` is a rendered state_* text."""
    title = guide.message(
        "status_title",
        {"state": state},
        company_rut=SHOWN,
        client_name=name,
        client_username=username,
    )
    return title.split("\n")


def history_line(guide: Guide, when: str, kind: str, **values: object) -> str:
    """One event of /estado: `kind` names its event_* text."""
    return guide.message(
        "event_line", {"what": guide.message(f"event_{kind}", **values)}, when=when
    )


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
    guide = bot.deps.guide
    # Something real to leak: a client at step 3 of the very company in the commands.
    await bot.reach_step(3, rut=SHOWN)
    await bot.repository.firm.create_invitation(
        "tok-existing", RUT_B, "Beto", FIRM_CHAT, bot.clock.now(), bot.clock.now() + timedelta(1)
    )
    if mid_conversation:
        await bot.reach_step(2, rut="96.543.210-8", user=INTRUDER)
    bot.request.clear()
    before = bot.db_snapshot()

    await bot.say("/foo", user=INTRUDER)
    unknown = replies(bot, INTRUDER)
    prompt = guide.step(2, "96543210-8") if mid_conversation else guide.message("no_conversation")
    assert [text for text, _ in unknown] == [guide.message("unknown_command"), prompt]
    methods = [c.method for c in bot.request.calls]
    assert set(methods) == ({"sendMessage", "sendPhoto"} if mid_conversation else {"sendMessage"})
    bot.request.clear()

    await bot.say(command, user=INTRUDER)
    assert replies(bot, INTRUDER) == unknown
    assert [c.method for c in bot.request.calls] == methods
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
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert authorization.completed_at is not None and authorization.verified_at is None
    assert authorization.step == 7
    # Private presses got the ordinary stale-button answer; the foreign group's presses are
    # answered too (no spinner left turning), with nothing said.
    assert len(answers(bot)) == 3 * len(forged)
    assert sum("text" not in answer for answer in answers(bot)) >= len(forged)
    assert {int(c.params["chat_id"]) for c in bot.request.sent()} <= {INTRUDER, CLIENT}


async def test_firm_commands_work_in_both_firm_chats_and_with_the_bot_name(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.repository.firm.create_invitation(
        "tok", RUT, "Ana", FIRM_CHAT, bot.clock.now(), bot.clock.now() + timedelta(1)
    )
    await firm_say(bot, "/pendientes")
    await firm_say(bot, "/pendientes@sii_test_bot")
    await firm_say(bot, "/pendientes", chat=FIRM_MEMBER)
    listing = [pending_title(guide, 1), pending_line(guide, SHOWN, "Ana", "24-11-2026 12:00")]
    assert bot.texts(FIRM_CHAT) == ["\n".join(listing)] * 2
    assert bot.texts(FIRM_MEMBER) == ["\n".join(listing)]


# === /invitar ===========================================================================


async def test_invite_without_arguments_shows_usage(bot: Harness) -> None:
    await firm_say(bot, "/invitar")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("invite_usage")]
    assert bot.db_rows("SELECT COUNT(*) FROM invitations") == [(0,)]


@pytest.mark.parametrize("argument", ["76.086.428-6", "hola", "123", "76086428-K Ana"])
async def test_invite_with_a_bad_rut_explains(bot: Harness, argument: str) -> None:
    await firm_say(bot, f"/invitar {argument}")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("invite_bad_rut")]
    assert bot.db_rows("SELECT COUNT(*) FROM invitations") == [(0,)]
    assert bot.db_rows("SELECT COUNT(*) FROM authorizations") == [(0,)]


async def test_invite_of_the_representatives_own_rut_is_refused(bot: Harness) -> None:
    await firm_say(bot, f"/invitar {bot.settings.representative_rut} Alex")
    assert bot.texts(FIRM_CHAT) == [bot.deps.guide.message("invite_representative")]
    assert bot.db_rows("SELECT COUNT(*) FROM invitations") == [(0,)]


async def test_invite_makes_a_private_link_and_a_message_to_forward(bot: Harness) -> None:
    guide = bot.deps.guide
    token = await invite(bot, "76.086.428-5 Ana María")
    created, forward = bot.texts(FIRM_CHAT)
    link = f"https://t.me/sii_test_bot?start={token}"
    assert TOKEN.match(token) and len(token) >= 22  # unguessable
    assert "76086428" not in token and "086428" not in token
    # Valid for 14 days, shown in Santiago's time.
    assert created == guide.message(
        "invite_created",
        company_rut=SHOWN,
        client_name="Ana María",
        link=link,
        expires="08-12-2026 12:00",
    )
    assert forward == guide.message("invite_forward", link=link)
    assert bot.db_rows(
        "SELECT company_rut, client_name, created_by, expires_at FROM invitations"
    ) == [
        (RUT, "Ana María", FIRM_CHAT, (bot.clock.now() + bot.settings.invitation_ttl).timestamp())
    ]
    # A second invitation gets another token.
    assert await invite(bot, "76.086.428-5") != token

    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        pending_title(guide, 1),
        pending_line(guide, SHOWN, "Ana María", "24-11-2026 12:00"),
    ]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 0
    assert authorization.client_chat_id is None


async def test_invitation_lifecycle(bot: Harness) -> None:
    guide = bot.deps.guide
    token = await invite(bot, "76.086.428-5 Ana")
    bot.clock.advance(minutes=5)

    # The invited client is greeted and asked where they are reading, the company kept.
    await bot.say(f"/start {token}")
    assert bot.texts() == [guide.message("welcome"), guide.message("ask_device")]
    assert button_data(bot.request.last(CLIENT)) == ["dev:pc", "dev:phone"]
    assert bot.db_rows("SELECT used_by_chat FROM invitations") == [(CLIENT,)]
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None
    assert (conversation.state, conversation.candidate_rut) == ("ask_device", RUT)
    # At the computer, they only confirm the company.
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("rut_confirm", company_rut=SHOWN)
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]

    mark = len(bot.texts())
    await bot.press("rut:ok")
    assert bot.texts()[mark:] == [
        guide.message("who_can", company_rut=SHOWN),
        guide.step(1, RUT),
    ]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert (authorization.step, authorization.client_chat_id) == (1, CLIENT)
    assert authorization.invited_name == "Ana" and authorization.display_name == "Ana"
    assert authorization.client_name == "Juana"
    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        pending_title(guide, 1),
        pending_line(guide, SHOWN, "Ana", "24-11-2026 12:05", step=1),
    ]

    # The same chat may open its link again.
    await bot.press("g:1:next")
    bot.request.clear()
    await bot.say(f"/start {token}")
    assert bot.texts() == [guide.message("welcome"), guide.message("ask_device")]
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("rut_confirm", company_rut=SHOWN)
    assert guide.message("invite_invalid") not in bot.texts()

    # Anyone else gets the ordinary start, and is then asked for the RUT.
    await bot.say(f"/start {token}", user=OTHER)
    assert bot.texts(OTHER) == [
        guide.message("invite_invalid"),
        guide.message("welcome"),
        guide.message("ask_device"),
    ]
    conversation = await bot.repository.conversations.conversation(OTHER, OTHER)
    assert conversation is not None
    assert (conversation.state, conversation.candidate_rut) == ("ask_device", None)
    await bot.press("dev:pc", user=OTHER)
    assert bot.last_text(OTHER) == guide.message("ask_rut")
    conversation = await bot.repository.conversations.conversation(OTHER, OTHER)
    assert conversation is not None
    assert (conversation.state, conversation.candidate_rut) == ("ask_rut", None)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.client_chat_id == CLIENT
    assert bot.db_rows("SELECT used_by_chat FROM invitations") == [(CLIENT,)]
    await bot.press("rut:ok", user=OTHER)  # no candidate: nothing starts
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.client_chat_id == CLIENT
    assert guide.message("who_can", company_rut=SHOWN) not in bot.texts(OTHER)


async def test_an_expired_invitation_falls_back_to_asking_the_rut(bot: Harness) -> None:
    guide = bot.deps.guide
    fresh = await invite(bot, f"{SHOWN_B} Beto")
    stale = await invite(bot, "76.086.428-5 Ana")
    bot.clock.advance(seconds=bot.settings.invitation_ttl.total_seconds() - 60)
    await open_invitation(bot, fresh, user=OTHER)
    assert bot.last_text(OTHER) == guide.message("rut_confirm", company_rut=SHOWN_B)

    bot.clock.advance(seconds=61)
    await bot.say(f"/start {stale}")
    assert bot.texts() == [
        guide.message("invite_invalid"),
        guide.message("welcome"),
        guide.message("ask_device"),
    ]
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("ask_rut")
    assert bot.db_rows("SELECT used_by_chat FROM invitations WHERE company_rut = ?", (RUT,)) == [
        (None,)
    ]
    await bot.press("rut:ok")
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 0


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(secrets.token_urlsafe(24), id="random"),
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
    guide = bot.deps.guide
    token = await invite(bot, "76.086.428-5 Ana")
    if payload == "SWAPCASE":
        payload = token.swapcase()
    elif payload == "TRUNCATED":
        payload = token[:-1]
    await bot.say(f"/start {payload}")
    assert bot.texts() == [
        guide.message("invite_invalid"),
        guide.message("welcome"),
        guide.message("ask_device"),
    ]
    assert bot.db_rows("SELECT token, used_by_chat FROM invitations") == [(token, None)]
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "ask_device"
    assert conversation.candidate_rut is None
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("ask_rut")
    conversation = await bot.repository.conversations.conversation(CLIENT, CLIENT)
    assert conversation is not None and conversation.state == "ask_rut"
    assert conversation.candidate_rut is None


async def test_an_invitation_for_one_company_never_completes_another(bot: Harness) -> None:
    guide = bot.deps.guide
    token_a = await invite(bot, "76.086.428-5 Ana")
    await invite(bot, f"{SHOWN_B} Beto")
    # The client first typed company B's RUT (its confirm buttons still on screen) ...
    await bot.say("/start")
    await bot.say(SHOWN_B)
    assert bot.last_text() == guide.message("rut_confirm", company_rut=SHOWN_B)
    # ... then opened company A's link: confirming now means A.
    await open_invitation(bot, token_a)
    assert bot.last_text() == guide.message("rut_confirm", company_rut=SHOWN)
    await bot.press("rut:ok")
    assert bot.last_text() == guide.step(1, RUT)
    await bot.press("rut:ok")  # the old B message's button: stale now
    assert bot.last_text() == guide.step(1, RUT)
    await bot.steps_from(1, 7)
    await bot.press("g:7:yes")
    assert bot.last_text() == guide.message("done", company_rut=SHOWN)

    a = await bot.repository.authorizations.authorization(RUT)
    b = await bot.repository.authorizations.authorization(RUT_B)
    assert a is not None and a.completed_at is not None and a.display_name == "Ana"
    assert b is not None and b.completed_at is None and b.step == 0
    assert b.client_chat_id is None
    assert bot.last_text(FIRM_CHAT) == guide.message(
        "firm_completed",
        company_rut=SHOWN,
        client_name="Ana",
        client_username="@juana_pyme",
        client_id=CLIENT,
        completed_at="24-11-2026 12:00",
        duration=describe_duration(timedelta(0)),
    )
    assert bot.db_rows("SELECT COUNT(*) FROM events WHERE company_rut = ?", (RUT_B,)) == [(1,)]


async def test_a_link_a_client_passes_on_is_in_the_history_and_opens_the_same_company(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2, rut=SHOWN)  # 12:00
    bot.clock.advance(minutes=4)
    await bot.press("pass:on")  # "📨 Lo hará otra persona", at 12:04
    match = LINK.search(bot.last_text())
    assert match is not None
    token = match.group(1)
    assert bot.db_rows("SELECT company_rut, created_by, used_by_chat FROM invitations") == [
        (RUT, CLIENT, None)
    ]

    await firm_say(bot, "/estado 76.086.428-5")
    pending = guide.message("state_pending", step=2)
    history = [
        *history_title(guide, "Juana", "@juana_pyme", pending),
        "",
        history_line(guide, "24-11-2026 12:00", "started"),
        history_line(guide, "24-11-2026 12:00", "step", step=2),
        history_line(guide, "24-11-2026 12:04", "passed_on"),
    ]
    assert bot.last_text(FIRM_CHAT).split("\n") == history

    # The person with the certificate opens it: greeted, asked where, then the same company.
    bot.clock.advance(minutes=1)
    who: dict[str, Any] = {"user": OTHER, "first_name": "Pedro", "username": "pedro_rl"}
    await bot.say(f"/start {token}", **who)
    assert bot.texts(OTHER) == [guide.message("welcome"), guide.message("ask_device")]
    assert button_data(bot.request.last(OTHER)) == ["dev:pc", "dev:phone"]
    await bot.press("dev:pc", **who)
    assert bot.last_text(OTHER) == guide.message("rut_confirm", company_rut=SHOWN)
    assert button_data(bot.request.last(OTHER)) == ["rut:ok", "rut:edit"]
    conversation = await bot.repository.conversations.conversation(OTHER, OTHER)
    assert conversation is not None
    assert (conversation.state, conversation.candidate_rut) == ("confirm_rut", RUT)
    assert bot.db_rows("SELECT used_by_chat FROM invitations") == [(OTHER,)]
    # The client who passed it on is still where they were.
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert (authorization.step, authorization.client_chat_id) == (2, CLIENT)
    await firm_say(bot, "/estado 76.086.428-5")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        *history,
        history_line(guide, "24-11-2026 12:05", "invitation_opened"),
    ]
    # Like the firm's, the link serves one person only.
    await bot.say(f"/start {token}", user=INTRUDER)
    assert bot.texts(INTRUDER)[0] == guide.message("invite_invalid")


# === /pendientes ========================================================================


async def test_pending_lists_oldest_first_with_step_reminders_and_marks(bot: Harness) -> None:
    guide = bot.deps.guide
    clock = bot.clock
    await bot.reach_step(4, rut=SHOWN_B)  # oldest: 12:00
    clock.advance(minutes=10)
    await bot.reach_step(2, rut=SHOWN, user=OTHER)  # 12:10, then opts out
    await bot.press("rem:stop", user=OTHER)
    clock.advance(minutes=10)
    blocked = make_rut(12_345_678)
    client = ClientInfo(555, 555, "Bruno", "bruno")
    await bot.repository.authorizations.start_guide(
        client, blocked, "guide", clock.now(), None
    )  # 12:20
    await bot.repository.reminders.mark_blocked(555, clock.now())
    clock.advance(minutes=10)
    await invite(bot, f"{stdnum_rut.format(make_rut(9_876_543))} Zoe")  # 12:30
    clock.advance(minutes=10)
    await firm_say(bot, f"/recordar {SHOWN_B}")  # 12:40
    assert bot.last_text(FIRM_CHAT) == guide.message("remind_sent", client_name="Juana")

    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        pending_title(guide, 4),
        pending_line(guide, SHOWN_B, "Juana", "24-11-2026 12:00", step=4, reminders=1),
        pending_line(guide, SHOWN, "Juana", "24-11-2026 12:10", step=2, marks=["mark_opted_out"]),
        pending_line(
            guide, "12.345.678-5", "Bruno", "24-11-2026 12:20", step=1, marks=["mark_blocked"]
        ),
        pending_line(guide, "9.876.543-3", "Zoe", "24-11-2026 12:30"),
    ]
    assert buttons(bot.request.last(FIRM_CHAT)) == []


async def test_pending_with_nothing_pending(bot: Harness) -> None:
    await complete(bot)
    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT) == bot.deps.guide.message("list_empty")


async def test_pending_pages_through_forty(bot: Harness) -> None:
    guide = bot.deps.guide
    previous, following = guide.button("previous_page"), guide.button("next_page")
    ruts = await pending_rows(bot, 40)
    await firm_say(bot, "/pendientes")
    first = bot.request.last(FIRM_CHAT)
    assert first.text.split("\n")[0] == pending_title(guide, 40, 1, 3)
    assert labelled(first) == [(following, "pg:pend:2")]
    pages = [first.text]

    await firm_press(bot, "pg:pend:2", message_id=77)
    edit = calls(bot, "editMessageText")[-1]
    assert (edit.params["chat_id"], edit.params["message_id"]) == (FIRM_CHAT, 77)
    assert edit.text.split("\n")[0] == pending_title(guide, 40, 2, 3)
    assert labelled(edit) == [(previous, "pg:pend:1"), (following, "pg:pend:3")]
    pages.append(edit.text)

    await firm_press(bot, "pg:pend:3", chat=FIRM_MEMBER, message_id=78)
    edit = calls(bot, "editMessageText")[-1]
    assert (edit.params["chat_id"], edit.params["message_id"]) == (FIRM_MEMBER, 78)
    assert edit.text.split("\n")[0] == pending_title(guide, 40, 3, 3)
    assert labelled(edit) == [(previous, "pg:pend:2")]
    pages.append(edit.text)

    assert len(calls(bot, "editMessageText")) == 2
    assert len(bot.request.sent(FIRM_CHAT)) == 1  # pages replace the message, not add
    assert len(answers(bot)) == 2
    lines = [line for page in pages for line in page.split("\n")[1:]]
    assert [len(page.split("\n")) - 1 for page in pages] == [15, 15, 10]
    # Oldest first, each once.
    assert lines == [
        pending_line(
            guide,
            stdnum_rut.format(rut),
            f"Cliente {n}",
            f"24-11-2026 12:{n + 1:02d}",
            step=1,
        )
        for n, rut in enumerate(ruts)
    ]

    # Back to page 1 shows the first page again.
    await firm_press(bot, "pg:pend:1")
    assert calls(bot, "editMessageText")[-1].text == pages[0]
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
        await bot.repository.authorizations.start_guide(client, rut, "guide", moment, None)
        done = await bot.repository.authorizations.complete(rut, 1, client, moment, "", ())
        assert done is not None


async def test_completed_lists_newest_first_and_since_a_local_date(bot: Harness) -> None:
    guide = bot.deps.guide
    await _completions(bot)
    third = completed_line(guide, "44.444.444-4", "Cliente 3", "24-11-2026 12:00")
    second = completed_line(guide, "33.333.333-3", "Cliente 2", "24-11-2026 00:30")
    await firm_say(bot, "/completadas")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        completed_title(guide, 4),
        third,
        second,
        completed_line(guide, "22.222.222-2", "Cliente 1", "23-11-2026 23:30"),
        completed_line(guide, "11.111.111-1", "Cliente 0", "22-11-2026 12:00"),
    ]
    since = [completed_title(guide, 2, since="24-11-2026"), third, second]
    await firm_say(bot, "/completadas desde 2026-11-24")
    assert bot.last_text(FIRM_CHAT).split("\n") == since
    await firm_say(bot, "/completadas DESDE 2026-11-24")
    assert bot.last_text(FIRM_CHAT).split("\n") == since
    await firm_say(bot, "/completadas 2026-11-24")
    assert bot.last_text(FIRM_CHAT).split("\n") == since
    await firm_say(bot, "/completadas desde 2026-11-25")
    assert bot.last_text(FIRM_CHAT) == guide.message("list_empty")


async def test_completed_shows_verified_ones(bot: Harness) -> None:
    guide = bot.deps.guide
    number = await complete(bot)
    await firm_press(bot, f"vf:ok:{number}")
    await firm_say(bot, "/completadas")
    assert bot.last_text(FIRM_CHAT).split("\n") == [
        completed_title(guide, 1),
        completed_line(guide, SHOWN, "Juana", "24-11-2026 12:00", verified=True),
    ]


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


async def test_completed_pages_keep_the_date(bot: Harness) -> None:
    guide = bot.deps.guide
    for n in range(16):
        rut = make_rut(50_000_000 + n)
        client = ClientInfo(900 + n, 900 + n, f"Cliente {n}", None)
        bot.clock.advance(minutes=1)
        await bot.repository.authorizations.start_guide(client, rut, "guide", bot.clock.now(), None)
        await bot.repository.authorizations.complete(rut, 1, client, bot.clock.now(), "", ())
    await firm_say(bot, "/completadas desde 2026-11-24")
    first = bot.request.last(FIRM_CHAT)
    assert first.text.split("\n")[0] == completed_title(guide, 16, "24-11-2026", 1, 2)
    assert labelled(first) == [(guide.button("next_page"), "pg:comp:2:2026-11-24")]
    await firm_press(bot, "pg:comp:2:2026-11-24")
    edit = calls(bot, "editMessageText")[-1]
    assert edit.text.split("\n") == [
        completed_title(guide, 16, "24-11-2026", 2, 2),
        completed_line(guide, "50.000.000-7", "Cliente 0", "24-11-2026 12:01"),
    ]
    assert labelled(edit) == [(guide.button("previous_page"), "pg:comp:1:2026-11-24")]


# === /estado ============================================================================


async def test_status_shows_the_whole_history(bot: Harness) -> None:
    guide = bot.deps.guide
    token = await invite(bot, "76.086.428-5 Ana")
    bot.clock.advance(minutes=1)
    await open_invitation(bot, token)
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
    verified = guide.message("state_verified", when="24-11-2026 12:38", actor="@contadora")
    assert text.split("\n") == [
        *history_title(guide, "Ana", "@juana_pyme", verified),
        "",
        history_line(guide, "24-11-2026 12:00", "invited"),
        history_line(guide, "24-11-2026 12:01", "invitation_opened"),
        history_line(guide, "24-11-2026 12:01", "started"),
        history_line(guide, "24-11-2026 12:03", "step", step=2),
        history_line(guide, "24-11-2026 12:03", "step", step=3),
        history_line(guide, "24-11-2026 12:33", "reminder"),
        *[history_line(guide, "24-11-2026 12:38", "step", step=n) for n in range(4, 8)],
        history_line(guide, "24-11-2026 12:38", "completed"),
        history_line(guide, "24-11-2026 12:48", "verified", actor="@contadora"),
    ]
    # Any spelling of the RUT works.
    await firm_say(bot, "/estado 76.086.428-5", chat=FIRM_MEMBER)
    assert bot.texts(FIRM_MEMBER) == [text]


async def test_status_escapes_a_firm_members_name_once(bot: Harness) -> None:
    # A firm member without a username is recorded by name, which may hold ' or &.
    guide = bot.deps.guide
    actor = "María O'Ryan & Cía"
    number = await complete(bot)
    await firm_press(bot, f"vf:ok:{number}", first_name=actor, username=None)
    bot.request.clear()
    await firm_say(bot, "/estado 76.086.428-5")
    (text,) = bot.texts(FIRM_CHAT)
    verified = guide.message("state_verified", when="24-11-2026 12:00", actor=actor)
    lines = text.split("\n")
    # The state in the title and the event line: each escaped once, like every other value.
    assert [*lines[:3], lines[-1]] == [
        *history_title(guide, "Juana", "@juana_pyme", verified),
        history_line(guide, "24-11-2026 12:00", "verified", actor=actor),
    ]


async def test_status_of_an_unknown_company_and_usage(bot: Harness) -> None:
    guide = bot.deps.guide
    await firm_say(bot, f"/estado {SHOWN_B}")
    assert bot.last_text(FIRM_CHAT) == guide.message("status_unknown", company_rut=SHOWN_B)
    for wrong in ("/estado", "/estado 76.086.428-6", "/estado hola"):
        await firm_say(bot, wrong)
        assert bot.last_text(FIRM_CHAT) == guide.message("status_usage")


async def test_status_of_a_long_history_comes_in_several_messages(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2, rut=SHOWN)
    for _ in range(120):
        await bot.repository.reminders.count_reminder(RUT, bot.clock.now(), "@" + "x" * 30)
    bot.request.clear()
    await firm_say(bot, "/estado 76.086.428-5")
    texts = bot.texts(FIRM_CHAT)
    assert len(texts) >= 2
    assert all(len(text) <= 4096 for text in texts)
    lines = [line for text in texts for line in text.split("\n")]
    pending = guide.message("state_pending", step=2)
    assert lines[:3] == history_title(guide, "Juana", "@juana_pyme", pending)
    reminder = history_line(guide, "24-11-2026 12:00", "reminder")
    assert lines.count(reminder) == 120
    assert lines[-120:] == [reminder] * 120  # nothing lost between the messages


# === /exportar ==========================================================================


async def test_export_sends_a_csv_that_excel_reads(bot: Harness) -> None:
    guide = bot.deps.guide
    token = await invite(bot, '76.086.428-5 =HYPERLINK("http://evil.example/?x=1","clic")')
    bot.clock.advance(minutes=1)
    who: dict[str, Any] = {"first_name": 'José "Pepe" Núñez; Ltda', "username": None}
    await open_invitation(bot, token, **who)
    await bot.press("rut:ok", **who)
    await bot.steps_from(1, 3, **who)
    bot.clock.advance(minutes=1)
    await invite(bot, f"{SHOWN_B} Núñez; Pérez")
    bot.clock.advance(minutes=1)
    third = make_rut(96_543_210)
    client = ClientInfo(OTHER, OTHER, "=1+2", "otro")
    await bot.repository.authorizations.start_guide(client, third, "guide", bot.clock.now(), None)
    await bot.repository.authorizations.complete(third, 1, client, bot.clock.now(), "", ())
    await bot.repository.reminders.count_reminder(RUT, bot.clock.now(), "@contadora")
    bot.request.clear()

    await firm_say(bot, "/exportar csv")
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_CHAT
    assert sent.params["caption"] == guide.message("export_caption", count=3)
    # The step pictures were uploaded earlier; the CSV is the one document.
    (files,) = [files for method, files in bot.request.uploads if method == "sendDocument"]
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
    await firm_say(bot, "/exportar csv", chat=FIRM_MEMBER)
    (sent,) = calls(bot, "sendDocument")
    assert sent.params["chat_id"] == FIRM_MEMBER
    assert sent.params["caption"] == bot.deps.guide.message("export_caption", count=0)
    ((_, files),) = bot.request.uploads
    ((_, data, _),) = files.values()
    text = data.decode("utf-8-sig")
    assert text.startswith("rut_empresa;cliente;") and text.count("\r\n") == 1


# === /recordar ==========================================================================


async def test_remind_sends_the_client_a_reminder_and_counts_it(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(3, rut=SHOWN)
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5")
    (reminder,) = bot.request.sent(CLIENT)
    assert reminder.text == guide.message("reminder_step", company_rut=SHOWN, step=3)
    assert labelled(reminder) == [
        (guide.button("continue"), "st:resume"),
        (guide.button("stop_reminders"), "rem:stop"),
    ]
    assert bot.texts(FIRM_CHAT) == [guide.message("remind_sent", client_name="Juana")]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.reminders_sent == 1
    events = await bot.repository.authorizations.events(RUT)
    assert (events[-1].kind, events[-1].actor) == ("reminder", "@contadora")
    # The client's Continuar shows the step.
    await bot.press("st:resume")
    assert bot.last_text() == guide.step(3, RUT)


async def test_remind_in_quiet_hours_waits_until_nine_unless_now(quiet_bot: Harness) -> None:
    bot = quiet_bot
    guide = bot.deps.guide
    at_step_3 = guide.message("reminder_step", company_rut=SHOWN, step=3)
    await bot.reach_step(3, rut=SHOWN)
    bot.clock.moment = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 23:00 in Santiago
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.request.sent(CLIENT) == []
    assert bot.texts(FIRM_CHAT) == [
        guide.message("remind_quiet", when="09:00", company_rut=SHOWN, company_rut_plain=RUT)
    ]
    nine = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 09:00 in Santiago
    assert bot.db_rows("SELECT chat_id, kind, due_at FROM reminders") == [
        (CLIENT, "later", nine.timestamp())
    ]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.reminders_sent == 0

    await firm_say(bot, "/recordar 76.086.428-5 AHORA")
    assert bot.texts(CLIENT) == [at_step_3]
    assert bot.last_text(FIRM_CHAT) == guide.message("remind_sent", client_name="Juana")

    # At 09:00 the deferred one goes out by itself.
    bot.clock.moment = nine
    assert await bot.deps.sweeper.sweep(bot.app.bot) == 1
    assert bot.texts(CLIENT) == [at_step_3] * 2
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.reminders_sent == 2


async def test_a_deferred_firm_reminder_is_not_shown_as_the_clients_request(
    quiet_bot: Harness,
) -> None:
    bot = quiet_bot
    guide = bot.deps.guide
    await bot.reach_step(3, rut=SHOWN)
    bot.clock.moment = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    await firm_say(bot, "/recordar 76.086.428-5")
    await firm_say(bot, "/estado 76.086.428-5")
    lines = bot.last_text(FIRM_CHAT).split("\n")
    assert lines[-1] == history_line(
        guide, "24-11-2026 23:00", "reminder_scheduled", actor="@contadora"
    )
    assert guide.message("event_remind_later") not in bot.last_text(FIRM_CHAT)


async def test_remind_a_client_who_blocked_the_bot(bot: Harness) -> None:
    guide = bot.deps.guide
    blocked = guide.message("remind_blocked", client_name="Juana")
    await bot.reach_step(3, rut=SHOWN)
    bot.request.clear()
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.request.sent(CLIENT) == []
    assert bot.texts(FIRM_CHAT) == [blocked]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert authorization.blocked_at == bot.clock.now() and authorization.reminders_sent == 0
    assert bot.db_rows("SELECT COUNT(*) FROM reminders") == [(0,)]
    # Asked again: no attempt at all.
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5 ahora")
    assert [c.method for c in bot.request.calls] == ["sendMessage"]
    assert bot.texts(FIRM_CHAT) == [blocked]
    await firm_say(bot, "/pendientes")
    assert bot.last_text(FIRM_CHAT).split("\n")[1] == pending_line(
        guide, SHOWN, "Juana", "24-11-2026 12:00", step=3, marks=["mark_blocked"]
    )


async def test_remind_a_client_who_asked_for_no_more_reminders(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(3, rut=SHOWN)
    await bot.press("rem:stop")
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5 ahora")
    assert bot.request.sent(CLIENT) == []
    assert bot.texts(FIRM_CHAT) == [guide.message("remind_opted_out", client_name="Juana")]


async def test_remind_when_telegram_fails(bot: Harness) -> None:
    await bot.reach_step(3, rut=SHOWN)
    bot.request.fail_next("sendMessage", NetworkError("connection reset"))
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.last_text(FIRM_CHAT) == bot.deps.guide.message("remind_failed")
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert authorization.reminders_sent == 0 and authorization.blocked_at is None


async def test_remind_without_a_client_completed_or_wrong(bot: Harness) -> None:
    guide = bot.deps.guide
    await invite(bot, "76.086.428-5 Ana")
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.last_text(FIRM_CHAT) == guide.message("remind_no_client", company_rut=SHOWN)
    await firm_say(bot, f"/recordar {SHOWN_B}")
    assert bot.last_text(FIRM_CHAT) == guide.message("remind_no_client", company_rut=SHOWN_B)
    await complete(bot)
    bot.request.clear()
    await firm_say(bot, "/recordar 76.086.428-5")
    assert bot.texts(FIRM_CHAT) == [guide.message("remind_already_done", company_rut=SHOWN)]
    assert bot.request.sent(CLIENT) == []
    for wrong in ("/recordar", "/recordar 76.086.428-6"):
        await firm_say(bot, wrong)
        assert bot.last_text(FIRM_CHAT) == guide.message("remind_usage")


# === verification =======================================================================


async def test_completion_notice_carries_verify_buttons_in_both_firm_chats(bot: Harness) -> None:
    guide = bot.deps.guide
    number = await complete(bot)
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert labelled(bot.request.last(chat)) == [
            (guide.button("verify"), f"vf:ok:{number}"),
            (guide.button("reject"), f"vf:no:{number}"),
        ]
    assert bot.db_rows("SELECT kind, company_rut FROM events WHERE id = ?", (number,)) == [
        ("completed", RUT)
    ]


async def test_verified_edits_both_notices_once(bot: Harness) -> None:
    guide = bot.deps.guide
    number = await complete(bot)
    notices = await bot.repository.outbox.delivered_notices(number)
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
    line = guide.message("firm_verified", actor="@contadora", when="24-11-2026 12:03")
    for edit in edits:
        assert edit.text == f"{originals[edit.params['chat_id']]}\n\n{line}"
        assert "reply_markup" not in edit.params
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert authorization.verified_at == bot.clock.now()
    assert authorization.verified_by == "@contadora"

    # Again, and from the other firm chat: an alert, nothing recorded or edited twice.
    already = guide.message("firm_already_verified", actor="@contadora")
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        bot.request.clear()
        bot.clock.advance(minutes=1)
        await firm_press(bot, f"vf:ok:{number}", chat=chat)
        (answer,) = answers(bot)
        assert answer["text"] == already
        assert answer["show_alert"] is True
        assert calls(bot, "editMessageText") == []
    await firm_press(bot, f"vf:no:{number}", chat=FIRM_MEMBER)
    assert answers(bot)[-1]["text"] == already
    after = await bot.repository.authorizations.authorization(RUT)
    assert after == authorization
    kinds = [e.kind for e in await bot.repository.authorizations.events(RUT)]
    assert kinds.count("verified") == 1 and "rejected" not in kinds


async def test_not_found_reopens_at_step_three_and_a_new_completion_is_new(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    number = await complete(bot)
    bot.clock.advance(hours=1)
    bot.request.clear()

    await firm_press(bot, f"vf:no:{number}", chat=FIRM_MEMBER)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None
    assert (authorization.step, authorization.completed_at) == (3, None)
    assert authorization.verified_at is None
    edits = calls(bot, "editMessageText")
    assert {e.params["chat_id"] for e in edits} == {FIRM_CHAT, FIRM_MEMBER}
    rejected = guide.message("firm_rejected", actor="@socio", when="24-11-2026 13:00")
    for edit in edits:
        assert edit.text.endswith(f"\n\n{rejected}")
        assert "reply_markup" not in edit.params
    (kind,) = bot.request.sent(CLIENT)
    assert kind.text == guide.message("client_rejected", company_rut=SHOWN)
    assert labelled(kind) == [
        (guide.button("continue"), "st:resume"),
        (guide.button("stop_reminders"), "rem:stop"),
    ]
    await bot.press("st:resume")
    assert bot.last_text() == guide.step(3, RUT)

    # The old notice's buttons no longer apply.
    bot.request.clear()
    for data in (f"vf:ok:{number}", f"vf:no:{number}"):
        await firm_press(bot, data)
    stale = guide.message("firm_notice_stale", company_rut_plain=RUT, company_rut=SHOWN)
    assert [a["text"] for a in answers(bot)] == [stale] * 2
    assert all(a["show_alert"] for a in answers(bot))
    assert calls(bot, "editMessageText") == []
    authorization = await bot.repository.authorizations.authorization(RUT)
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
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.verified_by == "@contadora"
    verified = guide.message("firm_verified", actor="@contadora", when="24-11-2026 13:00")
    new_edits = [e for e in calls(bot, "editMessageText") if e.text.endswith(f"\n\n{verified}")]
    assert {e.params["chat_id"] for e in new_edits} == {FIRM_CHAT, FIRM_MEMBER}
    assert len(new_edits) == 2
    kinds = [e.kind for e in await bot.repository.authorizations.events(RUT)]
    assert kinds[-4:] == ["step", "step", "completed", "verified"]
    assert kinds.count("rejected") == 1


async def test_not_found_for_a_client_who_blocked_the_bot(bot: Harness) -> None:
    guide = bot.deps.guide
    number = await complete(bot)
    bot.request.clear()
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was blocked by the user"))
    await firm_press(bot, f"vf:no:{number}")
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 3
    error = guide.message("error")
    assert error not in bot.texts(FIRM_CHAT) + bot.texts(FIRM_MEMBER)
    assert authorization.blocked_at == bot.clock.now()
    # The firm is told the client could not be reached.
    unreached = guide.message(
        "firm_rejected_unreached", actor="@contadora", when="24-11-2026 12:00"
    )
    edits = calls(bot, "editMessageText")
    assert {e.params["chat_id"] for e in edits} == {FIRM_CHAT, FIRM_MEMBER}
    assert all(e.text.endswith(f"\n\n{unreached}") for e in edits)


async def test_a_reopened_authorization_is_reminded_again(bot: Harness) -> None:
    number = await complete(bot)
    await firm_press(bot, f"vf:no:{number}")
    due = bot.clock.now() + bot.settings.reminder_schedule[0]
    assert bot.db_rows("SELECT chat_id, company_rut, due_at FROM reminders") == [
        (CLIENT, RUT, due.timestamp())
    ]


async def test_verify_buttons_for_unknown_completions(bot: Harness) -> None:
    guide = bot.deps.guide
    await complete(bot)
    first_event = bot.db_rows("SELECT MIN(id) FROM events")[0][0]
    bot.request.clear()
    for data in ("vf:ok:999999", f"vf:ok:{first_event}", "vf:no:0"):
        await firm_press(bot, data)
    assert [a.get("show_alert") for a in answers(bot)] == [True] * 3
    # None of them is a completion: no company to name.
    stale = guide.message("firm_notice_stale", company_rut_plain="", company_rut="")
    assert [a["text"] for a in answers(bot)] == [stale] * 3
    assert calls(bot, "editMessageText") == []
    authorization = await bot.repository.authorizations.authorization(RUT)
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
    # Clients' commands only in private chats: in a group they would do nothing.
    assert menus[0].params["scope"] == {"type": "all_private_chats"}
    assert [c["command"] for c in menus[0].params["commands"]] == client
    assert not set(firm) & set(client)
    # The firm's group gets the firm's commands alone; a firm member's private chat, both.
    expected = {FIRM_CHAT: firm, FIRM_MEMBER: client + firm}
    for menu, chat in zip(menus[1:], (FIRM_CHAT, FIRM_MEMBER), strict=True):
        assert menu.params["scope"] == {"type": "chat", "chat_id": chat}
        assert [c["command"] for c in menu.params["commands"]] == expected[chat]
        assert all(c["description"] for c in menu.params["commands"])


async def test_command_menus_refused_is_only_a_warning(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.request.clear()
    bot.request.fail_next("setMyCommands", BadRequest("Bad Request: chat not found"))
    with caplog.at_level(logging.WARNING, logger="bot.services.menus"):
        result = await publish_command_menus(
            bot.app.bot, bot.deps.guide, bot.settings.firm_chat_ids
        )
    assert result is False
    warnings = [r for r in caplog.records if r.name == "bot.services.menus"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "command menus not set" in warnings[0].getMessage()
    assert "chat not found" in warnings[0].getMessage().lower()
