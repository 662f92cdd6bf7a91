"""Draw the packaged pictures of the SII screens (a build tool, not part of the bot).

Run from the checkout: python tools/draw_screens.py [DIR]
(needs the test extras: pip install -e '.[test]'). Without DIR, it rewrites the committed
pictures in conversations/texts/screens/.
"""

import functools
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, TypeAlias

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

# ---------------------------------------------------------------------------------------------
# What each screen shows, as data. The SII's texts are transcribed from the firm's written
# guide (shared seed 004_e8d68954f933552c.txt, "AUTORIZACIÓN DE USUARIO PORTAL DE FACTURACION
# ELECTRÓNICA MIPYME DEL S.I.I."), spelled as the SII spells them (no accent in MANTENCION,
# CONFIRMACION). The guide gives no text for the screens of steps 4 and 5 beyond the names of
# their button, fields and boxes; their remaining lines are a plain reconstruction. The guide's
# own example company is a person, so a neutral example company is used instead; the address
# is the real one (the guide's "cvc/cgi" is a typo for "cvc_cgi").
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """What the client must fill in or press: a numbered badge and an optional note."""

    badge: str
    note: str = ""


@dataclass(frozen=True)
class Heading:
    """The page's title."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """A block of running text."""

    text: str
    mark: Mark | None = None


@dataclass(frozen=True)
class Field:
    """A label with an empty grey input box beside it."""

    label: str


@dataclass(frozen=True)
class RutField:
    """A RUT typed into two boxes: the number without dots, a dash, the check digit."""

    label: str
    number: str
    check_digit: str
    number_mark: Mark | None = None
    check_digit_mark: Mark | None = None


@dataclass(frozen=True)
class Radios:
    """A question answered by one of several round options."""

    label: str
    options: tuple[str, ...]
    selected: int


@dataclass(frozen=True)
class Checkbox:
    """One square box and its label."""

    label: str
    ticked: bool


@dataclass(frozen=True)
class Checkboxes:
    """A column of boxes; the mark, if any, goes around the ticked ones."""

    items: tuple[Checkbox, ...]
    mark: Mark | None = None


@dataclass(frozen=True)
class Button:
    """A button; a primary one is SII blue."""

    label: str
    mark: Mark | None = None
    primary: bool = False


@dataclass(frozen=True)
class Buttons:
    """A row of buttons, centred."""

    buttons: tuple[Button, ...]


@dataclass(frozen=True)
class Link:
    """An underlined link."""

    text: str
    mark: Mark | None = None


@dataclass(frozen=True)
class Table:
    """Two columns of cells: a label and its value; one row may be highlighted."""

    rows: tuple[tuple[str, str], ...]
    header: tuple[str, str] | None = None
    highlighted_row: int | None = None


@dataclass(frozen=True)
class CertificatePicker:
    """The window that asks for the digital certificate, one of them selected."""

    title: str
    prompt: str
    certificates: tuple[str, ...]
    selected: int
    buttons: tuple[Button, ...]


@dataclass(frozen=True)
class Browser:
    """A browser window around the page, with its address bar."""

    tab_title: str
    url: str
    url_mark: Mark | None = None


Element: TypeAlias = (
    Heading
    | Paragraph
    | Field
    | RutField
    | Radios
    | Checkboxes
    | Buttons
    | Link
    | Table
    | CertificatePicker
)


@dataclass(frozen=True)
class Screen:
    """One picture: the page's elements, inside a browser window (page faded) or not."""

    filename: str
    elements: tuple[Element, ...]
    browser: Browser | None = None


# The PNG text chunks that say how small the picture's smallest text is (px of the picture)
# and every line of text drawn in it, with its size: the preview test turns the first into CSS
# px on a phone.
MIN_TEXT_CHUNK = "min-text-px"
DRAWN_TEXT_CHUNK = "drawn-text"
COMPANY_RUT_PLACEHOLDER = "RUT de su empresa"

# Where the bot finds its packaged pictures (next to its guide.toml).
PACKAGED_SCREENS = Path(__file__).resolve().parents[1] / "conversations" / "texts" / "screens"

PORTAL_URL = "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
COMPANY = "EMPRESA EJEMPLO SPA"
COMPANY_RUT = ("76086428", "5")
USER_RUT = ("13322924", "8")
# The person whose digital certificate is used (the company's legal representative).
SIGNER = "MARÍA GONZÁLEZ ROJAS"
SIGNER_RUT = "12345678-5"

