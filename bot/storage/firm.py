"""What the firm asks for: invitations, listings, verification of completions."""

import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from bot.domain.clock import from_timestamp, to_timestamp
from bot.formats.progress_chart import STEPS, ProgressCounts
from bot.storage.base import (
    StoreBase,
    add_event,
    all_rows_of,
    one_row,
    read_authorization,
    schedule_auto,
)
from bot.storage.records import (
    Authorization,
    Event,
    EventKind,
    Invitation,
    ListInvitation,
    ListOutcome,
    authorization_from_row,
)
from bot.storage.sql import (
    SELECT_AUTHORIZATIONS,
)

_INSERT_INVITATION = (
    "INSERT INTO invitations (token, company_rut, client_name, created_by, "
    "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
)
# An invited company shows as pending (step 0) if it is new; the firm's name for it is kept.
_UPSERT_INVITED = (
    "INSERT INTO authorizations (company_rut, step, started_at, last_activity_at, "
    "invited_name) VALUES (?, 0, ?, ?, ?) ON CONFLICT (company_rut) DO UPDATE SET "
    "invited_name = COALESCE(excluded.invited_name, invited_name)"
)


class FirmStore(StoreBase):
    """The firm's view of the authorizations."""

    async def authorizations_for_digest(
        self, completed_since: datetime
    ) -> tuple[list[Authorization], list[Authorization]]:
        """Return (completed since the given time, all unfinished oldest first)."""
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE completed_at IS NULL OR completed_at > ? "
            "ORDER BY started_at",
            (to_timestamp(completed_since),),
        )
        authorizations = [authorization_from_row(row) for row in rows]
        completed = [a for a in authorizations if a.completed_at is not None]
        pending = [a for a in authorizations if a.completed_at is None]
        return completed, pending

    async def create_invitation(
        self,
        token: str,
        company_rut: str,
        client_name: str | None,
        created_by: int,
        now: datetime,
        expires_at: datetime,
        event: EventKind = EventKind.INVITED,
    ) -> None:
        """Store a new invitation and show the company as pending (step 0) if it is new.

        `event` names who made it in the history: the firm ("invited") or a client passing
        the procedure on to the person with the certificate ("passed_on"), who is not
        reminded of that company any more (the other person is).
        """
        stamp = to_timestamp(now)

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                _INSERT_INVITATION,
                (token, company_rut, client_name, created_by, stamp, to_timestamp(expires_at)),
            )
            db.execute(_UPSERT_INVITED, (company_rut, stamp, stamp, client_name))
            add_event(db, company_rut, now, event, None, str(created_by))
            if event is EventKind.PASSED_ON:
                db.execute(
                    "DELETE FROM reminders WHERE chat_id = ? AND company_rut = ?",
                    (created_by, company_rut),
                )

        return await self._write(body)

    async def invite_list(
        self,
        clients: Sequence[tuple[str, str | None]],
        created_by: int,
        firm_chat_ids: Collection[int],
        now: datetime,
        expires_at: datetime,
        new_token: Callable[[], str],
    ) -> list[ListInvitation]:
        """Invite every (company, name) of a client list in one transaction; one result each."""
        # A completed company is not invited again; one with an unexpired, unopened invitation
        # made in a firm chat keeps it (so the same list sent twice invites nobody twice); any
        # other gets a new invitation, made as /invitar makes one. Results come in the list's
        # order, a repeated company once.
        stamp = to_timestamp(now)
        firm = {*firm_chat_ids, created_by}

        def body(db: sqlite3.Connection) -> list[ListInvitation]:
            completed = {
                str(row[0])
                for row in all_rows_of(
                    db, "SELECT company_rut FROM authorizations WHERE completed_at IS NOT NULL"
                )
            }
            # Soonest to expire first, so the one valid the longest wins.
            valid = {
                str(row[0]): str(row[1])
                for row in all_rows_of(
                    db,
                    "SELECT company_rut, token, created_by FROM invitations "
                    "WHERE used_by_chat IS NULL AND expires_at > ? ORDER BY expires_at, token",
                    (stamp,),
                )
                if row[2] in firm
            }
            done: dict[str, ListInvitation] = {}
            invited: list[tuple[str, str, str | None]] = []
            for company_rut, client_name in clients:
                if company_rut in done:
                    continue
                if company_rut in completed:
                    done[company_rut] = ListInvitation(company_rut, ListOutcome.COMPLETED, None)
                elif company_rut in valid:
                    done[company_rut] = ListInvitation(
                        company_rut, ListOutcome.REUSED, valid[company_rut]
                    )
                else:
                    token = new_token()
                    invited.append((token, company_rut, client_name))
                    done[company_rut] = ListInvitation(company_rut, ListOutcome.NEW, token)
            expires = to_timestamp(expires_at)
            db.executemany(
                _INSERT_INVITATION,
                [(token, rut, name, created_by, stamp, expires) for token, rut, name in invited],
            )
            db.executemany(_UPSERT_INVITED, [(rut, stamp, stamp, name) for _, rut, name in invited])
            db.executemany(
                "INSERT INTO events (company_rut, at, kind, step, actor) "
                "VALUES (?, ?, 'invited', NULL, ?)",
                [(rut, stamp, str(created_by)) for _, rut, _ in invited],
            )
            return list(done.values())

        return await self._write(body)

    async def claim_invitation(self, token: str, chat_id: int, now: datetime) -> Invitation | None:
        """Bind an unexpired invitation to the first chat that opens it.

        Returns the invitation when this chat may use it, None when it is unknown, expired or
        already used by another chat.
        """

        def body(db: sqlite3.Connection) -> Invitation | None:
            row = one_row(
                db,
                "SELECT token, company_rut, client_name, expires_at, used_by_chat "
                "FROM invitations WHERE token = ?",
                (token,),
            )
            if row is None or row[3] <= to_timestamp(now):
                return None
            if row[4] is not None and row[4] != chat_id:
                return None
            if row[4] is None:
                db.execute(
                    "UPDATE invitations SET used_at = ?, used_by_chat = ? WHERE token = ?",
                    (to_timestamp(now), chat_id, token),
                )
                add_event(db, row[1], now, EventKind.INVITATION_OPENED, None)
            return Invitation(row[0], row[1], row[2], from_timestamp(row[3]), chat_id)

        return await self._write(body)

    async def pending(self, offset: int, limit: int) -> tuple[list[Authorization], int]:
        """Return one page of unfinished authorizations, oldest first, and their total."""
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE completed_at IS NULL "
            "ORDER BY started_at, company_rut LIMIT ? OFFSET ?",
            (limit, offset),
        )
        total = await self._fetchall(
            "SELECT COUNT(*) FROM authorizations WHERE completed_at IS NULL"
        )
        return [authorization_from_row(row) for row in rows], int(total[0][0])

    async def completed(
        self, since: datetime | None, offset: int, limit: int
    ) -> tuple[list[Authorization], int]:
        """Return one page of completed authorizations, newest first, and their total."""
        floor = to_timestamp(since) if since is not None else 0.0
        rows = await self._fetchall(
            SELECT_AUTHORIZATIONS + "WHERE completed_at IS NOT NULL AND completed_at >= ? "
            "ORDER BY completed_at DESC, company_rut LIMIT ? OFFSET ?",
            (floor, limit, offset),
        )
        total = await self._fetchall(
            "SELECT COUNT(*) FROM authorizations "
            "WHERE completed_at IS NOT NULL AND completed_at >= ?",
            (floor,),
        )
        return [authorization_from_row(row) for row in rows], int(total[0][0])

    async def all_authorizations(self) -> list[Authorization]:
        """Return every authorization, for the export."""
        rows = await self._fetchall(SELECT_AUTHORIZATIONS + "ORDER BY started_at, company_rut")
        return [authorization_from_row(row) for row in rows]

    async def all_events(self) -> list[tuple[str, Event]]:
        """Return every company's history as (company, event), oldest first, for the export."""
        rows = await self._fetchall(
            "SELECT company_rut, at, kind, step, actor FROM events ORDER BY id"
        )
        return [(row[0], Event(from_timestamp(row[1]), row[2], row[3], row[4])) for row in rows]

    async def progress(self, completed_since: datetime) -> tuple[ProgressCounts, list[datetime]]:
        """Count where every company stands, and list completions since a time (oldest first)."""

        # Each company counts once: completed; else opted out of reminders; else blocked the
        # bot; else not started (invited, step 0); else at its step.
        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            groups = all_rows_of(
                db,
                "SELECT completed_at IS NOT NULL, opted_out_at IS NOT NULL, "
                "blocked_at IS NOT NULL, step, COUNT(*) FROM authorizations GROUP BY 1, 2, 3, 4",
            )
            moments = all_rows_of(
                db,
                "SELECT completed_at FROM authorizations WHERE completed_at >= ? "
                "ORDER BY completed_at",
                (to_timestamp(completed_since),),
            )
            return groups, moments

        groups, moments = await self._read(read)
        tally: Counter[str] = Counter()
        steps: Counter[int] = Counter()
        for completed, opted_out, blocked, step, count in groups:
            if completed:
                tally["completed"] += count
            elif opted_out:
                tally["opted_out"] += count
            elif blocked:
                tally["blocked"] += count
            elif step <= 0:
                tally["not_started"] += count
            else:
                steps[min(step, STEPS)] += count
        counts = ProgressCounts(
            completed=tally["completed"],
            by_step=(steps[1], steps[2], steps[3], steps[4], steps[5], steps[6], steps[7]),
            not_started=tally["not_started"],
            opted_out=tally["opted_out"],
            blocked=tally["blocked"],
        )
        return counts, [from_timestamp(row[0]) for row in moments]

    async def verify(self, completion: int, actor: str, now: datetime) -> Authorization | None:
        """Record that the firm saw the user in the SII; None if not (or no longer) open to it."""

        def body(db: sqlite3.Connection) -> Authorization | None:
            company_rut = self._current_completion(db, completion)
            if company_rut is None:
                return None
            cursor = db.execute(
                "UPDATE authorizations SET verified_at = ?, verified_by = ? "
                "WHERE company_rut = ? AND completed_at IS NOT NULL AND verified_at IS NULL",
                (to_timestamp(now), actor, company_rut),
            )
            if cursor.rowcount != 1:
                return None
            add_event(db, company_rut, now, EventKind.VERIFIED, None, actor)
            return read_authorization(db, company_rut)

        return await self._write(body)

    async def reopen(
        self,
        completion: int,
        actor: str,
        now: datetime,
        step: int,
        first_reminder: datetime | None,
    ) -> Authorization | None:
        """Undo a completion the firm could not find in the SII, back to `step`.

        The client is reminded on the usual schedule if they do not come back.
        """

        def body(db: sqlite3.Connection) -> Authorization | None:
            company_rut = self._current_completion(db, completion)
            if company_rut is None:
                return None
            cursor = db.execute(
                "UPDATE authorizations SET completed_at = NULL, step = ?, last_activity_at = ? "
                "WHERE company_rut = ? AND completed_at IS NOT NULL AND verified_at IS NULL",
                (step, to_timestamp(now), company_rut),
            )
            if cursor.rowcount != 1:
                return None
            add_event(db, company_rut, now, EventKind.REJECTED, step, actor)
            row = read_authorization(db, company_rut)
            if row.client_chat_id is not None and row.client_user_id is not None:
                schedule_auto(db, row, row.client_chat_id, row.client_user_id, now, first_reminder)
            return row

        return await self._write(body)

    async def completion_company(self, completion: int) -> str | None:
        """Return the company a completion event belongs to."""
        rows = await self._fetchall(
            "SELECT company_rut FROM events WHERE id = ? AND kind = ?",
            (completion, EventKind.COMPLETED.value),
        )
        return str(rows[0][0]) if rows else None

    @staticmethod
    def _current_completion(db: sqlite3.Connection, completion: int) -> str | None:
        """Return the company of a completion event if it is that company's latest one."""
        row = one_row(
            db,
            "SELECT e.company_rut FROM events AS e WHERE e.id = ? AND e.kind = ? "
            "AND NOT EXISTS (SELECT 1 FROM events AS later WHERE later.company_rut = "
            "e.company_rut AND later.id > e.id AND later.kind IN (?, ?, ?))",
            (
                completion,
                EventKind.COMPLETED.value,
                EventKind.COMPLETED.value,
                EventKind.STARTED.value,
                EventKind.REJECTED.value,
            ),
        )
        return str(row[0]) if row else None
