"""Entry point: read the settings, open the database and poll Telegram until stopped."""

import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
from typing import Any, NoReturn

from telegram.error import InvalidToken, NetworkError

from bot.application import build_application
from bot.clock import SystemClock
from bot.deps import build_deps, install_poller
from bot.logging_setup import configure_logging
from bot.menus import publish_command_menus
from bot.polling import Poller
from bot.repository import Repository
from bot.settings import Settings, SettingsError, load_settings
from conversations.guide import FirmFacts, Guide, GuideError, load_guide

logger = logging.getLogger("bot")

# What the bot asks Telegram for; anything else is never delivered.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


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


def main() -> None:
    """Start the bot; exit with code 2 and one line when the configuration is unusable."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.token)
    try:
        guide = load_guide(settings.guide_path, firm_facts(settings))
    except GuideError as exc:
        _fail(f"GUIDE_PATH: {exc}")
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