LOGIN_PAGE: tuple[Element, ...] = (
    Paragraph("Usted está en: >"),
    Heading("IDENTIFICACIÓN DE CONTRIBUYENTES"),
    Paragraph(
        "Para hacer sus trámites en el sitio web del SII, usted debe contar con una clave "
        "secreta o certificado digital, si ya posee una clave secreta, por favor digite "
        'Ingrese su número de Rut y presione el botón "Ingresar".'
    ),
    Field("RUT"),
    Field("Clave"),
    Buttons((Button("INGRESAR", primary=True),)),
)
CERTIFICATE_LINK = "Identificarse con Certificado Digital"

NEW_USER_TABLE = (
    ("Rut Usuario", f"{USER_RUT[0]}-{USER_RUT[1]}"),
    ("Nombre Usuario", "ALEX PATRICIO BRITO MARDONES"),
    ("Usuario-Administrador", "SI"),
    ("Firmar Documentos", "SI"),
    ("Registro", "SI"),
    ("Autorizado por", SIGNER),
)
COMPANY_TEXT = f"{COMPANY}, Rut {COMPANY_RUT[0]}-{COMPANY_RUT[1]}"

SCREENS: tuple[Screen, ...] = (
    Screen(
        "paso1.png",
        (*LOGIN_PAGE, Link(CERTIFICATE_LINK)),
        browser=Browser(
            "SII | Servicio de Impuestos Internos",
            PORTAL_URL,
            Mark("1", "Abra esta dirección"),
        ),
    ),
    Screen(
        "paso2.png",
        (
            *LOGIN_PAGE,
            Link(CERTIFICATE_LINK, Mark("1")),
            CertificatePicker(
                "Servicio de Impuestos Internos",
                "Seleccione su firma y presione Aceptar",
                (SIGNER, "JUAN PÉREZ SOTO"),
                selected=0,
                buttons=(Button("Aceptar", Mark("2")), Button("Cancelar")),
            ),
        ),
    ),
    Screen(
        "paso3.png",
        (
            Heading("MANTENCION DE USUARIOS AUTORIZADOS"),
            Paragraph(
                "A través de esta opción usted podrá autorizar/eliminar usuarios y modificar "
                "sus permisos."
            ),
            Paragraph(
                "Ingrese el rut de la empresa a la cual desea actualizar los usuarios autorizados :"
            ),
            RutField(
                "RUT de la Empresa",
                *COMPANY_RUT,
                number_mark=Mark("1", "Sin puntos"),
                check_digit_mark=Mark("2", "Dígito verificador"),
            ),
            Radios("Seleccione ordenamiento de los usuarios:", ("Alfabético", "Por Rut"), 0),
            Buttons((Button("Ingresar", Mark("3")),)),
        ),
    ),
    Screen(
        "paso4.png",
        (
            Heading("MANTENCION DE USUARIOS AUTORIZADOS"),
            Paragraph(f"Usuarios autorizados de la empresa {COMPANY_TEXT}:"),
            Table(((SIGNER_RUT, SIGNER),), header=("Rut Usuario", "Nombre Usuario")),
            Buttons((Button("Ingresar Nuevo Usuario", Mark("1")),)),
        ),
    ),
    Screen(
        "paso5.png",
        (
            Heading("MANTENCION DE USUARIOS AUTORIZADOS"),
            Paragraph("Ingrese el rut del nuevo usuario y seleccione sus permisos:"),
            RutField(
                "RUT del Usuario",
                *USER_RUT,
                number_mark=Mark("1", "Sin puntos"),
                check_digit_mark=Mark("2", "Dígito verificador"),
            ),
            Checkboxes(
                (
                    Checkbox("Usuario Administrador", ticked=True),
                    Checkbox("Firmar Documentos", ticked=True),
                    Checkbox("Registro", ticked=True),
                ),
                Mark("3", "Marque las tres casillas"),
            ),
            Buttons((Button("Aceptar", Mark("4")),)),
        ),
    ),
    Screen(
        "paso6.png",
        (
            Heading("CONFIRMACION USUARIO AUTORIZADO"),
            Paragraph(
                "A través de esta opción usted podrá confirmar el ingreso del nuevo usuario."
            ),
            Paragraph(f"Se está creando el siguiente usuario en la empresa {COMPANY_TEXT}."),
            Table(NEW_USER_TABLE, highlighted_row=0),
            Buttons((Button("Grabar Usuario", Mark("1")), Button("Modificar Datos"))),
        ),
    ),
    Screen(
        "paso7.png",
        (
            Heading("INGRESO DE USUARIOS AUTORIZADOS"),
            Paragraph("Esta opción muestra el estado del ingreso del nuevo usuario."),
            Paragraph(
                f"Se ha grabado satisfactoriamente el nuevo usuario en la empresa {COMPANY_TEXT}, "
                "con los siguientes antecedentes:",
                Mark("✓"),
            ),
            Table(NEW_USER_TABLE),
            Buttons((Button("Ingresar Otro Usuario"), Button("Modificar Otro Usuario"))),
        ),
    ),
)

