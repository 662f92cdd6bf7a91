"""The client's screenshot of the SII's answer, read on this machine: it proves the
authorization, says exactly what is missing, or is asked for again. It is never taken as
proof unless everything on it matches; only what was read and Telegram's file id are kept.
"""

import json
import logging

from telegram import Update
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.domain.confirmation import (
    COMPANY_RUT,
    PERMISSION,
    USER_RUT,
    Expected,
    Reading,
    Screen,
    Verdict,
)
from bot.domain.rut import format_rut
from bot.guide import keyboards
from bot.guide.guide import FINAL_STEP, Guide
from bot.services.deps import Deps
from bot.storage.repository import Authorization
from conversations.client.common import say
from conversations.client.completion import complete

logger = logging.getLogger(__name__)

# The order the client reads what differs, and the fix for each kind.
_DIFFERENCES = ((COMPANY_RUT, "company"), (USER_RUT, "user"), (PERMISSION, "permission"))


def expected_for(deps: Deps, company_rut: str) -> Expected:
    """What a screenshot must show for this company and the configured representative."""
    settings = deps.settings
    return Expected(
        company_rut=company_rut,
        representative_rut=settings.representative_rut,
        representative_name=settings.representative_full_name,
        permissions=settings.permissions,
    )


async def read(
    update: Update, deps: Deps, company_rut: str, file_id: str, data: bytes | None = None
) -> Reading | None:
    """Read a picture the client sent (`data`, else downloaded); None when it cannot be
    (reader off, download refused)."""
    if not deps.reader.available:
        return None
    chat = update.effective_chat
    assert chat is not None
    if data is None:
        try:
            file = await update.get_bot().get_file(file_id)
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            logger.info("screenshot from chat %s not downloaded: %s", chat.id, exc)
            return None
    try:
        await chat.send_action(ChatAction.TYPING)
    except TelegramError as exc:
        logger.info("typing action skipped: %s", exc)
    return await deps.reader.read(data, expected_for(deps, company_rut))


def record_of(reading: Reading) -> str:
    """What is kept of a reading (JSON)."""
    return json.dumps(reading.as_record(), ensure_ascii=False)


def mismatch_text(guide: Guide, reading: Reading, company_rut: str) -> str:
    """Tell the client what the screenshot shows other than expected, and how to fix it."""
    company = format_rut(company_rut)
    lines, fixes = [], []
    for field, kind in _DIFFERENCES:
        found = [d for d in reading.differences if d.field == field]
        for difference in found:
            read = difference.read if field == PERMISSION else format_rut(difference.read)
            lines.append(
                guide.message(
                    f"proof_differs_{kind}",
                    permission=difference.permission or "",
                    read=read,
                    company_rut=company,
                )
            )
        if found:
            fixes.append(guide.message(f"proof_fix_{kind}", company_rut=company))
    return guide.message(
        "proof_mismatch", {"differences": "\n".join(lines), "fixes": "\n".join(fixes)}
    )


async def take(
    update: Update,
    deps: Deps,
    authorization: Authorization,
    file_id: str,
    data: bytes | None = None,
) -> bool:
    """Answer a screenshot sent at step 6 or 7 by what it shows; False if it cannot be read."""
    reading = await read(update, deps, authorization.company_rut, file_id, data)
    if reading is None:
        return False
    guide, step = deps.guide, authorization.step
    company = format_rut(authorization.company_rut)
    if reading.verdict is Verdict.CONFIRMED:
        confirmed = guide.message("proof_confirmed", company_rut=company)
        proof = (file_id, record_of(reading))
        await complete(update, deps, authorization, step, proof=proof, lead=confirmed)
    elif reading.verdict is Verdict.MISMATCH:
        # Kept, so the firm sees what was read if the client carries on without fixing it.
        await deps.authorizations.set_proof(authorization.company_rut, file_id, record_of(reading))
        markup = keyboards.not_saved(guide) if step == FINAL_STEP else keyboards.step(guide, step)
        await say(update, mismatch_text(guide, reading, authorization.company_rut), markup)
    else:
        before = reading.screen is Screen.CREATING
        key = "proof_before_saving" if before else "proof_not_confirmation"
        await say(update, guide.message(key), keyboards.step(guide, step))
    return True
