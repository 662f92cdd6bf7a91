"""Logging that never shows the bot token or request URLs."""

import logging
import re
import sys
from datetime import UTC, datetime, tzinfo

# Any Bot API URL path carries a token right after "/bot", even one we were not given.
_TOKEN_IN_URL = re.compile(r"(?<=/bot)\d{1,20}:[A-Za-z0-9_-]+")


class RedactingFormatter(logging.Formatter):
    """Format records, then blank out the token and anything token-shaped."""

    def __init__(self, fmt: str, secrets: tuple[str, ...], tz: tzinfo | None = None) -> None:
        super().__init__(fmt)
        self._secrets = tuple(secret for secret in secrets if secret)
        self._tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Return the record's time with its UTC offset: 2026-12-07T06:30:00.123-03:00."""
        moment = datetime.fromtimestamp(record.created, self._tz or UTC)
        if self._tz is None:
            moment = moment.astimezone()  # the machine's own time zone
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        """Return the formatted record with secrets replaced by [REDACTED]."""
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return _TOKEN_IN_URL.sub("[REDACTED]", text)


def configure_logging(level: str, token: str, tz: tzinfo | None = None) -> None:
    """Send logs to stderr, redacted, stamped in `tz` (TIMEZONE) with the offset, quietened."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", (token,), tz)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and the URL contains the token.
    for name in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # At DEBUG these print whole updates and SQL parameters: clients' names and RUTs.
    for name in ("telegram", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