# ---------------------------------------------------------------------------------------------
# How it is drawn. Sizes are for a picture shown about 390 CSS px wide on a phone.
# ---------------------------------------------------------------------------------------------

WIDTH = 800
MARGIN = 40
BODY = 28
TITLE = 36
NOTE = 27
TABLE_TEXT = 27
LINE = 38
GAP = 22
MARK_PAD = 10
MARK_WIDTH = 6
BADGE_RADIUS = 21
# The badge sits just outside the mark's top-left corner, clear of what is marked.
BADGE_OFFSET = 6
# Extra room above a marked element, so that its badge clears the text above it.
BADGE_CLEARANCE = BADGE_OFFSET + BADGE_RADIUS + 3 + MARK_PAD - GAP + 6
FADE = 0.55
FADED_PAGE_HEIGHT = 580

Color: TypeAlias = tuple[int, int, int]
Box: TypeAlias = tuple[int, int, int, int]
Style: TypeAlias = Literal["regular", "bold", "italic"]

WHITE: Color = (255, 255, 255)
TEXT: Color = (33, 33, 33)
MUTED: Color = (90, 90, 90)
SII_BLUE: Color = (14, 70, 135)
TITLE_BLUE: Color = (10, 52, 104)
LINK_BLUE: Color = (17, 85, 204)
BOX_FILL: Color = (236, 236, 236)
BOX_BORDER: Color = (125, 125, 125)
BUTTON_FILL: Color = (226, 226, 226)
CELL_LABEL: Color = (222, 231, 242)
CELL_BORDER: Color = (170, 170, 170)
HIGHLIGHT: Color = (255, 236, 110)
SELECTED: Color = (0, 103, 192)
MARK_COLOR: Color = (229, 57, 20)
CHROME: Color = (222, 225, 230)
ADDRESS_FILL: Color = (241, 243, 244)
FOOTER_FILL: Color = (238, 238, 238)

# Pillow's own font (ImageFont.load_default) lacks the accented letters, so the drawing uses
# Source Sans Pro from the pinned wheel font-source-sans-pro==0.0.1 (SIL OFL), which every
# machine installs identically. The basic layout engine keeps the result the same whether
# or not libraqm is present.
FONT_PACKAGE = "font_source_sans_pro"
FONT_FILES: dict[Style, str] = {
    "regular": "SourceSansPro-Regular.ttf",
    "bold": "SourceSansPro-Bold.ttf",
    "italic": "SourceSansPro-It.ttf",
}


@functools.cache
def font(style: Style, size: int) -> ImageFont.FreeTypeFont:
    """Return the drawing font in a style and pixel size."""
    try:
        data = (resources.files(FONT_PACKAGE) / "files" / FONT_FILES[style]).read_bytes()
    except ModuleNotFoundError as error:
        raise SystemExit("The font is missing: pip install -e '.[test]'") from error
    return ImageFont.truetype(io.BytesIO(data), size, layout_engine=ImageFont.Layout.BASIC)


