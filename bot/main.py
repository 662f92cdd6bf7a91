"""Entry point: read the settings, open the database and poll Telegram until stopped."""

import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
from typing import NoReturn

from bot.application import build_application
from bot.clock import SystemClock
from bot.deps import build_deps
from bot.logging_setup import configure_logging
from bot.menus import publish_command_menus
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
    if not settings.firm_chat_ids:
        logger.warning("FIRM_CHAT_IDS is empty: completions will not be notified to anyone")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with application:
            await publish_command_menus(application.bot, guide, settings.firm_chat_ids)
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
            logger.info("bot started; polling %s", settings.telegram_api_url)
            await stop.wait()
            logger.info("stopping")
            await application.updater.stop()
            await application.stop()
    finally:
        await repository.close()


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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings, guide))
