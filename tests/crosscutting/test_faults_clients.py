"""Faults around what clients send and what is kept of them: Telegram's UTF-16 limits on
relayed texts and captions, deletion by every identity a client had, RUTs pasted with
invisible marks, and a screenshot sent as a file.

Telegram is the recording fake refusing, as Telegram does, texts over 4,096 and captions
over 1,024 UTF-16 code units (after HTML parsing).
"""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.rut import parse_rut
from bot.domain.settings import Settings
from bot.services.digest import LAST_DIGEST_KEY
from bot.services.notifications import problem_report
from bot.services.screenshot_reader import ScreenshotReader
from bot.storage.repository import ClientInfo
from conversations.client.problems import cut_to, fit
from tests.support.fake_telegram import message_update
from tests.support.faulty_telegram import FaultyHarness, FaultyTelegram, visible_units
from tests.support.harness import (
    CLIENT,
    FIRM_CHAT,
    FIRM_MEMBER,
    JUANA,
    RUT,
    SHOWN,
    FakeClock,
    handoff_ids,
    new_texts,
    traces,
)

RUT_B = "11111111-1"
SHOWN_B = "11.111.111-1"
OTHER = 777_002
FIRM_USER = 5150
FIRM_CHATS = (FIRM_CHAT, FIRM_MEMBER)
PEDRO: dict[str, Any] = {"first_name": "Pedro", "username": "pedro_b"}
EMOJI = "😀"  # two UTF-16 code units, one Python character


@pytest.fixture
async def bot(settings: Settings, clock: FakeClock) -> AsyncIterator[FaultyHarness]:
    """A booted bot whose fake Telegram enforces Telegram's length limits."""
    harness = await FaultyHarness(settings, clock, FaultyTelegram(check_lengths=True)).boot()
    yield harness
    await harness.close()


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
async def unread(
    tmp_path: Path, settings: Settings, clock: FakeClock
) -> AsyncIterator[FaultyHarness]:
    """The same bot without the screenshot reader (no Tesseract on the machine)."""
    reader = ScreenshotReader(program=str(tmp_path / "no-tesseract"))
    harness = FaultyHarness(settings, clock, FaultyTelegram(check_lengths=True), reader=reader)
    await harness.boot()
    yield harness
    await harness.close()


def new_calls(bot: FaultyHarness, mark: int, chat: int) -> list[Any]:
    return [
        call
        for call in bot.request.calls[mark:]
        if call.method in ("sendMessage", "sendPhoto") and int(call.params["chat_id"]) == chat
    ]


async def open_handoff(bot: FaultyHarness, step: int = 2) -> None:
    """Juana, at `step`, describes her problem to the firm in her own words."""
    await bot.reach_step(step, rut=SHOWN)
    await bot.press(f"pb:{step}", **JUANA)
    await bot.press(f"pb:{step}:other", **JUANA)


async def firm_reply(bot: FaultyHarness, text: str, reply_to: int) -> None:
    await bot.feed(
        message_update(
            FIRM_USER,
            text,
            chat_id=FIRM_CHAT,
            chat_type="group",
            first_name="Ana",
            reply_to=reply_to,
        )
    )


def photo_update(caption: str, **sender: Any) -> dict[str, Any]:
    raw = message_update(CLIENT, caption, kind="photo", **sender)
    raw["message"]["photo"] = [
        {"file_id": "ph-large", "file_unique_id": "u3", "width": 1280, "height": 853}
    ]
    return raw


def document_update(name: str, mime_type: str | None, file_id: str = "doc-proof") -> dict[str, Any]:
    raw = message_update(CLIENT, kind="document", **JUANA)
    document: dict[str, Any] = {"file_id": file_id, "file_unique_id": "d-u1", "file_name": name}
    if mime_type is not None:
        document["mime_type"] = mime_type
    raw["message"]["document"] = document
    return raw


# --- 5. Telegram counts UTF-16 code units ---------------------------------------------------


async def test_a_client_text_of_emoji_reaches_the_firm_shortened_and_the_client_is_told(
    bot: FaultyHarness,
) -> None:
    await open_handoff(bot)
    # 2,040 emoji: 4,080 code units, as much as a client can send; the firm's label adds more.
    text = EMOJI * 2040
    mark = len(bot.request.calls)
    await bot.say(text, **JUANA)
    for chat in FIRM_CHATS:
        [relayed] = new_texts(bot, mark, chat)
        assert visible_units(relayed) <= 4096
        assert EMOJI * 1700 in relayed and relayed.endswith("…" + relayed.split("…")[-1])
    assert bot.request.refused == []
    assert new_texts(bot, mark, CLIENT) == [bot.deps.guide.message("client_message_shortened")]


