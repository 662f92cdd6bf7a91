"""Build the python-telegram-bot Application: every handler, job and hook, in one place."""

import asyncio
import datetime
import logging
import re
import sqlite3
import time
from typing import Any

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.guide.callbacks import PAGE_PATTERN, VERIFY_PATTERN
from bot.services.alerts import AlertKind
from bot.services.deps import BotContext, Deps, install
from bot.services.digest import send_digest_if_due
from bot.services.errors import error_handler
from bot.services.health import HEARTBEAT_SECONDS, STALE_AFTER_SECONDS, beat, heartbeat_path
from bot.services.rate_limit import PerChatRateLimiter
from bot.services.retention import purge_if_due
from bot.storage.backup import BackupError, backup_database
from conversations.client import router
from conversations.client.common import answer_quietly
from conversations.firm import firm_commands, handoff, membership

logger = logging.getLogger(__name__)

# When the daily backup is taken (local time): the quietest hour of a Chilean office.
BACKUP_AT = datetime.time(3, 30)
# How often undelivered firm notices (e.g. from before a crash) are retried.
OUTBOX_RETRY_SECONDS = 30.0


_FIRM_BUTTON = re.compile(f"{VERIFY_PATTERN}|{PAGE_PATTERN}")


async def ignore_foreign_chats(update: Update, context: BotContext) -> None:
    """Drop updates from groups and channels that are not the firm's."""
    chat = update.effective_chat
    query = update.callback_query
    if chat is not None and chat.type == chat.PRIVATE:
        return
    served = chat is not None and chat.id in context.deps.settings.firm_chat_ids
    # In the firm's groups only the firm's own buttons mean something: a client's button
    # (say, on a forwarded message) must not start a client conversation there.
    if served and (query is None or _FIRM_BUTTON.match(query.data or "")):
        return
    if query is not None:
        await answer_quietly(query)  # never leave a spinner turning, even here
    raise ApplicationHandlerStop


