"""What the step pictures show: each says how small its text is, and shows nothing to copy.

The drawing script (tools/draw_screens.py) records in each PNG every text it drew and the
smallest font size; the preview's browser test (tests/wiring/test_preview.py) turns that
size into CSS px on a phone. Here every text drawing call is recorded independently, so the
recorded chunks cannot say more than what was drawn.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from bot.domain.settings import DEFAULT_PERMISSIONS
from bot.guide.guide import DEFAULT_GUIDE_PATH, TOTAL_STEPS
from tools.draw_screens import (
    COMPANY_RUT_PLACEHOLDER,
    DRAWN_TEXT_CHUNK,
    MIN_TEXT_CHUNK,
    SCREENS,
    Screen,
    render,
)

SCREENS_DIR = DEFAULT_GUIDE_PATH.parent / "screens"
# A RUT as a client could copy it: 7 or 8 digits, with or without dots, maybe a check digit.
RUT_LIKE = re.compile(r"\d{1,2}\.?\d{3}\.?\d{3}(\s*-\s*[\dkK])?")


def _screen(filename: str) -> Screen:
    return next(screen for screen in SCREENS if screen.filename == filename)


@pytest.fixture
def drawn_texts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, float]]]:
    """Every text Pillow is asked to draw, with its font size, from Pillow's own call."""
    calls: list[tuple[str, float]] = []
    original = ImageDraw.ImageDraw.text

    def recording(self: ImageDraw.ImageDraw, xy: Any, text: Any, *args: Any, **kwargs: Any) -> Any:
        typeface = kwargs.get("font")
        assert isinstance(typeface, ImageFont.FreeTypeFont), f"{text!r} drawn without a font"
        calls.append((str(text), typeface.size))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", recording)
    yield calls


def _chunks(filename: str) -> dict[str, str]:
    with Image.open(SCREENS_DIR / filename) as picture:
        return dict(picture.text)


@pytest.mark.parametrize("screen", SCREENS, ids=lambda screen: screen.filename)
def test_each_committed_picture_records_exactly_what_was_drawn_in_it(
    screen: Screen, drawn_texts: list[tuple[str, float]]
) -> None:
    drawing = render(screen)
    assert drawn_texts, screen.filename
    assert list(drawing.texts) == drawn_texts
    chunks = _chunks(screen.filename)
    assert float(chunks[MIN_TEXT_CHUNK]) == min(size for _, size in drawn_texts)
    assert [tuple(item) for item in json.loads(chunks[DRAWN_TEXT_CHUNK])] == drawn_texts


def test_the_packaged_guide_uses_the_drawn_pictures() -> None:
    assert [screen.filename for screen in SCREENS] == [
        f"paso{number}.png" for number in range(1, TOTAL_STEPS + 1)
    ]
    for screen in SCREENS:
        assert MIN_TEXT_CHUNK in _chunks(screen.filename), screen.filename


def test_step_3_shows_a_placeholder_and_no_rut_a_client_could_copy(
    drawn_texts: list[tuple[str, float]],
) -> None:
    render(_screen("paso3.png"))
    texts = [text for text, _ in drawn_texts]
    assert COMPANY_RUT_PLACEHOLDER in texts
    assert [text for text in texts if RUT_LIKE.search(text)] == []
    assert [text for text in texts if sum(c.isdigit() for c in text) >= 6] == []


def test_step_4_shows_each_users_permissions(drawn_texts: list[tuple[str, float]]) -> None:
    render(_screen("paso4.png"))
    texts = [text for text, _ in drawn_texts]
    guide_text = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
    assert "<b>Ingresar Nuevo Usuario</b>" in guide_text
    assert "Ingresar Nuevo Usuario" in texts
    users = [text for text in texts if RUT_LIKE.fullmatch(text)]
    assert len(users) >= 2
    for permission in DEFAULT_PERMISSIONS:
        assert texts.count(permission) == len(users), permission
    answers = [text for text in texts if text in ("SI", "NO")]
    assert len(answers) == len(users) * len(DEFAULT_PERMISSIONS)
    assert "NO" in answers
