"""A heartbeat the running bot writes, and the container health check that reads it."""

import sys
import time
from pathlib import Path

from bot.domain.settings import SettingsError, load_settings

HEARTBEAT_SECONDS = 30.0
# Three missed beats: the event loop is stuck or polling has stopped.
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


def heartbeat_path(database_path: Path) -> Path:
    """Return where the heartbeat lives: beside the database, on the data volume."""
    return database_path.with_name("heartbeat")


def beat(path: Path) -> None:
    """Record that the bot is alive and polling now."""
    path.write_text(f"{time.time():.0f}\n", encoding="ascii")


def is_fresh(path: Path, now: float) -> bool:
    """Tell whether the last heartbeat is recent enough."""
    try:
        last = float(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return False
    return now - last < STALE_AFTER_SECONDS


def main() -> None:
    """Exit 0 when the bot's heartbeat is fresh, 1 otherwise (Docker HEALTHCHECK)."""
    try:
        settings = load_settings(token_required=False)  # the heartbeat needs no token
    except SettingsError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        sys.exit(1)
    path = heartbeat_path(settings.database_path)
    if not is_fresh(path, time.time()):
        print(f"unhealthy: no recent heartbeat in {path}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
