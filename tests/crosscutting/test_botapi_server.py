"""The Bot API emulator (tests/botapi) speaks real Bot API to python-telegram-bot."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from telegram import Bot, BotCommand, BotCommandScopeChat, InlineKeyboardButton, Update
from telegram import InlineKeyboardMarkup as Keyboard
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.botapi import BotApiServer, BotApiTimeout

USER = 4242
OTHER = 5151

# A minimal polling bot configured like `python -m bot` (TELEGRAM_API_URL, TELEGRAM_BOT_TOKEN).
ECHO_BOT = """
import os
from datetime import timedelta
from telegram.ext import Application, MessageHandler, filters

async def echo(update, context):
    await update.effective_message.reply_text("echo: " + update.effective_message.text)

app = (
    Application.builder()
    .token(os.environ["TELEGRAM_BOT_TOKEN"])
    .base_url(os.environ["TELEGRAM_API_URL"] + "/bot")
    .build()
)
app.add_handler(MessageHandler(filters.TEXT, echo))
app.run_polling(timeout=timedelta(seconds=5))
"""


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    with BotApiServer() as running:
        yield running


@pytest.fixture
async def bot(server: BotApiServer) -> AsyncIterator[Bot]:
    async with Bot(
        server.token, base_url=server.base_url, base_file_url=server.base_file_url
    ) as client:
        yield client


def keyboard(*data: str) -> Keyboard:
    return Keyboard([[InlineKeyboardButton(d.title(), callback_data=d) for d in data]])


def retry_seconds(error: RetryAfter) -> float:
    value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def test_get_me_send_edit_and_answer(server: BotApiServer, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.username, me.is_bot, me.id) == ("sii_test_bot", True, server.bot_id)

    server.send_text(USER, "hola", first_name="Ana", username="ana")
    sent = await bot.send_message(USER, "Elige", reply_markup=keyboard("yes", "no"))
    assert sent.message_id == 2  # the user's message was 1: ids are per chat, shared
    assert sent.chat.first_name == "Ana"
    assert sent.from_user is not None and sent.from_user.username == "sii_test_bot"
    assert sent.reply_markup is not None
    assert server.button_data(server.messages_to(USER)[0]) == ["yes", "no"]

    edited = await bot.edit_message_text("Elegiste", USER, sent.message_id)
    assert edited is not True and edited.text == "Elegiste" and edited.reply_markup is None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Elegiste", USER, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", USER, 999)
    markup = await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=keyboard("ok"))
    assert markup is not True and markup.reply_markup == keyboard("ok")
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=keyboard("ok"))

    history = server.messages_to(USER)
    assert [(m["_method"], m["text"]) for m in history] == [
        ("sendMessage", "Elige"),
        ("editMessageText", "Elegiste"),
        ("editMessageReplyMarkup", "Elegiste"),
    ]
    assert {m["message_id"] for m in history} == {sent.message_id}

    update_id = server.press_button(USER, sent.message_id, "ok")
    with pytest.raises(ValueError, match=r"(?i)no button"):
        server.press_button(USER, sent.message_id, "yes")  # no longer shown
    (update,) = await bot.get_updates(offset=update_id)
    query = update.callback_query
    assert query is not None and update.update_id == update_id
    assert query.data == "ok" and query.from_user.id == USER and query.chat_instance
    assert query.message is not None and query.message.text == "Elegiste"
    assert await bot.answer_callback_query(query.id, text="Listo") is True
    assert server.callback_answers()[0]["text"] == "Listo"
    with pytest.raises(BadRequest, match=r"(?i)query ID is invalid"):
        await bot.answer_callback_query(query.id)

    await bot.send_chat_action(USER, "typing")
    scope = BotCommandScopeChat(USER)
    await bot.set_my_commands([BotCommand("start", "Empezar")])
    await bot.set_my_commands([BotCommand("estado", "Ver estado")], scope=scope)
    assert [c.command for c in await bot.get_my_commands(scope=scope)] == ["estado"]
    assert server.my_commands() == [{"command": "start", "description": "Empezar"}]
    assert [c["params"].get("scope") for c in server.calls("setMyCommands")] == [
        None,
        {"type": "chat", "chat_id": USER},
    ]
    assert await bot.delete_my_commands(scope=scope) is True
    assert await bot.get_my_commands(scope=scope) == ()


async def test_html_is_stored_as_telegram_stores_it(server: BotApiServer, bot: Bot) -> None:
    sent = await bot.send_message(USER, "<b>RUT</b> 1 &lt; 2", parse_mode="HTML")
    assert sent.text == "RUT 1 < 2"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 3)]
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER, "a <b>b", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)Unsupported start tag"):
        await bot.send_message(USER, "1 <br> 2", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)reserved"):
        await bot.send_message(USER, "Fin.", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=keyboard("d" * 65))
    assert server.texts_to(USER) == ["RUT 1 < 2"]


async def test_get_updates_offset_acknowledges_for_good(server: BotApiServer, bot: Bot) -> None:
    ids = [server.send_text(USER, f"m{i}") for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3

    first = await bot.get_updates(timeout=0)
    again = await bot.get_updates(timeout=0)  # nothing confirmed yet: delivered again
    assert [u.update_id for u in first] == [u.update_id for u in again] == ids
    assert server.delivery_count(ids[0]) == 2
    assert server.acknowledged_update_ids == []

    rest = await bot.get_updates(offset=ids[1], timeout=0, limit=1)
    assert [u.update_id for u in rest] == [ids[1]]
    assert server.acknowledged_update_ids == [ids[0]]
    assert [u["update_id"] for u in server.pending_updates()] == ids[1:]
    assert [u.update_id for u in await bot.get_updates(offset=ids[0])] == ids[1:]  # gone

    await bot.get_updates(offset=ids[2] + 1, timeout=0)
    assert server.acknowledged_update_ids == ids and server.pending_updates() == []
    server.wait_acknowledged(ids[2], timeout=0.1)
    with pytest.raises(BotApiTimeout):
        server.wait_acknowledged(ids[2] + 1, timeout=0.1)

    # Long polling: honours timeout when idle, returns as soon as an update arrives.
    started = time.monotonic()
    assert await bot.get_updates(offset=ids[2] + 1, timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3

    async def user_writes_soon() -> int:
        await server.wait_until_polling_async(timeout=5)
        return server.send_text(USER, "late")

    started = time.monotonic()
    writer = asyncio.create_task(user_writes_soon())
    polled = await bot.get_updates(offset=ids[2] + 1, timeout=10)
    assert time.monotonic() - started < 3
    assert [u.update_id for u in polled] == [await writer]
    assert polled[0].message is not None and polled[0].message.text == "late"

    server.send_text(USER, "dropped")
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert server.pending_updates() == [] and len(server.dropped_update_ids) == 2


async def test_newer_poll_ends_older_one_with_conflict(server: BotApiServer) -> None:
    """What a restarted bot causes: its killed predecessor's poll ends with 409."""
    update_id = server.send_text(USER, "/start")
    async with Bot(server.token, base_url=server.base_url) as first:
        (update,) = await first.get_updates(timeout=0)  # delivered, then "SIGKILL"
        assert update.message is not None and update.message.text == "/start"
        assert update.message.entities[0].type == "bot_command"
        server.send_text(USER, "x")
        await first.get_updates(offset=update_id + 2, timeout=0)  # confirm both
        waiting = asyncio.create_task(first.get_updates(offset=update_id + 2, timeout=10))
        await server.wait_until_polling_async(timeout=5)
        async with Bot(server.token, base_url=server.base_url) as second:
            second_poll = asyncio.create_task(second.get_updates(timeout=2))
            with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates"):
                await waiting
            server.send_text(USER, "after restart")
            (fresh,) = await second_poll
            assert fresh.message is not None and fresh.message.text == "after restart"


