"""The guide's texts: loaded from TOML, checked, and rendered with the firm's settings."""

import html
import re
import string
import tomllib
from collections.abc import Mapping
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from telegram.constants import MessageLimit

from bot.domain.rut import format_rut
from bot.domain.schedule import FirmHours, LaterOption, next_opening

DEFAULT_GUIDE_PATH = Path(__file__).with_name("guide.toml")
TOTAL_STEPS = 7
# The step whose screen is checked before "Grabar Usuario", and the final one.
CONFIRMATION_STEP = 6
FINAL_STEP = 7
# Where a mismatch or an unsaved user sends the client back to.
PERMISSIONS_STEP = 5
# A step's picture is sent as a photo, so Telegram's photo limit applies, and it should load
# quickly on a phone.
MAX_IMAGE_BYTES = 1_000_000


class Step(BaseModel):
    """One step of the SII procedure: its text and, optionally, a picture of the screen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    # A PNG or JPEG, relative to the guide file (or to the packaged guide's folder).
    image: str | None = None


class Problem(BaseModel):
    """Something that goes wrong at some steps, and what to tell the client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z0-9]{1,10}$")
    # A button label (plain text): the common placeholders, such as {representative_name}.
    label: str
    steps: tuple[int, ...]
    answer: str
    # The problem whose answer lists this one (e.g. each SII error code under "login");
    # None: listed in the step's own problem menu.
    menu: str | None = None
    # The answer asks for a screenshot of what the SII shows, which goes to the firm: the
    # client's word alone never counts as done.
    ask_proof: bool = False
    # The answer sends the client back to the SII page (a session that expired, say).
    portal_button: bool = False
    offer_later: bool = False
    ask_text: bool = False

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
    # What each permission lets the representative do (keyed by the permission's name).
    permission_help: dict[str, str] = {}
    # Monday first, for "le responderán el lunes".
    weekdays: tuple[str, str, str, str, str, str, str]

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
    "reply_when": "Le responderán hoy.",
    "firm_hours": "lunes a viernes, de 9:00 a 18:00",
    "opens": "9:00",
    "closes": "18:00",
    "time": "9:00",
    "weekday": "lunes",
    "opening": "mañana desde las 9:00",
    "chat_id": "-1001234567890",
    "attempts": "20",
    "minutes": "10",
    "differences": "Registro: NO",
    "fixes": "Haga clic en Modificar Otro Usuario.",
    "permission": "Registro",
    "read": "12.345.678-5",
}


