"""Telling the firm's chats what happened, without losing a notice to a crash."""

import asyncio
import json
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.domain.clock import Clock
from bot.domain.confirmation import PERMISSION, USER_RUT, Verdict
from bot.domain.rut import format_rut
from bot.guide import keyboards
from bot.guide.guide import Guide, local_datetime
from bot.services.alerts import AlertKind, Alerts
from bot.storage.repository import Authorization, ClientInfo, OutboxMessage, Repository

logger = logging.getLogger(__name__)

# A firm chat that keeps refusing (bot removed from the group) is not retried forever.
MAX_ATTEMPTS = 20


def describe_duration(duration: timedelta) -> str:
    """Say how long something took, in short Spanish ('12 min', '2 h 5 min', '3 días')."""
    minutes = max(1, round(duration.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} días"


def capture_line(guide: Guide, authorization: Authorization) -> str | None:
    """Say what the client's screenshot of the SII's answer showed, for the firm (None:
    not read, or it proves nothing)."""
    if not authorization.proof_reading:
        return None
    record = json.loads(authorization.proof_reading)
    if record.get("verdict") == Verdict.CONFIRMED.value:
        return guide.message("firm_capture_confirmed")
    if record.get("verdict") != Verdict.MISMATCH.value:
        return None
    company = format_rut(authorization.company_rut)
    parts = []
    for difference in record.get("differences", []):
        read = str(difference.get("read") or "—")
        if difference.get("field") == PERMISSION:
            parts.append(
                guide.message("firm_capture_permission", permission=difference["permission"])
            )
        elif difference.get("field") == USER_RUT:
            parts.append(guide.message("firm_capture_user", read=format_rut(read)))
        else:
            parts.append(
                guide.message("firm_capture_company", read=format_rut(read), company_rut=company)
            )
    return guide.message("firm_capture_mismatch", {"differences": ", ".join(parts)})


def completion_notice(guide: Guide, authorization: Authorization, tz: ZoneInfo) -> str:
    """Render the firm's notice of a completed authorization (and what its screenshot showed)."""
    completed_at = authorization.completed_at or authorization.last_activity_at
    username = f"@{authorization.client_username}" if authorization.client_username else ""
    text = guide.message(
        "firm_completed",
        company_rut=format_rut(authorization.company_rut),
        client_name=authorization.display_name,
        client_username=username,
        client_id=authorization.client_user_id or "—",
        completed_at=local_datetime(completed_at, tz),
        duration=describe_duration(completed_at - authorization.started_at),
    )
    line = capture_line(guide, authorization)
    return f"{text}\n{line}" if line else text


def problem_report(
    guide: Guide, problem: str, company_rut: str | None, client: ClientInfo, step: int | None
) -> str:
    """Render the firm's notice of a client's problem, which the firm can reply to."""
    # Texts of the guide itself are already rendered: they go in unescaped, the rest escaped.
    rendered = {
        "progress": (
            guide.message("progress_step", step=step) if step else guide.message("no_company")
        )
    }
    if not company_rut:
        rendered["company_rut"] = guide.message("no_company")
    return guide.message(
        "firm_problem_report",
        rendered,
        problem=problem,
        client_name=client.name,
        client_username=f"@{client.username}" if client.username else "",
        client_id=client.user_id,
        **({"company_rut": format_rut(company_rut)} if company_rut else {}),
    )


def client_message_for_firm(
    guide: Guide, client: ClientInfo, company_rut: str | None, text: str
) -> str:
    """Render what a client wrote during a handoff, for the firm's chats."""
    if company_rut:
        return guide.message(
            "firm_client_message",
            client_name=client.name,
            company_rut=format_rut(company_rut),
            text=text,
        )
    return guide.message(
        "firm_client_message",
        {"company_rut": guide.message("no_company")},
        client_name=client.name,
        text=text,
    )


class FirmNotifier:
    """Delivers the outbox of firm messages: at least once, in order, never in parallel."""

    def __init__(self, repository: Repository, guide: Guide, clock: Clock, alerts: Alerts) -> None:
        self._repository = repository
        self._guide = guide
        self._clock = clock
        self._alerts = alerts
        self._lock = asyncio.Lock()

    async def deliver_pending(self, bot: Bot) -> int:
        """Send every undelivered firm message; return how many went out."""
        delivered = 0
        async with self._lock:
            for message in await self._repository.outbox.unsent_outbox(max_attempts=MAX_ATTEMPTS):
                markup = self._markup(message, bot)
                try:
                    if message.photo_file_id:
                        sent = await bot.send_photo(
                            message.chat_id,
                            message.photo_file_id,
                            caption=message.text,
                            reply_markup=markup,
                        )
                    else:
                        sent = await bot.send_message(
                            message.chat_id,
                            message.text,
                            reply_markup=markup,
                        )
                except (Forbidden, BadRequest) as exc:
                    logger.warning(
                        "firm chat %s refused notice %s: %s", message.chat_id, message.id, exc
                    )
                    await self._repository.outbox.mark_outbox(
                        message.id, self._clock.now(), sent=False
                    )
                    # Only a firm chat that stops taking notices needs a person (a client who
                    # passed the procedure on may simply have blocked the bot).
                    if message.attempts + 1 >= MAX_ATTEMPTS and self._alerts.is_firm_chat(
                        message.chat_id
                    ):
                        await self._alerts.alert(
                            bot,
                            AlertKind.OUTBOX_GAVE_UP,
                            chat_id=message.chat_id,
                            attempts=MAX_ATTEMPTS,
                        )
                    continue
                except TelegramError as exc:
                    # Unreachable or flooded: the retry job will try again; keep the order.
                    logger.warning("could not reach Telegram for firm notices: %s", exc)
                    break
                # A crash right here sends this notice once more after restart: a duplicate
                # notice is better than a lost one.
                await self._repository.outbox.mark_outbox(
                    message.id, self._clock.now(), sent=True, message_id=sent.message_id
                )
                delivered += 1
        return delivered

    def _markup(self, message: OutboxMessage, bot: Bot) -> InlineKeyboardMarkup | None:
        """The buttons under a firm message: stored ones, or a completion's verification."""
        if message.buttons:
            return InlineKeyboardMarkup.de_json(json.loads(message.buttons), bot)
        if message.ref is not None:
            return keyboards.firm_verification(self._guide, message.ref)
        return None

    async def annotate(self, bot: Bot, completion: int, line: str) -> None:
        """Add an outcome line to every firm chat's notice of a completion, without buttons."""
        for notice in await self._repository.outbox.delivered_notices(completion):
            text = f"{notice.text}\n\n{line}"
            try:
                if notice.has_photo:
                    await bot.edit_message_caption(
                        chat_id=notice.chat_id,
                        message_id=notice.message_id,
                        caption=text,
                        reply_markup=None,
                    )
                else:
                    await bot.edit_message_text(
                        text,
                        chat_id=notice.chat_id,
                        message_id=notice.message_id,
                        reply_markup=None,
                    )
            except BadRequest as exc:
                # Already annotated ("message is not modified"), or deleted in that chat.
                logger.info("firm notice in chat %s not edited: %s", notice.chat_id, exc)
            except TelegramError as exc:
                logger.warning("firm notice in chat %s not edited: %s", notice.chat_id, exc)
