"""Entry point: run the bot (read the settings, open the database, poll Telegram), or preview."""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError

from bot.domain.settings import TOKEN_NOT_SET, Settings, SettingsError, load_settings
from bot.guide.guide import Guide, GuideError
from bot.services.menus import publish_command_menus
from bot.services.polling import Poller
from bot.storage.backup import (
    PRIVATE_FOLDER,
    BackupError,
    backup_database,
    hold_database_lock,
    restore_database,
)
from bot.wiring.assembly import assemble, guide_for
from bot.wiring.checks import check_database, database_problem
from bot.wiring.logging_setup import configure_logging

logger = logging.getLogger("bot")

DISTRIBUTION = "sii-authorization-assistant"
# How often a bot waiting for another process to release the database tries again.
LOCK_RETRY_SECONDS = 1.0


def _fail(message: str, what: str = "Configuration error") -> NoReturn:
    print(f"{what}: {message}", file=sys.stderr)
    sys.exit(2)


async def run(settings: Settings, guide: Guide) -> None:
    """Run the bot with long polling until SIGINT or SIGTERM."""
    built = await assemble(settings, guide=guide)
    application = built.application
    poller = built.poller()
    if not settings.firm_chat_ids:
        logger.warning("FIRM_CHAT_IDS is empty: completions will not be notified to anyone")

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, poller.stop)
    try:
        if not await _initialize(application, poller):
            return
        await drop_webhook(application.bot)
        await publish_command_menus(application.bot, guide, settings.firm_chat_ids)
        await application.start()
        logger.info("bot started; polling %s", settings.telegram_api_url)
        # Returns once stopped; raises InvalidToken if the token is refused, even later on.
        await poller.run()
        logger.info("stopping")
    finally:
        await built.close()


async def drop_webhook(bot: Bot) -> None:
    """Remove a webhook left by another tool: while one is set, getUpdates answers 409."""
    try:
        info = await bot.get_webhook_info()
        if info.url:
            await bot.delete_webhook(drop_pending_updates=False)
            logger.warning(
                "a webhook was set for this token (another tool used it); removed it, keeping "
                "the pending updates, so long polling works"
            )
    except TelegramError as exc:
        logger.warning("could not check for a webhook (%s); polling anyway", exc)


