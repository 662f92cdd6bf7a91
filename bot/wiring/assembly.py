"""The bot built from its settings: the one assembly that main, the tests and benchmarks use."""

from dataclasses import dataclass, replace
from typing import Any

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest

from bot.domain.clock import Clock, SystemClock
from bot.domain.settings import Settings
from bot.guide.guide import FirmFacts, Guide, load_guide
from bot.services.deps import BotContext, Deps, build_deps, install_poller
from bot.services.polling import Poller
from bot.services.screenshot_reader import ScreenshotReader
from bot.storage.repository import Repository
from bot.wiring.application import build_application
from conversations.client import router

# What the bot asks Telegram for; anything else is never delivered.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


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


def guide_for(settings: Settings) -> Guide:
    """Load the guide in effect (GUIDE_PATH, else the packaged one) with the firm's facts."""
    return load_guide(settings.guide_path, firm_facts(settings))


@dataclass
class Assembly:
    """A built bot: the Application and the services its handlers reach."""

    application: Application[Any, Any, Any, Any, Any, Any]
    deps: Deps

    def poller(self, allowed_updates: list[str] | None = None, **options: Any) -> Poller:
        """The poller that feeds this bot, visible to its jobs (backlog, health)."""

        async def show_again(update: Update) -> None:
            context = BotContext.from_update(update, self.application)
            await router.show_again(update, context)

        poller = Poller(
            self.application,
            self.deps.repository,
            list(ALLOWED_UPDATES if allowed_updates is None else allowed_updates),
            show_again=show_again,
            undelivered=self.deps.undelivered,
            **options,
        )
        install_poller(self.application.bot_data, poller)
        return poller

    async def close(self) -> None:
        """The one shutdown sequence (main, tests, benchmarks), each step only if reached.

        Reminders stop after the one in flight; the Application stops (its jobs with it)
        before it is shut down; the database closes last, whatever failed before.
        """
        self.deps.sweeper.stop()
        application = self.application
        try:
            if application.running:
                await application.stop()
        finally:
            try:
                if getattr(application, "_initialized", False):
                    await application.shutdown()
            finally:
                self.deps.reader.close()
                await self.deps.repository.close()


async def assemble(
    settings: Settings,
    *,
    clock: Clock | None = None,
    request: BaseRequest | None = None,
    guide: Guide | None = None,
    rate_limit: bool = True,
    reader: ScreenshotReader | None = None,
) -> Assembly:
    """Open the database and build the Application with every handler and job.

    `clock` and `request` replace the real time and the HTTP layer (tests, benchmarks);
    `guide` skips loading one already loaded; `reader` replaces the screenshot reader.
    """
    repository = await Repository.open(settings.database_path)
    guide = guide or guide_for(settings)
    deps = build_deps(settings, repository, guide, clock or SystemClock(), reader)
    # The conversations' state table shows a client where they are, wherever that is asked.
    deps = replace(deps, show_state=router.repeat_prompt)
    application = build_application(deps, request=request, rate_limit=rate_limit)
    return Assembly(application, deps)
