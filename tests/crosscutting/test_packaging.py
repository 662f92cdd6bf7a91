"""The container image definition and its health check."""

import os
import subprocess
import sys
import time
from pathlib import Path

from bot.services.health import STALE_AFTER_SECONDS, beat, heartbeat_path, is_fresh
from bot.wiring.main import DISTRIBUTION
from tests.support.harness import ROOT


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_bot_as_non_root_with_a_data_volume_and_health_check() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("FROM python:3.11-slim")
    assert "USER 10001:10001" in lines
    assert 'VOLUME ["/app/data"]' in lines
    assert 'CMD ["python", "-m", "bot"]' in lines
    assert any(line.strip() == 'CMD ["python", "-m", "bot.services.health"]' for line in lines)


def test_the_package_does_not_depend_on_a_plotting_library() -> None:
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    # What installing the bot brings (the test extra's tools are not the bot's).
    declared = {
        parsed.name.lower()
        for parsed in map(Requirement, requires(DISTRIBUTION) or [])
        if parsed.marker is None
    }
    assert {"pillow", "font-source-sans-pro", "openpyxl"} <= declared
    # The /resumen picture is drawn with Pillow: 175 MB of matplotlib and numpy are not needed.
    assert not declared & {"matplotlib", "numpy", "contourpy", "kiwisolver", "fonttools"}


def test_heartbeat_is_fresh_only_while_recent(tmp_path: Path) -> None:
    path = heartbeat_path(tmp_path / "db.sqlite3")
    assert not is_fresh(path, time.time())
    beat(path)
    assert is_fresh(path, time.time())
    assert not is_fresh(path, time.time() + STALE_AFTER_SECONDS + 1)
    path.write_text("garbage", encoding="ascii")
    assert not is_fresh(path, time.time())


def test_health_command_reports_unhealthy_without_a_heartbeat(tmp_path: Path) -> None:
    # No TELEGRAM_BOT_TOKEN: the health check reads only the heartbeat's place.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3"),
    }
    command = [sys.executable, "-m", "bot.services.health"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=30)
    assert result.returncode == 1
    (tmp_path / "data").mkdir()
    beat(tmp_path / "data" / "heartbeat")
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=30)
    assert result.returncode == 0
