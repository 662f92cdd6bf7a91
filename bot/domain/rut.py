"""Chilean RUT parsing for what clients actually type."""

import re
import unicodedata
from enum import Enum

from stdnum.cl import rut as stdnum_rut
from stdnum.exceptions import InvalidChecksum, ValidationError

# Longer than any way of writing a RUT, so a pasted paragraph fails fast.
_MAX_INPUT_LENGTH = 40
_PREFIX = re.compile(
    r"^\s*(?:r\.?\s*u\.?\s*t\.?|rol\s+[úu]nico\s+tributario)\s*(?:n[°º.]?\s*)?[:.]?\s*", re.I
)


class RutProblem(Enum):
    """Why a text is not an acceptable RUT."""

    NOT_A_RUT = "not_a_rut"
    WRONG_CHECK_DIGIT = "wrong_check_digit"


class RutError(ValueError):
    """A text that could not be read as a valid RUT."""

    def __init__(self, problem: RutProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def visible_text(text: str) -> str:
    """Drop invisible format marks (Unicode category Cf) and make every space a plain one."""
    # Pasted from a web page or a PDF, a RUT brings zero-width spaces and joiners, a BOM,
    # bidi marks and isolates, soft hyphens, and non-breaking or thin spaces.
    return "".join(
        " " if unicodedata.category(char) in ("Zs", "Zl", "Zp") else char
        for char in text
        if unicodedata.category(char) != "Cf"
    )


def parse_rut(text: str) -> str:
    """Return the RUT in `text` in compact form ('76086428-5') or raise RutError."""
    text = visible_text(text)
    if len(text) > _MAX_INPUT_LENGTH:
        raise RutError(RutProblem.NOT_A_RUT)
    candidate = _PREFIX.sub("", text).strip()
    try:
        digits = stdnum_rut.compact(candidate).lstrip("0")
        stdnum_rut.validate(digits)
    except InvalidChecksum:
        raise RutError(RutProblem.WRONG_CHECK_DIGIT) from None
    except ValidationError:
        raise RutError(RutProblem.NOT_A_RUT) from None
    return f"{digits[:-1]}-{digits[-1]}"


def format_rut(rut: str) -> str:
    """Format a compact RUT with dots for display ('76.086.428-5')."""
    return str(stdnum_rut.format(rut))
