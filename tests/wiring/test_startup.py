"""Start-up imports only what serving needs: the rest is imported where it is used.

Timing is left to `python -m bench.startup`; these tests only check which modules a start
loads, so a new top-level import of something heavy fails here instead of slowing every
start (and every restart of the container) a little more.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.harness import TOKEN

# Imported only by the commands, handlers or formats that use them, never to start the bot.
LAZY = (
    "openpyxl",  # the firm's exports and client lists
    "matplotlib",  # the /resumen picture
    "numpy",
    "PIL",
    "bot.wiring.preview",  # `python -m bot preview`
    "html.parser",  # only the preview parses HTML
)

_LOADED = "import json, sys; print(json.dumps(sorted(m for m in {lazy!r} if m in sys.modules)))"


def loaded_after(code: str, tmp_path: Path) -> list[str]:
    """Run `code` in a fresh interpreter; return which LAZY modules it left imported."""
    script = f"{code}\n{_LOADED.format(lazy=LAZY)}"
    env = {
        "PATH": "/usr/bin:/bin",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": "http://127.0.0.1:9",
        "DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # no .env is read
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_the_entry_point_imports_nothing_heavy(tmp_path: Path) -> None:
    assert loaded_after("import bot.wiring.main", tmp_path) == []


def test_a_built_bot_has_imported_nothing_heavy(tmp_path: Path) -> None:
    """Everything start-up does short of the network: settings, guide, database, handlers."""
    code = (
        "import asyncio\n"
        "from bot.domain.settings import load_settings\n"
        "from bot.wiring.assembly import assemble\n"
        "from bot.wiring.main import _guide\n"
        "settings = load_settings()\n"
        "settings.database_path.parent.mkdir(parents=True)\n"
        "async def build():\n"
        "    built = await assemble(settings, guide=_guide(settings))\n"
        "    await built.close()\n"
        "asyncio.run(build())\n"
    )
    assert loaded_after(code, tmp_path) == []
