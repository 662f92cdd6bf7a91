"""Section 6 of the benchmark still runs: it reads a few pictures and prints its figures."""

import os
import re
from pathlib import Path

import pytest

from bench import ocr
from bot.services.screenshot_reader import tesseract_missing
from tests.support.confirmation_pictures import chromium_missing

NUMBER = r"[0-9]+(\.[0-9]+)?"


def test_the_screenshot_section_prints_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = chromium_missing() or tesseract_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: CI must install it")
        pytest.skip(missing)
    ocr.section(tmp_path, 3)
    out = capsys.readouterr().out
    assert "not measured" not in out, out
    assert re.search(r"^company RUT\s+\d+/\d+", out, re.M), out
    assert re.search(r"^false accepts: \d+ of \d+", out, re.M), out
    assert re.search(rf"time per picture: median {NUMBER} s, p95 {NUMBER} s", out), out
