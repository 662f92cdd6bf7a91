"""Draw the packaged pictures of the SII screens (a build tool, not part of the bot).

Run from the checkout: python tools/draw_screens.py [DIR]
(needs the test extras: pip install -e '.[test]'). Without DIR, it rewrites the committed
pictures in bot/guide/screens/.
"""

import functools
import io
import json
import re
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
# their button, fields and boxes; their remaining lines are a plain reconstruction (step 4's
# list of users with their permissions follows third-party help pages, which say the list
# shows each user's permissions). The guide's own example company is a person, so a neutral
# example company is used instead; the address is the real one (the guide's "cvc/cgi" is a
# typo for "cvc_cgi"). Each picture is cropped to the part of the screen its step is about.
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
    """A RUT typed into two boxes: the number without dots, a dash, the check digit.

    With `placeholder`, the number box shows what goes there (in grey) instead of a RUT.
    """

    label: str
    number: str
    check_digit: str
    number_mark: Mark | None = None
    check_digit_mark: Mark | None = None
    placeholder: bool = False


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
    """A row of buttons, centred (one under the other when the row does not fit)."""

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
    highlighted_row: int | None = None


@dataclass(frozen=True)
class User:
    """One authorized user as the list shows it: RUT, name, and each permission's SI/NO."""

    rut: str
    name: str
    permissions: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Users:
    """The list of a company's authorized users, one block per user."""

    users: tuple[User, ...]


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
    """A browser's address bar above the page (faded), the address marked."""

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
    | Users
    | CertificatePicker
)


@dataclass(frozen=True)
class Screen:
    """One picture: the page's elements, below a browser's address bar (page faded) or not."""

    filename: str
    elements: tuple[Element, ...]
    browser: Browser | None = None


# The PNG text chunks that say how small the picture's smallest text is (px of the picture)
# and every line of text drawn in it, with its size: the preview test turns the first into CSS
# px on a phone.
MIN_TEXT_CHUNK = "min-text-px"
DRAWN_TEXT_CHUNK = "drawn-text"
# Step 3 shows what goes in the box, not an example RUT a client could copy.
COMPANY_RUT_PLACEHOLDER = "RUT de su empresa"

# Where the bot finds its packaged pictures (next to its guide.toml).
PACKAGED_SCREENS = Path(__file__).resolve().parents[1] / "bot" / "guide" / "screens"

PORTAL_URL = "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
COMPANY = "EMPRESA EJEMPLO SPA"
COMPANY_RUT = ("76086428", "5")
# The representative, as the bot's default settings name them (REPRESENTATIVE_*).
USER_RUT = ("13322924", "8")
USER_NAME = "ALEX PATRICIO BRITO MARDONES"
# The person whose digital certificate is used (the company's legal representative).
SIGNER = "MARÍA GONZÁLEZ ROJAS"
SIGNER_RUT = "12345678-5"
# Another user the company had already authorized, with fewer permissions.
OTHER_USER = "JUAN PÉREZ SOTO"
OTHER_USER_RUT = "9876543-3"
# The checkboxes of step 5 and the columns of step 4's list, as the SII names them.
PERMISSIONS = ("Usuario Administrador", "Firmar Documentos", "Registro")

LOGIN_TITLE = Heading("IDENTIFICACIÓN DE CONTRIBUYENTES")
CERTIFICATE_LINK = "Identificarse con Certificado Digital"
USERS_TITLE = Heading("MANTENCION DE USUARIOS AUTORIZADOS")

NEW_USER_TABLE = (
    ("Rut Usuario", f"{USER_RUT[0]}-{USER_RUT[1]}"),
    ("Nombre Usuario", USER_NAME),
    ("Usuario-Administrador", "SI"),
    ("Firmar Documentos", "SI"),
    ("Registro", "SI"),
    ("Autorizado por", SIGNER),
)
COMPANY_TEXT = f"{COMPANY}, Rut {COMPANY_RUT[0]}-{COMPANY_RUT[1]}"

