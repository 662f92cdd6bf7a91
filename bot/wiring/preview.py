"""One self-contained HTML page showing, as a phone chat, everything the guide sends a client."""

import base64
import html
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

from telegram import InlineKeyboardMarkup

from bot.domain.rut import format_rut
from bot.domain.schedule import remind_later_options
from bot.domain.settings import Settings
from bot.guide import keyboards
from bot.guide.guide import (
    CONFIRMATION_STEP,
    FINAL_STEP,
    PERMISSIONS_STEP,
    TOTAL_STEPS,
    Guide,
    Problem,
    clock_label,
    local_date,
)
from conversations.client.common import invitation_link

EXAMPLE_COMPANY_RUT = "76086428-5"
# The bot's username is only known by asking Telegram, which a preview never does.
EXAMPLE_BOT_USERNAME = "nombre_del_bot"
EXAMPLE_INVITATION = "EJEMPLO"
# A Wednesday morning: every "remind me later" option is offered then.
EXAMPLE_DAY = date(2026, 3, 4)
EXAMPLE_TIME = time(11, 0)
# The step a reminder and the firm's "back to step" button use as an example.
EXAMPLE_STEP = 3

# Telegram's formatting tags, and the HTML each one is shown with; any other tag is shown as
# text (Telegram itself would refuse the message).
_TAGS = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "strike": "s",
    "del": "s",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "a": "a",
}
_LINK_TARGET = re.compile(r"^(https?://|tg://|mailto:)", re.IGNORECASE)
# What Telegram's apps turn into links by themselves: web addresses and /commands.
_AUTO_LINK = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)»]|(?<![\w/])/[A-Za-z0-9_]{1,32}\b")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_STYLE = """
*, *::before, *::after { box-sizing: border-box; }
html { background: #c9d6bf; -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0; color: #111; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif;
}
.phone { max-width: 390px; margin: 0 auto; background: #d5e2c8; min-height: 100vh; }
header {
  position: sticky; top: 0; z-index: 1; display: flex; align-items: center; gap: 10px;
  padding: 8px 12px; background: #517da2; color: #fff;
}
.avatar {
  flex: none; width: 38px; height: 38px; border-radius: 50%; background: #7bc862;
  display: flex; align-items: center; justify-content: center; font-weight: 600;
}
.who { min-width: 0; overflow-wrap: anywhere; }
.who strong { display: block; font-size: 16px; }
.who span { font-size: 13px; opacity: .8; }
.about {
  margin: 10px 12px; padding: 10px 12px; border-radius: 10px; background: #fff8d6;
  font-size: 13px; overflow-wrap: anywhere;
}
.about p { margin: 0 0 6px; }
nav { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
nav a {
  padding: 3px 9px; border-radius: 12px; background: #517da2; color: #fff;
  text-decoration: none; font-size: 13px; overflow-wrap: anywhere;
}
main { padding: 0 8px 24px; }
section { scroll-margin-top: 60px; }
h2 { margin: 18px 0 10px; text-align: center; font-size: 13px; font-weight: 600; }
h2 span {
  display: inline-block; max-width: 100%; padding: 3px 12px; border-radius: 12px;
  background: rgba(0, 0, 0, .28); color: #fff; overflow-wrap: anywhere;
}
.note {
  margin: 10px 24px; text-align: center; font-size: 12.5px; color: #2d3b27;
  font-style: italic; overflow-wrap: anywhere;
}
.message { margin: 6px 0; max-width: 88%; }
.message.photo { width: 88%; }
.message.client { margin-left: auto; width: max-content; max-width: 80%; }
.bubble {
  padding: 6px 10px 7px; border-radius: 12px 12px 12px 4px; background: #fff;
  box-shadow: 0 1px 1px rgba(0, 0, 0, .15); overflow-wrap: anywhere;
}
.client .bubble { border-radius: 12px 12px 4px 12px; background: #effdde; }
.photo .bubble { padding: 0; overflow: hidden; }
.photo img { display: block; width: 100%; max-width: 100%; height: auto; }
.photo .text { padding: 6px 10px 7px; }
.text a, .text .command { color: #2a73b8; }
.text code, .text pre {
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 14px;
  color: #b03050; overflow-wrap: anywhere;
}
.text pre { margin: 4px 0; white-space: pre-wrap; }
.text blockquote { margin: 4px 0; padding-left: 8px; border-left: 3px solid #517da2; }
.keyboard { display: flex; flex-direction: column; gap: 4px; margin-top: 4px; }
.row { display: flex; gap: 4px; }
.button {
  flex: 1 1 0; min-width: 0; padding: 8px 6px; border-radius: 8px;
  background: rgba(40, 70, 40, .35); color: #fff; text-align: center; font-size: 14px;
  font-weight: 500; line-height: 1.25; text-decoration: none; overflow-wrap: anywhere;
}
"""


def render_preview(guide: Guide, settings: Settings) -> str:
    """Return the whole page: every message and button of the guide, in order."""
    sections = list(_sections(guide, settings))
    index = "".join(f'<a href="#{s.anchor}">{html.escape(s.label)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.anchor}"><h2><span>{html.escape(s.title)}</span></h2>'
        f"{''.join(s.items)}</section>"
        for s in sections
    )
    firm = html.escape(settings.firm_name)
    source = (
        f"la guía <code>{html.escape(str(settings.guide_path))}</code> (GUIDE_PATH)"
        if settings.guide_path is not None
        else "la guía incluida en el bot"
    )
    return (
        '<!DOCTYPE html>\n<html lang="es-CL">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Vista previa del asistente de {firm}</title>\n"
        f'<style>{_STYLE}</style>\n</head>\n<body>\n<div class="phone">\n'
        f'<header><div class="avatar">{html.escape(settings.firm_name[:1].upper())}</div>'
        f'<div class="who"><strong>Asistente de {firm}</strong><span>bot</span></div></header>\n'
        '<div class="about"><p>Vista previa: lo que ve un cliente en Telegram, mensaje a mensaje '
        "y en orden, con los botones de cada mensaje. Las notas en cursiva explican qué hizo "
        f"el cliente; no las ve. Hecha con {source}.</p>"
        f"<p>Empresa de ejemplo: <code>{format_rut(EXAMPLE_COMPANY_RUT)}</code>.</p>"
        f"<nav>{index}</nav></div>\n<main>\n{body}\n</main>\n</div>\n</body>\n</html>\n"
    )


def write_preview(out: Path, settings: Settings, guide: Guide) -> None:
    """Write the preview page to `out`."""
    out.write_text(render_preview(guide, settings), encoding="utf-8")


class Section(NamedTuple):
    """A part of the conversation under its own heading."""

    anchor: str
    title: str
    items: list[str]
    # How the index at the top names it (steps and their problems by number only).
    label: str


def _sections(guide: Guide, settings: Settings) -> Iterator[Section]:
    """Yield each part of the conversation, in the order a client meets it."""
    rut = EXAMPLE_COMPANY_RUT
    company = format_rut(rut)
    now = datetime.combine(EXAMPLE_DAY, EXAMPLE_TIME, tzinfo=settings.timezone)
    start = [
        _client("/start"),
        _bot(guide.message("welcome")),
        _bot(guide.message("ask_device"), keyboards.ask_device(guide)),
        _pressed(guide.button("on_phone")),
        _bot(guide.message("on_phone"), keyboards.on_phone(guide)),
    ]
    yield Section("inicio", "Inicio", start, "Inicio")
    ask_rut = [
        _pressed(guide.button("on_computer")),
        _bot(guide.message("ask_rut"), keyboards.ask_rut(guide)),
        _client(company),
        _bot(guide.message("rut_confirm", company_rut=company), keyboards.confirm_rut(guide)),
    ]
    yield Section("rut", "RUT de la empresa", ask_rut, "RUT")
    passed_on = {
        "company_rut": company,
        "expires": local_date(now + settings.invitation_ttl, settings.timezone),
        "link": invitation_link(EXAMPLE_BOT_USERNAME, EXAMPLE_INVITATION),
    }
    who_can = [
        _pressed(guide.button("confirm_rut")),
        _bot(guide.message("who_can", company_rut=company), keyboards.pass_on(guide)),
        _pressed(guide.button("pass_on"), "si otra persona tiene el certificado"),
        _bot(guide.message("pass_on_intro", **passed_on)),
        _bot(guide.message("pass_on_forward", **passed_on)),
        _note("Cuando la otra persona termina, quien se lo pasó recibe:"),
        _bot(guide.message("passed_on_done", company_rut=company)),
    ]
    yield Section("quien", "¿Quién puede hacerlo?", who_can, "¿Quién?")
    for number in range(1, TOTAL_STEPS + 1):
        items = [_step(guide, number, rut)]
        if number == CONFIRMATION_STEP:
            items.append(_pressed(guide.button("data_mismatch"), "si algo no coincide"))
            items.append(_bot(guide.message("mismatch")))
            items.append(_note(f"Y recibe otra vez el paso {PERMISSIONS_STEP}."))
        if number == FINAL_STEP:
            items.append(_pressed(guide.button("saved_no"), "si no vio ese mensaje"))
            items.append(_bot(guide.message("not_saved"), keyboards.not_saved(guide)))
            items += _screenshot_answers(guide, company)
        yield Section(f"paso-{number}", f"Paso {number} de {TOTAL_STEPS}", items, f"Paso {number}")
    done = [
        _pressed(guide.button("saved_yes")),
        _bot(guide.message("done", company_rut=company), keyboards.after_done(guide)),
    ]
    yield Section("listo", "¡Listo!", done, "¡Listo!")
    for number in range(1, TOTAL_STEPS + 1):
        title = f"Problemas en el paso {number}"
        yield Section(f"problemas-{number}", title, _problems(guide, number, rut), f"🆘 {number}")
    yield Section("aviso", "Aviso a la firma", _handoff(guide, settings), "Aviso a la firma")
    reminders = _reminders(guide, settings, now)
    yield Section("recordatorios", "Recordatorios", reminders, "Recordatorios")
    help_and_privacy = [
        _client("/ayuda"),
        _bot(guide.message("help")),
        _client("/privacidad"),
        _bot(guide.message("privacy", retention_days=settings.data_retention_days)),
    ]
    yield Section("ayuda", "Ayuda y privacidad", help_and_privacy, "Ayuda y privacidad")


def _screenshot_answers(guide: Guide, company: str) -> list[str]:
    """Render what the client reads once the bot has read their screenshot (step 7)."""
    differs = guide.message("proof_differs_permission", permission="Registro")
    fix = guide.message("proof_fix_permission", company_rut=company)
    mismatch = guide.message("proof_mismatch", {"differences": differs, "fixes": fix})
    return [
        _note("Si envía la captura y el bot lee todo correcto:"),
        _bot(guide.message("proof_confirmed", company_rut=company)),
        _note("Si la captura muestra, por ejemplo, «Registro: NO»:"),
        _bot(mismatch, keyboards.not_saved(guide)),
        _note("Si la imagen no es esa pantalla, o no se lee:"),
        _bot(guide.message("proof_not_confirmation"), keyboards.step(guide, FINAL_STEP)),
    ]


def _step(guide: Guide, number: int, company_rut: str) -> str:
    """Render a step as the client gets it: its picture with the text as caption, or text."""
    caption, markup = guide.step(number, company_rut), keyboards.step(guide, number)
    picture = guide.step_image(number)
    if picture is None:
        return _bot(caption, markup)
    data = picture.read_bytes()
    kind = "png" if data.startswith(_PNG_SIGNATURE) else "jpeg"
    uri = f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"
    image = f'<img src="{uri}" alt="Pantalla del SII del paso {number}">'
    return _message("bot photo", image + _text(caption), markup)


def _problems(guide: Guide, step: int, company_rut: str) -> list[str]:
    """Render the problem menu of a step, then each problem's answer."""
    items = [
        _pressed(guide.button("problem")),
        _bot(guide.message("problem_menu"), keyboards.problem_menu(guide, step)),
    ]
    for problem in guide.problems_at(step):
        items += _answer(guide, step, company_rut, problem)
        for listed in guide.problems_at(step, problem.key):
            items += _answer(guide, step, company_rut, listed)
    return items


def _answer(guide: Guide, step: int, company_rut: str, problem: Problem) -> list[str]:
    """Render one problem's answer as the client gets it, and what follows it."""
    answer = guide.problem_answer(problem, company_rut, step)
    items = [
        _pressed(guide.problem_label(problem)),
        _bot(answer, keyboards.problem_answer(guide, step, problem)),
    ]
    if problem.ask_text:
        items.append(_note("Lo que escriba a continuación se le pasa a la firma."))
    if problem.ask_proof:
        promise = guide.message("reply_anytime")
        items.append(_pressed(guide.button("send_proof")))
        proof_asked = guide.message("proof_asked", {"reply_when": promise})
        items.append(_bot(proof_asked, keyboards.back_to_step(guide, step)))
        items.append(_note("La firma recibe el aviso, y después la captura que envíe."))
    return items


def _handoff(guide: Guide, settings: Settings) -> list[str]:
    """Render what a client reads once the firm is told, in and out of office hours."""
    items = [_pressed(guide.button("not_solved"), "si la respuesta no le sirvió")]
    markup = keyboards.back_to_step(guide, EXAMPLE_STEP)
    for when, moment in _office_examples(settings):
        promise = guide.reply_promise(moment, settings.firm_hours, settings.timezone)
        if when:
            items.append(_note(when))
        items.append(_bot(guide.message("problem_notified", {"reply_when": promise}), markup))
    return items


def _office_examples(settings: Settings) -> list[tuple[str, datetime]]:
    """Return example moments, described, when the firm answers and when it does not."""
    hours, tz = settings.firm_hours, settings.timezone
    if hours is None:
        return [("", datetime.combine(EXAMPLE_DAY, EXAMPLE_TIME, tzinfo=tz))]
    friday = EXAMPLE_DAY + timedelta(days=(4 - EXAMPLE_DAY.weekday()) % 7)
    return [
        (
            f"Dentro del horario de atención (un miércoles a las {clock_label(hours.opens)}):",
            datetime.combine(EXAMPLE_DAY, hours.opens, tzinfo=tz),
        ),
        (
            f"Fuera del horario de atención (un viernes a las {clock_label(hours.closes)}):",
            datetime.combine(friday, hours.closes, tzinfo=tz),
        ),
    ]


def _reminders(guide: Guide, settings: Settings, now: datetime) -> list[str]:
    """Render the reminders, the 'remind me later' menu, and stopping reminders."""
    markup = keyboards.reminder(guide)
    options = remind_later_options(now, settings.timezone, settings.quiet_hours)
    items = [
        _note(f"Si deja el trámite a medias (aquí, en el paso {EXAMPLE_STEP}):"),
        _bot(
            guide.message(
                "reminder_step", company_rut=format_rut(EXAMPLE_COMPANY_RUT), step=EXAMPLE_STEP
            ),
            markup,
        ),
        _note("Si pidió que se lo recordaran antes de escribir el RUT:"),
        _bot(guide.message("reminder_welcome"), markup),
        _pressed(guide.button("remind_later")),
        _bot(
            guide.message("later_menu"),
            keyboards.later_options(guide, options, settings.timezone),
        ),
    ]
    if options:
        items.append(_pressed(guide.later_label(options[0], settings.timezone)))
        items.append(_bot(guide.later_set(options[0], settings.timezone)))
    items.append(_pressed(guide.button("stop_reminders")))
    items.append(_bot(guide.message("opted_out")))
    return items


def _bot(text: str, markup: InlineKeyboardMarkup | None = None) -> str:
    """Render a message from the bot (Telegram HTML) with its buttons."""
    return _message("bot", _text(text), markup)


def _client(text: str) -> str:
    """Render a message the client types."""
    return f'<div class="message client"><div class="bubble">{_text(html.escape(text))}</div></div>'


def _pressed(label: str, condition: str = "") -> str:
    """Render a note saying which button the client pressed (and when they would)."""
    suffix = f" ({condition})" if condition else ""
    return _note(f"El cliente presiona «{label}»{suffix}:")


def _note(text: str) -> str:
    """Render an explanation for the firm, which the client does not see."""
    return f'<p class="note">{html.escape(text)}</p>'


def _message(kind: str, content: str, markup: InlineKeyboardMarkup | None) -> str:
    """Render a bubble and, under it, its inline keyboard."""
    return (
        f'<div class="message {kind}"><div class="bubble">{content}</div>'
        f"{keyboard_html(markup)}</div>"
    )


def _text(telegram_text: str) -> str:
    """Wrap a message's rendered text."""
    return f'<div class="text">{telegram_html(telegram_text)}</div>'


def keyboard_html(markup: InlineKeyboardMarkup | None) -> str:
    """Render an inline keyboard as rows of buttons; URL buttons are links marked ↗."""
    if markup is None or not markup.inline_keyboard:
        return ""
    rows = []
    for row in markup.inline_keyboard:
        buttons = []
        for button in row:
            label = html.escape(button.text)
            if button.url:
                buttons.append(
                    f'<a class="button" href="{html.escape(button.url)}" rel="noopener">'
                    f"{label} ↗</a>"
                )
            else:
                buttons.append(f'<span class="button">{label}</span>')
        rows.append(f'<div class="row">{"".join(buttons)}</div>')
    return f'<div class="keyboard">{"".join(rows)}</div>'


def telegram_html(text: str) -> str:
    """Render Telegram HTML as a browser shows it: its tags kept, anything else as text."""
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    return parser.result()


class _TelegramHtml(HTMLParser):
    """Keeps Telegram's formatting tags, escapes every other tag, and links what apps link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._open: list[str] = []

    def result(self) -> str:
        """Return the rendered HTML, closing any tag left open."""
        return "".join(self._out) + "".join(f"</{tag}>" for tag in reversed(self._open))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep a Telegram tag (a link only to a safe address); show any other as text."""
        kept = _TAGS.get(tag)
        href = dict(attrs).get("href") or ""
        if kept is None or (kept == "a" and not _LINK_TARGET.match(href)):
            self._out.append(html.escape(self.get_starttag_text() or ""))
            return
        if kept == "a":
            self._out.append(f'<a href="{html.escape(href)}" rel="noopener">')
        else:
            self._out.append(f"<{kept}>")
        self._open.append(kept)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Show a self-closing tag as text: Telegram has none."""
        self._out.append(html.escape(self.get_starttag_text() or ""))

    def handle_endtag(self, tag: str) -> None:
        """Close a kept tag (and any left open inside it); show any other as text."""
        kept = _TAGS.get(tag)
        if kept is None or kept not in self._open:
            self._out.append(html.escape(f"</{tag}>"))
            return
        while self._open:
            top = self._open.pop()
            self._out.append(f"</{top}>")
            if top == kept:
                break

    def handle_data(self, data: str) -> None:
        """Escape text, keep its line breaks, and link addresses and commands outside code."""
        if {"a", "code", "pre"} & set(self._open):
            self._out.append(_lines(html.escape(data)))
            return
        position = 0
        for match in _AUTO_LINK.finditer(data):
            self._out.append(_lines(html.escape(data[position : match.start()])))
            found = html.escape(match.group())
            if found.startswith("/"):
                self._out.append(f'<span class="command">{found}</span>')
            else:
                self._out.append(f'<a href="{found}" rel="noopener">{found}</a>')
            position = match.end()
        self._out.append(_lines(html.escape(data[position:])))

    def handle_comment(self, data: str) -> None:
        """Show a comment as text."""
        self._out.append(html.escape(f"<!--{data}-->"))

    def handle_decl(self, decl: str) -> None:
        """Show a declaration as text."""
        self._out.append(html.escape(f"<!{decl}>"))

    def handle_pi(self, data: str) -> None:
        """Show a processing instruction as text."""
        self._out.append(html.escape(f"<?{data}>"))

    def unknown_decl(self, data: str) -> None:
        """Show an unknown declaration as text."""
        self._out.append(html.escape(f"<![{data}]>"))


def _lines(escaped: str) -> str:
    """Turn line breaks into <br>."""
    return escaped.replace("\n", "<br>\n")