async def _initialize(application: Any, poller: Poller) -> bool:
    """Reach the Bot API (getMe), waiting out network trouble; False if stopped first."""
    delay = 1.0
    while True:
        try:
            await application.initialize()
            return True
        except NetworkError as exc:
            logger.warning("cannot reach the Bot API (%s); retrying in %.0f s", exc, delay)
        if await poller.wait_stopped(delay):
            return False
        delay = min(delay * 2, 30.0)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the bot, or another command; a bad configuration exits with code 2 and one line."""
    arguments = _parser().parse_args(argv)
    if arguments.check:
        _check()
    elif arguments.command == "preview":
        _preview(arguments.out)
    elif arguments.command == "restore":
        _restore(arguments.file)
    elif arguments.command == "backup":
        _backup()
    else:
        _run_bot()


def _parser() -> argparse.ArgumentParser:
    """Describe the command line: no subcommand runs the bot."""
    program = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(
        prog="python -m bot" if program == "__main__.py" else program,
        usage="%(prog)s [-h] [--version] [--check] [preview --out FILE | backup | restore FILE]",
        description="Telegram bot that guides the firm's clients through authorizing its "
        "representative in the SII. Without a subcommand, it runs the bot.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the settings, the guide and the database (read only), one line per "
        "problem; exit 0 when all is well, 2 otherwise",
    )
    commands = parser.add_subparsers(dest="command", title="subcommands", metavar="COMMAND")
    preview = commands.add_parser(
        "preview",
        help="write one HTML page showing every message and button clients see",
        description="Write one self-contained HTML page that shows, as a phone chat, every "
        "message and button of the guide in effect (GUIDE_PATH and the other settings). "
        "Needs no token and no network.",
    )
    preview.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="where to write the page"
    )
    commands.add_parser(
        "backup",
        help="back up the database now, beside it in backups/ (keeping BACKUP_KEEP)",
        description="Take an online backup of DATABASE_PATH (safe while the bot runs).",
    )
    restore = commands.add_parser(
        "restore",
        help="replace the database with a backup (refused while the bot runs)",
        description="Replace DATABASE_PATH with a backup, after checking it; the current file "
        "is kept beside it. Refused while a bot process holds the database.",
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="the backup to restore")
    return parser


def _version() -> str:
    """Return the installed package's version."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def _run_bot() -> None:
    """Start the bot."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.token, settings.timezone)
    guide = _guide(settings)
    try:
        settings.database_path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"DATABASE_PATH: cannot create {settings.database_path.parent}: {exc.strerror}")
    problem = database_problem(settings.database_path)
    if problem is not None:
        _fail(problem)
    try:
        with _exclusive(settings.database_path), contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(settings, guide))
    except InvalidToken:
        _fail("TELEGRAM_BOT_TOKEN was refused by the Bot API")
    except BackupError as exc:
        _fail(str(exc))


@contextlib.contextmanager
def _exclusive(database: Path) -> Iterator[None]:
    """Hold the database for this process; wait (saying so once) while another one has it.

    Two bots on one database would answer each client twice; an overlapping deploy (the new
    container up before the old one stops) waits here until the old one is gone.
    """
    told = False
    while True:
        try:
            with hold_database_lock(database):
                if told:
                    logger.info("the other bot process stopped; starting")
                yield
                return
        except BackupError as exc:
            if "in use by" not in str(exc):
                raise
            if not told:
                logger.warning("another bot process uses %s (%s); waiting for it", database, exc)
                told = True
        time.sleep(LOCK_RETRY_SECONDS)


def _check() -> None:
    """Check settings, guide and database; print what was found; exit 0 or 2."""
    problems: list[str] = []
    try:
        settings = load_settings(token_required=False)
    except SettingsError as exc:
        for problem in str(exc).split("; "):
            print(f"problem: {problem}")
        sys.exit(2)
    print("ok: settings")
    if settings.telegram_bot_token is None:
        # The bot would not start; the guide and the database are checked all the same.
        problems.append(f"{TOKEN_NOT_SET} (only running the bot needs it)")
    try:
        guide_for(settings)
        print(f"ok: guide {settings.guide_path or '(packaged)'}")
    except GuideError as exc:
        problems.append(f"GUIDE_PATH: {exc}")
    report = check_database(settings.database_path)
    problems += report.problems
    for fact in report.facts:
        print(f"ok: {fact}")
    for problem in problems:
        print(f"problem: {problem}")
    sys.exit(2 if problems else 0)


def _restore(backup: Path) -> None:
    """Restore a backup into DATABASE_PATH, or exit 2 with one line."""
    settings = _settings_or_fail()
    try:
        restore_database(backup, settings.database_path)
    except BackupError as exc:
        _fail(str(exc), "Backup error")
    print(f"Restored {backup} into {settings.database_path}")


def _backup() -> None:
    """Back up DATABASE_PATH now, or exit 2 with one line."""
    settings = _settings_or_fail()
    try:
        made = backup_database(
            settings.database_path, keep=settings.backup_keep, now=datetime.now(UTC)
        )
    except BackupError as exc:
        _fail(str(exc), "Backup error")
    print(f"Backup written to {made}")


def _settings_or_fail() -> Settings:
    """Read the settings a command without Telegram needs (no token), or exit 2."""
    try:
        return load_settings(token_required=False)
    except SettingsError as exc:
        _fail(str(exc))


def _guide(settings: Settings) -> Guide:
    """Load the guide in effect, or exit with one line."""
    try:
        return guide_for(settings)
    except GuideError as exc:
        _fail(f"GUIDE_PATH: {exc}")


def _preview(out: Path) -> None:
    """Write the preview page of the guide in effect; no token, database or network needed."""
    settings = _settings_or_fail()
    guide = _guide(settings)
    from bot.wiring.preview import write_preview  # only this command draws the page

    try:
        write_preview(out, settings, guide)
    except OSError as exc:
        print(f"Cannot write {out}: {exc.strerror}", file=sys.stderr)
        sys.exit(1)
    print(f"Preview written to {out}")
