"""A picture of where the practice stands, for the firm's phone (Pillow, drawn on demand).

Drawn with Pillow alone (no plotting library: matplotlib and numpy were 175 MB for this one
picture) in Source Sans Pro from the pinned wheel font-source-sans-pro==0.0.1 (SIL OFL):
Pillow's own font lacks the accented letters. The basic layout engine draws the same pixels
whether or not libraqm is installed, so the same numbers always give the same bytes.
"""

import functools
import io
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont

_LABEL_LENGTH = 28
WEEKS = 12
STEPS = 7
WIDTH_PX, HEIGHT_PX = 800, 1000
# The texts the caller passes (Spanish, from the guide): step_1 … step_7 are one text
# with {step} rendered seven times.
LABEL_KEYS: tuple[str, ...] = (
    "title",
    "status_title",
    "completed",
    *(f"step_{n}" for n in range(1, STEPS + 1)),
    "not_started",
    "opted_out",
    "blocked",
    "weekly_title",
)

# FreeType faces are not shared between threads: one picture at a time.
_RENDER_LOCK = threading.Lock()
_GREEN, _BLUE, _GREY, _ORANGE, _RED = "#2e7d32", "#1e88e5", "#9e9e9e", "#ef6c00", "#c62828"
_INK, _AXIS, _BACKGROUND = "#212121", "#444444", "#ffffff"
_FONT_PACKAGE = "font_source_sans_pro"
_FONT_FILES = {"regular": "SourceSansPro-Regular.ttf", "bold": "SourceSansPro-Bold.ttf"}
_MARGIN = 32
# The status bars: one row each, from the top of the picture.
_STATUS_TOP, _ROW_HEIGHT, _BAR_HEIGHT = 150, 40, 28
# The weekly columns: their baseline and tallest height.
_WEEKLY_BASE, _WEEKLY_HEIGHT = 930, 220
# A count above zero always shows a sliver, however large the others.
_MIN_BAR = 3


@dataclass(frozen=True)
class ProgressCounts:
    """How many clients stand where: done, at each of the seven steps, or stopped."""

    completed: int
    by_step: tuple[int, int, int, int, int, int, int]
    not_started: int
    opted_out: int
    blocked: int


def weekly_completions(
    completed_at: Iterable[datetime], *, today: date, tz: ZoneInfo, weeks: int = WEEKS
) -> list[tuple[date, int]]:
    """Count completions per week (Monday first) for the last `weeks` weeks, zeros included."""
    this_monday = today - timedelta(days=today.weekday())
    mondays = [this_monday - timedelta(weeks=weeks - 1 - n) for n in range(weeks)]
    counts = dict.fromkeys(mondays, 0)
    for moment in completed_at:
        day = moment.astimezone(tz).date()
        monday = day - timedelta(days=day.weekday())
        if monday in counts:
            counts[monday] += 1
    return list(counts.items())


def _shorten(
    label: str, font: "ImageFont.FreeTypeFont", width: float, length: int | None = None
) -> str:
    """Cut a label to `length` characters and `width` pixels, on one line, with "…"."""
    label = " ".join(label.split())
    if length is not None and len(label) > length:
        label = label[: length - 1] + "…"
    while len(label) > 1 and font.getlength(label) > width:
        label = label[:-2].rstrip() + "…"
    return label


def _number(value: int) -> str:
    """Write a count as Chile does: 12.345."""
    return f"{value:,}".replace(",", ".")


@functools.cache
def _font(style: str, size: int) -> "ImageFont.FreeTypeFont":
    """Return the picture's font in a style ('regular' or 'bold') and pixel size."""
    from PIL import ImageFont

    data = (resources.files(_FONT_PACKAGE) / "files" / _FONT_FILES[style]).read_bytes()
    return ImageFont.truetype(io.BytesIO(data), size, layout_engine=ImageFont.Layout.BASIC)


