"""The firm's outbox (bot/services/notifications.py): every notice reaches every firm chat once,
in order, across Telegram outages and restarts; a chat that refuses does not hold up the others.

Driven through the real Application (tests.support.harness.Harness) and the recording fake Telegram.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.guide import keyboards
from bot.services.notifications import describe_duration
from bot.storage.records import FirmMessage
from tests.support.fake_telegram import Call, button_data
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, FakeClock, Harness, make_settings

FIRM_CHATS = (FIRM_CHAT, FIRM_MEMBER)


async def queue(bot: Harness, *texts: str, chats: tuple[int, ...] = FIRM_CHATS) -> None:
    """Put firm messages in the outbox as the flows do, without delivering them."""
    messages = [FirmMessage(chat, text) for text in texts for chat in chats]
    await bot.repository.outbox.queue_firm_messages(messages, bot.clock.now())


def unsent(bot: Harness) -> list[tuple[int, str]]:
    return bot.db_rows("SELECT chat_id, text FROM outbox WHERE sent_at IS NULL ORDER BY id")


def firm_sends(bot: Harness) -> list[Call]:
    """What the bot sent to the firm's chats, in order."""
    return [
        call
        for call in bot.request.calls
        if call.method in ("sendMessage", "sendPhoto") and int(call.params["chat_id"]) in FIRM_CHATS
    ]


@pytest.mark.parametrize(
    ("duration", "said"),
    [
        (timedelta(0), "1 min"),
        (timedelta(minutes=12, seconds=20), "12 min"),
        (timedelta(minutes=59), "59 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=2, minutes=5), "2 h 5 min"),
        (timedelta(hours=47, minutes=59), "47 h 59 min"),
        (timedelta(days=3, hours=5), "3 días"),
    ],
)
def test_durations_are_said_in_short_spanish(duration: timedelta, said: str) -> None:
    assert describe_duration(duration) == said


async def test_a_completion_notice_reaches_each_firm_chat_once_with_its_buttons(
    bot: Harness,
) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    [completion] = [
        row[0] for row in bot.db_rows("SELECT DISTINCT ref FROM outbox WHERE ref IS NOT NULL")
    ]
    sends = firm_sends(bot)
    assert [int(call.params["chat_id"]) for call in sends] == list(FIRM_CHATS)
    verify = button_data(sends[0])
    assert verify == [
        button.callback_data
        for row in keyboards.firm_verification(bot.deps.guide, completion).inline_keyboard
        for button in row
    ]
    assert unsent(bot) == []
    # Each delivered notice keeps the message id Telegram gave it (edited later by /verificar).
    ids = bot.db_rows("SELECT message_id FROM outbox WHERE ref = ? ORDER BY id", (completion,))
    assert all(message_id is not None for (message_id,) in ids)

    # Delivering again sends nothing: each notice goes out once.
    assert await bot.deps.notifier.deliver_pending(bot.app.bot) == 0
    await bot.run_jobs("firm-outbox")
    assert firm_sends(bot) == sends
    assert bot.texts(CLIENT)[-1] == bot.deps.guide.message("done", company_rut="76.086.428-5")


async def test_notices_go_out_in_the_order_they_were_queued(bot: Harness) -> None:
    await queue(bot, "primero", "segundo", "tercero")
    assert await bot.deps.notifier.deliver_pending(bot.app.bot) == 6
    for chat in FIRM_CHATS:
        assert bot.texts(chat) == ["primero", "segundo", "tercero"]


async def test_an_outage_stops_delivery_in_order_and_the_retry_job_sends_the_rest(
    bot: Harness,
) -> None:
    await queue(bot, "uno", "dos")
    bot.request.fail_next("sendMessage", NetworkError("connection reset"))
    # The first message cannot go out: nothing after it is sent ahead of it.
    assert await bot.deps.notifier.deliver_pending(bot.app.bot) == 0
    assert firm_sends(bot) == []
    assert len(unsent(bot)) == 4
    # Telegram answers again: the periodic job delivers all of it, in order, once.
    await bot.run_jobs("firm-outbox")
    assert unsent(bot) == []
    for chat in FIRM_CHATS:
        assert bot.texts(chat) == ["uno", "dos"]
    await bot.run_jobs("firm-outbox")
    assert len(firm_sends(bot)) == 4


async def test_a_chat_that_refuses_does_not_hold_up_the_others(bot: Harness) -> None:
    await queue(bot, "aviso")
    bot.request.fail_next("sendMessage", Forbidden("Forbidden: bot was kicked from the group"))
    assert await bot.deps.notifier.deliver_pending(bot.app.bot) == 1
    assert bot.texts(FIRM_CHAT) == []
    assert bot.texts(FIRM_MEMBER) == ["aviso"]
    # The refused one is tried again later, and counted.
    assert bot.db_rows("SELECT chat_id, attempts FROM outbox WHERE sent_at IS NULL") == [
        (FIRM_CHAT, 1)
    ]
    await bot.run_jobs("firm-outbox")
    assert bot.texts(FIRM_CHAT) == ["aviso"]
    assert bot.texts(FIRM_MEMBER) == ["aviso"]


async def test_a_notice_queued_before_a_crash_is_delivered_by_the_next_process(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path)
    first = await Harness(settings, clock).boot()
    await queue(first, "pendiente")
    await first.abandon()  # killed before delivering it

    second = await Harness(settings, clock).boot()
    try:
        await second.run_jobs("firm-outbox")
        for chat in FIRM_CHATS:
            assert second.texts(chat) == ["pendiente"]
        assert unsent(second) == []
    finally:
        await second.close()


async def test_a_photo_notice_is_sent_as_a_photo_with_its_text_as_caption(bot: Harness) -> None:
    await bot.repository.outbox.queue_firm_messages(
        [FirmMessage(FIRM_CHAT, "captura", photo_file_id="ph-proof")], bot.clock.now()
    )
    await bot.deps.notifier.deliver_pending(bot.app.bot)
    [call] = firm_sends(bot)
    assert call.method == "sendPhoto"
    assert call.params["photo"] == "ph-proof" and call.params["caption"] == "captura"


async def test_annotating_a_completion_edits_every_delivered_notice_and_drops_its_buttons(
    bot: Harness,
) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    [(completion,)] = bot.db_rows("SELECT DISTINCT ref FROM outbox WHERE ref IS NOT NULL")
    notices = bot.db_rows(
        "SELECT chat_id, message_id, text FROM outbox WHERE ref = ? ORDER BY id", (completion,)
    )
    bot.request.clear()
    # One chat already shows the line (Telegram: "not modified"): the other is still edited.
    bot.request.fail_next("editMessageText", BadRequest("Message is not modified"))
    await bot.deps.notifier.annotate(bot.app.bot, completion, "✅ verificado")
    [edit] = [call for call in bot.request.calls if call.method == "editMessageText"]
    chat_id, message_id, text = notices[1]
    assert int(edit.params["chat_id"]) == chat_id
    assert int(edit.params["message_id"]) == message_id
    assert edit.params["text"] == f"{text}\n\n✅ verificado"
    assert "reply_markup" not in edit.params or not edit.params["reply_markup"]
