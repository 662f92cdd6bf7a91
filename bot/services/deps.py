"""The services every handler needs, built once and reached through the context."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from telegram import Update
from telegram.ext import CallbackContext, ExtBot

from bot.domain.clock import Clock
from bot.domain.schedule import reminder_due_at
from bot.domain.settings import Settings
from bot.guide.guide import Guide
from bot.services.alerts import Alerts
from bot.services.notifications import FirmNotifier
from bot.services.pictures import PictureSender
from bot.services.polling import Poller
from bot.services.reminders import ActivityThrottle, ReminderSweeper
from bot.services.screenshot_reader import ScreenshotReader
from bot.storage.authorizations import AuthorizationStore
from bot.storage.conversations import ConversationStore
from bot.storage.firm import FirmStore
from bot.storage.handoffs import HandoffStore
from bot.storage.outbox import OutboxStore
from bot.storage.privacy import PrivacyStore
from bot.storage.reminders import ReminderStore
from bot.storage.repository import Authorization, Conversation, Repository

_KEY = "deps"
_POLLER_KEY = "poller"


@dataclass(frozen=True)
class Position:
    """Where the router found the client: their conversation and its authorization, if any."""

    conversation: Conversation | None
    authorization: Authorization | None


async def _no_state_table(update: Update, deps: "Deps", conversation: Conversation | None) -> None:
    raise RuntimeError("the conversations' state table was not installed (bot.wiring.assembly)")


# Shows a client what their stored state asks now: the conversations' state table, which
# sits above this layer, installed by the composition root.
ShowState = Callable[[Update, "Deps", Conversation | None], Awaitable[None]]


@dataclass(frozen=True)
class Deps:
    """Settings, storage, texts, time and the senders, shared by all handlers and jobs."""

    settings: Settings
    repository: Repository
    guide: Guide
    clock: Clock
    notifier: FirmNotifier
    sweeper: ReminderSweeper
    activity: ActivityThrottle
    pictures: PictureSender
    alerts: Alerts
    # Reads clients' screenshots of the SII's answer (off when Tesseract is missing).
    reader: ScreenshotReader
    # Updates whose replies Telegram could not take (it was unreachable): the poller
    # processes them again once it answers, instead of acknowledging them unanswered.
    undelivered: set[int] = field(default_factory=set)
    show_state: ShowState = _no_state_table

    # The stores, by what they hold: a handler names what it touches.
    @property
    def conversations(self) -> ConversationStore:
        return self.repository.conversations

    @property
    def authorizations(self) -> AuthorizationStore:
        return self.repository.authorizations

    @property
    def reminders(self) -> ReminderStore:
        return self.repository.reminders

    @property
    def firm(self) -> FirmStore:
        return self.repository.firm

    @property
    def outbox(self) -> OutboxStore:
        return self.repository.outbox

    @property
    def handoffs(self) -> HandoffStore:
        return self.repository.handoffs

    @property
    def privacy(self) -> PrivacyStore:
        return self.repository.privacy

    async def repeat_prompt(self, update: Update, conversation: Conversation | None) -> None:
        """Show the client again what their stored state asks (the state's own prompt)."""
        await self.show_state(update, self, conversation)

    def first_reminder(self, now: datetime) -> datetime | None:
        """Return when the first automatic reminder falls due after activity at `now`."""
        return reminder_due_at(now, self.settings.reminder_schedule, 0)


def build_deps(
    settings: Settings,
    repository: Repository,
    guide: Guide,
    clock: Clock,
    reader: ScreenshotReader | None = None,
) -> Deps:
    """Assemble the services from their parts (`reader`: Tesseract's unless given)."""
    alerts = Alerts(guide, settings.firm_chat_ids, clock)
    return Deps(
        settings=settings,
        repository=repository,
        guide=guide,
        clock=clock,
        notifier=FirmNotifier(repository, guide, clock, alerts),
        sweeper=ReminderSweeper(settings, repository, guide, clock),
        activity=ActivityThrottle(settings.reminder_schedule),
        pictures=PictureSender(repository),
        alerts=alerts,
        reader=reader or ScreenshotReader(),
    )


def install(bot_data: dict[Any, Any], deps: Deps) -> None:
    """Make `deps` reachable from every callback context."""
    bot_data[_KEY] = deps


def install_poller(bot_data: dict[Any, Any], poller: Poller) -> None:
    """Let jobs see the poller (its backlog and health)."""
    bot_data[_POLLER_KEY] = poller


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """What every handler and job is given: the bot's services as `deps`."""

    # The authorization the client's stored conversation is on, as the router read it for
    # this update (so a handler need not read it again); None until it has.
    position: "Position | None" = None

    @property
    def deps(self) -> Deps:
        """Return the services installed for this application."""
        return cast(Deps, self.bot_data[_KEY])

    @property
    def poller(self) -> Poller | None:
        """Return the running poller, if the bot is polling (not in tests)."""
        return cast("Poller | None", self.bot_data.get(_POLLER_KEY))
