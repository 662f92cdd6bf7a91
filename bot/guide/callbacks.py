"""Callback data of every inline button, and reading it back safely."""

import re
from dataclasses import dataclass
from enum import StrEnum

RUT_OK = "rut:ok"
RUT_EDIT = "rut:edit"
REPEAT_YES = "rep:yes"
REPEAT_NO = "rep:no"
KEEP_GOING = "st:keep"
START_OVER = "st:over"
RESUME = "st:resume"
ANOTHER_COMPANY = "st:another"
ON_COMPUTER = "dev:pc"
ON_PHONE = "dev:phone"
PASS_ON = "pass:on"

LATER_MENU = "later:menu"
STOP_REMINDERS = "rem:stop"

VERIFY_PATTERN = r"^vf:(ok|no):[0-9]{1,18}$"
PAGE_PATTERN = r"^pg:(pend|comp):[0-9]{1,6}(:[0-9]{4}-[0-9]{2}-[0-9]{2})?$"

# "pb:3" is the menu of step 3, "pb:3:key" one problem's answer, "pb:3:key:firm" the client
# saying the answer did not help (only that tells the firm), "pb:3:key:proof" the client
# about to send the screenshot that answer asks for (the firm is told too).
PROBLEM_PATTERN = r"^pb:[1-7](:[a-z0-9]{1,10}(:firm|:proof)?)?$"
DELETE_PATTERN = r"^del:(yes|no)$"
DELETE_YES = "del:yes"
DELETE_NO = "del:no"

RUT_PATTERN = r"^rut:(ok|edit)$"
REPEAT_PATTERN = r"^rep:(yes|no)$"
START_PATTERN = r"^st:(keep|over|resume|another)$"
DEVICE_PATTERN = r"^dev:(pc|phone)$"
PASS_ON_PATTERN = r"^pass:on$"
GUIDE_PATTERN = r"^g:[1-7]:[a-z0-9]{1,10}$"
LATER_PATTERN = r"^later:[a-z0-9]{1,10}$"
STOP_REMINDERS_PATTERN = r"^rem:stop$"

_GUIDE = re.compile(GUIDE_PATTERN)


class GuideAction(StrEnum):
    """What a button on a step asks for."""

    NEXT = "next"
    BACK = "back"
    SAVED_USER = "save"  # step 6: "Grabar Usuario" pressed
    MISMATCH = "mismatch"  # step 6: the confirmation screen shows other data
    SUCCESS = "yes"  # step 7: the SII confirmed
    NOT_SAVED = "no"  # step 7: no confirmation seen
    BACK_TO_PERMISSIONS = "back5"  # step 7: redo from step 5


@dataclass(frozen=True)
class GuideButton:
    """A pressed step button: the step it was shown at and the action."""

    step: int
    action: GuideAction


def verify_data(completion: int, *, found: bool) -> str:
    """Return the callback data of the firm's verify / not-found buttons."""
    return f"vf:{'ok' if found else 'no'}:{completion}"


def page_data(listing: str, page: int, since: str | None = None) -> str:
    """Return the callback data that shows page `page` of a firm listing."""
    return f"pg:{listing}:{page}" + (f":{since}" if since else "")


@dataclass(frozen=True)
class ProblemButton:
    """A pressed problem button: the step, the problem (None: the menu), and whether the
    client asks to talk to the firm about it, or is about to send the screenshot it asks for."""

    step: int
    key: str | None
    to_firm: bool = False
    proof: bool = False


def problem_data(
    step: int, key: str | None = None, *, to_firm: bool = False, proof: bool = False
) -> str:
    """Return the callback data of the problem menu at a step, or of one problem in it."""
    suffix = ":firm" if to_firm else ":proof" if proof else ""
    return f"pb:{step}" + (f":{key}{suffix}" if key else "")


def parse_problem_data(data: str | None) -> ProblemButton | None:
    """Read problem-menu callback data; None for anything malformed."""
    if data is None or not re.fullmatch(PROBLEM_PATTERN, data):
        return None
    parts = data.split(":")
    last = parts[3] if len(parts) > 3 else ""
    key = parts[2] if len(parts) > 2 else None
    return ProblemButton(int(parts[1]), key, last == "firm", last == "proof")


def later_data(key: str) -> str:
    """Return the callback data choosing a remind-me-later option."""
    return f"later:{key}"


def guide_data(step: int, action: GuideAction) -> str:
    """Return the callback data for a step button."""
    return f"g:{step}:{action.value}"


def parse_guide_data(data: str | None) -> GuideButton | None:
    """Read a step button's callback data; None for anything malformed or unknown."""
    if data is None or not _GUIDE.match(data):
        return None
    _, step, action = data.split(":")
    try:
        return GuideButton(int(step), GuideAction(action))
    except ValueError:
        return None