class Guide:
    """Renders every text the bot sends, with the firm's facts filled in."""

    def __init__(
        self,
        content: GuideContent,
        facts: FirmFacts,
        required: GuideContent | None = None,
        image_dirs: tuple[Path, ...] = (DEFAULT_GUIDE_PATH.parent,),
    ) -> None:
        self._content = content
        self._facts = facts
        number, check_digit = facts.representative_rut.split("-")
        self._common = {
            "firm_name": facts.firm_name,
            "representative_name": facts.representative_name,
            "representative_full_name": facts.representative_full_name,
            "representative_rut": format_rut(facts.representative_rut),
            "representative_rut_plain": facts.representative_rut,
            "representative_rut_number": number,
            "representative_rut_dv": check_digit,
            "portal_url": facts.portal_url,
            "total_steps": str(TOTAL_STEPS),
        }
        # What every render starts from, escaped once: the common values, and the permission
        # lists (built here, so their markup is ours and stays unescaped).
        self._escaped_common = {key: html.escape(value) for key, value in self._common.items()}
        self._permission_lists = {
            "permissions_checklist": "\n".join(
                f"☑️ <b>{html.escape(name)}</b>" for name in facts.permissions
            ),
            "permissions_confirmation": "\n".join(
                f"• {html.escape(name)}: SI" for name in facts.permissions
            ),
            "permissions_explained": "\n".join(
                f"• <b>{html.escape(name)}</b>: {content.permission_help[name]}"
                for name in facts.permissions
                if name in content.permission_help
            ),
        }
        self._images = tuple(
            _find_image(step, n, image_dirs) for n, step in enumerate(content.steps, start=1)
        )
        self._check(required or content)

    @property
    def facts(self) -> FirmFacts:
        """Return the configured facts the texts talk about."""
        return self._facts

    def step_image(self, number: int) -> Path | None:
        """Return the picture of step `number`'s screen, if the guide has one."""
        return self._images[number - 1]

    def problems_at(self, step: int, menu: str | None = None) -> list[Problem]:
        """Return the problems listed at a step (in `menu`'s answer, or the step's own menu)."""
        return [p for p in self._content.problems if step in p.steps and p.menu == menu]

    def problem_label(self, problem: Problem) -> str:
        """Render a problem's button label (plain text)."""
        return problem.label.format_map(_Values(self._common))

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

    def message(
        self, key: str, html_values: Mapping[str, str] | None = None, /, **values: object
    ) -> str:
        """Render one message, escaping every value for Telegram HTML.

        `html_values` are texts of this guide already rendered (so already escaped).
        """
        return self._render(self._content.messages[key], values, html_values)

    def reply_promise(self, now: datetime, hours: FirmHours | None, tz: ZoneInfo) -> str:
        """Say when the firm will answer a client who asked for help now."""
        if hours is None:
            return self.message("reply_anytime")
        label = self.message(
            "firm_hours_label", opens=clock_label(hours.opens), closes=clock_label(hours.closes)
        )
        opening = next_opening(now, hours, tz)
        if opening is None:
            return self.message("reply_open", {"firm_hours": label})
        local, today = opening.astimezone(tz), now.astimezone(tz).date()
        days = (local.date() - today).days
        at = clock_label(local.time())
        if days == 0:
            when = self.message("opening_today", time=at)
        elif days == 1:
            when = self.message("opening_tomorrow", time=at)
        else:
            when = self.message(
                "opening_weekday", time=at, weekday=self._content.weekdays[local.weekday()]
            )
        return self.message("reply_closed", {"firm_hours": label, "opening": when})

    def later_label(self, option: LaterOption, tz: ZoneInfo) -> str:
        """Name a 'remind me later' time as its button says it ('Mañana 9:00')."""
        local = option.at.astimezone(tz)
        return self.button(
            f"later_{option.when.value}", time=clock_label(local.time()), date=f"{local:%d-%m}"
        )

    def later_set(self, option: LaterOption, tz: ZoneInfo) -> str:
        """Confirm a chosen 'remind me later' time in a sentence ("Le escribiré mañana 9:00")."""
        label = self.later_label(option, tz)
        return self.message("later_set", when=label[:1].lower() + label[1:])

    def button(self, key: str, **values: object) -> str:
        """Render one button label (plain text)."""
        merged = _Values({**self._common, **{k: str(v) for k, v in values.items()}})
        return self._content.buttons[key].format_map(merged)

    def step(self, number: int, company_rut: str) -> str:
        """Render step `number` (1-based) for a company."""
        return self._render(
            self._content.steps[number - 1].text, _company_values(company_rut, number)
        )

    def _render(
        self,
        template: str,
        values: Mapping[str, object],
        rendered: Mapping[str, str] | None = None,
    ) -> str:
        """Fill a template: `values` are escaped for Telegram HTML, `rendered` already are."""
        escaped = _Values(self._escaped_common)
        escaped.update({key: html.escape(str(value)) for key, value in values.items()})
        escaped.update(rendered or {})
        escaped.update(self._permission_lists)
        return template.format_map(escaped)

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
        self._check_menus()
        for where, text in texts:
            try:
                rendered = self._render(text, samples)
            except (KeyError, ValueError, IndexError) as exc:
                raise GuideError(f"{where}: bad placeholder {exc}") from None
            limit = _limit_of(where, self._images)
            if telegram_length(visible_text(rendered)) > limit:
                raise GuideError(f"{where}: longer than Telegram's {limit} characters")
        if required is not self._content:
            self._check_placeholders_against(required)

    def _check_menus(self) -> None:
        """Refuse a problem listed under one that is missing, nested, or not at its steps."""
        by_key = {p.key: p for p in self._content.problems}
        for problem in self._content.problems:
            try:
                self.problem_label(problem)
            except (KeyError, ValueError, IndexError) as exc:
                raise GuideError(f"problems.{problem.key}.label: bad placeholder {exc}") from None
            if problem.menu is None:
                continue
            parent = by_key.get(problem.menu)
            if parent is None or parent.menu is not None:
                raise GuideError(f"problems.{problem.key}: menu {problem.menu!r} is not a menu")
            if not set(problem.steps) <= set(parent.steps):
                raise GuideError(f"problems.{problem.key}: offered at steps {problem.menu} is not")

    def _check_placeholders_against(self, packaged: GuideContent) -> None:
        """Refuse a reworded text using a placeholder its packaged text is never given."""
        common = set(self._common) | set(self._permission_lists)
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
            (f"steps[{number}]", step.text, _COMPANY_PLACEHOLDERS)
            for number, step in enumerate(self._content.steps, start=1)
        ]
        pairs += [
            (f"problems.{p.key}", p.answer, _COMPANY_PLACEHOLDERS) for p in self._content.problems
        ]
        for where, text, original in pairs:
            extra = _placeholders(text) - _placeholders(original) - common
            if extra:
                raise GuideError(f"{where}: {{{sorted(extra)[0]}}} is not available in this text")


