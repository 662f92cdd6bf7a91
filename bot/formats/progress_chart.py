"""A picture of where the practice stands, for the firm's phone (matplotlib, drawn on demand)."""

import io
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

_LABEL_LENGTH = 28
WEEKS = 12
STEPS = 7
WIDTH_PX, HEIGHT_PX, DPI = 800, 1000, 100
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

_RENDER_LOCK = threading.Lock()
_GREEN, _BLUE, _GREY, _ORANGE, _RED = "#2e7d32", "#1e88e5", "#9e9e9e", "#ef6c00", "#c62828"
# Everything the drawing depends on, so the machine's matplotlibrc never shows through.
_STYLE: "dict[RcKeyType, Any]" = {
    "font.family": ["DejaVu Sans"],
    "font.size": 17,
    "axes.titlesize": 21,
    "axes.titleweight": "bold",
    "axes.labelsize": 17,
    "xtick.labelsize": 15,
    "ytick.labelsize": 17,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#444444",
    "axes.facecolor": "white",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "text.color": "#212121",
    "text.parse_math": False,
    "text.hinting": "default",
    "text.antialiased": True,
    "lines.antialiased": True,
    "patch.antialiased": True,
    "path.simplify": True,
    "agg.path.chunksize": 0,
    "image.composite_image": True,
    "savefig.dpi": DPI,
    "savefig.bbox": "standard",
    "savefig.pad_inches": 0.1,
    "svg.hashsalt": "progress",
}


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


def _shorten(label: str) -> str:
    """Cut a label too long to leave the bars room, on one line."""
    label = " ".join(label.split())
    return label if len(label) <= _LABEL_LENGTH else label[: _LABEL_LENGTH - 1] + "…"


def _number(value: int) -> str:
    """Write a count as Chile does: 12.345."""
    return f"{value:,}".replace(",", ".")


def progress_png(
    counts: ProgressCounts, weekly: Sequence[tuple[date, int]], *, labels: Mapping[str, str]
) -> bytes:
    """Draw the practice's progress and its weekly completions as one PNG (800 by 1000 px)."""
    missing = [key for key in LABEL_KEYS if key not in labels]
    if missing:
        raise ValueError(f"chart labels missing for: {', '.join(missing)}")
    if len(counts.by_step) != STEPS:
        raise ValueError(f"by_step must have {STEPS} counts")

    # Imported here: matplotlib costs about a second, and only this picture needs it.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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

    # matplotlib's settings are global: one picture at a time, from its built-in defaults
    # (never the machine's matplotlibrc) plus ours; both are put back afterwards.
    with _RENDER_LOCK, matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_STYLE)
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        figure.text(0.04, 0.975, labels["title"], va="top", fontsize=24, fontweight="bold")
        figure.text(0.04, 0.915, labels["status_title"], va="top", fontsize=21, fontweight="bold")
        status = figure.add_axes((0.30, 0.43, 0.62, 0.45))
        weekly_axes = figure.add_axes((0.04, 0.08, 0.92, 0.25))

        positions = list(range(len(names)))
        bars = status.barh(positions, values, color=colors, height=0.7)
        status.set_yticks(positions, [_shorten(name) for name in names])
        status.invert_yaxis()
        status.bar_label(bars, labels=[_number(v) for v in values], padding=4, fontsize=17)
        status.set_xlim(0, max([1, *values]) * 1.2)
        status.xaxis.set_visible(False)
        status.spines["bottom"].set_visible(False)
        status.tick_params(axis="y", length=0)
        # Make room for the longest label, measured as drawn.
        widest = max(tick.get_window_extent().width for tick in status.get_yticklabels())
        left = min(0.6, (widest + 24) / WIDTH_PX)
        status.set_position((left, 0.43, 0.92 - left, 0.45))

        week_values = [count for _, count in weeks]
        columns = weekly_axes.bar(range(len(weeks)), week_values, color=_GREEN, width=0.7)
        weekly_axes.set_xticks(
            range(len(weeks)), [monday.strftime("%d/%m") for monday, _ in weeks], rotation=45
        )
        weekly_axes.bar_label(columns, labels=[_number(v) for v in week_values], padding=3)
        weekly_axes.set_ylim(0, max([1, *week_values]) * 1.25)
        weekly_axes.yaxis.set_visible(False)
        weekly_axes.spines["left"].set_visible(False)
        figure.text(0.04, 0.37, labels["weekly_title"], va="top", fontsize=21, fontweight="bold")

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