async def test_the_client_hears_se_lo_pase_only_once_the_firm_has_it(bot: FaultyHarness) -> None:
    guide = bot.deps.guide
    await open_handoff(bot)
    mark = len(bot.request.calls)
    bot.request.answer_error("sendMessage", 502, "Bad Gateway", chat_id=FIRM_CHAT)
    await bot.say("Me sale error 39", **JUANA)
    assert new_texts(bot, mark, FIRM_CHAT) == []
    assert new_texts(bot, mark, CLIENT) == [guide.message("client_message_pending")]
    # The outbox delivers it as soon as Telegram takes it again.
    await bot.run_jobs("firm-outbox")
    for chat in FIRM_CHATS:
        assert len(new_texts(bot, mark, chat)) == 1
    mark = len(bot.request.calls)
    await bot.say("Sigue igual", **JUANA)
    assert new_texts(bot, mark, CLIENT) == [guide.message("client_message_forwarded")]


async def test_a_firm_reply_of_emoji_reaches_the_client_shortened_and_the_firm_is_told(
    bot: FaultyHarness,
) -> None:
    await open_handoff(bot)
    [report] = handoff_ids(bot, FIRM_CHAT)
    mark = len(bot.request.calls)
    await firm_reply(bot, EMOJI * 2040, report)
    [relayed] = new_texts(bot, mark, CLIENT)
    assert visible_units(relayed) <= 4096 and EMOJI * 1700 in relayed
    assert new_texts(bot, mark, FIRM_CHAT) == [bot.deps.guide.message("firm_reply_shortened")]
    assert bot.request.refused == []


@pytest.mark.parametrize(
    ("text", "units", "kept"),
    [
        (EMOJI * 3, 5, EMOJI * 2),  # never half an emoji
        ("ab👩\u200d💻cd", 4, "ab"),  # nor part of an emoji sequence
        ("cafe\u0301s", 4, "caf"),  # nor a letter without its accent
        ("abc", 9, "abc"),
    ],
)
def test_a_cut_keeps_whole_characters(text: str, units: int, kept: str) -> None:
    assert cut_to(text, units) == kept


def test_a_fitted_text_counts_the_label_in_utf16_units() -> None:
    fitted = fit(EMOJI * 3000, lambda text: f"<b>Ñandú 🐦</b>: {text}", 4096, 5000)
    assert fitted.shortened and fitted.kept.endswith("…")
    assert 4094 <= visible_units(fitted.rendered) <= 4096
    # Within `longest`, the label decides nothing.
    shorter = fit(EMOJI * 3000, lambda text: f"<b>x</b> {text}", 4096, 3596)
    assert visible_units(shorter.rendered) == len("x ") + 3596 + len("…")
    assert fit("hola", lambda text: f"<b>x</b> {text}", 4096, 4000) == (
        "hola",
        "<b>x</b> hola",
        False,
    )


async def test_a_short_firm_reply_is_relayed_whole(bot: FaultyHarness) -> None:
    await open_handoff(bot)
    [report] = handoff_ids(bot, FIRM_CHAT)
    mark = len(bot.request.calls)
    await firm_reply(bot, EMOJI * 100 + " listo", report)
    assert new_texts(bot, mark, CLIENT) == [
        bot.deps.guide.message("client_firm_message", text=EMOJI * 100 + " listo")
    ]
    assert new_texts(bot, mark, FIRM_CHAT) == [bot.deps.guide.message("firm_reply_sent")]


async def test_a_photo_caption_is_measured_in_utf16_and_fits_the_firms_caption(
    bot: FaultyHarness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2, rut=SHOWN)
    # A name of 64 + 64 emoji (Telegram's longest) and a caption of 300 more.
    name = {"first_name": EMOJI * 64, "username": "juana_pyme"}
    raw = photo_update("𝐄𝐫𝐫𝐨𝐫 " + EMOJI * 294, **name)
    raw["message"]["from"]["last_name"] = EMOJI * 64
    client = ClientInfo(CLIENT, CLIENT, f"{EMOJI * 64} {EMOJI * 64}", "juana_pyme")
    caption = raw["message"]["caption"]
    problem = f"{guide.message('problem_photo')}: «{caption}»"
    assert visible_units(problem_report(guide, problem, RUT, client, 2)) > 1024  # precondition
    mark = len(bot.request.calls)
    await bot.feed(raw)
    for chat in FIRM_CHATS:
        [call] = new_calls(bot, mark, chat)
        assert call.method == "sendPhoto"
        assert visible_units(call.text) <= 1024 and "𝐄𝐫𝐫𝐨𝐫" in call.text
    assert bot.request.refused == []
    promise = bot.deps.guide.reply_promise(
        bot.clock.now(), bot.settings.firm_hours, bot.settings.timezone
    )
    told = new_texts(bot, mark, CLIENT)[0]
    assert told == guide.message("photo_caption_shortened", {"reply_when": promise})