SCREENS: tuple[Screen, ...] = (
    Screen(
        "paso1.png",
        (LOGIN_TITLE, Field("RUT"), Field("Clave")),
        browser=Browser(PORTAL_URL, Mark("1", "Abra esta dirección")),
    ),
    Screen(
        "paso2.png",
        (
            LOGIN_TITLE,
            Field("RUT"),
            Field("Clave"),
            Buttons((Button("INGRESAR", primary=True),)),
            Link(CERTIFICATE_LINK, Mark("1")),
            CertificatePicker(
                "Servicio de Impuestos Internos",
                "Seleccione su firma y presione Aceptar",
                (SIGNER, OTHER_USER),
                selected=0,
                buttons=(Button("Aceptar", Mark("2")), Button("Cancelar")),
            ),
        ),
    ),
    Screen(
        "paso3.png",
        (
            USERS_TITLE,
            Paragraph(
                "Ingrese el rut de la empresa a la cual desea actualizar los usuarios autorizados :"
            ),
            RutField(
                "RUT de la Empresa",
                COMPANY_RUT_PLACEHOLDER,
                "",
                number_mark=Mark("1", "Sin puntos"),
                check_digit_mark=Mark("2", "Dígito verificador"),
                placeholder=True,
            ),
            Radios("Seleccione ordenamiento de los usuarios:", ("Alfabético", "Por Rut"), 0),
            Buttons((Button("Ingresar", Mark("3")),)),
        ),
    ),
    Screen(
        "paso4.png",
        (
            USERS_TITLE,
            Paragraph(f"Usuarios autorizados de la empresa {COMPANY}:"),
            Users(
                (
                    User(SIGNER_RUT, SIGNER, tuple((name, True) for name in PERMISSIONS)),
                    User(
                        OTHER_USER_RUT,
                        OTHER_USER,
                        tuple((name, name == "Firmar Documentos") for name in PERMISSIONS),
                    ),
                )
            ),
            Buttons((Button("Ingresar Nuevo Usuario", Mark("1")),)),
        ),
    ),
    Screen(
        "paso5.png",
        (
            USERS_TITLE,
            Paragraph("Ingrese el rut del nuevo usuario y seleccione sus permisos:"),
            RutField(
                "RUT del Usuario",
                *USER_RUT,
                number_mark=Mark("1", "Sin puntos"),
                check_digit_mark=Mark("2", "Dígito verificador"),
            ),
            Checkboxes(
                tuple(Checkbox(name, ticked=True) for name in PERMISSIONS),
                Mark("3", "Marque las tres casillas"),
            ),
            Buttons((Button("Aceptar", Mark("4")),)),
        ),
    ),
    Screen(
        "paso6.png",
        (
            Heading("CONFIRMACION USUARIO AUTORIZADO"),
            Table(NEW_USER_TABLE, highlighted_row=0),
            Buttons((Button("Grabar Usuario", Mark("1")), Button("Modificar Datos"))),
        ),
    ),
    Screen(
        "paso7.png",
        (
            Heading("INGRESO DE USUARIOS AUTORIZADOS"),
            Paragraph(
                f"Se ha grabado satisfactoriamente el nuevo usuario en la empresa {COMPANY_TEXT}, "
                "con los siguientes antecedentes:",
                Mark("✓"),
            ),
            Table(NEW_USER_TABLE),
        ),
    ),
)

# ---------------------------------------------------------------------------------------------
# How it is drawn. A chat shows a photo about 268 CSS px wide on a 320 px phone (329 on a
# 390 px one): at 600 px wide, text of 34 px shows at 15 CSS px, the size of the chat's own
# text. Nothing is drawn smaller than SMALLEST, and nothing is scaled after drawing.
# ---------------------------------------------------------------------------------------------

WIDTH = 600
MARGIN = 24
SMALLEST = 34
BODY = SMALLEST
TITLE = 38
NOTE = SMALLEST
LINE = round(BODY * 1.3)
GAP = 20
BOX_HEIGHT = 60
MARK_PAD = 10
# Where a marked box starts, so that its badge (at the mark's top-left corner) covers none of it.
INDENT = MARGIN + 30
MARK_WIDTH = 6
BADGE_RADIUS = 25
# The badge sits just outside the mark's top-left corner, clear of what is marked.
BADGE_OFFSET = 6
# Extra room above a marked element, so that its badge clears the text above it.
BADGE_CLEARANCE = BADGE_OFFSET + BADGE_RADIUS + 3 + MARK_PAD - GAP + 6
FADE = 0.55
FADED_PAGE_HEIGHT = 420
FOOTER = 62

Color: TypeAlias = tuple[int, int, int]
Box: TypeAlias = tuple[int, int, int, int]
Style: TypeAlias = Literal["regular", "bold", "italic"]
Texts: TypeAlias = list[tuple[str, float]]

