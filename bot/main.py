"""Entry point: run the bot (read the settings, open the database, poll Telegram), or preview."""

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from telegram.error import InvalidToken, NetworkError

from bot.application import build_application
from bot.clock import SystemClock
from bot.deps import build_deps, install_poller
from bot.logging_setup import configure_logging
from bot.menus import publish_command_menus
from bot.polling import Poller
from bot.preview import write_preview
from bot.repository import Repository
from bot.settings import Settings, SettingsError, describe_validation_error, load_settings
from conversations.guide import FirmFacts, Guide, GuideError, load_guide

logger = logging.getLogger("bot")

# What the bot asks Telegram for; anything else is never delivered.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]

DISTRIBUTION = "sii-authorization-assistant"
# A preview talks to no one, so a missing token is stood in for by one of the right shape.
PREVIEW_TOKEN = "0:preview-needs-no-token"


def _fail(message: str) -> NoReturn:
    print(f"Configuration error: {message}", file=sys.stderr)
    sys.exit(2)


def firm_facts(settings: Settings) -> FirmFacts:
    """Return the configured facts the guide's texts mention."""
    return FirmFacts(
        firm_name=settings.firm_name,
        representative_name=settings.representative_name,
        representative_full_name=settings.representative_full_name,
        representative_rut=settings.representative_rut,
        permissions=settings.permissions,
        portal_url=settings.portal_url,
    )


async def run(settings: Settings, guide: Guide) -> None:
    """Run the bot with long polling until SIGINT or SIGTERM."""
    repository = await Repository.open(settings.database_path)
    deps = build_deps(settings, repository, guide, SystemClock())
    application = build_application(deps)
    poller = Poller(application, repository, ALLOWED_UPDATES)
    install_poller(application.bot_data, poller)
    if not settings.firm_chat_ids:
        logger.warning("FIRM_CHAT_IDS is empty: completions will not be notified to anyone")

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, poller.stop)
    try:
        if not await _initialize(application, poller):
            return
        try:
            await publish_command_menus(application.bot, guide, settings.firm_chat_ids)
            await application.start()
            logger.info("bot started; polling %s", settings.telegram_api_url)
            await poller.run()
            logger.info("stopping")
            deps.sweeper.stop()
            await application.stop()
        finally:
            await application.shutdown()
    finally:
        await repository.close()


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
    if arguments.command == "preview":
        _preview(arguments.out)
    else:
        _run_bot()


def _parser() -> argparse.ArgumentParser:
    """Describe the command line: no subcommand runs the bot."""
    program = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(
        prog="python -m bot" if program == "__main__.py" else program,
        usage="%(prog)s [-h] [--version] [preview --out FILE]",
        description="Telegram bot that guides the firm's clients through authorizing its "
        "representative in the SII. Without a subcommand, it runs the bot.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    configure_logging(settings.log_level, settings.token)
    guide = _guide(settings)
    try:
        settings.database_path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(settings.database_path).close()
    except (OSError, sqlite3.Error) as exc:
        _fail(f"DATABASE_PATH: cannot open {settings.database_path}: {exc}")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(settings, guide))
    except InvalidToken:
        _fail("TELEGRAM_BOT_TOKEN was refused by the Bot API")


def _guide(settings: Settings) -> Guide:
    """Load the guide in effect, or exit with one line."""
    try:
        return load_guide(settings.guide_path, firm_facts(settings))
    except GuideError as exc:
        _fail(f"GUIDE_PATH: {exc}")


def _preview(out: Path) -> None:
    """Write the preview page of the guide in effect; no token, database or network needed."""
    try:
        settings = _preview_settings()
    except SettingsError as exc:
        _fail(str(exc))
    guide = _guide(settings)
    try:
        write_preview(out, settings, guide)
    except OSError as exc:
        print(f"Cannot write {out}: {exc.strerror}", file=sys.stderr)
        sys.exit(1)
    print(f"Preview written to {out}")


def _preview_settings() -> Settings:
    """Read the settings as the bot would, standing in for a token that is not set."""
    try:
        return Settings()
    except ValidationError as exc:
        if not any(_is_unset_token(error) for error in exc.errors()):
            raise SettingsError(describe_validation_error(exc)) from None
    return load_settings(telegram_bot_token=PREVIEW_TOKEN)


def _is_unset_token(error: ErrorDetails) -> bool:
    """Tell whether a validation error is TELEGRAM_BOT_TOKEN being unset or blank."""
    if error["loc"] != ("telegram_bot_token",):
        return False
    return error["type"] == "missing" or str(error.get("input", "x")).strip() == ""