# --- 6. deletion leaves nothing that names the client ---------------------------------------


async def complete(bot: FaultyHarness, user: int, who: dict[str, Any], shown: str) -> None:
    await bot.reach_step(7, user=user, rut=shown, **who)
    await bot.press("g:7:yes", user=user, **who)


async def delete_data(bot: FaultyHarness, user: int = CLIENT, **who: Any) -> None:
    await bot.say("/borrar_mis_datos", user=user, **(who or JUANA))
    await bot.press("del:yes", user=user, **(who or JUANA))


async def test_deleting_removes_an_earlier_completion_notice_of_a_company_another_chat_took(
    bot: FaultyHarness,
) -> None:
    await complete(bot, CLIENT, JUANA, SHOWN)
    assert traces(bot, "Juana")  # the firm's notice names her
    # Pedro, from another chat, does the same company again.
    await bot.say("/start", user=OTHER, **PEDRO)
    await bot.say(SHOWN, user=OTHER, **PEDRO)
    await bot.press("rut:ok", user=OTHER, **PEDRO)
    await bot.press("rep:yes", user=OTHER, **PEDRO)
    await bot.steps_from(1, 3, user=OTHER, **PEDRO)
    pedro = bot.db_rows("SELECT * FROM authorizations")
    assert pedro[0][1] == OTHER

    await delete_data(bot)
    assert traces(bot, "Juana", "juana_pyme", str(CLIENT)) == []
    # Pedro's work on the company is untouched.
    assert bot.db_rows("SELECT * FROM authorizations") == pedro
    assert bot.db_rows("SELECT state, company_rut FROM conversations") == [("guide", RUT)]
    await bot.press("g:3:next", user=OTHER, **PEDRO)
    assert bot.last_text(OTHER) == bot.deps.guide.step(4, RUT)


async def queue_digest(bot: FaultyHarness) -> list[int]:
    """Queue the firm's daily digest now; return its outbox ids."""
    await bot.repository.bookkeeping.set_meta(
        LAST_DIGEST_KEY, (bot.clock.now() - timedelta(days=2)).isoformat()
    )
    before = {row[0] for row in bot.db_rows("SELECT id FROM outbox")}
    await bot.run_jobs("daily-digest")
    return sorted({row[0] for row in bot.db_rows("SELECT id FROM outbox")} - before)


async def test_deleting_blanks_the_client_in_digests_and_drops_the_removed_companys_lines(
    bot: FaultyHarness,
) -> None:
    await complete(bot, CLIENT, JUANA, SHOWN_B)  # completed: its fact stays
    await bot.reach_step(3, rut=SHOWN, **JUANA)  # unfinished: removed entirely
    await bot.reach_step(2, user=OTHER, rut="96.790.240-3", **PEDRO)
    digest = await queue_digest(bot)
    assert digest
    texts = "\n".join(
        bot.db_rows("SELECT text FROM outbox WHERE id = ?", (i,))[0][0] for i in digest
    )
    assert "Juana" in texts and SHOWN in texts and "Pedro" in texts

    await delete_data(bot)
    kept = [
        row[0]
        for row in bot.db_rows(
            f"SELECT text FROM outbox WHERE id IN ({', '.join('?' * len(digest))})",  # noqa: S608
            tuple(digest),
        )
    ]
    joined = "\n".join(kept)
    for trace in ("Juana", "juana_pyme", str(CLIENT), SHOWN, RUT):
        assert trace not in joined, trace
    # The completion fact and the other client stay in the digest.
    assert SHOWN_B in joined and "Pedro" in joined and "96.790.240-3" in joined
    assert traces(bot, "Juana", "juana_pyme", str(CLIENT)) == []


async def test_the_firms_deletion_notice_does_not_name_a_removed_company(
    bot: FaultyHarness,
) -> None:
    await bot.reach_step(3, rut=SHOWN, **JUANA)
    await delete_data(bot)
    assert traces(bot, SHOWN, RUT) == []
    assert all(SHOWN not in text for text in bot.texts(FIRM_CHAT))


