"""The benchmark still runs end to end: every section prints a figure (no timing is judged)."""

import re
import time
from pathlib import Path

import pytest

from bench.runner import main

TINY = [
    "--quick",
    "--rounds",
    "1",
    "--clients",
    "2",
    "--count-clients",
    "1",
    "--rows",
    "600",
    "--selections",
    "10",
    "--sweep-seconds",
    "2",
    "--rss",
    "100",
    "--startup-runs",
    "1",
]
NUMBER = r"[0-9][0-9,]*(\.[0-9]+)?"


def test_every_section_prints_a_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    main([*TINY, "--dir", str(tmp_path)])
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out

    assert "could not measure" not in out, out
    assert re.search(r"^date\s+\d{4}-\d\d-\d\d", out, re.M), out
    assert re.search(r"^CPU\s+\S.*cores", out, re.M), out
    for path in ("a. floor", "b. echo", "c. production", "d. handling"):
        assert re.search(rf"^{re.escape(path)}.*\s{NUMBER}\s+{NUMBER}-{NUMBER}\s", out, re.M), out
    for ratio in ("production/floor", "handling/floor", "floor/echo", "production/handling"):
        assert re.search(rf"^{ratio}\s+{NUMBER}x", out, re.M), out
    for count in ("commits", "aiosqlite round trips", "Bot API calls"):
        assert re.search(rf"^{count}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s", out, re.M), out
    assert "poller's own calls" in out
    assert re.search(rf"select one batch.*median {NUMBER} ms, p99 {NUMBER} ms", out), out
    assert re.search(rf"full sweep.*{NUMBER} ms per reminder", out), out
    assert re.search(rf"vs REMINDER_RATE = {NUMBER}/s", out), out
    assert re.search(rf"= {NUMBER} kB per conversation", out), out
    assert "start-up: bench/startup.py not present" in out or re.search(
        rf"Start-up to the first getUpdates.*median {NUMBER} s", out
    ), out
    assert elapsed < 20, f"the smoke run took {elapsed:.1f} s"
