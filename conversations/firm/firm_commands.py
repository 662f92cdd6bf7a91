"""The firm's commands and buttons; only chats in FIRM_CHAT_IDS ever reach these."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from telegram import InputFile, Update
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import filters

from bot.domain.rut import RutError, format_rut, parse_rut
from bot.domain.schedule import defer_past_quiet_hours
from bot.formats import client_list
from bot.formats.client_list import ClientListError, Rejected, read_client_list
from bot.guide import keyboards
from bot.guide.guide import local_datetime
from bot.services.deps import BotContext, Deps
from bot.services.digest import progress_picture
from bot.services.reminders import Delivery
from conversations.client.common import (
    actor_name,
    answer_quietly,
    invitation_link,
    new_invitation_token,
)
from conversations.firm import firm_views

logger = logging.getLogger(__name__)


# The word after /recordar RUT that overrides quiet hours.
FORCE_WORD = "ahora"
# What follows /completadas to filter by date.
SINCE_WORD = "desde"
# What follows /exportar for the CSV of before.
CSV_WORD = "csv"
# The client list the firm may upload (the texts import_too_big and import_unreadable say
# these numbers: change them together).
MAX_LIST_ROWS = 5000
MAX_LIST_BYTES = 2_000_000
# A client list the firm sends: by its name, or by its type when the name says nothing. An old
# .xls is taken too, so the firm hears why it cannot be read.
SPREADSHEET = (
    filters.Document.FileExtension("xlsx")
    | filters.Document.FileExtension("csv")
    | filters.Document.FileExtension("xls")
    | filters.Document.MimeType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    | filters.Document.MimeType("text/csv")
    | filters.Document.MimeType("application/vnd.ms-excel")
)
# What each reason a list cannot be read is told as.
_LIST_ERRORS = {
    client_list.TOO_BIG: "import_too_big",
    client_list.UNREADABLE: "import_unreadable",
    client_list.NO_RUT_COLUMN: "import_no_rut_column",
}


async def _reply(update: Update, text: str, **kwargs: Any) -> None:
    chat = update.effective_chat
    assert chat is not None
    await chat.send_message(text, **kwargs)


def _rut_argument(context: BotContext) -> str | None:
    if not context.args:
        return None
    try:
        return parse_rut(context.args[0])
    except RutError:
        return None


async def invite(update: Update, context: BotContext) -> None:
    """Make a one-client deep link for a company, plus a message ready to forward."""
    deps = context.deps
    if not context.args:
        await _reply(update, deps.guide.message("invite_usage"))
        return
    company_rut = _rut_argument(context)
    if company_rut is None:
        await _reply(update, deps.guide.message("invite_bad_rut"))
        return
    if company_rut == deps.settings.representative_rut:
        await _reply(update, deps.guide.message("invite_representative"))
        return
    client_name = " ".join(context.args[1:]).strip()[:100] or None
    token = new_invitation_token()
    now = deps.clock.now()
    expires = now + deps.settings.invitation_ttl
    chat = update.effective_chat
    assert chat is not None
    await deps.firm.create_invitation(token, company_rut, client_name, chat.id, now, expires)
    link = invitation_link(context.bot.username, token)
    await _reply(
        update,
        deps.guide.message(
            "invite_created",
            company_rut=format_rut(company_rut),
            client_name=client_name or "—",
            link=link,
            expires=local_datetime(expires, deps.settings.timezone),
        ),
    )
    await _reply(update, deps.guide.message("invite_forward", link=link))


async def pending(update: Update, context: BotContext) -> None:
    """List the unfinished authorizations, oldest first, one page at a time."""
    await _show_pending(update, context.deps, page=1, edit=False)


async def completed(update: Update, context: BotContext) -> None:
    """List the completed authorizations, optionally since a date."""
    deps = context.deps
    args = [a.lower() for a in context.args or []]
    since_text: str | None = None
    if args:
        date_arg = args[1] if args[0] == SINCE_WORD and len(args) == 2 else args[0]
        if len(args) > 2 or (len(args) == 2 and args[0] != SINCE_WORD):
            await _reply(update, deps.guide.message("completed_usage"))
            return
        if not _is_date(date_arg):
            await _reply(update, deps.guide.message("completed_usage"))
            return
        since_text = date_arg
    await _show_completed(update, deps, page=1, since_text=since_text, edit=False)


async def page_button(update: Update, context: BotContext) -> None:
    """Show another page of a listing, in place."""
    deps = context.deps
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer_quietly(query)
    _, listing, page, *rest = query.data.split(":", 3)
    if listing == "pend":
        await _show_pending(update, deps, page=int(page), edit=True)
    else:
        since_text = rest[0] if rest and _is_date(rest[0]) else None
        await _show_completed(update, deps, page=int(page), since_text=since_text, edit=True)


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


async def _show_pending(update: Update, deps: Deps, *, page: int, edit: bool) -> None:
    page = max(1, page)
    items, total = await deps.firm.pending((page - 1) * firm_views.PAGE_SIZE, firm_views.PAGE_SIZE)
    text = firm_views.pending_page(deps.guide, items, total, page, deps.settings.timezone)
    markup = keyboards.pages(deps.guide, "pend", page, firm_views.page_count(total))
    await _show(update, text, markup, edit=edit)


async def _show_completed(
    update: Update, deps: Deps, *, page: int, since_text: str | None, edit: bool
) -> None:
    page = max(1, page)
    tz = deps.settings.timezone
    since = (
        datetime.strptime(since_text, "%Y-%m-%d").replace(tzinfo=tz).astimezone(UTC)
        if since_text
        else None
    )
    items, total = await deps.firm.completed(
        since, (page - 1) * firm_views.PAGE_SIZE, firm_views.PAGE_SIZE
    )
    text = firm_views.completed_page(deps.guide, items, total, page, since, tz)
    markup = keyboards.pages(deps.guide, "comp", page, firm_views.page_count(total), since_text)
    await _show(update, text, markup, edit=edit)


async def _show(update: Update, text: str, markup: Any, *, edit: bool) -> None:
    query = update.callback_query
    if edit and query is not None:
        try:
            await query.edit_message_text(text, reply_markup=markup)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise
        return
    await _reply(update, text, reply_markup=markup)


async def status(update: Update, context: BotContext) -> None:
    """Show the whole history of one company."""
    deps = context.deps
    company_rut = _rut_argument(context)
    if company_rut is None:
        await _reply(update, deps.guide.message("status_usage"))
        return
    authorization = await deps.authorizations.authorization(company_rut)
    if authorization is None:
        await _reply(
            update, deps.guide.message("status_unknown", company_rut=format_rut(company_rut))
        )
        return
    events = await deps.authorizations.events(company_rut)
    for text in firm_views.history(deps.guide, authorization, events, deps.settings.timezone):
        await _reply(update, text)


async def export(update: Update, context: BotContext) -> None:
    """Send every authorization and its history as an Excel file (or, with 'csv', the CSV)."""
    deps = context.deps
    args = [a.lower() for a in context.args or []]
    if args not in ([], [CSV_WORD]):
        await _reply(update, deps.guide.message("export_usage"))
        return
    tz = deps.settings.timezone
    authorizations = await deps.firm.all_authorizations()
    day = deps.clock.now().astimezone(tz).strftime("%Y-%m-%d")
    if args:
        data = firm_views.export_csv(authorizations, tz)
        filename = f"autorizaciones-{day}.csv"
    else:
        events = await deps.firm.all_events()
        # Thousands of rows take openpyxl a while: not on the event loop.
        data = await asyncio.to_thread(
            firm_views.export_workbook, deps.guide, authorizations, events, tz
        )
        filename = f"autorizaciones-{day}.xlsx"
    chat = update.effective_chat
    assert chat is not None
    await chat.send_document(
        InputFile(data, filename=filename, attach=True),
        caption=deps.guide.message("export_caption", count=len(authorizations)),
    )


async def summary(update: Update, context: BotContext) -> None:
    """Send a picture of where every client stands, with the numbers as its caption."""
    deps = context.deps
    png, caption = await progress_picture(
        deps.repository, deps.guide, deps.clock.now(), deps.settings.timezone
    )
    chat = update.effective_chat
    assert chat is not None
    await chat.send_photo(png, caption=caption)


async def client_list_upload(update: Update, context: BotContext) -> None:
    """Invite every company of a spreadsheet sent in a firm chat; answer with an .xlsx."""
    deps = context.deps
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and message.document is not None and chat is not None
    document = message.document
    # Refused before anything is downloaded.
    if document.file_size is not None and document.file_size > MAX_LIST_BYTES:
        await _reply(update, deps.guide.message("import_too_big"))
        return
    try:
        file = await document.get_file()
        data = bytes(await file.download_as_bytearray())
    except TelegramError as exc:
        logger.warning("client list not downloaded from chat %s: %s", chat.id, exc)
        await _reply(update, deps.guide.message("import_download_failed"))
        return
    try:
        found = await asyncio.to_thread(
            read_client_list,
            data,
            document.file_name or "",
            max_rows=MAX_LIST_ROWS,
            max_bytes=MAX_LIST_BYTES,
        )
    except ClientListError as exc:
        await _reply(update, deps.guide.message(_LIST_ERRORS.get(exc.reason, "import_unreadable")))
        return
    representative = deps.settings.representative_rut
    clients = [row for row in found.rows if row.rut != representative]
    rejected = sorted(
        [
            *found.rejected,
            *(
                Rejected(row.line, firm_views.REPRESENTATIVE, format_rut(row.rut))
                for row in found.rows
                if row.rut == representative
            ),
        ],
        key=lambda r: r.line,
    )
    now = deps.clock.now()
    expires = now + deps.settings.invitation_ttl
    outcomes = await deps.firm.invite_list(
        [(row.rut, row.name[:100] if row.name else None) for row in clients],
        chat.id,
        deps.settings.firm_chat_ids,
        now,
        expires,
        new_invitation_token,
    )
    for text in firm_views.import_report(
        deps.guide, outcomes, rejected, found.notes, expires, deps.settings.timezone
    ):
        await _reply(update, text)
    logger.info(
        "client list from chat %s: %d companies, %d rows rejected",
        chat.id,
        len(outcomes),
        len(rejected),
    )
    if not clients:
        return
    rows = firm_views.invitation_rows(deps.guide, context.bot.username, clients, outcomes)
    workbook = await asyncio.to_thread(firm_views.invitations_file, deps.guide, rows)
    day = now.astimezone(deps.settings.timezone).strftime("%Y-%m-%d")
    await chat.send_document(
        InputFile(workbook, filename=f"invitaciones-{day}.xlsx", attach=True),
        caption=deps.guide.message("import_caption"),
    )


async def remind(update: Update, context: BotContext) -> None:
    """Send one client a reminder now (quiet hours respected unless 'ahora')."""
    deps = context.deps
    company_rut = _rut_argument(context)
    if company_rut is None:
        await _reply(update, deps.guide.message("remind_usage"))
        return
    force = len(context.args or []) > 1 and (context.args or [])[1].lower() == FORCE_WORD
    authorization = await deps.authorizations.authorization(company_rut)
    shown = format_rut(company_rut)
    if (
        authorization is None
        or authorization.client_chat_id is None
        or authorization.client_user_id is None
    ):
        await _reply(update, deps.guide.message("remind_no_client", company_rut=shown))
        return
    if authorization.completed_at is not None:
        await _reply(update, deps.guide.message("remind_already_done", company_rut=shown))
        return
    name = authorization.display_name
    if authorization.blocked_at is not None:
        await _reply(update, deps.guide.message("remind_blocked", client_name=name))
        return
    if authorization.opted_out_at is not None:
        await _reply(update, deps.guide.message("remind_opted_out", client_name=name))
        return
    now = deps.clock.now()
    settings = deps.settings
    if not force and deps.sweeper.in_quiet_hours(now):
        due = defer_past_quiet_hours(now, settings.quiet_hours, settings.timezone)
        await deps.reminders.remind_later(
            authorization.client_chat_id,
            authorization.client_user_id,
            company_rut,
            now,
            due,
            actor=actor_name(update),
        )
        await _reply(
            update,
            deps.guide.message(
                "remind_quiet",
                when=due.astimezone(settings.timezone).strftime("%H:%M"),
                company_rut=shown,
                company_rut_plain=company_rut,
            ),
        )
        return
    outcome = await deps.sweeper.deliver(
        context.bot, authorization.client_chat_id, company_rut, authorization.step
    )
    if outcome is Delivery.SENT:
        await deps.reminders.count_reminder(company_rut, deps.clock.now(), actor_name(update))
        await _reply(update, deps.guide.message("remind_sent", client_name=name))
    elif outcome is Delivery.BLOCKED:
        await _reply(update, deps.guide.message("remind_blocked", client_name=name))
    else:
        await _reply(update, deps.guide.message("remind_failed"))


async def verification(update: Update, context: BotContext) -> None:
    """Record the firm's check in the SII: verified, or not found (reopen at step 3)."""
    deps = context.deps
    query = update.callback_query
    assert query is not None and query.data is not None
    _, verdict, number = query.data.split(":")
    completion = int(number)
    actor = actor_name(update)
    now = deps.clock.now()
    tz = deps.settings.timezone
    if verdict == "ok":
        verified = await deps.firm.verify(completion, actor, now)
        if verified is None:
            await answer_quietly(query, await _why_not(deps, completion), show_alert=True)
            return
        await answer_quietly(query)
        line = deps.guide.message("firm_verified", actor=actor, when=local_datetime(now, tz))
        await deps.notifier.annotate(context.bot, completion, line)
        return
    reopened = await deps.firm.reopen(completion, actor, now, REOPEN_STEP, deps.first_reminder(now))
    if reopened is None:
        await answer_quietly(query, await _why_not(deps, completion), show_alert=True)
        return
    await answer_quietly(query)
    told = reopened.client_chat_id is not None and await _tell_client_not_found(
        context, deps, reopened.client_chat_id, reopened.company_rut
    )
    key = "firm_rejected" if told else "firm_rejected_unreached"
    line = deps.guide.message(key, actor=actor, when=local_datetime(now, tz))
    await deps.notifier.annotate(context.bot, completion, line)


