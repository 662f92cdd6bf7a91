"""The guide's texts: loaded from TOML, checked, and rendered with the firm's settings."""

import html
import string
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.rut import format_rut

DEFAULT_GUIDE_PATH = Path(__file__).with_name("guide.toml")
TOTAL_STEPS = 7
# The step whose screen is checked before "Grabar Usuario", and the final one.
CONFIRMATION_STEP = 6
FINAL_STEP = 7
# Where a mismatch or an unsaved user sends the client back to.
PERMISSIONS_STEP = 5


class Step(BaseModel):
    """One step of the SII procedure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str


class Problem(BaseModel):
    """Something that goes wrong at some steps, and what to tell the client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z0-9]{1,10}$")
    label: str
    steps: tuple[int, ...]
    answer: str
    continue_at: int | None = None
    offer_later: bool = False
    ask_text: bool = False

    @field_validator("continue_at")
    @classmethod
    def _continue_to_confirmation(cls, step: int | None) -> int | None:
        if step is not None and step != CONFIRMATION_STEP:
            raise ValueError(f"only continue_at = {CONFIRMATION_STEP} is supported")
        return step

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps or any(step not in range(1, TOTAL_STEPS + 1) for step in steps):
            raise ValueError(f"steps must be between 1 and {TOTAL_STEPS}")
        return steps


class GuideContent(BaseModel):
    """The whole text of the bot, as found in the TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: dict[str, str]
    buttons: dict[str, str]
    steps: tuple[Step, ...]
    commands: dict[str, dict[str, str]]
    problems: tuple[Problem, ...] = ()

    @field_validator("steps")
    @classmethod
    def _seven_steps(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        if len(steps) != TOTAL_STEPS:
            raise ValueError(f"the guide must have exactly {TOTAL_STEPS} steps, not {len(steps)}")
        return steps


class GuideError(Exception):
    """A guide file that cannot be used, described in one line."""


class FirmFacts(BaseModel):
    """The configured facts the texts talk about."""

    model_config = ConfigDict(frozen=True)

    firm_name: str
    representative_name: str
    representative_full_name: str
    representative_rut: str
    permissions: tuple[str, ...]
    portal_url: str


class _Values(dict[str, str]):
    """Placeholder values; an unknown placeholder is an error, not a silent blank."""

    def __missing__(self, key: str) -> str:
        raise KeyError(key)


# Placeholders some texts get beyond the common ones (sample values for the load-time check).
_EXTRA_SAMPLES = {
    "completed_date": "1 de enero de 2026",
    "client_name": "Cliente",
    "client_username": "@cliente",
    "client_id": "1",
    "completed_at": "01-01-2026 10:00",
    "duration": "5 min",
    "when": "mañana 9:00",
    "date": "01-01-2026",
    "count": "1",
    "reminders": "1",
    "marks": "",
    "actor": "Ana",
    "link": "https://t.me/bot?start=x",
    "expires": "01-01-2026 10:00",
    "total": "1",
    "page": "1",
    "pages": "1",
    "since": "",
    "progress": "paso 1 de 7",
    "verified": "",
    "state": "pendiente",
    "what": "comenzó",
    "problem": "Otro",
    "text": "Hola",
    "retention_days": "180",
    "companies": "76.086.428-5",
}


class Guide:
    """Renders every text the bot sends, with the firm's facts filled in."""

    def __init__(
        self, content: GuideContent, facts: FirmFacts, required: GuideContent | None = None
    ) -> None:
        self._content = content
        self._facts = facts
        self._common = {
            "firm_name": facts.firm_name,
            "representative_name": facts.representative_name,
            "representative_full_name": facts.representative_full_name,
            "representative_rut": format_rut(facts.representative_rut),
            "representative_rut_plain": facts.representative_rut,
            "portal_url": facts.portal_url,
            "total_steps": str(TOTAL_STEPS),
        }
        self._check(required or content)

    def problems_at(self, step: int) -> list[Problem]:
        """Return the problems that can happen at a step, in the guide's order."""
        return [problem for problem in self._content.problems if step in problem.steps]

    def problem(self, key: str) -> Problem | None:
        """Return a problem by its key."""
        return next((p for p in self._content.problems if p.key == key), None)

    def problem_answer(self, problem: Problem, company_rut: str | None, step: int) -> str:
        """Render a problem's answer for the client."""
        values: dict[str, object] = (
            _company_values(company_rut, step)
            if company_rut
            else {"step": step, "company_rut": "—", "company_rut_plain": "—"}
        )
        return self._render(problem.answer, values)

    def commands(self, audience: str) -> dict[str, str]:
        """Return the command menu (command → description) for 'client' or 'firm'."""
        return dict(self._content.commands.get(audience, {}))

    @property
    def portal_url(self) -> str:
        """Return the SII page the client must open."""
        return self._facts.portal_url

    def message(self, key: str, **values: object) -> str:
        """Render one message, escaping every value for Telegram HTML."""
        return self._render(self._content.messages[key], values)

    def button(self, key: str, **values: object) -> str:
        """Render one button label (plain text)."""
        merged = _Values({**self._common, **{k: str(v) for k, v in values.items()}})
        return self._content.buttons[key].format_map(merged)

    def step(self, number: int, company_rut: str) -> str:
        """Render step `number` (1-based) for a company."""
        return self._render(
            self._content.steps[number - 1].text, _company_values(company_rut, number)
        )

    def _render(self, template: str, values: Mapping[str, object]) -> str:
        escaped = {key: html.escape(value) for key, value in self._common.items()}
        escaped.update({key: html.escape(str(value)) for key, value in values.items()})
        # The permission lists are built here, so their markup is ours and stays unescaped.
        escaped["permissions_checklist"] = "\n".join(
            f"☑️ <b>{html.escape(name)}</b>" for name in self._facts.permissions
        )
        escaped["permissions_confirmation"] = "\n".join(
            f"• {html.escape(name)}: SI" for name in self._facts.permissions
        )
        return template.format_map(_Values(escaped))

    def _check(self, required: GuideContent) -> None:
        samples = {**_company_values("76086428-5", 1), **_EXTRA_SAMPLES}
        missing = {f"messages.{k}" for k in required.messages.keys() - self._content.messages} | {
            f"buttons.{k}" for k in required.buttons.keys() - self._content.buttons
        }
        if missing:
            raise GuideError(f"the guide lacks texts: {', '.join(sorted(missing))}")
        texts = [(f"messages.{k}", v) for k, v in self._content.messages.items()]
        texts += [(f"buttons.{k}", v) for k, v in self._content.buttons.items()]
        texts += [(f"steps[{i + 1}]", s.text) for i, s in enumerate(self._content.steps)]
        texts += [(f"problems.{p.key}", p.answer) for p in self._content.problems]
        if len({p.key for p in self._content.problems}) != len(self._content.problems):
            raise GuideError("two problems share a key")
        for where, text in texts:
            try:
                self._render(text, samples)
            except (KeyError, ValueError, IndexError) as exc:
                raise GuideError(f"{where}: bad placeholder {exc}") from None
        if required is not self._content:
            self._check_placeholders_against(required)

    def _check_placeholders_against(self, packaged: GuideContent) -> None:
        """Refuse a reworded text using a placeholder its packaged text is never given."""
        common = set(self._common) | {"permissions_checklist", "permissions_confirmation"}
        pairs = [
            (f"messages.{key}", text, packaged.messages[key])
            for key, text in self._content.messages.items()
            if key in packaged.messages
        ]
        pairs += [
            (f"buttons.{key}", text, packaged.buttons[key])
            for key, text in self._content.buttons.items()
            if key in packaged.buttons
        ]
        pairs += [
            (f"steps[{number}]", step.text, "{company_rut}{company_rut_plain}{step}")
            for number, step in enumerate(self._content.steps, start=1)
        ]
        pairs += [
            (f"problems.{p.key}", p.answer, "{company_rut}{company_rut_plain}{step}")
            for p in self._content.problems
        ]
        for where, text, original in pairs:
            extra = _placeholders(text) - _placeholders(original) - common
            if extra:
                raise GuideError(f"{where}: {{{sorted(extra)[0]}}} is not available in this text")


