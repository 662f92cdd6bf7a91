"""The guide file: the firm rewords it without a release, and the bot refuses a broken one."""

from pathlib import Path

import pytest

from bot.main import firm_facts
from conversations.guide import DEFAULT_GUIDE_PATH, TOTAL_STEPS, GuideError, load_guide
from tests.conftest import FakeClock, Harness, make_settings

PACKAGED = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "guide.toml"
    path.write_text(text, encoding="utf-8")
    load_guide(path, firm_facts(make_settings(tmp_path)))


def test_the_packaged_guide_loads_and_has_every_step(tmp_path: Path) -> None:
    guide = load_guide(None, firm_facts(make_settings(tmp_path)))
    for number in range(1, TOTAL_STEPS + 1):
        assert f"Paso {number} de 7" in guide.step(number, "76086428-5")
    assert guide.step(3, "76086428-5").count("<code>76086428-5</code>") == 1


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('ask_rut = """', 'ask_rutx = """'), "messages.ask_rut"),
        (("/cancelar – dejarlo para después", "/cancelar – {company_rut}"), "messages.help"),
        (("Presiona <b>Ingresar Nuevo Usuario</b>.", "Presiona {nope}."), "nope"),
        (('[[steps]]\ntext = """<b>Paso 7', '[[stepz]]\ntext = """<b>Paso 7'), "exactly 7 steps"),
        (('key = "nocert"', 'key = "No Cert"'), "problems"),
    ],
)
def test_a_broken_guide_is_refused_in_one_line(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    old, new = change
    assert old in PACKAGED
    with pytest.raises(GuideError, match=complaint) as raised:
        _load(tmp_path, PACKAGED.replace(old, new, 1))
    assert "\n" not in str(raised.value)


async def test_a_reworded_guide_is_what_clients_read(tmp_path: Path) -> None:
    reworded = PACKAGED.replace(
        "👋 Hola, soy el asistente de", "👋 Buenas, le escribe el asistente de"
    )
    path = tmp_path / "guide.toml"
    path.write_text(reworded, encoding="utf-8")
    bot = await Harness(make_settings(tmp_path, guide_path=path), FakeClock()).boot()
    try:
        await bot.say("/start")
        assert any("Buenas, le escribe el asistente de" in text for text in bot.texts())
    finally:
        await bot.close()
