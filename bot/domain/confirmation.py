"""What a client's picture of the SII's confirmation screen proves, read from its OCR text.

The SII's answer to «Grabar Usuario» (step 7 of the guide) reads:

    Se ha grabado satisfactoriamente el nuevo usuario en la empresa NOMBRE, Rut 76086428-5,
    con los siguientes antecedentes:
    Rut Usuario             13322924-8
    Nombre Usuario          ALEX PATRICIO BRITO MARDONES
    Usuario-Administrador   SI
    Firmar Documentos       SI
    Registro                SI

`read_confirmation` takes the lines an OCR engine found (one table row per line) and says
whether they prove the authorization. It tolerates OCR noise (lost accents, O/0 and l/1, RUTs
with or without dots, a colon for the dash, lines split or run together), and never confirms
on a guess: only the success sentence, a company RUT with a valid check digit equal to the
client's, a user RUT equal to the representative's and every configured permission read as SI,
all found, confirm. The name is compared for information only; the RUT decides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bot.domain.rut import RutError, parse_rut


class Screen(Enum):
    """Which SII page the picture shows."""

    SAVED = "saved"  # «Se ha grabado satisfactoriamente ...»: step 7, the proof
    CREATING = "creating"  # «Se está creando el siguiente usuario ...»: step 6, not saved yet
    OTHER = "other"  # another page, or nothing readable


class Answer(Enum):
    """A permission's SI/NO as read."""

    YES = "SI"
    NO = "NO"
    UNKNOWN = "?"


class Verdict(Enum):
    """What the picture proves."""

    CONFIRMED = "confirmed"  # everything read and as expected
    MISMATCH = "mismatch"  # saved, but something differs (see `differences`)
    NOT_CONFIRMATION = "not_confirmation"  # not the saved screen, or not readable enough


# The `field` of a Difference, and the names in `unread`.
COMPANY_RUT = "company_rut"
USER_RUT = "user_rut"
PERMISSION = "permission"


@dataclass(frozen=True)
class Expected:
    """What the picture must show for this client."""

    company_rut: str  # compact, '76086428-5'
    representative_rut: str  # compact
    representative_name: str
    permissions: tuple[str, ...]  # as configured: 'Usuario Administrador', ...


@dataclass(frozen=True)
class Difference:
    """One thing the picture shows other than expected."""

    field: str  # COMPANY_RUT, USER_RUT or PERMISSION
    expected: str
    read: str
    permission: str | None = None  # the configured name, for PERMISSION


@dataclass(frozen=True)
class Reading:
    """Everything read from one picture, and the verdict."""

    screen: Screen
    company_name: str | None
    company_rut: str | None  # compact, check digit valid; None if not read
    user_rut: str | None
    user_name: str | None
    # Each configured permission, in the configured order, with what was read.
    permissions: tuple[tuple[str, Answer], ...]
    name_matches: bool | None  # None: no name read
    verdict: Verdict
    differences: tuple[Difference, ...] = ()
    # What could not be read on a saved screen: COMPANY_RUT, USER_RUT or a permission's name.
    unread: tuple[str, ...] = ()

    @property
    def saved(self) -> bool:
        """Whether the success sentence was found."""
        return self.screen is Screen.SAVED

    def as_record(self) -> dict[str, object]:
        """What to keep with the authorization (plain JSON values; never the picture)."""
        return {
            "screen": self.screen.value,
            "verdict": self.verdict.value,
            "company_name": self.company_name,
            "company_rut": self.company_rut,
            "user_rut": self.user_rut,
            "user_name": self.user_name,
            "permissions": {name: answer.value for name, answer in self.permissions},
            "name_matches": self.name_matches,
            "differences": [
                {
                    "field": d.field,
                    "permission": d.permission,
                    "expected": d.expected,
                    "read": d.read,
                }
                for d in self.differences
            ],
            "unread": list(self.unread),
        }


def unreadable(expected: Expected) -> Reading:
    """The reading of a picture nothing could be read from (too slow, broken, empty)."""
    return read_confirmation((), expected)


# --- normalising OCR text ---------------------------------------------------------------


