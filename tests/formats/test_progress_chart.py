"""The progress picture for the firm's phone: a small, deterministic PNG."""

import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.formats.progress_chart import (
    LABEL_KEYS,
    ProgressCounts,
    progress_png,
    weekly_completions,
)
from tests.support.harness import ROOT

TZ = ZoneInfo("America/Santiago")
LABELS = {
    "title": "Autorizaciones en el SII",
    "status_title": "Dónde está cada cliente",
    "completed": "Completadas",
    **{f"step_{n}": f"En curso, paso {n}" for n in range(1, 8)},
    "not_started": "Invitados, sin empezar",
    "opted_out": "Sin recordatorios",
    "blocked": "Bloquearon el bot",
    "weekly_title": "Completadas por semana",
}
COUNTS = ProgressCounts(
    completed=42, by_step=(3, 1, 0, 5, 2, 0, 1), not_started=17, opted_out=4, blocked=2
)
WEEKLY = [
    (date(2026, 1, 5) + timedelta(weeks=n), count)
    for n, count in enumerate([0, 3, 5, 0, 12, 7, 1, 0, 0, 4, 9, 2])
]


@pytest.fixture(scope="module")
def png() -> bytes:
    return progress_png(COUNTS, WEEKLY, labels=LABELS)


def test_it_is_a_small_png_sized_for_a_phone(png: bytes) -> None:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 200_000
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (800, 1000)
    # No program name, no date: nothing in the file but the picture.
    assert not {"Software", "Creation Time", "Date"} & set(image.info)
    assert b"tEXt" not in png and b"tIME" not in png


def test_the_same_numbers_draw_the_same_bytes(png: bytes) -> None:
    assert progress_png(COUNTS, WEEKLY, labels=dict(LABELS)) == png


def test_different_numbers_draw_a_different_picture(png: bytes) -> None:
    assert progress_png(replace(COUNTS, blocked=3), WEEKLY, labels=LABELS) != png
    changed_week = [*WEEKLY[:-1], (WEEKLY[-1][0], 3)]
    assert progress_png(COUNTS, changed_week, labels=LABELS) != png


def test_pictures_drawn_side_by_side_are_the_same(png: bytes) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        pictures = list(pool.map(lambda _: progress_png(COUNTS, WEEKLY, labels=LABELS), range(8)))
    assert pictures == [png] * 8


def runs(image: Image.Image, color: str, *, vertical: bool) -> list[int]:
    """The length of each straight run of `color`, along every row (or column), longest first."""
    rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    found: list[int] = []
    outer, inner = (width, height) if vertical else (height, width)
    for a in range(outer):
        run = 0
        for b in range(inner + 1):
            same = b < inner and pixels[(a, b) if vertical else (b, a)] == rgb
            if same:
                run += 1
            elif run:
                found.append(run)
                run = 0
    return sorted(found, reverse=True)


def test_bars_and_columns_are_as_long_as_their_counts(png: bytes) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    status = image.crop((0, 0, 800, 600))  # the status bars; the weekly columns below
    weekly = image.crop((0, 600, 800, 1000))
    green = "#2e7d32"
    completed = runs(status, green, vertical=False)[0]
    # 42 completed against 5 at step 4 (the longest blue bar), 17 not started, 4 and 2.
    for color, count in (("#1e88e5", 5), ("#9e9e9e", 17), ("#ef6c00", 4), ("#c62828", 2)):
        longest = runs(status, color, vertical=False)[0]
        assert longest == pytest.approx(completed * count / 42, abs=2), color
    # The weeks' columns: 12 the tallest, 9, 7, 5, …; weeks with none draw nothing.
    heights = sorted(set(runs(weekly, green, vertical=True)), reverse=True)
    assert heights[0] / heights[1] == pytest.approx(12 / 9, rel=0.03)
    assert heights[0] / heights[2] == pytest.approx(12 / 7, rel=0.03)
    assert len(heights) == len({count for _, count in WEEKLY if count})


def test_empty_practice_and_odd_labels_still_draw() -> None:
    empty = ProgressCounts(0, (0,) * 7, 0, 0, 0)  # type: ignore[arg-type]
    odd = {**LABELS, "title": "Costo $100 y $200 — 100% ñandú", "blocked": "B" * 200}
    picture = progress_png(empty, [], labels=odd)
    assert Image.open(io.BytesIO(picture)).size == (800, 1000)


def test_only_the_last_twelve_weeks_are_drawn(png: bytes) -> None:
    older = [(date(2025, 12, 29), 50), *WEEKLY]
    assert progress_png(COUNTS, older, labels=LABELS) == png
    assert progress_png(COUNTS, list(reversed(WEEKLY)), labels=LABELS) == png


def test_missing_labels_and_wrong_step_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="step_7"):
        progress_png(COUNTS, WEEKLY, labels={k: v for k, v in LABELS.items() if k != "step_7"})
    with pytest.raises(ValueError, match="7"):
        progress_png(replace(COUNTS, by_step=(1, 2)), WEEKLY, labels=LABELS)  # type: ignore[arg-type]
    assert set(LABEL_KEYS) == set(LABELS)


def test_weekly_completions_counts_by_local_monday_with_zeros() -> None:
    today = date(2026, 3, 25)  # a Wednesday
    completions = [
        datetime(2026, 3, 23, 2, 30, tzinfo=UTC),  # Sunday 22 at 23:30 in Santiago (UTC-3)
        datetime(2026, 3, 23, 3, 30, tzinfo=UTC),  # Monday 23 at 00:30
        datetime(2026, 3, 25, 15, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, tzinfo=UTC),  # week of Monday 29 December: too old
        datetime(2026, 1, 5, 12, 0, tzinfo=UTC),  # the first week shown
    ]
    weeks = weekly_completions(completions, today=today, tz=TZ)
    assert len(weeks) == 12
    assert weeks[0] == (date(2026, 1, 5), 1)
    assert weeks[-1] == (date(2026, 3, 23), 2)
    assert weeks[-2] == (date(2026, 3, 16), 1)
    assert all(monday.weekday() == 0 for monday, _ in weeks)
    assert sum(count for _, count in weeks) == 4
    assert [count for _, count in weeks[1:-2]] == [0] * 9


def test_importing_the_module_does_not_import_pillow() -> None:
    code = "import sys, bot.formats.progress_chart; print('PIL' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_drawing_imports_no_plotting_library() -> None:
    code = (
        "import sys; from tests.formats.test_progress_chart import *; "
        "progress_png(COUNTS, WEEKLY, labels=LABELS); "
        "print(sorted(m for m in ('matplotlib', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
