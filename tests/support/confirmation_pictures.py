"""Pictures of the SII's screens as clients send them, to test and measure the screenshot reader.

Each scene is an HTML page styled like the SII's old portal (the texts of the firm's guide,
shared/seeds/004: step 7's «Se ha grabado satisfactoriamente el nuevo usuario ...», step 6's
«CONFIRMACION USUARIO AUTORIZADO», the users list, the login page), shown by Debian's Chromium
(headless, through Playwright), then degraded with Pillow the way a picture reaches the bot:

- CLEAR: Telegram's recompression of a photo (JPEG quality ~80, longest side 1280);
- PHONE: a smaller copy (longest side 800-960), recompressed harder;
- MONITOR: a phone's photo of the monitor: dark bezel, slight rotation and perspective,
  blur, moiré and noise, then Telegram's recompression.

Everything is deterministic (seeds derived from each scene's key). Rendered pictures are cached
as files in the directory a PictureSet is given (one temporary directory per test session or
benchmark run), so each is drawn once.
"""

from __future__ import annotations

import hashlib
import html
import io
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter
from stdnum.cl import rut as stdnum_rut

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS

# The firm's representative, as the bot's settings have him by default.
REPRESENTATIVE_RUT = "13322924-8"
REPRESENTATIVE_NAME = "ALEX PATRICIO BRITO MARDONES"
# The rows of the SII's table, and the settings' names for the same permissions.
SCREEN_PERMISSIONS = ("Usuario-Administrador", "Firmar Documentos", "Registro")
CONFIGURED_PERMISSIONS = ("Usuario Administrador", "Firmar Documentos", "Registro")


class Screen(Enum):
    """Which SII page a scene shows."""

    SAVED = "saved"  # step 7: the confirmation, the only proof
    CREATING = "creating"  # step 6: the same data, not saved yet
    USERS_LIST = "users_list"
    LOGIN = "login"


class Degradation(Enum):
    """How a picture reached the bot."""

    CLEAR = "clear"
    PHONE = "phone"
    MONITOR = "monitor"


def with_check_digit(body: int) -> str:
    """A valid compact RUT ('76086428-5') for the number `body`."""
    return f"{body}-{stdnum_rut.calc_check_digit(str(body))}"


def dotted(rut: str) -> str:
    """'76086428-5' as '76.086.428-5'."""
    return str(stdnum_rut.format(rut))


@dataclass(frozen=True)
class Scene:
    """One SII page, with the data it shows."""

    key: str
    screen: Screen
    company_name: str
    company_rut: str  # compact
    user_rut: str = REPRESENTATIVE_RUT
    user_name: str = REPRESENTATIVE_NAME
    # SI/NO of each row of SCREEN_PERMISSIONS, in that order.
    permissions: tuple[bool, bool, bool] = (True, True, True)
    authorized_by: str = "MARIA ELENA SOTO PEÑA"
    dots: bool = False  # RUTs written 76.086.428-5 rather than 76086428-5
    font_px: int = 12
    scale: float = 1.0  # the browser's device scale factor (Windows' 125 % is common)


@dataclass(frozen=True)
class Sample:
    """A scene and what the bot expects when the client of `expected_company_rut` sends it."""

    scene: Scene
    expected_company_rut: str
    # What the reader must conclude: "confirmed", "mismatch" or "not_confirmation".
    verdict: str
    # For a mismatch: "company_rut", "user_rut", or the configured permission's name.
    differences: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """The scene's key (unique in a set)."""
        return self.scene.key


@dataclass(frozen=True)
class Picture:
    """A degraded picture of a sample, as bytes the bot would download from Telegram."""

    sample: Sample
    degradation: Degradation
    data: bytes

    @property
    def name(self) -> str:
        """Unique within a set: scene key and degradation."""
        return f"{self.sample.key}-{self.degradation.value}"


# --- the samples ------------------------------------------------------------------------

