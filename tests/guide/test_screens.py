"""The committed SII screen pictures: present, small, and what the drawing script makes."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests.support.harness import ROOT
from tools.draw_screens import SCREENS

SCREENS_DIR = ROOT / "bot" / "guide" / "screens"
FILENAMES = [f"paso{number}.png" for number in range(1, 8)]
MAX_BYTES = 1_000_000  # Telegram sends larger photos slowly; these should load at once
# A FreeType or Pillow patch release may move a few anti-aliased text edges by a shade; more
# than this share of differing pixels means the drawing (or the committed file) changed.
MAX_DIFFERING_SHARE = 0.005


def differing_share(first: Image.Image, second: Image.Image) -> float:
    """Return the share of pixels that differ between two images of the same size."""
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB")).convert("L")
    unchanged = difference.histogram()[0]
    return 1 - unchanged / (first.width * first.height)


def test_the_seven_pictures_are_committed() -> None:
    assert [screen.filename for screen in SCREENS] == FILENAMES
    for name in FILENAMES:
        assert (SCREENS_DIR / name).is_file(), name


@pytest.mark.parametrize("name", FILENAMES)
def test_each_picture_is_a_small_png_fit_for_a_phone(name: str) -> None:
    path = SCREENS_DIR / name
    assert path.stat().st_size < MAX_BYTES
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert 600 <= image.width <= 1200


def test_the_script_redraws_the_committed_pictures(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "tools/draw_screens.py", str(tmp_path)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    for name in FILENAMES:
        with Image.open(SCREENS_DIR / name) as committed, Image.open(tmp_path / name) as drawn:
            assert drawn.size == committed.size, name
            share = differing_share(committed, drawn)
            assert share <= MAX_DIFFERING_SHARE, f"{name}: {share:.2%} of the pixels differ"