async def test_application_long_polling_end_to_end(server: BotApiServer) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            f"echo: {update.effective_message.text}",
            reply_markup=keyboard("again", "stop"),
            do_quote=True,
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"got {query.data}")
        await query.edit_message_text(f"pressed {query.data}")

    app = Application.builder().token(server.token).base_url(server.base_url).build()
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            sent_id = server.send_text(USER, "hola")
            other_id = server.send_text(OTHER, "buenas")
            reply = await server.wait_for_async("echo: hola", USER, timeout=5)
            await server.wait_for_async("echo: buenas", OTHER, timeout=5)
            assert reply["reply_to_message"]["message_id"] == 1
            assert server.button_data(reply) == ["again", "stop"]

            mark = server.mark(USER)
            press_id = server.press_button(USER, reply["message_id"], "stop")
            edited = await server.wait_for_async("pressed", USER, after=mark, timeout=5)
            assert edited["_method"] == "editMessageText"
            assert edited["message_id"] == reply["message_id"]
            assert "reply_markup" not in edited
            call = await server.wait_for_call_async("answerCallbackQuery", timeout=5)
            assert call["params"]["text"] == "got stop" and call["status"] == 200
            await server.wait_acknowledged_async(press_id, timeout=5)
            assert {sent_id, other_id} <= set(server.acknowledged_update_ids)
        finally:
            await app.updater.stop()
            await app.stop()
    assert server.texts_to(USER) == ["echo: hola", "pressed stop"]
    assert server.pending_updates() == []


