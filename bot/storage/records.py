"""What the database stores, as Python values, and how rows become them."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.clock import from_timestamp


@dataclass(frozen=True)
class ClientInfo:
    """Who is talking to the bot about a company."""

    chat_id: int
    user_id: int
    name: str
    username: str | None


@dataclass(frozen=True)
class Authorization:
    """One company's authorization of the firm's representative."""

    company_rut: str
    client_chat_id: int | None
    client_user_id: int | None
    client_name: str | None
    client_username: str | None
    step: int
    started_at: datetime
    last_activity_at: datetime
    completed_at: datetime | None
    reminders_sent: int = 0
    opted_out_at: datetime | None = None
    blocked_at: datetime | None = None
    invited_name: str | None = None
    verified_at: datetime | None = None
    verified_by: str | None = None
    proof_file_id: str | None = None
    # What was read on that screenshot (bot.domain.confirmation.Reading.as_record, as JSON).
    proof_reading: str | None = None

    @property
    def display_name(self) -> str:
        """Return the client's name as the firm knows it."""
        return self.invited_name or self.client_name or "—"


@dataclass(frozen=True)
class Conversation:
    """Where one chat stands in the conversation with the bot."""

    chat_id: int
    user_id: int
    state: str
    company_rut: str | None
    candidate_rut: str | None


class ReminderKind(StrEnum):
    """Why a reminder is pending."""

    AUTO = "auto"  # the REMINDER_SCHEDULE after the client's last activity
    LATER = "later"  # the client asked to be reminded at a time they chose


@dataclass(frozen=True)
class DueReminder:
    """A reminder whose time has come, with what it should say."""

    chat_id: int
    user_id: int
    company_rut: str | None
    kind: ReminderKind
    sequence: int
    anchor_at: datetime
    due_at: datetime
    step: int | None


class EventKind(StrEnum):
    """What one line of a company's history records (stored as its value)."""

    INVITED = "invited"
    PASSED_ON = "passed_on"
    INVITATION_OPENED = "invitation_opened"
    STARTED = "started"
    STEP = "step"
    COMPLETED = "completed"
    PROBLEM = "problem"
    REMINDER = "reminder"
    REMIND_LATER = "remind_later"
    REMINDER_SCHEDULED = "reminder_scheduled"
    OPTED_OUT = "opted_out"
    BLOCKED = "blocked"
    VERIFIED = "verified"
    REJECTED = "rejected"
    DATA_DELETED = "data_deleted"


@dataclass(frozen=True)
class Event:
    """One entry in a company's history."""

    at: datetime
    kind: str
    step: int | None
    actor: str | None


@dataclass(frozen=True)
class OutboxMessage:
    """A message to a firm chat that must be delivered even across crashes."""

    id: int
    chat_id: int
    text: str
    buttons: str | None = None
    photo_file_id: str | None = None
    attempts: int = 0
    # The completion event a notice is about: its verification buttons are drawn from it.
    ref: int | None = None


@dataclass(frozen=True)
class FirmMessage:
    """A message to queue for a firm chat."""

    chat_id: int
    text: str
    handoff_id: int | None = None
    photo_file_id: str | None = None


@dataclass(frozen=True)
class Handoff:
    """A client's problem put in the firm's hands, open until the firm closes it."""

    id: int
    chat_id: int
    user_id: int
    company_rut: str | None
    step: int | None
    problem: str
    closed_at: datetime | None


@dataclass(frozen=True)
class Deletion:
    """What deleting a client's data did, per company."""

    anonymized: list[str]  # completed: the completion fact stays, without the client
    removed: list[str]  # unfinished: gone entirely


@dataclass(frozen=True)
class Invitation:
    """A deep link the firm made for one company's client."""

    token: str
    company_rut: str
    client_name: str | None
    expires_at: datetime
    used_by_chat: int | None


class ListOutcome(StrEnum):
    """What inviting one company of the firm's client list did."""

    NEW = "new"  # a new invitation was made
    REUSED = "reused"  # an unexpired, unopened invitation from the firm already existed
    COMPLETED = "completed"  # the company already authorized: nobody is invited


@dataclass(frozen=True)
class ListInvitation:
    """One company of the firm's client list: what was done, and the invitation to send."""

    company_rut: str
    outcome: ListOutcome
    token: str | None


@dataclass(frozen=True)
class DeliveredNotice:
    """A firm notice already in a firm chat, which can be edited."""

    chat_id: int
    message_id: int
    text: str
    has_photo: bool = False


def authorization_from_row(row: Sequence[Any]) -> Authorization:
    """Build an Authorization from a row read with SELECT_AUTHORIZATIONS."""
    return Authorization(
        company_rut=row[0],
        client_chat_id=row[1],
        client_user_id=row[2],
        client_name=row[3],
        client_username=row[4],
        step=row[5],
        started_at=from_timestamp(row[6]),
        last_activity_at=from_timestamp(row[7]),
        completed_at=maybe_time(row[8]),
        reminders_sent=row[9],
        opted_out_at=maybe_time(row[10]),
        blocked_at=maybe_time(row[11]),
        invited_name=row[12],
        verified_at=maybe_time(row[13]),
        verified_by=row[14],
        proof_file_id=row[15],
        proof_reading=row[16],
    )


def handoff_from_row(row: Sequence[Any]) -> Handoff:
    """Build a Handoff from a row read with SELECT_HANDOFF."""
    return Handoff(row[0], row[1], row[2], row[3], row[4], row[5], maybe_time(row[6]))


def maybe_time(value: float | None) -> datetime | None:
    """Convert stored epoch seconds, or NULL, to an aware datetime or None."""
    return from_timestamp(value) if value is not None else None
