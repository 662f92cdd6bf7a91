"""The guide file: the firm rewords it without a release, and the bot refuses a broken one.

What tests/client/test_guidance.py already covers is not repeated here (the packaged
pictures' size, a firm's own screenshot, an image that is missing, huge or not a picture at
step 4, a caption of 600 emoji). Mutations below change the file's structure or markers,
never its wording.
"""

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.domain.schedule import parse_firm_hours
from bot.guide.guide import (
    DEFAULT_GUIDE_PATH,
    TOTAL_STEPS,
    Guide,
    GuideError,
    load_guide,
    telegram_length,
)
from bot.wiring.assembly import firm_facts
from tests.support.harness import FakeClock, Harness, make_settings

PACKAGED = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
RUT = "76086428-5"


def _tables() -> dict[str, Any]:
    return tomllib.loads(PACKAGED)


def _load(tmp_path: Path, text: str) -> Guide:
    path = tmp_path / "guide.toml"
    path.write_text(text, encoding="utf-8")
    return load_guide(path, firm_facts(make_settings(tmp_path)))


def _refusal(tmp_path: Path, text: str) -> str:
    """Load a guide that must be refused; return the complaint, checked to be one line."""
    with pytest.raises(GuideError) as raised:
        _load(tmp_path, text)
    complaint = str(raised.value)
    assert complaint and "\n" not in complaint, complaint
    return complaint


def _with_step_text(number: int, text: str) -> str:
    """The packaged guide with step `number`'s text replaced (its picture kept)."""
    pattern = re.compile(rf'(image = "screens/paso{number}\.png"\ntext = """).*?(""")', re.DOTALL)
    changed, count = pattern.subn(lambda m: m.group(1) + text + m.group(2), PACKAGED)
    assert count == 1
    return changed


# --- the packaged guide -------------------------------------------------------------------


def test_the_packaged_guide_has_seven_steps_each_with_its_picture(tmp_path: Path) -> None:
    steps = _tables()["steps"]
    guide = load_guide(None, firm_facts(make_settings(tmp_path)))
    assert len(steps) == TOTAL_STEPS
    for number, step in enumerate(steps, start=1):
        assert set(step) == {"image", "text"}, number
        assert guide.step_image(number) == DEFAULT_GUIDE_PATH.parent / step["image"]
        rendered = guide.step(number, RUT)
        assert rendered.strip() and "{" not in rendered and "}" not in rendered, number


def test_the_packaged_guide_names_seven_distinct_weekdays() -> None:
    weekdays = _tables()["weekdays"]
    assert len(weekdays) == len(set(weekdays)) == 7
    assert all(isinstance(day, str) and day.strip() for day in weekdays)