async def record_activity(update: Update, context: BotContext) -> None:
    """Restart the client's reminder clock: they are here now."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None or chat.type != chat.PRIVATE:
        return
    deps = context.deps
    now = deps.clock.now()
    if deps.activity.should_record(chat.id, now):
        try:
            await deps.reminders.record_activity(chat.id, user.id, now, deps.first_reminder(now))
        except sqlite3.Error as exc:
            # Only the reminder clock is late; the handler that follows tells the client if
            # the database really refuses (once, not twice).
            logger.warning("activity of chat %s not recorded: %s", chat.id, exc)


async def send_reminders(context: BotContext) -> None:
    """Send the reminders that are due (clients' replies go first)."""
    deps = context.deps
    poller = context.poller
    await deps.sweeper.sweep(context.bot, busy=lambda: poller is not None and poller.backlog > 0)


async def send_digest(context: BotContext) -> None:
    """Send the firm's daily digest once its time has come."""
    deps = context.deps
    if deps.settings.firm_chat_ids and await send_digest_if_due(
        deps.settings, deps.repository, deps.guide, deps.clock, bot=context.bot
    ):
        await deps.notifier.deliver_pending(context.bot)


async def purge_old_data(context: BotContext) -> None:
    """Purge the personal data of authorizations left unfinished for too long (daily)."""
    deps = context.deps
    await purge_if_due(deps.settings, deps.repository, deps.clock)


async def heartbeat(context: BotContext) -> None:
    """Tell the health check the bot is alive, while its polling succeeds."""
    poller = context.poller
    if poller is not None and poller.is_alive(time.time(), within=STALE_AFTER_SECONDS):
        beat(heartbeat_path(context.deps.settings.database_path))


async def back_up_database(context: BotContext) -> None:
    """Take the daily online backup of the database (in a thread: it reads the whole file)."""
    deps = context.deps
    settings = deps.settings
    try:
        made = await asyncio.to_thread(
            backup_database,
            settings.database_path,
            keep=settings.backup_keep,
            now=deps.clock.now(),
        )
    except BackupError as exc:
        logger.error("daily backup failed: %s", exc)
        await deps.alerts.alert(context.bot, AlertKind.DATABASE_REFUSING, problem=str(exc))
        return
    logger.info("daily backup written to %s", made)


async def retry_firm_notices(context: BotContext) -> None:
    """Deliver firm notices that could not be sent before."""
    await context.deps.notifier.deliver_pending(context.bot)


def build_application(
    deps: Deps, *, request: BaseRequest | None = None, rate_limit: bool = True
) -> Application[Any, Any, Any, Any, Any, Any]:
    """Create the Application with its handlers; `request` replaces the HTTP layer in tests."""
    api_url = deps.settings.telegram_api_url
    builder = (
        Application.builder()
        .token(deps.settings.token)
        # Handlers and jobs reach the services as context.deps.
        .context_types(ContextTypes(context=BotContext))
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        # Every text of the guide is Telegram HTML; links never unfold into previews.
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        # Our own poller acknowledges updates only after processing them (bot.services.polling).
        .updater(None)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    application: Application[Any, Any, Any, Any, Any, Any]
    if rate_limit:
        # Telegram's limits: ~30 messages/s overall; a RetryAfter delays only its own chat.
        application = builder.rate_limiter(PerChatRateLimiter(max_retries=3)).build()
    else:
        application = builder.build()
    install(application.bot_data, deps)
    register_handlers(application, deps.settings.firm_chat_ids)
    assert application.job_queue is not None
    application.job_queue.run_repeating(
        retry_firm_notices, interval=OUTBOX_RETRY_SECONDS, first=1.0, name="firm-outbox"
    )
    sweep = deps.settings.reminder_sweep_seconds
    once_at_a_time = {"max_instances": 1, "coalesce": True}
    application.job_queue.run_repeating(
        send_reminders, interval=sweep, first=sweep, name="reminders", job_kwargs=once_at_a_time
    )
    # The digest and the purge check as often as reminders are swept, so a restart catches up.
    application.job_queue.run_repeating(
        send_digest, interval=sweep, first=sweep, name="daily-digest", job_kwargs=once_at_a_time
    )
    application.job_queue.run_repeating(
        purge_old_data,
        interval=sweep,
        first=sweep,
        name="data-retention",
        job_kwargs=once_at_a_time,
    )
    application.job_queue.run_repeating(
        heartbeat, interval=HEARTBEAT_SECONDS, first=0.0, name="heartbeat"
    )
    application.job_queue.run_daily(
        back_up_database,
        time=BACKUP_AT.replace(tzinfo=deps.settings.timezone),
        name="database-backup",
    )
    return application


class FirmCallbackQueryHandler(CallbackQueryHandler[Any, Any]):
    """A button handler that only sees presses made in the firm's chats."""

    def __init__(self, firm_chat_ids: tuple[int, ...], callback: Any, pattern: str) -> None:
        super().__init__(callback, pattern=pattern)
        self._firm_chat_ids = frozenset(firm_chat_ids)

    def check_update(self, update: object) -> Any:
        """Accept the press only from a firm chat; others fall through to the client side."""
        if not isinstance(update, Update) or update.effective_chat is None:
            return None
        if update.callback_query is None or not update.callback_query.data:
            return None  # PTB lets a press without data match any pattern
        if update.effective_chat.id not in self._firm_chat_ids:
            return None
        return super().check_update(update)


def register_handlers(
    application: Application[Any, Any, Any, Any, Any, Any], firm_chat_ids: tuple[int, ...]
) -> None:
    """Add every handler, in the order they must be tried."""
    # -3: the bot blocked by a client, or added to a group: handled here and nowhere else.
    application.add_handler(
        ChatMemberHandler(membership.my_membership, ChatMemberHandler.MY_CHAT_MEMBER), group=-3
    )
    # -2: updates from chats the bot does not serve stop here.
    application.add_handler(TypeHandler(Update, ignore_foreign_chats), group=-2)
    # -1: any sign of the client resets their reminder clock (handlers below may then
    # replace it: a chosen reminder time, an opt-out, a completion).
    application.add_handler(TypeHandler(Update, record_activity), group=-1)

    # 0, first: the firm's commands and buttons, only from the firm's chats. Anyone else
    # falls through to the client side and gets what any unknown command gets.
    # Edited messages never run a command again.
    new_message = filters.UpdateType.MESSAGE
    firm = filters.Chat(chat_id=firm_chat_ids) & new_message
    for command, callback in (
        ("invitar", firm_commands.invite),
        ("pendientes", firm_commands.pending),
        ("completadas", firm_commands.completed),
        ("estado", firm_commands.status),
        ("recordar", firm_commands.remind),
        ("exportar", firm_commands.export),
        ("resumen", firm_commands.summary),
    ):
        application.add_handler(CommandHandler(command, callback, filters=firm))
    application.add_handler(CommandHandler("cerrar", handoff.close, filters=firm))
    # A spreadsheet in a firm chat (even sent as a reply) is a client list to invite. From any
    # other chat a document is never fetched: it falls through to the client side.
    application.add_handler(
        MessageHandler(firm & firm_commands.SPREADSHEET, firm_commands.client_list_upload)
    )
    application.add_handler(
        MessageHandler(firm & filters.REPLY & filters.TEXT & ~filters.COMMAND, handoff.relay_reply)
    )
    application.add_handler(
        MessageHandler(firm & filters.REPLY & ~filters.TEXT, handoff.reply_not_text)
    )
    application.add_handler(
        FirmCallbackQueryHandler(firm_chat_ids, firm_commands.verification, VERIFY_PATTERN)
    )
    application.add_handler(
        FirmCallbackQueryHandler(firm_chat_ids, firm_commands.page_button, PAGE_PATTERN)
    )

    # 0, last: everything else in private chats goes to the client's conversation, routed by
    # the state stored for that chat (conversations.client.router).
    application.add_handler(TypeHandler(Update, router.route))

    application.add_error_handler(error_handler(router.show_stored_state))