async def test_deleting_with_the_clients_current_name_blanks_digests_of_a_company_taken_over(
    bot: FaultyHarness,
) -> None:
    # Juana left company A at step 3; a digest named her; then Pedro took the company over.
    await bot.reach_step(3, rut=SHOWN, **JUANA)
    digest = await queue_digest(bot)
    await bot.say("/start", user=OTHER, **PEDRO)
    await bot.say(SHOWN, user=OTHER, **PEDRO)
    await bot.press("rut:ok", user=OTHER, **PEDRO)
    assert bot.db_rows("SELECT client_name FROM authorizations") == [("Pedro",)]

    juana = ClientInfo(CLIENT, CLIENT, "Juana", "juana_pyme")
    deletion = await bot.repository.privacy.delete_client_data(
        CLIENT, bot.clock.now(), client=juana
    )
    assert (deletion.anonymized, deletion.removed) == ([], [])  # the company is Pedro's now
    assert traces(bot, "Juana", "juana_pyme", str(CLIENT)) == []
    # The company is Pedro's: its line stays, without her name.
    texts = [bot.db_rows("SELECT text FROM outbox WHERE id = ?", (i,))[0][0] for i in digest]
    assert len(texts) == len(FIRM_CHATS)
    assert all(SHOWN in text and "Juana" not in text for text in texts)


# --- 7. RUTs with invisible marks; a screenshot sent as a file ------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "\u200b76.086.428-5",  # zero-width space
        "76.086.428\u200d-5",  # zero-width joiner
        "\ufeff76086428-5",  # byte order mark
        "\u206876.086.428-5\u2069",  # first-strong isolate … pop directional isolate
        "\u200e76086428-5\u200f",  # left-to-right and right-to-left marks
        "\u202a76.086.428-5\u202c",  # left-to-right embedding … pop
        "76\u00ad086\u00ad428-5",  # soft hyphens
        "76\u2060086428-5",  # word joiner
        "RUT:\u00a0\u200b76.086.428\u20115",  # NBSP, zero-width space, non-breaking hyphen
        "76\u202f086\u202f428\u20095",  # narrow no-break and thin spaces
        "\u200c\u200b\u200d76086428-5\u200b\u200b\u200b",
    ],
)
def test_a_rut_with_invisible_marks_is_read(typed: str) -> None:
    assert parse_rut(typed) == RUT


async def test_a_pasted_rut_with_invisible_marks_is_confirmed(bot: FaultyHarness) -> None:
    await bot.say("/start", **JUANA)
    await bot.say("\u2066\u200b76.086.428-5\u200e\u2069", **JUANA)
    assert bot.last_text() == bot.deps.guide.message("rut_confirm", company_rut=SHOWN)


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [("captura.png", "image/png"), ("IMG_2041.JPG", None), ("pantalla", "image/jpeg")],
)
async def test_a_screenshot_sent_as_a_file_at_step_7_is_the_proof_when_not_read(
    unread: FaultyHarness, name: str, mime_type: str | None
) -> None:
    bot = unread
    guide = bot.deps.guide
    await bot.reach_step(7, rut=SHOWN, **JUANA)
    bot.request.files["doc-proof"] = b"\x89PNG\r\n\x1a\n a screenshot"
    mark = len(bot.request.calls)
    await bot.feed(document_update(name, mime_type))
    [echo, step] = new_calls(bot, mark, CLIENT)
    # Sent back as a photo (a document's file id cannot go out as one), with the answer.
    assert echo.method == "sendPhoto" and echo.text == guide.message("proof_received")
    assert step.text == guide.step(7, RUT)
    [(proof,)] = bot.db_rows("SELECT proof_file_id FROM authorizations")
    assert proof is not None and proof != "doc-proof"
    # The firm's completion notice goes out as that photo.
    mark = len(bot.request.calls)
    await bot.press("g:7:yes", **JUANA)
    for chat in FIRM_CHATS:
        [notice] = new_calls(bot, mark, chat)
        assert notice.method == "sendPhoto" and notice.params["photo"] == proof
    assert bot.request.refused == []


async def test_a_pdf_at_step_7_is_not_taken_as_the_proof(bot: FaultyHarness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7, rut=SHOWN, **JUANA)
    mark = len(bot.request.calls)
    await bot.feed(document_update("informe.pdf", "application/pdf"))
    assert new_texts(bot, mark, CLIENT) == [guide.message("unexpected_input"), guide.step(7, RUT)]
    assert bot.db_rows("SELECT proof_file_id FROM authorizations") == [(None,)]


async def test_a_picture_file_at_another_step_is_answered_as_other_media(
    bot: FaultyHarness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(3, rut=SHOWN, **JUANA)
    mark = len(bot.request.calls)
    await bot.feed(document_update("captura.png", "image/png"))
    assert new_texts(bot, mark, CLIENT) == [guide.message("unexpected_input"), guide.step(3, RUT)]
    assert bot.db_rows("SELECT proof_file_id FROM authorizations") == [(None,)]