def progress_png(
    counts: ProgressCounts, weekly: Sequence[tuple[date, int]], *, labels: Mapping[str, str]
) -> bytes:
    """Draw the practice's progress and its weekly completions as one PNG (800 by 1000 px)."""
    missing = [key for key in LABEL_KEYS if key not in labels]
    if missing:
        raise ValueError(f"chart labels missing for: {', '.join(missing)}")
    if len(counts.by_step) != STEPS:
        raise ValueError(f"by_step must have {STEPS} counts")

    # Imported here: only this picture needs Pillow, and starting the bot should not pay for it.
    from PIL import Image, ImageDraw

    names = [
        labels["completed"],
        *(labels[f"step_{n}"] for n in range(1, STEPS + 1)),
        labels["not_started"],
        labels["opted_out"],
        labels["blocked"],
    ]
    values = [
        counts.completed,
        *counts.by_step,
        counts.not_started,
        counts.opted_out,
        counts.blocked,
    ]
    colors = [_GREEN, *[_BLUE] * STEPS, _GREY, _ORANGE, _RED]
    weeks = sorted(weekly)[-WEEKS:]

    with _RENDER_LOCK:
        image = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), _BACKGROUND)
        draw = ImageDraw.Draw(image)
        title, heading = _font("bold", 34), _font("bold", 28)
        label_font, value_font, small = (
            _font("regular", 24),
            _font("bold", 24),
            _font("regular", 20),
        )

        draw.text(
            (_MARGIN, 24),
            _shorten(labels["title"], title, WIDTH_PX - 2 * _MARGIN),
            font=title,
            fill=_INK,
        )
        draw.text(
            (_MARGIN, 84),
            _shorten(labels["status_title"], heading, WIDTH_PX - 2 * _MARGIN),
            font=heading,
            fill=_INK,
        )
        _status_bars(draw, names, values, colors, label_font, value_font)

        weekly_title = _shorten(labels["weekly_title"], heading, WIDTH_PX - 2 * _MARGIN)
        weekly_top = _STATUS_TOP + len(values) * _ROW_HEIGHT + 36
        draw.text((_MARGIN, weekly_top), weekly_title, font=heading, fill=_INK)
        _weekly_columns(draw, weeks, small, value_font)

        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _status_bars(
    draw: "ImageDraw.ImageDraw",
    names: list[str],
    values: list[int],
    colors: list[str],
    label_font: "ImageFont.FreeTypeFont",
    value_font: "ImageFont.FreeTypeFont",
) -> None:
    """One horizontal bar per state: its name on the left, its count after the bar."""
    shown = [_shorten(name, label_font, WIDTH_PX * 0.45, _LABEL_LENGTH) for name in names]
    left = _MARGIN + max(label_font.getlength(name) for name in shown) + 16
    widest_value = max(value_font.getlength(_number(value)) for value in values)
    room = WIDTH_PX - _MARGIN - left - widest_value - 12
    largest = max([1, *values])
    draw.line(
        [(left, _STATUS_TOP - 6), (left, _STATUS_TOP + len(values) * _ROW_HEIGHT)],
        fill=_AXIS,
        width=2,
    )
    for row, (name, value, color) in enumerate(zip(shown, values, colors, strict=True)):
        middle = _STATUS_TOP + row * _ROW_HEIGHT + _ROW_HEIGHT // 2
        draw.text((left - 12, middle), name, font=label_font, fill=_INK, anchor="rm")
        length = max(_MIN_BAR, round(room * value / largest)) if value else 0
        if length:
            top = middle - _BAR_HEIGHT // 2
            draw.rectangle([(left + 1, top), (left + length, top + _BAR_HEIGHT - 1)], fill=color)
        draw.text(
            (left + length + 8, middle), _number(value), font=value_font, fill=_INK, anchor="lm"
        )


def _weekly_columns(
    draw: "ImageDraw.ImageDraw",
    weeks: list[tuple[date, int]],
    date_font: "ImageFont.FreeTypeFont",
    value_font: "ImageFont.FreeTypeFont",
) -> None:
    """One column per week, its count above it and its Monday (dd/mm) below."""
    draw.line([(_MARGIN, _WEEKLY_BASE), (WIDTH_PX - _MARGIN, _WEEKLY_BASE)], fill=_AXIS, width=2)
    if not weeks:
        return
    slot = (WIDTH_PX - 2 * _MARGIN) / WEEKS
    largest = max([1, *(count for _, count in weeks)])
    for index, (monday, count) in enumerate(weeks):
        center = _MARGIN + slot * (index + 0.5)
        height = max(_MIN_BAR, round(_WEEKLY_HEIGHT * count / largest)) if count else 0
        if height:
            draw.rectangle(
                [
                    (round(center - slot * 0.35), _WEEKLY_BASE - height),
                    (round(center + slot * 0.35), _WEEKLY_BASE - 1),
                ],
                fill=_GREEN,
            )
        draw.text(
            (center, _WEEKLY_BASE - height - 6),
            _number(count),
            font=value_font,
            fill=_INK,
            anchor="ms",
        )
        draw.text(
            (center, _WEEKLY_BASE + 10),
            monday.strftime("%d/%m"),
            font=date_font,
            fill=_INK,
            anchor="mt",
        )