async def test_send_document_and_files_round_trip(server: BotApiServer, bot: Bot) -> None:
    payload = b"rut;estado\n13322924-8;autorizado\n" + bytes(range(256))
    sent = await bot.send_document(
        USER,
        document=payload,
        filename="informe ñ.csv",
        caption="<i>Informe</i>",
        parse_mode="HTML",
    )
    assert sent.document is not None and sent.document.file_name == "informe ñ.csv"
    assert sent.document.file_size == len(payload) and sent.caption == "Informe"
    (upload,) = server.uploads(USER)
    assert upload["content"] == payload and upload["caption"] == "Informe"
    assert upload["filename"] == "informe ñ.csv" and upload["message_id"] == sent.message_id
    assert server.calls("sendDocument")[0]["files"]["document"]["size"] == len(payload)

    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == payload
    resent = await bot.send_document(OTHER, document=sent.document.file_id)
    assert resent.document is not None and resent.document.file_id == sent.document.file_id

    photo = await bot.send_photo(USER, photo=b"\x89PNG fake", caption="foto")
    assert photo.photo and photo.caption == "foto"
    assert [u["method"] for u in server.uploads(USER)] == ["sendDocument", "sendPhoto"]

    server.send_photo(USER, caption="mi carnet", content=b"user photo bytes")
    server.send_sticker(USER)
    server.send_voice(USER)
    updates = await bot.get_updates(timeout=0)
    messages = [u.message for u in updates if u.message is not None]
    assert [bool(m.photo) for m in messages] == [True, False, False]
    assert messages[0].caption == "mi carnet"
    assert messages[1].sticker is not None and messages[2].voice is not None
    user_photo = await bot.get_file(messages[0].photo[-1].file_id)
    assert bytes(await user_photo.download_as_bytearray()) == b"user photo bytes"