def _placeholders(text: str) -> set[str]:
    """Return the names of the {placeholders} a text uses."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


_COMPANY_PLACEHOLDERS = "{company_rut}{company_rut_plain}{company_rut_number}{company_rut_dv}{step}"


def _company_values(company_rut: str, step: int) -> dict[str, object]:
    number, _, check_digit = company_rut.partition("-")
    return {
        "company_rut": format_rut(company_rut) if check_digit else company_rut,
        "company_rut_plain": company_rut,
        "company_rut_number": number,
        "company_rut_dv": check_digit or "—",
        "step": step,
    }


def telegram_length(text: str) -> int:
    """Return the length Telegram counts: UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(rendered_html: str) -> str:
    """Return what the client reads of a Telegram-HTML text (tags out, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered_html))


def _limit_of(where: str, images: tuple[Path | None, ...]) -> int:
    """Return Telegram's limit for a text: a caption where the step is sent as a photo."""
    if where.startswith("steps[") and images[int(where[6:-1]) - 1] is not None:
        return MessageLimit.CAPTION_LENGTH
    if where.startswith("buttons."):
        return 64  # longer labels are cut off on a phone's screen anyway
    return MessageLimit.MAX_TEXT_LENGTH


def _find_image(step: Step, number: int, folders: tuple[Path, ...]) -> Path | None:
    """Resolve a step's picture against the guide's folders; a missing or huge one is refused."""
    if step.image is None:
        return None
    for folder in folders:
        candidate = folder / step.image
        if candidate.is_file():
            size = candidate.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise GuideError(
                    f"steps[{number}].image: {step.image} is {size / 1e6:.1f} MB; "
                    f"at most {MAX_IMAGE_BYTES / 1e6:.0f} MB, so it loads quickly on a phone"
                )
            with candidate.open("rb") as file:
                if not file.read(8).startswith(_IMAGE_SIGNATURES):
                    raise GuideError(f"steps[{number}].image: {step.image} is not a PNG or JPEG")
            return candidate
    raise GuideError(f"steps[{number}].image: {step.image} not found")


_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def load_guide(path: Path | None, facts: FirmFacts) -> Guide:
    """Read and check the guide file (the packaged one when `path` is None).

    A reworded guide must still have every text the packaged one has.
    """
    packaged = _read_content(DEFAULT_GUIDE_PATH)
    if path is None:
        return Guide(packaged, facts)
    folders = (path.parent, DEFAULT_GUIDE_PATH.parent)
    return Guide(_read_content(path), facts, required=packaged, image_dirs=folders)


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


def clock_label(wall: time) -> str:
    """Format a wall time the way the texts write it (9:00, 17:30)."""
    return f"{wall.hour}:{wall.minute:02d}"


def local_date(moment: datetime, tz: ZoneInfo) -> str:
    """Format a date the way Chileans write it (24-11-2026)."""
    return moment.astimezone(tz).strftime("%d-%m-%Y")


def local_datetime(moment: datetime, tz: ZoneInfo) -> str:
    """Format a date and time in local time (24-11-2026 18:05)."""
    return moment.astimezone(tz).strftime("%d-%m-%Y %H:%M")
