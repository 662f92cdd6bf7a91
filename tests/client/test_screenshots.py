"""The confirmation screenshot, read by the bot: it proves, it says what is missing, or it is
asked for again; never taken as proof unless everything on it matches.

Most tests give the real ScreenshotReader an OCR engine (through its constructor) that
returns the lines Tesseract would find on each SII screen, so the bot's answers are checked
exactly; the last one sends a real picture of the screen, drawn in Chromium, to Tesseract.
"""

import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.domain.settings import DEFAULT_PERMISSIONS
from bot.services.screenshot_reader import ScreenshotReader, tesseract_missing
from tests.support.confirmation_pictures import (
    Degradation,
    PictureSet,
    chromium_missing,
    suite_samples,
)
from tests.support.confirmation_pictures import Screen as Drawn
from tests.support.fake_telegram import Call, button_data, message_update
from tests.support.harness import (
    CLIENT,
    FIRM_CHAT,
    FIRM_MEMBER,
    SHOWN,
    FakeClock,
    Harness,
    completion_notice,
    make_settings,
)

FIRM_CHATS = (FIRM_CHAT, FIRM_MEMBER)
PICTURE = "shot-1"  # the file id Telegram gives the client's screenshot

# The SII's screen after «Grabar Usuario», as the firm's written guide transcribes it, for the
# company the tests' client authorizes (RUT).
SAVED = [
    "INGRESO DE USUARIOS AUTORIZADOS",
    "Se ha grabado satisfactoriamente el nuevo usuario en la empresa EMPRESA EJEMPLO SPA,",
    "Rut 76.086.428-5, con los siguientes antecedentes:",
    "Rut Usuario 13322924-8",
    "Nombre Usuario ALEX PATRICIO BRITO MARDONES",
    "Usuario-Administrador SI",
    "Firmar Documentos SI",
    "Registro SI",
    "Autorizado por JUANA PEREZ",
]
REGISTRO_NO = [line.replace("Registro SI", "Registro NO") for line in SAVED]
OTHER_USER = [line.replace("13322924-8", "12345678-5") for line in SAVED]
BEFORE_SAVING = [
    line.replace("Se ha grabado satisfactoriamente el nuevo", "Se está creando el siguiente")
    for line in SAVED
]
LOGIN_PAGE = ["IDENTIFICACIÓN DE CONTRIBUYENTES", "RUT", "Clave", "INGRESAR"]


class Engine:
    """An OCR engine that finds `lines` on whatever picture it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pictures: list[bytes] = []

    def __call__(self, image: bytes) -> Sequence[str]:
        self.pictures.append(image)
        return self.lines


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
async def bot(tmp_path: Path, clock: FakeClock, engine: Engine) -> AsyncIterator[Harness]:
    harness = Harness(make_settings(tmp_path), clock, reader=ScreenshotReader(engine))
    await harness.boot()
    yield harness
    await harness.close()


def screenshot(file_id: str = PICTURE, user: int = CLIENT) -> dict[str, Any]:
    raw = message_update(user, kind="photo")
    raw["message"]["photo"] = [
        {"file_id": f"{file_id}-small", "file_unique_id": "s", "width": 90, "height": 60},
        {"file_id": file_id, "file_unique_id": "l", "width": 1280, "height": 853},
    ]
    return raw


async def send_screenshot(bot: Harness, lines: list[str], engine: Engine) -> int:
    """The client sends a screenshot on which the OCR finds `lines`; the calls' mark before."""
    engine.lines = lines
    bot.request.files[PICTURE] = b"\xff\xd8\xff picture bytes"
    mark = len(bot.request.calls)
    await bot.feed(screenshot())
    return mark


def sent(bot: Harness, mark: int, chat: int) -> list[Call]:
    return [
        c
        for c in bot.request.calls[mark:]
        if c.method in ("sendMessage", "sendPhoto") and int(c.params["chat_id"]) == chat
    ]


def stored(bot: Harness) -> tuple[Any, ...]:
    [row] = bot.db_rows("SELECT completed_at, proof_file_id, proof_reading FROM authorizations")
    return row


