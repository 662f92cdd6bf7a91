"""The services every handler needs, built once and reached through the context."""

from dataclasses import dataclass
from typing import Any, cast

from telegram.ext import CallbackContext

from bot.clock import Clock
from bot.notifications import FirmNotifier
from bot.repository import Repository
from bot.settings import Settings
from conversations.guide import Guide

_KEY = "deps"


@dataclass(frozen=True)
class Deps:
    """Settings, storage, texts and time, shared by all handlers."""

    settings: Settings
    repository: Repository
    guide: Guide
    clock: Clock
    notifier: FirmNotifier


def install(bot_data: dict[Any, Any], deps: Deps) -> None:
    """Make `deps` reachable from every callback context."""
    bot_data[_KEY] = deps


def get_deps(context: CallbackContext[Any, Any, Any, Any]) -> Deps:
    """Return the services installed for this application."""
    return cast(Deps, context.bot_data[_KEY])