# PTB 22 warns (from inside RetryAfter too) that retry_after will become a timedelta.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_fault_injection(server: BotApiServer, bot: Bot) -> None:
    server.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(USER, "uno")
    assert retry_seconds(flood.value) == 7
    assert server.messages_to(USER) == []  # the refused call had no effect
    assert server.calls("sendMessage")[0]["response"]["parameters"] == {"retry_after": 7}
    assert (await bot.send_message(USER, "uno")).text == "uno"  # only the next call failed

    server.fail_next("sendMessage", 400, "Bad Request: chat not found", count=2)
    for _ in range(2):
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(USER, "dos")
    server.fail_next("editMessageText", 502, after_effect=True)
    with pytest.raises(NetworkError):
        await bot.edit_message_text("editado", USER, 1)
    assert server.texts_to(USER) == ["uno", "editado"]  # edited, but the bot got a 502

    server.drop_next("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(USER, "perdido")
    assert server.texts_to(USER)[-1] == "perdido"  # delivered, response lost

    server.block_chat(USER, notify=True)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(USER, "tres")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(USER, "typing")
    assert (await bot.send_message(OTHER, "otro chat")).text == "otro chat"
    (update,) = await bot.get_updates(timeout=0)
    assert update.my_chat_member is not None
    assert update.my_chat_member.new_chat_member.status == "kicked"
    server.unblock_chat(USER)
    assert (await bot.send_message(USER, "tres")).text == "tres"


async def test_unknown_token_unknown_method_and_request_encodings(server: BotApiServer) -> None:
    stranger = Bot("987654321:not-the-token", base_url=server.base_url)
    try:
        with pytest.raises(InvalidToken, match="rejected by the server"):
            await stranger.initialize()
    finally:
        await stranger.shutdown()
    async with httpx.AsyncClient(base_url=f"{server.url}/bot{server.token}") as client:
        response = await client.post(f"{server.url}/bot1:nope/getMe")
        assert response.status_code == 401
        assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        response = await client.post("/frobnicate")
        assert (response.status_code, response.json()["description"]) == (404, "Not Found")

        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        as_json = await client.post("/sendMessage", json={"chat_id": USER, "text": "json"})
        as_form = await client.post(
            "/sendmessage", data={"chat_id": str(USER), "text": "form", "reply_markup": str(markup)}
        )
        assert as_form.status_code == 400  # not JSON: Telegram refuses it too
        as_form = await client.post(
            "/sendMessage",
            data={"chat_id": str(USER), "text": "form", "reply_markup": json.dumps(markup)},
        )
        as_query = await client.get("/sendMessage", params={"chat_id": USER, "text": "query"})
        multipart = await client.post(
            "/sendDocument",
            data={"chat_id": str(USER), "caption": "multi"},
            files={"document": ("a.txt", b"abc", "text/plain")},
        )
        for response in (as_json, as_form, as_query, multipart):
            assert response.status_code == 200 and response.json()["ok"] is True
        assert as_form.json()["result"]["reply_markup"] == markup
        assert multipart.json()["result"]["document"]["mime_type"] == "text/plain"
        missing = await client.post("/sendMessage", json={"chat_id": USER})
        assert missing.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: message text is empty",
        }
    assert server.texts_to(USER) == ["json", "form", "query", "multi"]


def test_waiting_helpers_from_sync_code(server: BotApiServer) -> None:
    client = httpx.Client(base_url=f"{server.url}/bot{server.token}")

    def bot_answers_later() -> None:
        time.sleep(0.2)
        client.post("/sendMessage", json={"chat_id": USER, "text": "primero"})
        client.post("/sendMessage", json={"chat_id": USER, "text": "segundo"})

    mark = server.mark(USER)
    worker = threading.Thread(target=bot_answers_later)
    worker.start()
    try:
        first = server.wait_for(lambda m: m["text"].startswith("pri"), USER, timeout=5)
        assert first["_seq"] > mark
        second = server.wait_for(None, USER, after=first["_seq"], timeout=5)
        assert second["text"] == "segundo"
        with pytest.raises(BotApiTimeout, match=r"(?i)primero"):
            server.wait_for("tercero", USER, timeout=0.2)
        late = server.mark(USER)
        with pytest.raises(BotApiTimeout):
            server.wait_for("primero", USER, after=late, timeout=0.1)
        assert server.wait_for_call("sendMessage", after=1, timeout=1)["params"]["text"] == (
            "segundo"
        )
    finally:
        worker.join(timeout=5)
        client.close()


def test_sigkilled_bot_process_gets_unconfirmed_updates_again(
    server: BotApiServer, tmp_path: pathlib.Path
) -> None:
    env = {**os.environ, **server.bot_env()}
    with (tmp_path / "bot.log").open("wb") as log:

        def start_bot() -> subprocess.Popen[bytes]:
            command = [sys.executable, "-c", ECHO_BOT]
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

        process = start_bot()
        try:
            server.wait_until_polling(timeout=15)
            # From now on every getUpdates fails before taking effect: nothing gets confirmed.
            server.fail_next("getUpdates", 502, count=1000)
            first = server.send_text(USER, "uno")  # answers the poll already waiting
            server.wait_for("echo: uno", USER, timeout=10)
            process.kill()
            process.wait(timeout=5)
            assert first not in server.acknowledged_update_ids
            server.clear_faults()

            second = server.send_text(USER, "dos")  # while the bot is down
            mark = server.mark()
            process = start_bot()
            server.wait_for("echo: dos", USER, after=mark, timeout=15)
            server.wait_acknowledged(second, timeout=10)
            assert server.texts_to(USER) == ["echo: uno", "echo: uno", "echo: dos"]
            assert server.delivery_count(first) == 2
            assert server.acknowledged_update_ids == [first, second]
        finally:
            process.kill()
            process.wait(timeout=5)