COMPANIES = (
    ("COMERCIAL LOS ANDES LIMITADA", 76086428),
    ("PATRICIO ALEXANDRE BRITO MARDONES", 13322924),
    ("FERRETERÍA PEÑA Y COMPAÑÍA LTDA", 77123456),
    ("TRANSPORTES SAN JOSÉ SPA", 76543210),
    ("PANADERÍA LA ESPIGA DE ORO E.I.R.L.", 78901234),
    ("SOCIEDAD AGRÍCOLA EL MAITÉN LIMITADA", 96512345),
    ("INVERSIONES QUILLOTA SPA", 76999001),
    ("JUANA MARÍA GONZÁLEZ MUÑOZ", 9876543),
    ("ASESORÍAS Y SERVICIOS ÑUBLE LTDA", 77001002),
    ("MINIMARKET DOÑA ROSA SPA", 76300400),
)
AUTHORIZERS = (
    "MARIA ELENA SOTO PEÑA",
    "PATRICIO ALEXANDRE BRITO MARDONES",
    "JOSÉ MIGUEL ARAYA ROJAS",
    "JUANA MARÍA GONZÁLEZ MUÑOZ",
)
OTHER_USERS = (
    (with_check_digit(13322942), "ALEX PATRICIO BRITO MARDONES"),  # two digits swapped
    (with_check_digit(15678901), "CAROLINA ANDREA FUENTES DÍAZ"),
    (with_check_digit(8123456), "LUIS ALBERTO MUÑOZ TAPIA"),
)


def _company(index: int) -> tuple[str, str]:
    name, body = COMPANIES[index % len(COMPANIES)]
    return name, with_check_digit(body)


def _style(index: int) -> dict[str, Any]:
    """Vary how the browser showed the page: RUT dots, font size, screen scale."""
    return {
        "dots": index % 2 == 1,
        "font_px": (12, 11, 13, 12)[index % 4],
        "scale": (1.0, 1.0, 1.25)[index % 3],
        "authorized_by": AUTHORIZERS[index % len(AUTHORIZERS)],
    }


def all_samples() -> list[Sample]:
    """The full set (37 scenes): the benchmark's, three pictures each."""
    found: list[Sample] = []
    index = 0

    def add(screen: Screen, verdict: str, differences: Iterable[str] = (), **fields: Any) -> None:
        nonlocal index
        name, rut = _company(index)
        # Another company's client sends it: the client of the company three rows down.
        expected = _company(index + 3)[1] if fields.pop("other_company", False) else None
        values: dict[str, Any] = {"company_name": name, "company_rut": rut, **_style(index)}
        values.update(fields)
        scene = Scene(key=f"{index:02d}-{screen.value}", screen=screen, **values)
        found.append(Sample(scene, expected or scene.company_rut, verdict, frozenset(differences)))
        index += 1

    for _ in range(14):
        add(Screen.SAVED, "confirmed")
    for row in (0, 1, 2, 0, 1, 2):
        permissions = tuple(i != row for i in range(3))
        add(Screen.SAVED, "mismatch", [CONFIGURED_PERMISSIONS[row]], permissions=permissions)
    add(
        Screen.SAVED,
        "mismatch",
        [CONFIGURED_PERMISSIONS[1], CONFIGURED_PERMISSIONS[2]],
        permissions=(True, False, False),
    )
    for rut, user in OTHER_USERS:
        add(Screen.SAVED, "mismatch", ["user_rut"], user_rut=rut, user_name=user)
    for _ in range(3):
        add(Screen.SAVED, "mismatch", ["company_rut"], other_company=True)
    for _ in range(5):
        add(Screen.CREATING, "not_confirmation")
    for _ in range(3):
        add(Screen.USERS_LIST, "not_confirmation")
    for _ in range(2):
        add(Screen.LOGIN, "not_confirmation")
    return found


def suite_samples() -> list[Sample]:
    """A few of each kind, for the test suite (the benchmark reads them all)."""
    wanted = {"00", "01", "14", "16", "20", "21", "24", "27", "32", "35"}
    return [s for s in all_samples() if s.key[:2] in wanted]


# --- the pages --------------------------------------------------------------------------

