"""Section 6 of ``python -m bench``: reading pictures of the SII's screens.

Draws the test pictures (tests/support/confirmation_pictures.py: the SII's pages in Debian's
Chromium, degraded as clients send them), reads each through the real ScreenshotReader
(Tesseract), and reports accuracy per field, the full-read rate of clear screenshots, the
false-accept rate and the time per picture.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.reminder_sweep import percentile, print_table
from bot.domain.confirmation import PERMISSION, Answer, Expected, Reading, Screen, Verdict
from bot.services.screenshot_reader import ScreenshotReader, tesseract_missing
from tests.support.confirmation_pictures import (
    CONFIGURED_PERMISSIONS,
    REPRESENTATIVE_NAME,
    REPRESENTATIVE_RUT,
    Degradation,
    Picture,
    PictureSet,
    all_samples,
    chromium_missing,
)
from tests.support.confirmation_pictures import Screen as Shown

GOAL_FALSE_ACCEPTS = 0.0
GOAL_CLEAR_FULL_READ = 0.95
GOAL_MEDIAN_S = 2.0


@dataclass
class Figures:
    """What one run found."""

    pictures: int = 0
    seconds: list[float] = field(default_factory=list)
    # field -> degradation -> [right, tried]
    fields: dict[str, dict[Degradation, list[int]]] = field(default_factory=dict)
    verdicts: dict[Degradation, list[int]] = field(default_factory=dict)
    clear_full: list[int] = field(default_factory=lambda: [0, 0])
    false_accepts: list[int] = field(default_factory=lambda: [0, 0])
    outcomes: Counter[str] = field(default_factory=Counter)

    def count(self, name: str, degradation: Degradation, right: bool) -> None:
        tally = self.fields.setdefault(name, {}).setdefault(degradation, [0, 0])
        tally[0] += right
        tally[1] += 1


def expected_for(picture: Picture) -> Expected:
    """What the bot expects for the client who sent `picture`."""
    return Expected(
        picture.sample.expected_company_rut,
        REPRESENTATIVE_RUT,
        REPRESENTATIVE_NAME,
        CONFIGURED_PERMISSIONS,
    )


def score(figures: Figures, picture: Picture, reading: Reading) -> None:
    """Compare one reading with what the picture shows."""
    scene, degradation = picture.sample.scene, picture.degradation
    differing = {d.permission if d.field == PERMISSION else d.field for d in reading.differences}
    right = reading.verdict.value == picture.sample.verdict
    right = right and differing == picture.sample.differences
    tally = figures.verdicts.setdefault(degradation, [0, 0])
    tally[0] += right
    tally[1] += 1
    figures.outcomes[f"{picture.sample.verdict} -> {reading.verdict.value}"] += 1
    if picture.sample.verdict != Verdict.CONFIRMED.value:
        figures.false_accepts[1] += 1
        figures.false_accepts[0] += reading.verdict is Verdict.CONFIRMED
    if scene.screen is not Shown.SAVED:
        figures.count("screen: not the saved one", degradation, reading.screen is not Screen.SAVED)
        return
    checks = {
        "saved sentence": reading.screen is Screen.SAVED,
        "company RUT": reading.company_rut == scene.company_rut,
        "user RUT": reading.user_rut == scene.user_rut,
        "user name": reading.name_matches is not None
        and (reading.user_name or "").split() == scene.user_name.split(),
    }
    answers = dict(reading.permissions)
    for name, shown in zip(CONFIGURED_PERMISSIONS, scene.permissions, strict=True):
        checks[name] = answers.get(name) is (Answer.YES if shown else Answer.NO)
    for name, ok in checks.items():
        figures.count(name, degradation, ok)
    if degradation is Degradation.CLEAR:
        figures.clear_full[1] += 1
        figures.clear_full[0] += all(ok for name, ok in checks.items() if name != "user name")


def draw(directory: Path, count: int) -> list[Picture]:
    """About `count` pictures, three per scene (Playwright's sync API: outside any loop)."""
    samples = all_samples()[: max(1, math.ceil(count / len(Degradation)))]
    return PictureSet(directory / "ocr-pictures").pictures(samples)


async def measure(pictures: list[Picture]) -> Figures:
    """Read each picture through the real ScreenshotReader."""
    reader = ScreenshotReader()
    figures = Figures(pictures=len(pictures))
    try:
        for picture in pictures:
            started = time.perf_counter()
            reading = await reader.read(picture.data, expected_for(picture))
            figures.seconds.append(time.perf_counter() - started)
            assert reading is not None
            score(figures, picture, reading)
    finally:
        reader.close()
    return figures


def _rate(tally: list[int]) -> str:
    right, tried = tally
    return f"{right}/{tried} ({right / tried:.0%})" if tried else "-"


def section(directory: Path, count: int) -> None:
    """Measure and print section 6."""
    missing = chromium_missing() or tesseract_missing()
    if missing:
        print(f"\n6. screenshot reading: not measured ({missing})")
        return
    drawn = time.perf_counter()
    pictures = draw(directory, count)
    total = time.perf_counter() - drawn
    figures = asyncio.run(measure(pictures))
    degradations = list(Degradation)
    rows = [
        [name, *(_rate(by.get(d, [0, 0])) for d in degradations)]
        for name, by in figures.fields.items()
    ]
    rows.append(["verdict right", *(_rate(figures.verdicts.get(d, [0, 0])) for d in degradations)])
    print_table(
        f"6. Screenshot reading: {figures.pictures} pictures of the SII's screens (Tesseract, "
        f"drawn in {total:.0f} s), fields right per degradation",
        ["field", *(d.value for d in degradations)],
        rows,
    )
    accepts, wrong = figures.false_accepts
    fa_rate = accepts / wrong if wrong else math.nan
    full, clear = figures.clear_full
    full_rate = full / clear if clear else math.nan
    median = statistics.median(figures.seconds)
    fastest, slowest = min(figures.seconds), max(figures.seconds)
    p95 = percentile(figures.seconds, 0.95)
    print(
        f"false accepts: {accepts} of {wrong} pictures that prove nothing or something else "
        f"({fa_rate:.1%}) -- goal 0: {'MET' if accepts == 0 else 'MISSED'}"
    )
    print(
        f"clear screenshots fully read (sentence, both RUTs, every permission): {full}/{clear} "
        f"({full_rate:.0%}) -- goal >= {GOAL_CLEAR_FULL_READ:.0%}: "
        f"{'MET' if full_rate >= GOAL_CLEAR_FULL_READ else 'MISSED'}"
    )
    print(
        f"time per picture: median {median:.2f} s, p95 {p95:.2f} s (min {fastest:.2f}, "
        f"max {slowest:.2f}) -- goal median <= {GOAL_MEDIAN_S:g} s: "
        f"{'MET' if median <= GOAL_MEDIAN_S else 'MISSED'}"
    )
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.outcomes.items())))
