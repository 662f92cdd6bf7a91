"""`python -m bot preview`: one self-contained page of everything clients see, as a phone chat."""

import base64
import html
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.domain.settings import Settings
from bot.guide import keyboards
from bot.guide.guide import DEFAULT_GUIDE_PATH, TOTAL_STEPS, Guide, load_guide
from bot.wiring.assembly import firm_facts
from bot.wiring.preview import EXAMPLE_COMPANY_RUT, render_preview, telegram_html, write_preview
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tools.draw_screens import MIN_TEXT_CHUNK

TOKEN = "123456789:AAHfakeTOKENfor-tests_0123456789abc"
PHONE_WIDTH = 390


def _settings(**overrides: Any) -> Settings:
    """Settings independent of the machine's .env."""
    return Settings(_env_file=None, telegram_bot_token=TOKEN, **overrides)  # type: ignore[call-arg]


def _guide(settings: Settings) -> Guide:
    return load_guide(settings.guide_path, firm_facts(settings))


@pytest.fixture(scope="module")
def page() -> str:
    """The page of the packaged guide with the default settings."""
    settings = _settings()
    return render_preview(_guide(settings), settings)


# --- the page's content -----------------------------------------------------------------


def test_every_step_caption_appears_once(page: str) -> None:
    guide = _guide(_settings())
    for number in range(1, TOTAL_STEPS + 1):
        caption = guide.step(number, EXAMPLE_COMPANY_RUT)
        assert page.count(telegram_html(caption)) == 1, number
    # The step's own markup reaches the page as markup, not as escaped text.
    title = guide.step(1, EXAMPLE_COMPANY_RUT).split("\n")[0]
    assert title.startswith("<b>") and title in page


def test_every_button_of_every_step_is_shown(page: str) -> None:
    guide = _guide(_settings())
    for number in range(1, TOTAL_STEPS + 1):
        for row in keyboards.step(guide, number).inline_keyboard:
            for button in row:
                assert html.escape(button.text) in page, (number, button.text)
    # The portal's button is a link, marked as one.
    assert f'href="{guide.portal_url}"' in page and "↗</a>" in page


def test_every_problem_answer_is_shown_at_each_of_its_steps(page: str) -> None:
    guide = _guide(_settings())
    for number in range(1, TOTAL_STEPS + 1):
        problems = guide.problems_at(number)
        assert problems, number
        for problem in problems:
            answer = guide.problem_answer(problem, EXAMPLE_COMPANY_RUT, number)
            assert telegram_html(answer) in page, (number, problem.key)
            for row in keyboards.problem_answer(guide, number, problem).inline_keyboard:
                for button in row:
                    assert html.escape(button.text) in page


def test_each_step_picture_is_embedded_as_its_own_bytes(page: str) -> None:
    guide = _guide(_settings())
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == TOTAL_STEPS
    for number, source in enumerate(sources, start=1):
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        picture = guide.step_image(number)
        assert picture is not None
        assert base64.b64decode(source.removeprefix(prefix)) == picture.read_bytes()


def test_the_page_needs_nothing_from_outside(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="es-CL">' in page and "<title>" in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert not re.search(r"""(src|url)\s*[=(]\s*["']?(https?:)?//""", page)


def test_the_messages_come_in_the_order_clients_get_them(page: str) -> None:
    guide = _guide(_settings())
    company = "76.086.428-5"
    in_order = [
        guide.message("welcome"),
        guide.message("ask_device"),
        guide.message("on_phone"),
        guide.message("ask_rut"),
        guide.message("rut_confirm", company_rut=company),
        guide.message("who_can", company_rut=company),
        *(guide.step(n, EXAMPLE_COMPANY_RUT) for n in range(1, TOTAL_STEPS + 1)),
        guide.message("not_saved"),
        guide.message("done", company_rut=company),
        guide.message("problem_menu"),
        guide.message("later_menu"),
        guide.message("opted_out"),
        guide.message("help"),
    ]
    positions = [page.find(telegram_html(text)) for text in in_order]
    assert -1 not in positions
    assert positions == sorted(positions)
    for anchor in ("paso-1", "paso-7", "problemas-3", "recordatorios"):
        assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page


