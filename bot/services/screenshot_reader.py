"""Reading a client's screenshot of the SII's answer on the bot's own machine (Tesseract).

Tesseract runs as Debian's `tesseract` program with its Spanish data (tesseract-ocr,
tesseract-ocr-spa), given the picture on stdin and asked for TSV: the same call a Python
wrapper such as pytesseract makes, without a dependency to lock.

The picture never leaves the machine and is not kept: `ScreenshotReader.read` takes its bytes
and returns what bot.domain.confirmation made of the text Tesseract found. The OCR runs in a
worker thread (Tesseract itself is a child process), at most `concurrency` at a time, and a
read that takes longer than `timeout` seconds, queue included, counts as unreadable. Without
Tesseract and its Spanish data the reader says so once in the log and stays off
(`available` is False, `read` returns None); the bot runs as before.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.domain.confirmation import Expected, Reading, read_confirmation, unreadable

logger = logging.getLogger(__name__)

# Image bytes -> the text lines found, top to bottom, one table row per line.
OcrEngine = Callable[[bytes], Sequence[str]]

DEFAULT_TIMEOUT = 5.0
LANGUAGE = "spa"
# Measured (README, "Reading the confirmation screenshot"): Telegram's 1280-pixel pictures
# upscaled to 2000 on their longest side, in grayscale with stretched contrast, read best;
# sparse-text mode (--psm 11) reads the lone SI/NO of a table cell where --psm 4 and 6 misread it.
UPSCALE_TO = 2000
PAGE_SEGMENTATION = ("--psm", "11")
# A screenshot is a few megapixels; anything far larger is not one (and would be slow).
MAX_PIXELS = 40_000_000


TESSERACT = "tesseract"


def tesseract_missing(program: str = TESSERACT) -> str | None:
    """Why Tesseract cannot read Spanish here (None: it can)."""
    found = shutil.which(program)
    if found is None:
        return "the tesseract program is not installed (apt-get install tesseract-ocr)"
    try:
        listed = subprocess.run(
            [found, "--list-langs"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"tesseract does not run ({type(exc).__name__})"
    if LANGUAGE not in listed.stdout.split():
        return "tesseract has no Spanish data (apt-get install tesseract-ocr-spa)"
    return None


@dataclass(frozen=True)
class _Word:
    text: str
    left: int
    center_x: float
    center_y: float
    height: int
    line: tuple[int, int, int]  # Tesseract's block, paragraph, line


def _slope(words: Sequence[_Word]) -> float:
    """The picture's skew (dy/dx), from the words Tesseract put on one line together."""
    by_line: dict[tuple[int, int, int], list[_Word]] = {}
    for word in words:
        by_line.setdefault(word.line, []).append(word)
    slopes = []
    for members in by_line.values():
        if len(members) < 3:
            continue
        xs = [w.center_x for w in members]
        ys = [w.center_y for w in members]
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        if spread <= 0 or max(xs) - min(xs) < 200:
            continue
        slopes.append(
            sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
        )
    # A photo held by hand is a few degrees off; more than ~6 degrees is a bad estimate.
    return max(-0.1, min(0.1, statistics.median(slopes))) if slopes else 0.0


def rows_of(words: Sequence[_Word]) -> list[str]:
    """The words as text lines: grouped by height on the page (skew removed), left to right.

    Tesseract's sparse mode finds each table cell on its own, in no reliable order; a row of
    the SII's table is its label and its value side by side, so rows are rebuilt here.
    """
    if not words:
        return []
    slope = _slope(words)
    height = statistics.median(w.height for w in words)
    placed = sorted(words, key=lambda w: w.center_y - slope * w.center_x)
    rows: list[list[_Word]] = []
    level = 0.0
    for word in placed:
        y = word.center_y - slope * word.center_x
        if rows and y - level <= 0.5 * height:
            rows[-1].append(word)
            level = statistics.fmean(w.center_y - slope * w.center_x for w in rows[-1])
        else:
            rows.append([word])
            level = y
    return [" ".join(w.text for w in sorted(row, key=lambda w: w.left)) for row in rows]