def plain(text: str) -> str:
    """Upper case without accents, dashes made '-', spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    stripped = re.sub(r"[‐‑‒–—―−~]", "-", stripped)
    return " ".join(stripped.upper().split())


def _squash(text: str) -> tuple[str, list[int]]:
    """Only the letters and digits of `text`, and where each one was in `text`."""
    kept = [(c, i) for i, c in enumerate(text) if c.isalnum()]
    return "".join(c for c, _ in kept), [i for _, i in kept]


def _find(haystack: str, needle: str, max_errors: int) -> tuple[int, int] | None:
    """The span of `haystack` closest to `needle` within `max_errors` edits (Sellers)."""
    if not needle or not haystack:
        return None
    columns = len(needle) + 1
    previous = list(range(columns))
    starts = [0] * columns
    best: tuple[int, int, int] | None = None  # errors, start, end
    for j, char in enumerate(haystack, start=1):
        current = [0] * columns
        current_starts = [j] * columns
        for i in range(1, columns):
            options = (
                (previous[i - 1] + (needle[i - 1] != char), starts[i - 1]),
                (previous[i] + 1, starts[i]),
                (current[i - 1] + 1, current_starts[i - 1]),
            )
            current[i], current_starts[i] = min(options)
        if current[-1] <= max_errors and (best is None or current[-1] < best[0]):
            best = (current[-1], current_starts[-1], j)
        previous, starts = current, current_starts
    return None if best is None else (best[1], best[2])


def _errors_allowed(needle: str) -> int:
    # About one OCR slip in six letters: "SATISTACTONAMENTE" still reads as the word.
    return max(1, len(needle) // 6)


def _starts_with(line: str, label: str) -> int | None:
    """Where the value after `label` begins in `line`, if the line starts with the label."""
    squashed, where = _squash(line)
    head = squashed[: len(label) + 4]
    span = _find(head, label, _errors_allowed(label))
    if span is None or span[0] > 2:
        return None
    end = span[1]
    return where[end - 1] + 1 if end else 0


# --- RUTs, SI/NO, names -----------------------------------------------------------------

# A RUT as OCR writes it: digits (or letters that look like them), dots, commas or spaces
# between groups, a dash (or a colon, or nothing) before the check digit.
_RUT_LIKE = re.compile(r"[0-9OQDIL|!]{1,3}(?:[.,\s]?[0-9OQDIL|!]{3}){2}\s?[-:;.,]?\s?[0-9K]")
_AS_DIGIT = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "|": "1", "!": "1"})


def _rut_in(text: str) -> str | None:
    """The first valid RUT in `text` (compact), if one is there."""
    for match in _RUT_LIKE.finditer(text):
        candidate = match.group().translate(_AS_DIGIT)
        digits = re.sub(r"[^0-9K]", "", candidate)
        try:
            return parse_rut(f"{digits[:-1]}-{digits[-1]}")
        except RutError:
            continue
    return None


def _answer(text: str) -> Answer:
    """SI or NO written in `text` (the rest of a table row), or UNKNOWN."""
    # The cell holds one word; a border read as |, ! or ] beside it is not one.
    words = [w for w in re.findall(r"[A-Z0-9|!\]]+", text) if w.strip("|!]")]
    if len(words) != 1:
        return Answer.UNKNOWN
    word = words[0]
    # Tesseract reads the lone I beside a cell's border as 1, l, |, ! or ]; never an N or O.
    if word in {"SI", "S1", "5I", "51", "SL", "S|", "S!", "S]", "SI]"}:
        return Answer.YES
    if word in {"NO", "N0", "NQ", "ND"}:
        return Answer.NO
    return Answer.UNKNOWN


def _words(name: str) -> list[str]:
    return sorted(re.findall(r"[A-Z]+", plain(name)))


# --- the screen -------------------------------------------------------------------------

_SAVED = "SEHAGRABADOSATISFACTORIAMENTE"
_CREATING = ("SEESTACREANDOELSIGUIENTEUSUARIO", "CONFIRMACIONUSUARIOAUTORIZADO")
_COMPANY = "ENLAEMPRESA"
_SENTENCE_END = ("CONLOSSIGUIENTES", "ANTECEDENTES", "RUTUSUARIO")
_USER_RUT = "RUTUSUARIO"
_USER_NAME = "NOMBREUSUARIO"
_AUTHORIZED_BY = "AUTORIZADOPOR"
# The rows of the table, top to bottom, by their labels squashed; configured permissions that
# are not among them are looked for anywhere.
_SCREEN_ROWS = (
    _USER_RUT,
    _USER_NAME,
    "USUARIOADMINISTRADOR",
    "FIRMARDOCUMENTOS",
    "REGISTRO",
    _AUTHORIZED_BY,
)
_COMPANY_RUT = re.compile(r"\bR\s?U\s?T\s*[:.]?\s*(" + _RUT_LIKE.pattern + ")")


def _screen(squashed: str) -> Screen:
    if _find(squashed, _SAVED, _errors_allowed(_SAVED)):
        return Screen.SAVED
    if any(_find(squashed, marker, _errors_allowed(marker)) for marker in _CREATING):
        return Screen.CREATING
    return Screen.OTHER


def _company(text: str) -> tuple[str | None, str | None]:
    """The company's name and RUT from the success sentence in `text` (all lines joined).

    Only the span from «en la empresa» to «con los siguientes antecedentes» (or the table's
    first label) counts, and the RUT must follow the word «Rut» there: a picture whose lines
    came out of order leaves the company unread rather than taking another RUT for it.
    """
    squashed, where = _squash(text)
    saved = _find(squashed, _SAVED, _errors_allowed(_SAVED))
    if saved is None:
        return None, None
    after = squashed[saved[1] :]
    company = _find(after[:40], _COMPANY, _errors_allowed(_COMPANY))
    if company is None:
        return None, None
    begin = saved[1] + company[1]
    ends = [_find(squashed[begin:], end, _errors_allowed(end)) for end in _SENTENCE_END]
    if not any(ends):
        return None, None
    cut = begin + min(e[0] for e in ends if e)
    sentence = text[where[begin - 1] + 1 : where[cut] if cut < len(where) else len(text)]
    found = list(_COMPANY_RUT.finditer(sentence))
    if len(found) != 1:
        return None, None
    name = sentence[: found[0].start()].strip(" ,.") or None
    return name, _rut_in(found[0].group(1))


def _label_at(line: str, labels: Sequence[str]) -> tuple[str, int] | None:
    """The label `line` starts with, and where its value begins."""
    for label in labels:
        start = _starts_with(line, label)
        if start is not None:
            return label, start
    return None


def _rows(lines: Sequence[str], labels: Sequence[str]) -> dict[str, str | None]:
    """The value of each labelled row; None where it cannot be told for sure.

    A value is the rest of its label's line, or else the one line between its label and the
    next label. When the engine gave each cell its own line, the labels must come in the
    screen's order (`labels`) and each value right after its label; anything else (a value
    missing, two lines where one belongs, labels out of order, a label twice) leaves that
    row unread, so a value is never taken for another row's.
    """
    found: list[tuple[int, str, int]] = []  # line index, label, value start
    for index, line in enumerate(lines):
        hit = _label_at(line, labels)
        if hit is not None:
            found.append((index, *hit))
    values: dict[str, str | None] = {}
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = sum(1 for _, other, _ in found if other == label)
    order = [label for _, label, _ in found]
    in_order = order == [label for label in labels if label in order]
    for position, (index, label, start) in enumerate(found):
        if seen[label] != 1:
            values[label] = None
            continue
        rest = lines[index][start:].strip(" .:|")
        if rest:
            values[label] = rest
            continue
        following = found[position + 1][0] if position + 1 < len(found) else len(lines)
        between = lines[index + 1 : following]
        values[label] = between[0] if in_order and len(between) == 1 else None
    return values


def read_confirmation(lines: Sequence[str], expected: Expected) -> Reading:
    """What the OCR `lines` of a picture prove about this client's authorization."""
    rows = [plain(line) for line in lines if plain(line).strip(" .,:;|-_'\"")]
    text = " ".join(rows)
    screen = _screen(_squash(text)[0])

    company_name, company_rut = _company(text) if screen is Screen.SAVED else (None, None)
    wanted = {permission: _squash(plain(permission))[0] for permission in expected.permissions}
    labels = (*_SCREEN_ROWS, *(label for label in wanted.values() if label not in _SCREEN_ROWS))
    values = _rows(rows, labels)
    user_rut_text = values.get(_USER_RUT)
    user_rut = _rut_in(user_rut_text) if user_rut_text else None
    user_name = values.get(_USER_NAME)
    permissions = []
    for permission, label in wanted.items():
        value = values.get(label)
        permissions.append((permission, _answer(value) if value else Answer.UNKNOWN))
    name_matches = (
        None if user_name is None else _words(user_name) == _words(expected.representative_name)
    )

    differences: list[Difference] = []
    unread: list[str] = []
    if screen is Screen.SAVED:
        for field, read, target in (
            (COMPANY_RUT, company_rut, expected.company_rut),
            (USER_RUT, user_rut, expected.representative_rut),
        ):
            if read is None:
                unread.append(field)
            elif read != parse_rut(target):
                differences.append(Difference(field, parse_rut(target), read))
        for permission, answer in permissions:
            if answer is Answer.NO:
                differences.append(Difference(PERMISSION, "SI", "NO", permission))
            elif answer is Answer.UNKNOWN:
                unread.append(permission)

    if screen is not Screen.SAVED:
        verdict = Verdict.NOT_CONFIRMATION
    elif differences:
        verdict = Verdict.MISMATCH
    elif unread:
        verdict = Verdict.NOT_CONFIRMATION
    else:
        verdict = Verdict.CONFIRMED
    return Reading(
        screen=screen,
        company_name=company_name,
        company_rut=company_rut,
        user_rut=user_rut,
        user_name=user_name,
        permissions=tuple(permissions),
        name_matches=name_matches,
        verdict=verdict,
        differences=tuple(differences),
        unread=tuple(unread),
    )
