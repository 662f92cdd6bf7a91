"""Recording a completion: once, with the firm's notice and the client's "¡Listo!"."""

import logging
from dataclasses import replace

from telegram import Update

from bot.domain.rut import format_rut
from bot.guide import keyboards
from bot.services.deps import Deps
from bot.services.notifications import completion_notice
from bot.storage.repository import Authorization
from conversations.client.common import client_info, ids, say

logger = logging.getLogger(__name__)


async def complete(
    update: Update,
    deps: Deps,
    authorization: Authorization,
    at_step: int,
    proof: tuple[str, str] | None = None,
    lead: str | None = None,
) -> None:
    """Complete the authorization at `at_step` (with the screenshot that proved it, if any);
    `lead` is said just before "¡Listo!", once the completion is stored."""
    chat_id, _ = ids(update)
    company_rut, client, now = authorization.company_rut, client_info(update), deps.clock.now()
    # Rendered before the transaction: the authorization as this completion leaves it.
    completed_as = replace(
        authorization,
        completed_at=now,
        last_activity_at=now,
        client_chat_id=client.chat_id,
        client_user_id=client.user_id,
        client_name=client.name,
        client_username=client.username,
    )
    if proof is not None:
        completed_as = replace(completed_as, proof_file_id=proof[0], proof_reading=proof[1])
    notice = completion_notice(deps.guide, completed_as, deps.settings.timezone)
    passer_notice = deps.guide.message("passed_on_done", company_rut=format_rut(company_rut))
    completed = await deps.authorizations.complete(
        company_rut,
        at_step,
        client,
        now,
        notice,
        deps.settings.firm_chat_ids,
        passer_notice,
        proof,
    )
    if completed is None:
        await say(
            update, deps.guide.message("already_completed", company_rut=format_rut(company_rut))
        )
        return
    logger.info("chat %s completed an authorization", chat_id)
    # The completion and the firm's notices are committed: the client hears "¡Listo!" now,
    # and the notices follow (the outbox keeps them across a crash), so a firm group's pace
    # never keeps a client waiting.
    if lead is not None:
        await say(update, lead)
    await say(
        update,
        deps.guide.message("done", company_rut=format_rut(company_rut)),
        keyboards.after_done(deps.guide),
    )
    await deps.notifier.deliver_pending(update.get_bot())