def tesseract_lines(
    image: bytes, timeout: float = DEFAULT_TIMEOUT, program: str = TESSERACT
) -> list[str]:
    """The text lines Tesseract finds in a picture (JPEG, PNG, WebP...), in Spanish."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(image)) as opened:
        if opened.width * opened.height > MAX_PIXELS:
            raise ValueError(f"picture too large ({opened.width}x{opened.height})")
        picture = ImageOps.exif_transpose(opened)
        gray = ImageOps.grayscale(picture)
    factor = UPSCALE_TO / max(gray.size)
    if factor > 1:
        size = (round(gray.width * factor), round(gray.height * factor))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    gray = ImageOps.autocontrast(gray, cutoff=1)
    png = io.BytesIO()
    gray.save(png, "PNG", compress_level=1)
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(program)
    # One thread per reading: on a busy two-core machine Tesseract's own threads only wait.
    environment = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    done = subprocess.run(
        [found, "stdin", "stdout", "-l", LANGUAGE, *PAGE_SEGMENTATION, "tsv"],
        input=png.getvalue(),
        capture_output=True,
        timeout=timeout,  # the child is killed then
        check=True,
        env=environment,
    )
    words = []
    # Columns: level page block paragraph line word left top width height confidence text.
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or not cells[11].strip() or float(cells[10]) < 0:
            continue
        block, paragraph, line = int(cells[2]), int(cells[3]), int(cells[4])
        left, top, width, height = (int(cell) for cell in cells[6:10])
        words.append(
            _Word(
                text=cells[11].strip(),
                left=left,
                center_x=left + width / 2,
                center_y=top + height / 2,
                height=max(height, 1),
                line=(block, paragraph, line),
            )
        )
    return rows_of(words)


class ScreenshotReader:
    """Reads pictures of the SII's confirmation screen, off the event loop and bounded in time.

    Build one at start-up and keep it; `engine` replaces Tesseract (tests, benchmarks), and
    `program` names the tesseract program to look for on PATH.
    """

    def __init__(
        self,
        engine: OcrEngine | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = 1,
        program: str = TESSERACT,
    ) -> None:
        self.timeout = timeout
        self.concurrency = concurrency
        self.disabled_reason: str | None = None
        if engine is None:
            self.disabled_reason = tesseract_missing(program)
            if self.disabled_reason is not None:
                logger.warning("screenshot reading is off: %s", self.disabled_reason)

            def engine(image: bytes) -> Sequence[str]:
                # Tesseract gets the same bound, so a stuck one is killed, not left running.
                return tesseract_lines(image, timeout, program)

        self._engine: OcrEngine = engine
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ocr")

    @property
    def available(self) -> bool:
        """Whether pictures can be read here (Tesseract with Spanish data, or an engine given)."""
        return self.disabled_reason is None

    async def read(self, image: bytes, expected: Expected) -> Reading | None:
        """What the picture proves; None when the reader is off (see `available`).

        Too slow (queue included), broken or not a picture: the reading of nothing, whose
        verdict is NOT_CONFIRMATION. Never raises for a bad picture.
        """
        if not self.available:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            logger.info("screenshot not read: others took the %.1f s", self.timeout)
            return unreadable(expected)
        try:
            future = loop.run_in_executor(self._executor, self._engine, image)
        except RuntimeError:  # closed
            self._slots.release()
            return unreadable(expected)
        # The slot is free only when the engine really finishes, even after a timeout here.
        future.add_done_callback(self._finished)
        try:
            async with asyncio.timeout_at(deadline):
                lines = await asyncio.shield(future)
        except TimeoutError:
            logger.info("screenshot not read within %.1f s", self.timeout)
            return unreadable(expected)
        except Exception as exc:
            logger.info("screenshot not read: %s: %s", type(exc).__name__, exc)
            return unreadable(expected)
        return read_confirmation(lines, expected)

    def _finished(self, future: asyncio.Future[Sequence[str]]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved, so a failure after a timeout is not logged again
        self._slots.release()

    def close(self) -> None:
        """Stop taking pictures; a reading in progress finishes in its thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