def test_a_reworded_guide_and_the_firm_settings_are_honoured(tmp_path: Path) -> None:
    guide_path = _reworded_guide(tmp_path)
    settings = _settings(guide_path=guide_path, firm_name="Contadores & Cía")
    page = render_preview(_guide(settings), settings)
    assert REWORDED in page
    assert _guide(_settings()).message("ask_device") not in page
    assert "Contadores &amp; Cía" in page and "Contadores & Cía" not in page
    # The copy's own picture of step 1 (here, the packaged picture of step 2).
    first = re.search(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert first is not None
    assert (
        base64.b64decode(first.group(1)) == (guide_path.parent / "screens/paso1.png").read_bytes()
    )


def test_write_preview_writes_the_page(tmp_path: Path) -> None:
    settings = _settings()
    out = tmp_path / "preview.html"
    write_preview(out, settings, _guide(settings))
    assert out.read_text(encoding="utf-8") == render_preview(_guide(settings), settings)


@pytest.mark.parametrize(
    ("telegram", "shown"),
    [
        ("<b>a</b> <i>b</i> <code>c</code>", "<b>a</b> <i>b</i> <code>c</code>"),
        ("<strong>a</strong><em>b</em>", "<b>a</b><i>b</i>"),
        ("one\ntwo", "one<br>\ntwo"),
        ('<a href="https://sii.cl/x?a=1&amp;b=2">SII</a>', "https://sii.cl/x?a=1&amp;b=2"),
        ('<a href="javascript:alert(1)">x</a>', "&lt;a href=&quot;javascript:alert(1)&quot;&gt;x"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ("a < b &amp; c > d", "a &lt; b &amp; c &gt; d"),
        ("<b>never closed", "<b>never closed</b>"),
        ("stray </b> end", "stray &lt;/b&gt; end"),
        ("<br/>", "&lt;br/&gt;"),
        ("<!-- note -->", "&lt;!-- note --&gt;"),
        ("see https://t.me/x?start=Y.", '<a href="https://t.me/x?start=Y" rel="noopener">'),
        ("write /start now", '<span class="command">/start</span>'),
        ("<code>/start https://x.cl</code>", "<code>/start https://x.cl</code>"),
    ],
)
def test_telegram_html_keeps_formatting_and_escapes_the_rest(telegram: str, shown: str) -> None:
    assert shown in telegram_html(telegram)


# --- the command line, as a real process ------------------------------------------------


def _clean_environment(**variables: str) -> dict[str, str]:
    """The environment without any of the bot's settings (so no token), plus `variables`."""
    environment = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    environment.update(variables)
    return environment


def _bot(tmp_path: Path, *arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *arguments],
        env=_clean_environment(**variables),
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("token", [None, ""])
def test_preview_needs_no_token(tmp_path: Path, token: str | None) -> None:
    out = tmp_path / "preview.html"
    blank = {} if token is None else {"TELEGRAM_BOT_TOKEN": token}
    result = _bot(tmp_path, "preview", "--out", str(out), **blank)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and str(out) in result.stdout
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<img ") == TOTAL_STEPS


def test_preview_honours_guide_path_and_settings_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    guide_path = _reworded_guide(tmp_path)
    result = _bot(
        tmp_path, "preview", "--out", str(out), GUIDE_PATH=str(guide_path), FIRM_NAME="Firma Uno"
    )
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert REWORDED in page and "Firma Uno" in page


def test_preview_reads_the_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FIRM_NAME=Firma del punto env\n", encoding="utf-8")
    result = _bot(tmp_path, "preview", "--out", "preview.html")
    assert result.returncode == 0, result.stderr
    assert "Firma del punto env" in (tmp_path / "preview.html").read_text(encoding="utf-8")


def test_help_lists_the_preview_and_version_prints_the_package_version(tmp_path: Path) -> None:
    helped = _bot(tmp_path, "--help")
    assert helped.returncode == 0 and "preview" in helped.stdout
    versioned = _bot(tmp_path, "--version")
    assert versioned.returncode == 0
    assert version("sii-authorization-assistant") in versioned.stdout


@pytest.mark.parametrize(
    ("variable", "environment"),
    [
        ("QUIET_HOURS", {"QUIET_HOURS": "7"}),
        ("GUIDE_PATH", {"GUIDE_PATH": "missing/guide.toml"}),
        ("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": "not-a-token"}),
    ],
)
def test_a_bad_setting_exits_2_with_one_line(
    tmp_path: Path, variable: str, environment: dict[str, str]
) -> None:
    out = tmp_path / "preview.html"
    result = _bot(tmp_path, "preview", "--out", str(out), **environment)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "not-a-token" not in result.stderr
    assert not out.exists()


def test_without_a_subcommand_the_bot_still_wants_its_token(tmp_path: Path) -> None:
    result = _bot(tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "Configuration error: TELEGRAM_BOT_TOKEN is required but not set"
    )


# --- in a real browser, on a phone-sized screen -----------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (required in CI)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    if os.environ.get("CI"):
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = _settings()
    out = tmp_path_factory.mktemp("preview") / "preview.html"
    write_preview(out, settings, _guide(settings))
    return out


@pytest.mark.parametrize("width", [PHONE_WIDTH, 320])
def test_on_a_phone_the_pictures_load_and_nothing_overflows(
    browser: Any, page_file: Path, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 844})
    try:
        tab = context.new_page()
        requested: list[str] = []
        tab.on("request", lambda request: requested.append(request.url))
        tab.goto(page_file.as_uri(), wait_until="load")
        pictures = tab.eval_on_selector_all(
            "img", "all => all.map(img => [img.complete, img.naturalWidth])"
        )
        assert len(pictures) == TOTAL_STEPS
        assert all(complete and natural > 0 for complete, natural in pictures), pictures
        assert tab.evaluate("document.documentElement.scrollWidth") <= width
        overflowing = tab.evaluate(
            """width => [...document.querySelectorAll('*')]
                .filter(e => { const r = e.getBoundingClientRect();
                               return r.right > width + 0.5 || r.left < -0.5; })
                .map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 40))""",
            width,
        )
        assert overflowing == []
        outside = [url for url in requested if not url.startswith(("file:", "data:"))]
        assert outside == []
    finally:
        context.close()