_CSS = """
body { margin: 0; background: #fff; color: #000;
       font-family: Arial, 'Liberation Sans', Helvetica, sans-serif; font-size: %(px)dpx; }
.top { background: #0b3b75; color: #fff; height: 62px; padding: 0 24px;
       display: flex; align-items: center; justify-content: space-between; }
.top .logo { font-size: 19px; font-weight: bold; letter-spacing: .5px; }
.top .logo small { display: block; font-size: 11px; font-weight: normal; }
.top .menu { font-size: 11px; }
.nav { background: #e3e9f2; border-bottom: 1px solid #b7c3d6; padding: 4px 24px; font-size: 11px; }
.page { width: 760px; margin: 18px auto 40px auto; }
h1 { color: #0b3b75; font-size: %(h1)dpx; border-bottom: 2px solid #0b3b75;
     padding-bottom: 3px; margin: 0 0 12px 0; }
p { line-height: 1.45; margin: 8px 0; }
table.datos { border-collapse: collapse; margin: 14px 0 14px 40px; min-width: 460px; }
table.datos td { border: 1px solid #b7c3d6; padding: 4px 10px; }
table.datos td.l { background: #dfe8f3; font-weight: bold; width: 190px; }
table.datos td.v { background: #f7f7f7; }
table.lista { border-collapse: collapse; width: 100%%; margin-top: 10px; }
table.lista th { background: #0b3b75; color: #fff; padding: 4px 6px; font-size: 11px; }
table.lista td { border: 1px solid #c9d2e0; padding: 3px 6px; }
.botones { margin-top: 14px; }
.boton { display: inline-block; background: #e9e9e9; border: 1px solid #8d99ab;
         padding: 4px 12px; margin-right: 8px; color: #0b3b75; font-weight: bold; }
a { color: #0b3b75; }
.foot { border-top: 1px solid #ccc; margin-top: 30px; padding-top: 6px; color: #666;
        font-size: 10px; }
input { border: 1px solid #888; height: 18px; width: 160px; }
"""


def _rut_text(rut: str, dots: bool) -> str:
    return dotted(rut) if dots else rut


def _si(value: bool) -> str:
    return "SI" if value else "NO"


def _data_table(scene: Scene) -> str:
    rows = [
        ("Rut Usuario", _rut_text(scene.user_rut, scene.dots)),
        ("Nombre Usuario", scene.user_name),
        *((label, _si(v)) for label, v in zip(SCREEN_PERMISSIONS, scene.permissions, strict=True)),
        ("Autorizado por", scene.authorized_by),
    ]
    cells = "".join(
        f'<tr><td class="l">{html.escape(label)}</td><td class="v">{html.escape(value)}</td></tr>'
        for label, value in rows
    )
    return f'<table class="datos">{cells}</table>'