def test_the_packaged_guide_explains_every_configured_permission(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    explained = _tables()["permission_help"]
    assert set(settings.permissions) <= set(explained)
    guide = load_guide(None, firm_facts(settings))
    done = guide.message("done", company_rut=RUT)
    for permission in settings.permissions:
        assert permission in done and explained[permission] in done, permission


# --- a broken guide is refused, in one line ------------------------------------------------


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('ask_rut = """', 'ask_rutx = """'), "messages.ask_rut"),
        (('help = """', 'help = """{company_rut} '), r"messages\.help: \{company_rut\}"),
        (
            (
                'image = "screens/paso4.png"\ntext = """',
                'image = "screens/paso4.png"\ntext = """{nope}',
            ),
            r"steps\[4\]: bad placeholder 'nope'",
        ),
        (
            ('[[steps]]\nimage = "screens/paso7.png"', '[[stepz]]\nimage = "screens/paso7.png"'),
            "exactly 7 steps",
        ),
        (('key = "nocert"', 'key = "No Cert"'), "problems"),
        (("\nweekdays = [", "\nweekdayz = ["), "weekdays: Field required"),
        (("[permission_help]", "[[permission_help]]"), "permission_help"),
    ],
    ids=[
        "missing-text",
        "placeholder-not-given",
        "unknown-placeholder",
        "six-steps",
        "bad-problem-key",
        "no-weekdays",
        "permission-help-not-a-table",
    ],
)
def test_a_broken_guide_is_refused_in_one_line(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    old, new = change
    assert PACKAGED.count(old) >= 1
    assert re.search(complaint, _refusal(tmp_path, PACKAGED.replace(old, new, 1)))


def test_a_guide_with_six_weekdays_is_refused_in_one_line(tmp_path: Path) -> None:
    six, count = re.subn(r'^(weekdays = \[.*), "[^"]*"\]$', r"\1]", PACKAGED, flags=re.MULTILINE)
    assert count == 1
    assert "weekdays" in _refusal(tmp_path, six)


@pytest.mark.parametrize(
    ("step", "image"),
    [(1, "screens/paso1.jpg"), (7, "screens/paso7.jpg"), (2, "screens")],
    ids=["first-step", "last-step", "a-folder"],
)
def test_a_guide_missing_a_step_image_is_refused_naming_the_step_and_file(
    tmp_path: Path, step: int, image: str
) -> None:
    old = f'image = "screens/paso{step}.png"'
    assert PACKAGED.count(old) == 1
    complaint = _refusal(tmp_path, PACKAGED.replace(old, f'image = "{image}"'))
    assert f"steps[{step}].image: {image} not found" in complaint


# --- a step's caption and Telegram's 1,024 UTF-16 units ------------------------------------

# What the client reads counts, as Telegram counts it: tags do not, an entity is one
# character, and each of these emoji is two UTF-16 units (one code point).
AT_THE_LIMIT = "<b>" + "🙂" * 511 + "</b> &amp;"


def test_a_caption_of_exactly_1024_utf16_units_is_accepted(tmp_path: Path) -> None:
    guide = _load(tmp_path, _with_step_text(4, AT_THE_LIMIT))
    caption = guide.step(4, RUT)
    visible = re.sub(r"<[^>]+>", "", caption).replace("&amp;", "&")
    assert telegram_length(visible) == 1024
    assert guide.step_image(4) is not None  # so it goes as a photo's caption


@pytest.mark.parametrize(
    "over", [AT_THE_LIMIT + "x", AT_THE_LIMIT + "🙂", AT_THE_LIMIT + "{company_rut_dv}"]
)
def test_a_caption_over_1024_utf16_units_is_refused_in_one_line(tmp_path: Path, over: str) -> None:
    complaint = _refusal(tmp_path, _with_step_text(4, over))
    assert re.fullmatch(r"steps\[4\]: longer than Telegram's 1024 characters", complaint)


# --- a reworded guide in use ---------------------------------------------------------------


async def test_a_reworded_guide_is_what_clients_read(tmp_path: Path) -> None:
    reworded = PACKAGED.replace('welcome = """', 'welcome = """[reworded] ', 1)
    path = tmp_path / "guide.toml"
    path.write_text(reworded, encoding="utf-8")
    bot = await Harness(make_settings(tmp_path, guide_path=path), FakeClock()).boot()
    try:
        await bot.say("/start")
        welcome = bot.deps.guide.message("welcome")
        assert welcome.startswith("[reworded] ")
        assert bot.texts()[0] == welcome
    finally:
        await bot.close()


def test_a_reworded_guide_names_its_own_weekdays_monday_first(tmp_path: Path) -> None:
    names = [f"day{n}" for n in range(1, 8)]
    listed = ", ".join(f'"{name}"' for name in names)
    reworded, count = re.subn(
        r"^weekdays = \[.*\]$", f"weekdays = [{listed}]", PACKAGED, flags=re.MULTILINE
    )
    assert count == 1
    guide = _load(tmp_path, reworded)
    hours = parse_firm_hours("9-18")
    tz = make_settings(tmp_path).timezone
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    label = guide.message("firm_hours_label", opens="9:00", closes="18:00")
    # Saturday noon: the firm answers on Monday, the first name of the list.
    opening = guide.message("opening_weekday", time="9:00", weekday="day1")
    assert guide.reply_promise(saturday, hours, tz) == guide.message(
        "reply_closed", {"firm_hours": label, "opening": opening}
    )