def _placeholders(text: str) -> set[str]:
    """Return the names of the {placeholders} a text uses."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _company_values(company_rut: str, step: int) -> dict[str, object]:
    return {"company_rut": format_rut(company_rut), "company_rut_plain": company_rut, "step": step}


def load_guide(path: Path | None, facts: FirmFacts) -> Guide:
    """Read and check the guide file (the packaged one when `path` is None).

    A reworded guide must still have every text the packaged one has.
    """
    packaged = _read_content(DEFAULT_GUIDE_PATH)
    if path is None:
        return Guide(packaged, facts)
    return Guide(_read_content(path), facts, required=packaged)


def _read_content(source: Path) -> GuideContent:
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        return GuideContent.model_validate(data)
    except OSError as exc:
        raise GuideError(f"cannot read {source}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GuideError(f"{source} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise GuideError(f"{source}: {where}: {first['msg']}") from None


def local_date(moment: datetime, tz: ZoneInfo) -> str:
    """Format a date the way Chileans write it (24-11-2026)."""
    return moment.astimezone(tz).strftime("%d-%m-%Y")


def local_datetime(moment: datetime, tz: ZoneInfo) -> str:
    """Format a date and time in local time (24-11-2026 18:05)."""
    return moment.astimezone(tz).strftime("%d-%m-%Y %H:%M")