def _body(scene: Scene) -> str:
    company = html.escape(scene.company_name)
    rut = _rut_text(scene.company_rut, scene.dots)
    if scene.screen is Screen.SAVED:
        return (
            "<h1>INGRESO DE USUARIOS AUTORIZADOS</h1>"
            "<p>Esta opción muestra el estado del ingreso del nuevo usuario.</p>"
            f"<p>Se ha grabado satisfactoriamente el nuevo usuario en la empresa {company}, "
            f"Rut {rut}, con los siguientes antecedentes:</p>"
            + _data_table(scene)
            + '<div class="botones"><a href="#">Ingresar Otro Usuario</a> | '
            '<a href="#">Modificar Otro Usuario</a></div>'
        )
    if scene.screen is Screen.CREATING:
        return (
            "<h1>CONFIRMACION USUARIO AUTORIZADO</h1>"
            "<p>A través de esta opción usted podrá confirmar el ingreso del nuevo usuario.</p>"
            f"<p>Se está creando el siguiente usuario en la empresa {company}, Rut {rut}.</p>"
            + _data_table(scene)
            + '<div class="botones"><span class="boton">Grabar Usuario</span>'
            '<span class="boton">Modificar Datos</span></div>'
        )
    if scene.screen is Screen.USERS_LIST:
        users = [
            (scene.user_rut, scene.user_name, scene.permissions),
            (with_check_digit(10987654), "ROSA ELVIRA CONTRERAS PAREDES", (False, True, False)),
        ]
        rows = "".join(
            f"<tr><td>{_rut_text(r, scene.dots)}</td><td>{html.escape(n)}</td>"
            + "".join(f"<td>{_si(v)}</td>" for v in p)
            + "</tr>"
            for r, n, p in users
        )
        return (
            "<h1>MANTENCION DE USUARIOS AUTORIZADOS</h1>"
            "<p>A través de esta opción usted podrá autorizar/eliminar usuarios y modificar "
            "sus permisos.</p>"
            f"<p>Empresa: <b>{company}</b> &nbsp; Rut: <b>{rut}</b></p>"
            '<table class="lista"><tr><th>Rut Usuario</th><th>Nombre Usuario</th>'
            "<th>Usuario-Administrador</th><th>Firmar Documentos</th><th>Registro</th></tr>"
            f"{rows}</table>"
            '<div class="botones"><span class="boton">Ingresar Nuevo Usuario</span>'
            '<span class="boton">Modificar Usuario</span>'
            '<span class="boton">Eliminar Usuario</span></div>'
        )
    return (
        "<h1>IDENTIFICACIÓN DE CONTRIBUYENTES</h1>"
        "<p>Para hacer sus trámites en el sitio web del SII, usted debe contar con una clave "
        "secreta o certificado digital, si ya posee una clave secreta, por favor digite Ingrese "
        'su número de Rut y presione el botón "Ingresar".</p>'
        '<p>RUT <input value=""> &nbsp; Clave <input type="password"></p>'
        '<div class="botones"><span class="boton">INGRESAR</span></div>'
        '<p><a href="#">Identificarse con Certificado Digital</a></p>'
        "<ul><li>Obtención de Clave Secreta</li><li>Recuperación de Clave Secreta</li>"
        "<li>Recomendaciones de Seguridad</li></ul>"
    )


def page_html(scene: Scene) -> str:
    """The SII page of `scene`, as a self-contained HTML document."""
    css = _CSS % {"px": scene.font_px, "h1": scene.font_px + 3}
    return (
        '<!DOCTYPE html><html lang="es-CL"><head><meta charset="utf-8">'
        f"<title>SII</title><style>{css}</style></head><body>"
        '<div class="top"><div class="logo">SII<small>Servicio de Impuestos Internos</small>'
        '</div><div class="menu">Mi SII &nbsp; Servicios online &nbsp; Ayuda</div></div>'
        '<div class="nav">Usted está en: &gt; Factura electrónica &gt; Sistema de facturación '
        "gratuito del SII &gt; Mantención de usuarios autorizados</div>"
        f'<div class="page">{_body(scene)}'
        '<div class="foot">Servicio de Impuestos Internos - Todos los derechos reservados</div>'
        "</div></body></html>"
    )


# --- the browser ------------------------------------------------------------------------


def chromium_missing() -> str | None:
    """Why pictures cannot be drawn here (None: they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


@contextmanager
def _browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def render(scenes: Sequence[Scene]) -> dict[str, bytes]:
    """Each scene as the PNG screenshot of a 1366 x 768 desktop browser window."""
    shots: dict[str, bytes] = {}
    with _browser() as browser:
        for scene in scenes:
            context = browser.new_context(
                viewport={"width": 1366, "height": 768}, device_scale_factor=scene.scale
            )
            try:
                page = context.new_page()
                page.set_content(page_html(scene))
                shots[scene.key] = page.screenshot(type="png")
            finally:
                context.close()
    return shots


# --- the degradations -------------------------------------------------------------------


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")


def _jpeg(image: Image.Image, quality: int, longest: int) -> bytes:
    image = image.convert("RGB")
    if max(image.size) > longest:
        image.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _perspective_coefficients(
    source: Sequence[tuple[float, float]], target: Sequence[tuple[float, float]]
) -> list[float]:
    """Pillow's PERSPECTIVE data mapping each `target` corner back to its `source` corner."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, float), np.array(source, float).reshape(8))
    return [float(c) for c in solution]