async def test_the_confirmation_completes_and_the_firm_sees_what_it_proves(
    bot: Harness, engine: Engine
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    mark = await send_screenshot(bot, SAVED, engine)

    assert engine.pictures == [bot.request.files[PICTURE]]  # the picture Telegram served
    confirmed, done = sent(bot, mark, CLIENT)
    assert confirmed.text == guide.message("proof_confirmed", company_rut=SHOWN)
    assert done.text == guide.message("done", company_rut=SHOWN)
    completed_at, proof, reading = stored(bot)
    assert completed_at == bot.clock.now().timestamp() and proof == PICTURE
    record = json.loads(reading)
    assert record["verdict"] == "confirmed" and record["user_rut"] == "13322924-8"
    assert bot.db_rows("SELECT step FROM events WHERE kind = 'completed'") == [(7,)]
    for chat in FIRM_CHATS:
        [notice] = sent(bot, mark, chat)
        assert notice.method == "sendPhoto" and notice.params["photo"] == PICTURE
        capture = guide.message("firm_capture_confirmed")
        assert notice.params["caption"] == f"{completion_notice(bot)}\n{capture}"
        # The firm can still verify by hand.
        assert len(button_data(notice)) == 2


async def test_a_permission_no_says_what_is_missing_and_completes_nothing(
    bot: Harness, engine: Engine
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    mark = await send_screenshot(bot, REGISTRO_NO, engine)

    [told] = sent(bot, mark, CLIENT)
    differs = guide.message("proof_differs_permission", permission="Registro")
    fix = guide.message("proof_fix_permission")
    assert told.text == guide.message("proof_mismatch", {"differences": differs, "fixes": fix})
    assert button_data(told) == ["g:7:back5", "g:7:yes", "pb:7"]
    completed_at, proof, reading = stored(bot)
    assert completed_at is None and proof == PICTURE
    assert json.loads(reading)["verdict"] == "mismatch"
    assert sent(bot, mark, FIRM_CHAT) == sent(bot, mark, FIRM_MEMBER) == []

    # Carrying on on the client's word: the firm's notice says what the picture showed.
    mark = len(bot.request.calls)
    await bot.press("g:7:yes")
    [notice] = sent(bot, mark, FIRM_CHAT)
    part = guide.message("firm_capture_permission", permission="Registro")
    line = guide.message("firm_capture_mismatch", {"differences": part})
    assert notice.params["caption"] == f"{completion_notice(bot)}\n{line}"


async def test_another_user_on_the_screenshot_is_named_with_its_fix(
    bot: Harness, engine: Engine
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    mark = await send_screenshot(bot, OTHER_USER, engine)
    [told] = sent(bot, mark, CLIENT)
    differs = guide.message("proof_differs_user", read="12.345.678-5")
    fix = guide.message("proof_fix_user")
    assert told.text == guide.message("proof_mismatch", {"differences": differs, "fixes": fix})
    assert stored(bot)[0] is None


@pytest.mark.parametrize("step", [6, 7])
async def test_another_page_is_never_proof(bot: Harness, engine: Engine, step: int) -> None:
    guide = bot.deps.guide
    await bot.reach_step(step)
    before = bot.db_snapshot()
    mark = await send_screenshot(bot, LOGIN_PAGE, engine)
    [told] = sent(bot, mark, CLIENT)
    assert told.text == guide.message("proof_not_confirmation")
    assert f"g:{step}:back" in button_data(told)
    assert bot.db_snapshot()["authorizations"] == before["authorizations"]
    assert sent(bot, mark, FIRM_CHAT) == []


async def test_the_screen_before_saving_asks_for_grabar_usuario(
    bot: Harness, engine: Engine
) -> None:
    await bot.reach_step(6)
    mark = await send_screenshot(bot, BEFORE_SAVING, engine)
    [told] = sent(bot, mark, CLIENT)
    assert told.text == bot.deps.guide.message("proof_before_saving")
    assert stored(bot) == (None, None, None)


async def test_the_confirmation_sent_at_step_6_completes_there(
    bot: Harness, engine: Engine
) -> None:
    await bot.reach_step(6)
    await send_screenshot(bot, SAVED, engine)
    assert bot.db_rows("SELECT step FROM events WHERE kind = 'completed'") == [(6,)]


async def test_a_screenshot_soon_after_completing_reaches_the_firm_with_what_it_shows(
    bot: Harness, engine: Engine
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    mark = await send_screenshot(bot, SAVED, engine)
    [thanks] = sent(bot, mark, CLIENT)
    assert thanks.text == guide.message("proof_thanks")
    [proof] = sent(bot, mark, FIRM_CHAT)
    header = guide.message("firm_proof", company_rut=SHOWN, client_name="Juana")
    capture = guide.message("firm_capture_confirmed")
    assert proof.params["caption"] == f"{header}\n{capture}"
    assert json.loads(stored(bot)[2])["verdict"] == "confirmed"


async def test_a_wrong_picture_soon_after_completing_is_not_kept(
    bot: Harness, engine: Engine
) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    mark = await send_screenshot(bot, LOGIN_PAGE, engine)
    assert [c.text for c in sent(bot, mark, CLIENT)] == [
        bot.deps.guide.message("proof_not_confirmation")
    ]
    assert sent(bot, mark, FIRM_CHAT) == []
    assert stored(bot)[1:] == (None, None)


async def test_without_the_engine_the_screenshot_is_kept_unread_as_before(
    tmp_path: Path, clock: FakeClock
) -> None:
    reader = ScreenshotReader(program=str(tmp_path / "no-tesseract"))
    harness = await Harness(make_settings(tmp_path), clock, reader=reader).boot()
    try:
        await harness.reach_step(7)
        harness.request.files[PICTURE] = b"picture"
        await harness.feed(screenshot())
        assert harness.texts()[-2] == harness.deps.guide.message("proof_received")
        assert stored(harness) == (None, PICTURE, None)
    finally:
        await harness.close()


@pytest.fixture(scope="module")
def real_screenshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """A confirmation screen drawn in Chromium as a client's screenshot: its company, bytes."""
    for reason in (chromium_missing(), tesseract_missing()):
        if reason is not None:
            if os.environ.get("CI"):
                pytest.fail(f"{reason}: CI must install it")
            pytest.skip(reason)
    [sample, *_] = [
        s for s in suite_samples() if s.verdict == "confirmed" and s.scene.screen is Drawn.SAVED
    ]
    [picture] = PictureSet(tmp_path_factory.mktemp("shots")).pictures([sample], [Degradation.CLEAR])
    return sample.expected_company_rut, picture.data


async def test_a_real_screenshot_read_by_tesseract_completes(
    tmp_path: Path, clock: FakeClock, real_screenshot: tuple[str, bytes]
) -> None:
    company, data = real_screenshot
    # The pictures show the default permissions, which the test settings configure.
    assert make_settings(tmp_path).permissions == DEFAULT_PERMISSIONS
    harness = await Harness(make_settings(tmp_path), clock, reader=ScreenshotReader()).boot()
    try:
        await harness.reach_step(7, rut=company)
        harness.request.files[PICTURE] = data
        await harness.feed(screenshot())
        [(completed_at, reading)] = harness.db_rows(
            "SELECT completed_at, proof_reading FROM authorizations"
        )
        assert completed_at is not None, reading
        assert json.loads(reading)["verdict"] == "confirmed"
    finally:
        await harness.close()


async def test_a_screenshot_sent_as_a_file_is_read_from_the_file(
    bot: Harness, engine: Engine
) -> None:
    await bot.reach_step(7)
    engine.lines = SAVED
    bot.request.files["doc-1"] = b"\x89PNG\r\n\x1a\n a screenshot"
    raw = message_update(CLIENT, kind="document")
    raw["message"]["document"] = {
        "file_id": "doc-1",
        "file_unique_id": "d1",
        "file_name": "captura.png",
        "mime_type": "image/png",
    }
    await bot.feed(raw)
    assert engine.pictures == [bot.request.files["doc-1"]]
    [(completed_at, proof)] = bot.db_rows("SELECT completed_at, proof_file_id FROM authorizations")
    # Kept as the photo the bot sent back (a document's file id cannot go out as one).
    assert completed_at is not None and proof not in (None, "doc-1")


async def test_what_was_read_goes_with_the_clients_data(bot: Harness, engine: Engine) -> None:
    await bot.reach_step(7)
    await send_screenshot(bot, SAVED, engine)
    assert stored(bot)[1:] != (None, None)
    await bot.say("/borrar_mis_datos")
    await bot.press("del:yes")
    assert bot.last_text() == bot.deps.guide.message("delete_done")
    completed_at, proof, reading = stored(bot)
    assert completed_at is not None and (proof, reading) == (None, None)
    assert bot.db_rows("SELECT COUNT(*) FROM outbox WHERE photo_file_id = ?", (PICTURE,)) == [(0,)]
