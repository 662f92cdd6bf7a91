"""The screenshot reader: real pictures read by Tesseract, off the event loop, bounded in time."""

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence

import pytest

from bot.domain.confirmation import PERMISSION, Expected, Verdict
from bot.domain.settings import DEFAULT_PERMISSIONS
from bot.services.screenshot_reader import ScreenshotReader, tesseract_missing
from tests.support.confirmation_pictures import (
    REPRESENTATIVE_NAME,
    REPRESENTATIVE_RUT,
    Degradation,
    Picture,
    PictureSet,
    chromium_missing,
    suite_samples,
)


def _needed(reason: str | None) -> None:
    """Skip without the tool, except in CI, which must install it (.ci/run)."""
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must install it")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def clear_pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Picture]:
    """A few of each kind of screen, as Telegram delivers a screenshot (drawn once)."""
    _needed(chromium_missing())
    pictures = PictureSet(tmp_path_factory.mktemp("confirmation-pictures"))
    return pictures.pictures(suite_samples(), [Degradation.CLEAR])


def expected_for(picture: Picture) -> Expected:
    return Expected(
        picture.sample.expected_company_rut,
        REPRESENTATIVE_RUT,
        REPRESENTATIVE_NAME,
        DEFAULT_PERMISSIONS,
    )


async def test_tesseract_reads_each_kind_of_screen_right(clear_pictures: list[Picture]) -> None:
    _needed(tesseract_missing())
    reader = ScreenshotReader()
    assert reader.available
    kinds = set()
    try:
        for picture in clear_pictures:
            reading = await reader.read(picture.data, expected_for(picture))
            assert reading is not None
            assert reading.verdict.value == picture.sample.verdict, (picture.name, reading)
            differing = {
                d.permission if d.field == PERMISSION else d.field for d in reading.differences
            }
            assert differing == picture.sample.differences, (picture.name, reading)
            kinds.add((picture.sample.verdict, tuple(sorted(differing))))
    finally:
        reader.close()
    # Confirmed; a NO (each permission); another user; another company; not the confirmation.
    assert len(kinds) >= 5, kinds


async def test_a_confirmed_picture_reads_every_field(clear_pictures: list[Picture]) -> None:
    _needed(tesseract_missing())
    [picture] = [p for p in clear_pictures if p.sample.key.startswith("00")]
    reader = ScreenshotReader()
    try:
        reading = await reader.read(picture.data, expected_for(picture))
    finally:
        reader.close()
    assert reading is not None and reading.verdict is Verdict.CONFIRMED
    assert reading.company_rut == picture.sample.scene.company_rut
    assert reading.user_rut == REPRESENTATIVE_RUT
    assert reading.name_matches is True


async def test_a_broken_picture_is_unreadable_not_an_error() -> None:
    _needed(tesseract_missing())
    reader = ScreenshotReader()
    try:
        reading = await reader.read(b"not a picture at all", _EXPECTED)
    finally:
        reader.close()
    assert reading is not None and reading.verdict is Verdict.NOT_CONFIRMATION


_EXPECTED = Expected("76086428-5", REPRESENTATIVE_RUT, REPRESENTATIVE_NAME, DEFAULT_PERMISSIONS)
_SAVED_LINES = [
    "Se ha grabado satisfactoriamente el nuevo usuario en la empresa COMERCIAL LOS ANDES,",
    "Rut 76.086.428-5, con los siguientes antecedentes:",
    f"Rut Usuario {REPRESENTATIVE_RUT}",
    f"Nombre Usuario {REPRESENTATIVE_NAME}",
    "Usuario-Administrador SI",
    "Firmar Documentos SI",
    "Registro SI",
]


class SlowEngine:
    """An engine that answers only when released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, image: bytes) -> Sequence[str]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(10)
            return _SAVED_LINES
        finally:
            with self._lock:
                self.running -= 1


async def test_a_slow_reading_is_unreadable_after_the_timeout_and_the_loop_keeps_running() -> None:
    engine = SlowEngine()
    reader = ScreenshotReader(engine, timeout=0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        reading = await reader.read(b"picture", _EXPECTED)
    finally:
        elapsed = time.monotonic() - started
        ticker.cancel()
        engine.release.set()
        reader.close()
    assert reading is not None and reading.verdict is Verdict.NOT_CONFIRMATION
    assert 0.3 <= elapsed < 2
    assert ticks >= 5  # the event loop went on while the engine worked


async def test_at_most_the_concurrency_read_at_once_and_a_slot_frees_when_the_engine_ends() -> None:
    engine = SlowEngine()
    reader = ScreenshotReader(engine, timeout=0.5, concurrency=1)
    try:
        first = asyncio.create_task(reader.read(b"one", _EXPECTED))
        second = asyncio.create_task(reader.read(b"two", _EXPECTED))
        results = await asyncio.gather(first, second)
        # Both timed out: the first in the engine, the second waiting for the slot.
        assert [r.verdict for r in results if r] == [Verdict.NOT_CONFIRMATION] * 2
        assert engine.calls == 1 and engine.most == 1
        # Released, the engine ends and gives the slot back: the next reading waits for it.
        engine.release.set()
        reading = await reader.read(b"three", _EXPECTED)
        assert reading is not None and reading.verdict is Verdict.CONFIRMED
        assert engine.most == 1
    finally:
        engine.release.set()
        reader.close()


async def test_an_engine_failure_is_unreadable() -> None:
    def broken(image: bytes) -> Sequence[str]:
        raise OSError("engine crashed")

    reader = ScreenshotReader(broken)
    try:
        reading = await reader.read(b"picture", _EXPECTED)
    finally:
        reader.close()
    assert reading is not None and reading.verdict is Verdict.NOT_CONFIRMATION


async def test_without_tesseract_the_reader_is_off_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.services.screenshot_reader"):
        reader = ScreenshotReader(program="tesseract-not-installed-here")
        try:
            assert not reader.available
            assert await reader.read(b"picture", _EXPECTED) is None
            assert await reader.read(b"picture", _EXPECTED) is None
        finally:
            reader.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "screenshot reading is off" in lines[0], lines
    assert "apt-get install tesseract-ocr" in lines[0]