WHITE: Color = (255, 255, 255)
TEXT: Color = (33, 33, 33)
MUTED: Color = (90, 90, 90)
PLACEHOLDER: Color = (112, 112, 112)
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
YES: Color = (20, 110, 40)
NO: Color = (170, 30, 30)

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
# Where a line may break: after a space (which is dropped), a hyphen or a slash (kept).
BREAK = re.compile(r"[^\s/-]+[/-]?|[/-]")


@functools.cache
def font(style: Style, size: int) -> ImageFont.FreeTypeFont:
    """Return the drawing font in a style and pixel size."""
    try:
        data = (resources.files(FONT_PACKAGE) / "files" / FONT_FILES[style]).read_bytes()
    except ModuleNotFoundError as error:
        raise SystemExit("The font is missing: pip install -e '.[test]'") from error
    return ImageFont.truetype(io.BytesIO(data), size, layout_engine=ImageFont.Layout.BASIC)


def wrap(text: str, typeface: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Split text into lines no wider than width, at spaces, hyphens and slashes."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        for index, piece in enumerate(BREAK.findall(word)):
            joiner = " " if index == 0 and current else ""
            candidate = current + joiner + piece
            if current and typeface.getlength(candidate) > width:
                lines.append(current)
                current = piece
            else:
                current = candidate
    return [*lines, current] if current else lines


def grow(box: Box, by: int) -> Box:
    """Return the box enlarged by `by` pixels on every side."""
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


@dataclass(frozen=True)
class PlacedMark:
    """A mark around a box, its note (if any) written at a place found for it."""

    box: Box
    mark: Mark
    note_at: tuple[int, int]


class Page:
    """A page being drawn top to bottom; marks are drawn last, over everything."""

    def __init__(self, texts: Texts, height: int = 3000, header: bool = True) -> None:
        """Start an empty white page, with the SII's header bar unless told not to."""
        self.image = Image.new("RGB", (WIDTH, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.texts = texts
        self.marks: list[PlacedMark] = []
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
        self.draw.rectangle((0, 0, WIDTH, 70), fill=SII_BLUE)
        self.text((MARGIN, 35), "SII", font=font("bold", 40), fill=WHITE, anchor="lm")
        self.text(
            (MARGIN + 78, 35),
            "Servicio de Impuestos Internos",
            font=font("regular", BODY),
            fill=WHITE,
            anchor="lm",
        )
        self.y = 70 + GAP

    def mark(self, box: Box, mark: Mark | None) -> int:
        """Remember a mark around box; return the room its note needs below the box."""
        if mark is None:
            return 0
        outline = grow(box, MARK_PAD)
        if not mark.note:
            self.marks.append(PlacedMark(outline, mark, (0, 0)))
            return 0
        width = round(font("bold", NOTE).getlength(mark.note))
        x = max(MARGIN, min(outline[0] + 4, WIDTH - MARGIN - width))
        y = outline[3] + 4
        # Notes of boxes side by side go one under the other when they would touch.
        for placed in self.marks:
            if placed.mark.note and placed.note_at[1] >= y:
                other = round(font("bold", NOTE).getlength(placed.mark.note))
                if x < placed.note_at[0] + other + 16 and placed.note_at[0] < x + width + 16:
                    y = placed.note_at[1] + LINE
        self.marks.append(PlacedMark(outline, mark, (x, y)))
        return y + LINE - box[3]

    def text_lines(
        self, lines: Sequence[str], x: int, style: Style, size: int, fill: Color
    ) -> None:
        """Draw lines of text from the current y, moving y below them."""
        typeface, height = font(style, size), round(size * 1.3)
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
        elif isinstance(element, Users):
            self.users(element)
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

    def input_box(self, x: int, width: int, value: str = "", placeholder: bool = False) -> Box:
        """Draw a grey input box at the current y, with a value (or a grey hint) in it."""
        box = (x, self.y, x + width, self.y + BOX_HEIGHT)
        self.draw.rectangle(box, fill=BOX_FILL, outline=BOX_BORDER, width=2)
        if value:
            self.text(
                (x + 14, (box[1] + box[3]) // 2),
                value,
                font=font("italic" if placeholder else "regular", BODY),
                fill=PLACEHOLDER if placeholder else TEXT,
                anchor="lm",
            )
        return box

    def label(self, x: int, text: str, height: int = BOX_HEIGHT) -> int:
        """Draw a label centred on a row of the given height; return its right edge."""
        typeface = font("regular", BODY)
        self.text((x, self.y + height // 2), text, font=typeface, fill=TEXT, anchor="lm")
        return x + round(typeface.getlength(text))

    def field(self, field: Field) -> None:
        """Draw a label and its empty input box."""
        self.label(MARGIN, field.label)
        self.input_box(MARGIN + 110, 300)
        self.y += BOX_HEIGHT

    def rut_field(self, field: RutField) -> None:
        """Draw the label, and under it the two RUT boxes with the dash between them."""
        self.text_lines([field.label], MARGIN, "regular", BODY, TEXT)
        self.y += 8 + (BADGE_CLEARANCE if field.number_mark or field.check_digit_mark else 0)
        style: Style = "italic" if field.placeholder else "regular"
        number_width = round(font(style, BODY).getlength(field.number)) + 40
        number_box = self.input_box(INDENT, number_width, field.number, field.placeholder)
        dash_x = number_box[2] + 24
        self.text(
            (dash_x, self.y + BOX_HEIGHT // 2),
            "-",
            font=font("bold", TITLE),
            fill=TEXT,
            anchor="mm",
        )
        digit_box = self.input_box(dash_x + 26, 64, field.check_digit)
        room = max(
            self.mark(number_box, field.number_mark),
            self.mark(digit_box, field.check_digit_mark),
        )
        self.y += BOX_HEIGHT + room + (MARK_PAD if room else 0)

    def radios(self, radios: Radios) -> None:
        """Draw the question and its round options on one row."""
        lines = wrap(radios.label, font("regular", BODY), WIDTH - 2 * MARGIN)
        self.text_lines(lines, MARGIN, "regular", BODY, TEXT)
        self.y += 6
        x = MARGIN
        for index, option in enumerate(radios.options):
            middle = self.y + 24
            self.draw.ellipse(
                (x, middle - 15, x + 30, middle + 15), fill=WHITE, outline=TEXT, width=2
            )
            if index == radios.selected:
                self.draw.ellipse((x + 8, middle - 7, x + 22, middle + 7), fill=TEXT)
            right = self.label(x + 42, option, height=48)
            x = right + 44
        self.y += 48

    def checkboxes(self, group: Checkboxes) -> None:
        """Draw a column of square boxes, ticked or not."""
        ticked: list[Box] = []
        left = INDENT
        for item in group.items:
            box = (left, self.y + 9, left + 38, self.y + 47)
            self.draw.rectangle(box, fill=WHITE, outline=TEXT, width=3)
            if item.ticked:
                self.draw.line(
                    ((left + 8, self.y + 28), (left + 17, self.y + 38), (left + 32, self.y + 16)),
                    fill=TEXT,
                    width=5,
                    joint="curve",
                )
            right = self.label(left + 54, item.label, height=56)
            if item.ticked:
                ticked.append((left, self.y + 2, right, self.y + 54))
            self.y += 62
        if ticked:
            box = (ticked[0][0], ticked[0][1], max(b[2] for b in ticked), ticked[-1][3])
            self.y += self.mark(box, group.mark)

    def buttons(self, buttons: Sequence[Button], left: int, right: int) -> None:
        """Draw a row of buttons centred between left and right, or a column if too wide."""
        typeface = font("bold", BODY)
        widths = [round(typeface.getlength(button.label)) + 44 for button in buttons]
        gap = 32
        in_a_row = sum(widths) + gap * (len(widths) - 1) + 2 * MARK_PAD <= right - left
        rows = [list(zip(buttons, widths, strict=True))]
        if not in_a_row:
            rows = [[pair] for pair in rows[0]]
        for index, row in enumerate(rows):
            if index and any(button.mark for button, _ in row):
                self.y += BADGE_CLEARANCE
            x = (left + right - sum(w for _, w in row) - gap * (len(row) - 1)) // 2
            self.y += MARK_PAD
            room = 0
            for button, width in row:
                box = (x, self.y, x + width, self.y + 62)
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
            self.y += 62 + MARK_PAD + room

    def link(self, link: Link) -> None:
        """Draw an underlined link."""
        typeface = font("regular", BODY)
        self.y += MARK_PAD
        width = round(typeface.getlength(link.text))
        left = INDENT
        self.text((left, self.y), link.text, font=typeface, fill=LINK_BLUE)
        underline = self.y + BODY + 4
        self.draw.line(((left, underline), (left + width, underline)), fill=LINK_BLUE, width=2)
        box = (left, self.y, left + width, underline + 6)
        self.y = underline + 6 + MARK_PAD + self.mark(box, link.mark)

    def cell_rows(self, label: list[str], value: list[str]) -> int:
        """Return the height of a table row holding these lines."""
        return max(len(label), len(value)) * LINE + 16

    def table(self, table: Table) -> None:
        """Draw a two-column table of labels and values, each cell wrapped to fit."""
        bold, regular = font("bold", BODY), font("regular", BODY)
        split = MARGIN + round((WIDTH - 2 * MARGIN) * 0.46)
        for index, (label, value) in enumerate(table.rows):
            label_lines = wrap(label, bold, split - MARGIN - 20)
            value_lines = wrap(value, regular, WIDTH - MARGIN - split - 20)
            top = self.y
            bottom = top + self.cell_rows(label_lines, value_lines)
            highlighted = index == table.highlighted_row
            label_fill = HIGHLIGHT if highlighted else CELL_LABEL
            value_fill = HIGHLIGHT if highlighted else WHITE
            self.draw.rectangle((MARGIN, top, split, bottom), fill=label_fill, outline=CELL_BORDER)
            self.draw.rectangle(
                (split, top, WIDTH - MARGIN, bottom), fill=value_fill, outline=CELL_BORDER
            )
            self.y = top + 8
            self.text_lines(label_lines, MARGIN + 10, "bold", BODY, TEXT)
            self.y = top + 8
            self.text_lines(value_lines, split + 10, "regular", BODY, TEXT)
            self.y = bottom

    def users(self, users: Users) -> None:
        """Draw each user as a block: RUT and name on blue, then each permission and SI/NO."""
        right, answer = WIDTH - MARGIN, WIDTH - MARGIN - 90
        for user in users.users:
            top = self.y
            self.draw.rectangle((MARGIN, top, right, top + 2 * LINE + 16), fill=SII_BLUE)
            self.y = top + 8
            self.text((MARGIN + 10, self.y), user.rut, font=font("bold", BODY), fill=WHITE)
            self.y += LINE
            self.text((MARGIN + 10, self.y), user.name, font=font("regular", BODY), fill=WHITE)
            self.y = top + 2 * LINE + 16
            for permission, granted in user.permissions:
                top, bottom = self.y, self.y + LINE + 14
                self.draw.rectangle((MARGIN, top, answer, bottom), fill=WHITE, outline=CELL_BORDER)
                self.draw.rectangle((answer, top, right, bottom), fill=WHITE, outline=CELL_BORDER)
                middle = (top + bottom) // 2
                self.text(
                    (MARGIN + 10, middle),
                    permission,
                    font=font("regular", BODY),
                    fill=TEXT,
                    anchor="lm",
                )
                self.text(
                    ((answer + right) // 2, middle),
                    "SI" if granted else "NO",
                    font=font("bold", BODY),
                    fill=YES if granted else NO,
                    anchor="mm",
                )
                self.y = bottom
            self.y += GAP

    def picker(self, picker: CertificatePicker) -> None:
        """Draw the certificate window over the page, with a shadow."""
        left, right = MARGIN, WIDTH - MARGIN - 8
        self.y += 10
        top = self.y
        inner_left, inner_right = left + 18, right - 18
        prompt = wrap(picker.prompt, font("regular", BODY), inner_right - inner_left)
        list_height = 58 * len(picker.certificates)
        clearance = BADGE_CLEARANCE if any(button.mark for button in picker.buttons) else 0
        height = 64 + 18 + len(prompt) * LINE + 14 + list_height + 20 + clearance + 82 + 10
        self.draw.rectangle((left + 8, top + 8, right + 8, top + height + 8), fill=(175, 175, 175))
        self.draw.rectangle((left, top, right, top + height), fill=(250, 250, 250), outline=MUTED)
        self.draw.rectangle((left, top, right, top + 64), fill=CHROME, outline=MUTED)
        self.text(
            (left + 16, top + 32), picker.title, font=font("bold", BODY), fill=TEXT, anchor="lm"
        )
        self.y = top + 64 + 18
        self.text_lines(prompt, inner_left, "regular", BODY, TEXT)
        self.y += 14
        self.draw.rectangle(
            (inner_left, self.y, inner_right, self.y + list_height), fill=WHITE, outline=BOX_BORDER
        )
        for index, name in enumerate(picker.certificates):
            row = (inner_left + 2, self.y + 2, inner_right - 2, self.y + 56)
            chosen = index == picker.selected
            if chosen:
                self.draw.rectangle(row, fill=SELECTED)
            self.text(
                (inner_left + 14, self.y + 29),
                name,
                font=font("bold" if chosen else "regular", BODY),
                fill=WHITE if chosen else TEXT,
                anchor="lm",
            )
            self.y += 58
        self.y += 20 + clearance
        self.buttons(picker.buttons, inner_left, inner_right)
        self.y = top + height + 8

    def finish(self) -> Image.Image:
        """Draw the marks over the page and crop it to what was drawn."""
        for placed in self.marks:
            box, mark = placed.box, placed.mark
            self.draw.rounded_rectangle(box, radius=12, outline=MARK_COLOR, width=MARK_WIDTH)
            # Near the left edge, the badge moves in so that all of it shows.
            x = max(box[0] - BADGE_OFFSET, BADGE_RADIUS + 5)
            y = box[1] - BADGE_OFFSET
            self.draw.ellipse(
                grow((x, y, x, y), BADGE_RADIUS + 3), fill=WHITE, outline=WHITE, width=1
            )
            self.draw.ellipse(grow((x, y, x, y), BADGE_RADIUS), fill=MARK_COLOR)
            self.text((x, y), mark.badge, font=font("bold", SMALLEST), fill=WHITE, anchor="mm")
            if mark.note:
                self.text(placed.note_at, mark.note, font=font("bold", NOTE), fill=MARK_COLOR)
        return self.image.crop((0, 0, WIDTH, self.y + 8))


def marks_of(element: Element) -> list[Mark | None]:
    """Return the marks drawn around an element's first row (not those inside a window)."""
    if isinstance(element, Paragraph | Link | Checkboxes):
        return [element.mark]
    if isinstance(element, Buttons):
        return [button.mark for button in element.buttons]
    return []


def draw_page(elements: Sequence[Element], texts: Texts) -> Image.Image:
    """Draw an SII page from its elements."""
    page = Page(texts)
    for element in elements:
        page.add(element)
    return page.finish()


def draw_browser(browser: Browser, page: Image.Image, texts: Texts) -> Image.Image:
    """Put a faded page below a browser's address bar and mark the address."""
    chrome = Page(texts, height=400, header=False)
    typeface = font("regular", BODY)
    lock_x = MARGIN + 20
    lines = wrap(browser.url, typeface, WIDTH - MARGIN - 20 - (lock_x + 36))
    top = MARK_PAD + BADGE_RADIUS + 12
    address = (MARGIN, top, WIDTH - MARGIN, top + len(lines) * LINE + 20)
    chrome.draw.rectangle((0, 0, WIDTH, address[3] + 20), fill=CHROME)
    chrome.draw.rounded_rectangle(address, radius=24, fill=ADDRESS_FILL, outline=CELL_BORDER)
    middle = address[1] + 10 + LINE // 2
    chrome.draw.arc(
        (lock_x + 3, middle - 15, lock_x + 17, middle + 1), 180, 360, fill=MUTED, width=3
    )
    chrome.draw.rectangle((lock_x, middle - 6, lock_x + 20, middle + 11), fill=MUTED)
    chrome.y = address[1] + 10
    chrome.text_lines(lines, lock_x + 36, "regular", BODY, TEXT)
    chrome.y = address[3] + 20 + MARK_PAD + chrome.mark(address, browser.url_mark)
    bar = chrome.finish()
    faded = Image.blend(page, Image.new("RGB", page.size, WHITE), FADE)
    faded = faded.crop((0, 0, WIDTH, min(page.height, FADED_PAGE_HEIGHT)))
    window = Image.new("RGB", (WIDTH, bar.height + faded.height), WHITE)
    window.paste(bar, (0, 0))
    window.paste(faded, (0, bar.height))
    ImageDraw.Draw(window).line(((0, bar.height), (WIDTH, bar.height)), fill=CELL_BORDER, width=2)
    return window


def add_footer(picture: Image.Image, texts: Texts) -> Image.Image:
    """Add the strip that says the picture is only a reference."""
    strip = Page(texts, height=FOOTER, header=False)
    strip.draw.rectangle((0, 0, WIDTH, FOOTER), fill=FOOTER_FILL)
    strip.draw.line(((0, 0), (WIDTH, 0)), fill=CELL_BORDER, width=2)
    strip.text(
        (WIDTH // 2, FOOTER // 2),
        "Imagen referencial",
        font=font("italic", SMALLEST),
        fill=MUTED,
        anchor="mm",
    )
    result = Image.new("RGB", (WIDTH, picture.height + FOOTER), FOOTER_FILL)
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
    texts: Texts = []
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