# The smallest text a step picture may show on a phone, in CSS px (body text of the chat is 15).
MIN_PICTURE_TEXT_PX = 14


@pytest.mark.parametrize("width", [PHONE_WIDTH, 320])
def test_on_a_phone_the_smallest_text_of_every_step_picture_is_at_least_14_px(
    browser: Any, page_file: Path, width: int
) -> None:
    # The drawing script records, in each PNG, the smallest font size it drew (px of the
    # picture); shown at `rendered` CSS px wide, a picture `natural` px wide scales it by
    # rendered / natural. A picture that does not say (a firm's own screenshot) cannot pass.
    context = browser.new_context(viewport={"width": width, "height": 844})
    try:
        tab = context.new_page()
        tab.goto(page_file.as_uri(), wait_until="load")
        shown = tab.eval_on_selector_all(
            "img",
            "all => all.map(img => [img.src, img.getBoundingClientRect().width, img.naturalWidth])",
        )
    finally:
        context.close()
    assert len(shown) == TOTAL_STEPS
    measured = {}
    for number, (source, rendered, natural) in enumerate(shown, start=1):
        data = base64.b64decode(source.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as picture:
            recorded = picture.text.get(MIN_TEXT_CHUNK)
        assert recorded is not None, f"step {number}: the picture does not say its smallest text"
        measured[number] = float(recorded) * rendered / natural
    too_small = [number for number, px in measured.items() if px < MIN_PICTURE_TEXT_PX]
    assert too_small == [], {number: f"{px:.1f} px" for number, px in measured.items()}


# What the test's own copy of the guide asks instead of the packaged question.
REWORDED = "¿Lo lee en el computador o en el celular? (texto de prueba)"


def _reworded_guide(folder: Path) -> Path:
    """Copy the packaged guide into `folder` with one message reworded."""
    text = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
    reworded, count = re.subn(
        r'^ask_device = """.*?"""',
        f'ask_device = """{REWORDED}"""',
        text,
        flags=re.MULTILINE | re.DOTALL,
    )
    assert count == 1
    path = folder / "guia.toml"
    path.write_text(reworded, encoding="utf-8")
    # Pictures are looked for next to the copy first: give step 1 another one.
    (folder / "screens").mkdir()
    shutil.copy(DEFAULT_GUIDE_PATH.parent / "screens/paso2.png", folder / "screens/paso1.png")
    return path