def _monitor_photo(image: Image.Image, rng: random.Random) -> Image.Image:
    """A phone's photo of `image` shown on a monitor."""
    image = image.convert("RGB")
    width, height = image.size
    # The monitor's dark bezel and a bit of the desk around the screen.
    pad_x, pad_y = int(width * 0.06), int(height * 0.08)
    canvas = Image.new("RGB", (width + 2 * pad_x, height + 2 * pad_y), (28, 28, 32))
    canvas.paste(image, (pad_x, pad_y))
    pixels = np.asarray(canvas, dtype=np.float32)
    # Moiré: interference of the screen's pixel grid with the camera's sensor.
    ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]].astype(np.float32)
    angle = rng.uniform(0.2, 1.2)
    period = rng.uniform(3.0, 6.0)
    wave = np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
    pixels *= (1 + rng.uniform(0.04, 0.08) * wave)[..., None]
    # Uneven light: brighter in the middle, and a slightly cold cast.
    cx, cy = pixels.shape[1] / 2, pixels.shape[0] / 2
    distance = ((xs - cx) / cx) ** 2 + ((ys - cy) / cy) ** 2
    pixels *= (1 - rng.uniform(0.10, 0.20) * distance)[..., None]
    pixels *= np.array([0.94, 0.97, 1.0], np.float32)
    canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    # Held by hand: a slight rotation and perspective.
    w, h = canvas.size
    jitter = [(rng.uniform(-0.025, 0.025) * w, rng.uniform(-0.025, 0.025) * h) for _ in range(4)]
    corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    moved = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(corners, jitter, strict=True)]
    canvas = canvas.transform(
        canvas.size,
        Image.Transform.PERSPECTIVE,
        _perspective_coefficients(corners, moved),
        Image.Resampling.BICUBIC,
        fillcolor=(20, 20, 22),
    )
    canvas = canvas.rotate(
        rng.uniform(-2.5, 2.5), Image.Resampling.BICUBIC, expand=False, fillcolor=(20, 20, 22)
    )
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.1)))
    noisy = np.asarray(canvas, dtype=np.float32)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(3, 6), noisy.shape)
    return Image.fromarray(np.clip(noisy + noise, 0, 255).astype(np.uint8))


def degrade(png: bytes, degradation: Degradation, key: str) -> bytes:
    """`png` as the bot would receive it, `degradation` applied with a seed of `key`."""
    rng = random.Random(_seed(key, degradation.value))
    image = Image.open(io.BytesIO(png))
    if degradation is Degradation.CLEAR:
        return _jpeg(image, 80, 1280)
    if degradation is Degradation.PHONE:
        return _jpeg(image, rng.choice((70, 75)), rng.choice((800, 880, 960)))
    return _jpeg(_monitor_photo(image, rng), 80, 1280)


# --- the set, cached --------------------------------------------------------------------


class PictureSet:
    """Degraded pictures of samples, each drawn once and kept as a file in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, sample: Sample, degradation: Degradation) -> Path:
        return self.directory / f"{sample.key}-{degradation.value}.jpg"

    def pictures(
        self, samples: Sequence[Sample], degradations: Sequence[Degradation] = tuple(Degradation)
    ) -> list[Picture]:
        """Every sample in every degradation, in that order."""
        missing = [s for s in samples if any(not self._path(s, d).exists() for d in degradations)]
        if missing:
            shots = render([s.scene for s in missing])
            for sample in missing:
                (self.directory / f"{sample.key}.png").write_bytes(shots[sample.key])
                for degradation in degradations:
                    data = degrade(shots[sample.key], degradation, sample.key)
                    self._path(sample, degradation).write_bytes(data)
        return [Picture(s, d, self._path(s, d).read_bytes()) for s in samples for d in degradations]

    def screenshot(self, sample: Sample) -> bytes:
        """The undegraded PNG of a sample already drawn."""
        return (self.directory / f"{sample.key}.png").read_bytes()