def wrap(text: str, typeface: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Split text into lines no wider than width."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and typeface.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines


def grow(box: Box, by: int) -> Box:
    """Return the box enlarged by `by` pixels on every side."""
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


class Page:
    """A page being drawn top to bottom; marks are drawn last, over everything."""

    def __init__(
        self, texts: list[tuple[str, float]], height: int = 3000, header: bool = True
    ) -> None:
        """Start an empty white page, with the SII's header bar unless told not to."""
        self.image = Image.new("RGB", (WIDTH, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.texts = texts
        self.marks: list[tuple[Box, Mark]] = []
        self.y = 0
        if header:
            self.header()

    def text(
        self,
        xy: tuple[int, int],
        text: str,
        *,
        font: ImageFont.FreeTypeFont,
        fill: Color,
        anchor: str | None = None,
    ) -> None:
        """Draw one line of text, remembering it and its size for the picture's metadata."""
        self.texts.append((text, font.size))
        self.draw.text(xy, text, font=font, fill=fill, anchor=anchor)

    def header(self) -> None:
        """Draw the SII's blue bar at the top."""
        self.draw.rectangle((0, 0, WIDTH, 80), fill=SII_BLUE)
        self.text((MARGIN, 40), "SII", font=font("bold", 44), fill=WHITE, anchor="lm")
        self.text(
            (MARGIN + 96, 40),
            "Servicio de Impuestos Internos",
            font=font("regular", BODY),
            fill=WHITE,
            anchor="lm",
        )
        self.y = 80 + GAP

    def mark(self, box: Box, mark: Mark | None) -> int:
        """Remember a mark around box; return the room its note needs below the box."""
        if mark is None:
            return 0
        self.marks.append((grow(box, MARK_PAD), mark))
        return LINE + MARK_PAD if mark.note else 0

    def text_lines(
        self, lines: Sequence[str], x: int, style: Style, size: int, fill: Color
    ) -> None:
        """Draw lines of text from the current y, moving y below them."""
        typeface, height = font(style, size), round(size * 1.35)
        for line in lines:
            self.text((x, self.y), line, font=typeface, fill=fill)
            self.y += height

    def add(self, element: Element) -> None:
        """Draw one element below the previous one."""
        if any(mark is not None for mark in marks_of(element)):
            self.y += BADGE_CLEARANCE
        if isinstance(element, Heading):
            self.heading(element)
        elif isinstance(element, Paragraph):
            self.paragraph(element)
        elif isinstance(element, Field):
            self.field(element)
        elif isinstance(element, RutField):
            self.rut_field(element)
        elif isinstance(element, Radios):
            self.radios(element)
        elif isinstance(element, Checkboxes):
            self.checkboxes(element)
        elif isinstance(element, Buttons):
            self.buttons(element.buttons, MARGIN, WIDTH - MARGIN)
        elif isinstance(element, Link):
            self.link(element)
        elif isinstance(element, Table):
            self.table(element)
        else:
            self.picker(element)
        self.y += GAP

    def heading(self, heading: Heading) -> None:
        """Draw the page title with a rule under it."""
        lines = wrap(heading.text, font("bold", TITLE), WIDTH - 2 * MARGIN)
        self.text_lines(lines, MARGIN, "bold", TITLE, TITLE_BLUE)
        self.y += 6
        self.draw.rectangle((MARGIN, self.y, WIDTH - MARGIN, self.y + 2), fill=SII_BLUE)
        self.y += 8

    def paragraph(self, paragraph: Paragraph) -> None:
        """Draw wrapped running text, marked if asked."""
        inset = MARK_PAD + 4 if paragraph.mark else 0
        lines = wrap(paragraph.text, font("regular", BODY), WIDTH - 2 * (MARGIN + inset))
        top = self.y = self.y + inset
        self.text_lines(lines, MARGIN + inset, "regular", BODY, TEXT)
        box = (MARGIN + inset, top, WIDTH - MARGIN - inset, self.y)
        self.y += self.mark(box, paragraph.mark) + inset

    def input_box(self, x: int, width: int, value: str = "") -> Box:
        """Draw a grey input box at the current y, with a value in it."""
        box = (x, self.y, x + width, self.y + 54)
        self.draw.rectangle(box, fill=BOX_FILL, outline=BOX_BORDER, width=2)
        if value:
            middle = (box[1] + box[3]) // 2
            self.text(
                (x + 14, middle), value, font=font("regular", BODY + 2), fill=TEXT, anchor="lm"
            )
        return box

    def label(self, x: int, text: str, height: int = 54) -> int:
        """Draw a label centred on a row of the given height; return its right edge."""
        typeface = font("regular", BODY)
        self.text((x, self.y + height // 2), text, font=typeface, fill=TEXT, anchor="lm")
        return x + round(typeface.getlength(text))

    def field(self, field: Field) -> None:
        """Draw a label and its empty input box."""
        self.label(MARGIN, field.label)
        self.input_box(MARGIN + 110, 320)
        self.y += 54

    def rut_field(self, field: RutField) -> None:
        """Draw the two RUT boxes with the dash between them."""
        right = self.label(MARGIN, field.label)
        number_box = self.input_box(right + 34, 200, field.number)
        dash_x = number_box[2] + 22
        self.text((dash_x, self.y + 27), "-", font=font("bold", TITLE), fill=TEXT, anchor="mm")
        digit_box = self.input_box(dash_x + 24, 60, field.check_digit)
        room = max(
            self.mark(number_box, field.number_mark),
            self.mark(digit_box, field.check_digit_mark),
        )
        self.y += 54 + room + (MARK_PAD if room else 0)

    def radios(self, radios: Radios) -> None:
        """Draw the question and its round options on one row."""
        lines = wrap(radios.label, font("regular", BODY), WIDTH - 2 * MARGIN)
        self.text_lines(lines, MARGIN, "regular", BODY, TEXT)
        self.y += 6
        x = MARGIN
        for index, option in enumerate(radios.options):
            middle = self.y + 20
            self.draw.ellipse(
                (x, middle - 13, x + 26, middle + 13), fill=WHITE, outline=TEXT, width=2
            )
            if index == radios.selected:
                self.draw.ellipse((x + 7, middle - 6, x + 19, middle + 6), fill=TEXT)
            right = self.label(x + 38, option, height=40)
            x = right + 44
        self.y += 40

    def checkboxes(self, group: Checkboxes) -> None:
        """Draw a column of square boxes, ticked or not."""
        ticked: list[Box] = []
        for item in group.items:
            box = (MARGIN, self.y + 8, MARGIN + 34, self.y + 42)
            self.draw.rectangle(box, fill=WHITE, outline=TEXT, width=3)
            if item.ticked:
                self.draw.line(
                    (
                        (MARGIN + 7, self.y + 25),
                        (MARGIN + 15, self.y + 34),
                        (MARGIN + 29, self.y + 14),
                    ),
                    fill=TEXT,
                    width=5,
                    joint="curve",
                )
            right = self.label(MARGIN + 50, item.label, height=50)
            if item.ticked:
                ticked.append((MARGIN, self.y + 2, right, self.y + 48))
            self.y += 56
        if ticked:
            box = (ticked[0][0], ticked[0][1], max(b[2] for b in ticked), ticked[-1][3])
            self.y += self.mark(box, group.mark)

    def buttons(self, buttons: Sequence[Button], left: int, right: int) -> None:
        """Draw a row of buttons, centred between left and right."""
        typeface = font("bold", BODY)
        widths = [round(typeface.getlength(button.label)) + 48 for button in buttons]
        gap = 36
        x = (left + right - sum(widths) - gap * (len(widths) - 1)) // 2
        self.y += MARK_PAD
        room = 0
        for button, width in zip(buttons, widths, strict=True):
            box = (x, self.y, x + width, self.y + 58)
            fill = SII_BLUE if button.primary else BUTTON_FILL
            outline = SII_BLUE if button.primary else BOX_BORDER
            self.draw.rounded_rectangle(box, radius=6, fill=fill, outline=outline, width=2)
            self.text(
                ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2),
                button.label,
                font=typeface,
                fill=WHITE if button.primary else TEXT,
                anchor="mm",
            )
            room = max(room, self.mark(box, button.mark))
            x += width + gap
        self.y += 58 + MARK_PAD + room

    def link(self, link: Link) -> None:
        """Draw an underlined link."""
        typeface = font("regular", BODY + 2)
        self.y += MARK_PAD
        width = round(typeface.getlength(link.text))
        self.text((MARGIN, self.y), link.text, font=typeface, fill=LINK_BLUE)
        underline = self.y + BODY + 6
        self.draw.line(((MARGIN, underline), (MARGIN + width, underline)), fill=LINK_BLUE, width=2)
        box = (MARGIN, self.y, MARGIN + width, underline + 6)
        self.y = underline + 6 + MARK_PAD + self.mark(box, link.mark)

    def table(self, table: Table) -> None:
        """Draw a two-column table of labels and values."""
        bold, regular = font("bold", TABLE_TEXT), font("regular", TABLE_TEXT)
        labels = [row[0] for row in table.rows] + ([table.header[0]] if table.header else [])
        split = MARGIN + max(round(bold.getlength(label)) for label in labels) + 24
        height = 52
        rows: list[tuple[tuple[str, str], bool]] = []
        if table.header:
            rows.append((table.header, True))
        rows.extend((row, False) for row in table.rows)
        data_index = 0
        for (label, value), is_header in rows:
            top, bottom = self.y, self.y + height
            if is_header:
                label_fill = value_fill = SII_BLUE
            elif data_index == table.highlighted_row:
                label_fill = value_fill = HIGHLIGHT
            else:
                label_fill, value_fill = (WHITE, WHITE) if table.header else (CELL_LABEL, WHITE)
            self.draw.rectangle((MARGIN, top, split, bottom), fill=label_fill, outline=CELL_BORDER)
            self.draw.rectangle(
                (split, top, WIDTH - MARGIN, bottom), fill=value_fill, outline=CELL_BORDER
            )
            color = WHITE if is_header else TEXT
            label_font = regular if table.header and not is_header else bold
            value_font = bold if is_header else regular
            middle = (top + bottom) // 2
            self.text((MARGIN + 12, middle), label, font=label_font, fill=color, anchor="lm")
            self.text((split + 12, middle), value, font=value_font, fill=color, anchor="lm")
            self.y = bottom
            if not is_header:
                data_index += 1

    def picker(self, picker: CertificatePicker) -> None:
        """Draw the certificate window over the page, with a shadow."""
        left, right = MARGIN + 10, WIDTH - MARGIN - 10
        self.y += 10
        top = self.y
        inner_left, inner_right = left + 24, right - 24
        prompt = wrap(picker.prompt, font("regular", BODY), inner_right - inner_left)
        list_height = 54 * len(picker.certificates)
        clearance = BADGE_CLEARANCE if any(button.mark for button in picker.buttons) else 0
        height = (
            60 + 20 + len(prompt) * round(BODY * 1.35) + 16 + list_height + 24 + clearance + 78 + 10
        )
        self.draw.rectangle((left + 8, top + 8, right + 8, top + height + 8), fill=(175, 175, 175))
        self.draw.rectangle((left, top, right, top + height), fill=(250, 250, 250), outline=MUTED)
        self.draw.rectangle((left, top, right, top + 60), fill=CHROME, outline=MUTED)
        self.text(
            (left + 20, top + 30), picker.title, font=font("bold", BODY), fill=TEXT, anchor="lm"
        )
        self.y = top + 60 + 20
        self.text_lines(prompt, inner_left, "regular", BODY, TEXT)
        self.y += 16
        self.draw.rectangle(
            (inner_left, self.y, inner_right, self.y + list_height), fill=WHITE, outline=BOX_BORDER
        )
        for index, name in enumerate(picker.certificates):
            row = (inner_left + 2, self.y + 2, inner_right - 2, self.y + 52)
            chosen = index == picker.selected
            if chosen:
                self.draw.rectangle(row, fill=SELECTED)
            self.text(
                (inner_left + 16, self.y + 27),
                name,
                font=font("bold" if chosen else "regular", BODY),
                fill=WHITE if chosen else TEXT,
                anchor="lm",
            )
            self.y += 54
        self.y += 24 + clearance
        self.buttons(picker.buttons, inner_left, inner_right)
        self.y = top + height + 8

    def finish(self) -> Image.Image:
        """Draw the marks over the page and crop it to what was drawn."""
        for box, mark in self.marks:
            self.draw.rounded_rectangle(box, radius=12, outline=MARK_COLOR, width=MARK_WIDTH)
            x, y = box[0] - BADGE_OFFSET, box[1] - BADGE_OFFSET
            self.draw.ellipse(
                grow((x, y, x, y), BADGE_RADIUS + 3), fill=WHITE, outline=WHITE, width=1
            )
            self.draw.ellipse(grow((x, y, x, y), BADGE_RADIUS), fill=MARK_COLOR)
            self.text((x, y), mark.badge, font=font("bold", 30), fill=WHITE, anchor="mm")
            if mark.note:
                self.text(
                    (box[0] + 4, box[3] + 4), mark.note, font=font("bold", NOTE), fill=MARK_COLOR
                )
        return self.image.crop((0, 0, WIDTH, self.y + 8))


def marks_of(element: Element) -> list[Mark | None]:
    """Return the marks drawn around an element or its parts (not those inside a window)."""
    if isinstance(element, Paragraph | Link | Checkboxes):
        return [element.mark]
    if isinstance(element, RutField):
        return [element.number_mark, element.check_digit_mark]
    if isinstance(element, Buttons):
        return [button.mark for button in element.buttons]
    return []


def draw_page(elements: Sequence[Element], texts: list[tuple[str, float]]) -> Image.Image:
    """Draw an SII page from its elements."""
    page = Page(texts)
    for element in elements:
        page.add(element)
    return page.finish()


def draw_browser(
    browser: Browser, page: Image.Image, texts: list[tuple[str, float]]
) -> Image.Image:
    """Put a faded page inside a browser window and mark its address bar."""
    chrome = Page(texts, height=300, header=False)
    draw = chrome.draw
    draw.rectangle((0, 0, WIDTH, 56), fill=CHROME)
    draw.rounded_rectangle((14, 8, 500, 66), radius=12, fill=WHITE)
    chrome.text((34, 32), browser.tab_title, font=font("regular", 26), fill=TEXT, anchor="lm")
    address = (MARGIN, 76, WIDTH - MARGIN, 134)
    draw.rounded_rectangle(address, radius=29, fill=ADDRESS_FILL, outline=CELL_BORDER)
    lock_x, middle = address[0] + 24, (address[1] + address[3]) // 2
    draw.arc((lock_x + 3, middle - 15, lock_x + 17, middle + 1), 180, 360, fill=MUTED, width=3)
    draw.rectangle((lock_x, middle - 6, lock_x + 20, middle + 11), fill=MUTED)
    chrome.text(
        (lock_x + 38, middle), browser.url, font=font("regular", BODY), fill=TEXT, anchor="lm"
    )
    chrome.y = address[3] + MARK_PAD + chrome.mark(address, browser.url_mark) + 8
    bar = chrome.finish()
    faded = Image.blend(page, Image.new("RGB", page.size, WHITE), FADE)
    faded = faded.crop((0, 0, WIDTH, min(page.height, FADED_PAGE_HEIGHT)))
    window = Image.new("RGB", (WIDTH, bar.height + faded.height), WHITE)
    window.paste(bar, (0, 0))
    window.paste(faded, (0, bar.height))
    ImageDraw.Draw(window).line(((0, bar.height), (WIDTH, bar.height)), fill=CELL_BORDER, width=2)
    return window


def add_footer(picture: Image.Image, texts: list[tuple[str, float]]) -> Image.Image:
    """Add the strip that says the picture is only a reference."""
    footer = 52
    strip = Page(texts, height=footer, header=False)
    strip.draw.rectangle((0, 0, WIDTH, footer), fill=FOOTER_FILL)
    strip.draw.line(((0, 0), (WIDTH, 0)), fill=CELL_BORDER, width=2)
    strip.text(
        (WIDTH // 2, footer // 2),
        "Imagen referencial",
        font=font("italic", 28),
        fill=MUTED,
        anchor="mm",
    )
    result = Image.new("RGB", (WIDTH, picture.height + footer), FOOTER_FILL)
    result.paste(picture, (0, 0))
    result.paste(strip.image, (0, picture.height))
    return result


@dataclass(frozen=True)
class Drawing:
    """A drawn picture and every line of text in it, with its font size in px."""

    image: Image.Image
    texts: tuple[tuple[str, float], ...]

    def png_info(self) -> PngImagePlugin.PngInfo:
        """Return the PNG text chunks saying what was drawn and how small its smallest text is."""
        info = PngImagePlugin.PngInfo()
        info.add_text(MIN_TEXT_CHUNK, f"{min(size for _, size in self.texts):g}")
        info.add_itxt(DRAWN_TEXT_CHUNK, json.dumps(self.texts, ensure_ascii=False))
        return info


def render(screen: Screen) -> Drawing:
    """Draw one screen's picture. Nothing is scaled after drawing, so the sizes hold."""
    texts: list[tuple[str, float]] = []
    picture = draw_page(screen.elements, texts)
    if screen.browser is not None:
        picture = draw_browser(screen.browser, picture, texts)
    return Drawing(add_footer(picture, texts), tuple(texts))


def main(argv: Sequence[str] | None = None) -> int:
    """Write paso1.png … paso7.png into the given folder (by default, the packaged one)."""
    args = sys.argv[1:] if argv is None else list(argv)
    outdir = Path(args[0]) if args else PACKAGED_SCREENS
    outdir.mkdir(parents=True, exist_ok=True)
    for screen in SCREENS:
        drawing = render(screen)
        drawing.image.save(outdir / screen.filename, optimize=True, pnginfo=drawing.png_info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
