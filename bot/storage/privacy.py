"""Deleting a client's data on request, and purging what is kept too long."""

import html
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from stdnum.cl import rut as stdnum_rut

from bot.domain.clock import to_timestamp
from bot.storage.base import StoreBase, add_event, all_rows_of, forget_chat, remove_company
from bot.storage.records import (
    ClientInfo,
    Deletion,
    EventKind,
)
from bot.storage.sql import (
    ANONYMIZE,
    DELETE_NOTICES,
)

# What replaces the client's name or id in a firm message that is kept for others' sake.
REDACTED = "—"
# Shorter names would blank ordinary words in the firm's messages.
MIN_NAME_LENGTH = 2


@dataclass
class Identity:
    """Every way the stored texts can name one client."""

    ids: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    # The RUTs of the client's unfinished authorizations (removed entirely): no line naming
    # one of them is kept.
    companies: set[str] = field(default_factory=set)

    def add_names(self, names: Iterable[str | None]) -> None:
        """Add names and usernames long enough to be told apart from ordinary words."""
        for name in names:
            if name and len(name.strip()) >= MIN_NAME_LENGTH:
                self.names.add(name.strip())

    def needles(self) -> list[str]:
        """Return every string whose presence in a text may name the client."""
        found = {str(number) for number in self.ids}
        found |= {form for name in self.names for form in (name, html.escape(name))}
        found |= {form for company in self.companies for form in _rut_forms(company)}
        return sorted(found)

    def id_pattern(self) -> re.Pattern[str] | None:
        """Match one of the client's Telegram ids as a whole number."""
        if not self.ids:
            return None
        return re.compile("|".join(rf"(?<!\d){number}(?!\d)" for number in sorted(self.ids)))

    def name_pattern(self) -> re.Pattern[str] | None:
        """Match one of the client's names or @usernames as whole words."""
        forms = {form for name in self.names for form in (name, html.escape(name))}
        if not forms:
            return None
        alternatives = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
        return re.compile(rf"(?<![\w@])@?(?:{alternatives})(?!\w)")

    def company_pattern(self) -> re.Pattern[str] | None:
        """Match one of the removed companies' RUTs, written compact or with dots."""
        forms = {form for company in self.companies for form in _rut_forms(company)}
        if not forms:
            return None
        return re.compile("|".join(rf"(?<![\d.]){re.escape(form)}(?![\dkK])" for form in forms))


def _rut_forms(company_rut: str) -> tuple[str, str]:
    return company_rut, str(stdnum_rut.format(company_rut))