async def _tell_client_not_found(
    context: BotContext, deps: Deps, chat_id: int, company_rut: str
) -> bool:
    """Ask the client, kindly, to check the SII again; False if they could not be told."""
    try:
        await context.bot.send_message(
            chat_id,
            deps.guide.message("client_rejected", company_rut=format_rut(company_rut)),
            reply_markup=keyboards.reminder(deps.guide),
        )
    except Forbidden:
        await deps.reminders.mark_blocked(chat_id, deps.clock.now())
        return False
    except TelegramError as exc:
        logger.warning("could not tell chat %s its authorization was reopened: %s", chat_id, exc)
        return False
    return True


async def _why_not(deps: Deps, completion: int) -> str:
    """Explain a verification button that no longer applies."""
    company_rut = await deps.firm.completion_company(completion)
    authorization = await deps.authorizations.authorization(company_rut) if company_rut else None
    if authorization is not None and authorization.verified_at is not None:
        return deps.guide.message("firm_already_verified", actor=authorization.verified_by or "—")
    return deps.guide.message(
        "firm_notice_stale",
        company_rut_plain=company_rut or "",
        company_rut=format_rut(company_rut) if company_rut else "",
    )


# A completion the firm cannot find sends the client back to typing the company's RUT.
REOPEN_STEP = 3