class PrivacyStore(StoreBase):
    """Deletion and retention."""

    async def delete_client_data(
        self, chat_id: int, now: datetime, client: ClientInfo | None = None
    ) -> Deletion:
        """Erase what names this client, by every identity it had; completions stay anonymous."""

        # `client` (their name and @username now) also finds firm messages written while
        # they worked on a company another chat's client has taken over since.
        def body(db: sqlite3.Connection) -> Deletion:
            identity = self._identity(db, chat_id, client)
            # Ever completed (a repeat may be under way): the completion fact stays.
            rows = all_rows_of(
                db,
                "SELECT a.company_rut, EXISTS (SELECT 1 FROM events AS e WHERE "
                "e.company_rut = a.company_rut AND e.kind = ?) "
                "FROM authorizations AS a WHERE a.client_chat_id = ?",
                (EventKind.COMPLETED.value, chat_id),
            )
            anonymized = [row[0] for row in rows if row[1]]
            removed = [row[0] for row in rows if not row[1]]
            identity.companies.update(removed)
            for company_rut in anonymized:
                # The firm's copies of the notices and of the proof name the client: they go.
                db.execute(DELETE_NOTICES, (company_rut, EventKind.COMPLETED.value))
                db.execute(
                    "DELETE FROM outbox WHERE photo_file_id IN "
                    "(SELECT proof_file_id FROM authorizations WHERE company_rut = ?)",
                    (company_rut,),
                )
                db.execute(ANONYMIZE, (company_rut,))
                db.execute(
                    "UPDATE invitations SET client_name = NULL WHERE company_rut = ?",
                    (company_rut,),
                )
                add_event(db, company_rut, now, EventKind.DATA_DELETED, None)
            for company_rut in removed:
                remove_company(db, company_rut)
            forget_chat(db, chat_id)
            self._scrub_outbox(db, identity)
            return Deletion(anonymized, removed)

        return await self._write(body)

    @staticmethod
    def _identity(db: sqlite3.Connection, chat_id: int, client: ClientInfo | None) -> Identity:
        """Gather the ids and names this chat's client was stored under."""
        identity = Identity(ids={chat_id})
        if client is not None:
            identity.ids.add(client.user_id)
            identity.add_names([client.name, client.username])
        for sql in (
            "SELECT user_id FROM conversations WHERE chat_id = ?",
            "SELECT user_id FROM reminders WHERE chat_id = ?",
            "SELECT user_id FROM handoffs WHERE chat_id = ?",
            "SELECT client_user_id FROM authorizations WHERE client_chat_id = ?",
        ):
            identity.ids.update(row[0] for row in all_rows_of(db, sql, (chat_id,)) if row[0])
        named = all_rows_of(
            db,
            "SELECT client_name, client_username, invited_name FROM authorizations "
            "WHERE client_chat_id = ? OR client_user_id IN (SELECT value FROM json_each(?))",
            (chat_id, json.dumps(sorted(identity.ids))),
        )
        identity.add_names(name for row in named for name in row)
        invited = all_rows_of(
            db, "SELECT client_name FROM invitations WHERE used_by_chat = ?", (chat_id,)
        )
        identity.add_names(row[0] for row in invited)
        return identity

    @staticmethod
    def _scrub_outbox(db: sqlite3.Connection, identity: Identity) -> None:
        """Remove or blank every firm message still naming the client."""
        # A message about the client alone (a completion notice or a problem report, which
        # carry their Telegram id; a photo) goes. One about many (a digest) keeps the others:
        # it loses the lines of the removed companies and has the client's name blanked.
        needles = identity.needles()
        if not needles:
            return
        rows = all_rows_of(
            db,
            "SELECT id, text, ref IS NOT NULL OR handoff_id IS NOT NULL, "
            "photo_file_id IS NOT NULL FROM outbox WHERE EXISTS "
            "(SELECT 1 FROM json_each(?) WHERE instr(outbox.text, value) > 0)",
            (json.dumps(needles),),
        )
        by_id, by_name = identity.id_pattern(), identity.name_pattern()
        by_company = identity.company_pattern()
        for outbox_id, text, about_one, photo in rows:
            named_by_id = by_id is not None and by_id.search(text) is not None
            named = named_by_id or (by_name is not None and by_name.search(text) is not None)
            if (about_one and named_by_id) or (photo and named):
                db.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
                continue
            lines = text.split("\n")
            if by_company is not None:
                lines = [line for line in lines if by_company.search(line) is None]
            scrubbed = "\n".join(lines)
            for pattern in (by_id, by_name):
                if pattern is not None:
                    scrubbed = pattern.sub(REDACTED, scrubbed)
            if scrubbed == text:
                continue
            if not re.sub(r"<[^>]+>", "", scrubbed).strip():
                db.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
            else:
                db.execute("UPDATE outbox SET text = ? WHERE id = ?", (scrubbed, outbox_id))

    async def purge_inactive(self, before: datetime) -> int:
        """Remove unfinished authorizations idle since before `before`, and old messages."""
        stamp = to_timestamp(before)

        def body(db: sqlite3.Connection) -> int:
            # Never completed: one that was completed and is being repeated keeps its
            # completion, which the firm must be able to show.
            rows = all_rows_of(
                db,
                "SELECT company_rut FROM authorizations AS a "
                "WHERE completed_at IS NULL AND last_activity_at < ? AND NOT EXISTS ("
                "SELECT 1 FROM events AS e WHERE e.company_rut = a.company_rut "
                "AND e.kind = ?)",
                (stamp, EventKind.COMPLETED.value),
            )
            for (company_rut,) in rows:
                # Only what belongs to this company: the same chat may be busy with another.
                remove_company(db, company_rut)
            # Delivered firm messages and closed handoffs keep names and texts: not forever.
            db.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? AND ("
                "handoff_id IS NULL OR handoff_id NOT IN "
                "(SELECT id FROM handoffs WHERE closed_at IS NULL))",
                (stamp,),
            )
            db.execute(
                "DELETE FROM handoffs WHERE closed_at IS NOT NULL AND closed_at < ?", (stamp,)
            )
            db.execute("DELETE FROM invitations WHERE expires_at < ?", (stamp,))
            return len(rows)

        return await self._write(body)
