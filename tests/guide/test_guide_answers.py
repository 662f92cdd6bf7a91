"""What the guide tells a client at each step is right, reachable, short and worded for a computer.

These check the packaged guide's content against the SII's own words: the names of the SII's
buttons and screens (from the firm's written guide and the SII's error-code list) are the
SII's, not the bot's copy, so they are written here; the bot's own wording is read from the
guide.
"""

import re
from pathlib import Path

import pytest

from bot.guide import keyboards
from bot.guide.guide import TOTAL_STEPS, Guide, Problem, load_guide, visible_text
from bot.wiring.assembly import firm_facts
from tests.support.harness import RUT, make_settings

# Names the SII itself uses on its pages (the firm's guide, the SII's error-code list).
SII_CERTIFICATE_LOGIN = "Identificarse con Certificado Digital"
SII_SAVE_CHANGES = "Guardar Cambios"
SII_LOGIN_CHOICE = "Utilizando Clave Tributaria o Certificado Digital"
# Windows' certificate import, as its menus name it.
WINDOWS_INSTALL = ("Instalar PFX", "Usuario actual", "Finalizar")
FIREFOX_IMPORT = "Ver certificados › Sus certificados › "
# Telegram's menus for linking a computer, on each phone.
ANDROID_LINK = "☰"
LINK_DESKTOP = "Vincular dispositivo de escritorio"
STEPS = range(1, TOTAL_STEPS + 1)
MAX_WORDS = 60

GUIDE = load_guide(None, firm_facts(make_settings(Path("unused"))))


def problem(key: str) -> Problem:
    found = GUIDE.problem(key)
    assert found is not None, key
    return found


def answer(key: str, step: int | None = None) -> str:
    """What the client reads of a problem's answer, at its first step unless told."""
    found = problem(key)
    return visible_text(GUIDE.problem_answer(found, RUT, step or found.steps[0]))


def reachable(guide: Guide, step: int) -> list[Problem]:
    top = guide.problems_at(step)
    return [*top, *(child for p in top for child in guide.problems_at(step, p.key))]


def words(text: str) -> int:
    return len([word for word in text.split() if re.search(r"\w", word)])


def codes_of(key: str) -> set[str]:
    """The SII error codes a code answer is about: the two-digit numbers in bold."""
    bold = re.findall(r"<b>([\d, o]+)</b>", problem(key).answer)
    return {code for text in bold for code in re.findall(r"\d\d", text)}


def code_problem(code: str) -> Problem:
    [found] = [p for p in GUIDE.problems_at(2, "login") if code in codes_of(p.key)]
    return found


def url_buttons(markup: object) -> list[str]:
    rows = markup.inline_keyboard  # type: ignore[attr-defined]
    return [button.url for row in rows for button in row if button.url]


# --- one answer per code, each short -------------------------------------------------------


def test_each_sii_error_code_has_its_own_button_and_a_short_answer() -> None:
    codes = [code for p in GUIDE.problems_at(2, "login") for code in sorted(codes_of(p.key))]
    assert len(codes) == len(set(codes))  # no code answered twice
    assert {"27", "28", "29", "33", "34", "35", "36", "37", "38", "39", "41", "52", "71"} <= set(
        codes
    )
    # The menu answer itself explains no code: it only says how to read one.
    assert words(answer("login")) < 30 and not problem("login").portal_button


@pytest.mark.parametrize("step", STEPS)
def test_every_answer_is_at_most_60_words(step: int) -> None:
    for found in reachable(GUIDE, step):
        text = visible_text(GUIDE.problem_answer(found, RUT, step))
        assert words(text) <= MAX_WORDS, (found.key, words(text))


# --- the SII's answers, right ----------------------------------------------------------------


def test_code_39_means_log_in_with_the_certificate_not_change_the_login_method() -> None:
    c39, c33 = code_problem("39"), code_problem("33")
    assert c39.key != c33.key
    assert SII_CERTIFICATE_LOGIN in answer(c39.key)
    assert SII_LOGIN_CHOICE not in answer(c39.key)
    # Changing how the account logs in is the fix for 33 only.
    assert SII_LOGIN_CHOICE in answer(c33.key)
    assert c39.portal_button


def test_code_34_tries_the_certificate_again_and_only_38_speaks_of_another() -> None:
    c34, c38 = code_problem("34"), code_problem("38")
    assert c34.key != c38.key
    assert SII_CERTIFICATE_LOGIN in answer(c34.key)
    assert "certificado nuevo" not in answer(c34.key) and "uno nuevo" not in answer(c34.key)
    # 38: a new certificate only if the error repeats, after trying again.
    text = answer(c38.key)
    assert "uno nuevo" in text
    assert text.index("ábralo de nuevo") < text.index("Solo si")


def test_code_41_checks_the_company_rut_and_other_representatives_before_the_office() -> None:
    c41 = code_problem("41")
    text = visible_text(GUIDE.problem_answer(c41, RUT, 5))
    company = GUIDE.message("rut_confirm", company_rut="76.086.428-5")
    assert "76.086.428-5" in text and "76.086.428-5" in visible_text(company)
    assert text.index("76.086.428-5") < text.index("más de un representante")
    assert text.index("más de un representante") < text.index("oficina del SII")


@pytest.mark.parametrize("step", STEPS)
def test_an_error_code_mentioned_at_a_step_is_answered_at_that_step(step: int) -> None:
    offered = {code for p in reachable(GUIDE, step) for code in codes_of(p.key)}
    texts = [GUIDE.step(step, RUT), *(p.answer for p in reachable(GUIDE, step))]
    mentioned = {code for text in texts for code in re.findall(r"\b(\d\d)\b", visible_text(text))}
    assert mentioned & codes_of(code_problem("41").key) <= offered
    if step >= 2:
        assert code_problem("41") in reachable(GUIDE, step)


def test_code_52_gives_the_menu_path_and_step_1_offers_both_ways() -> None:
    [menu_path] = re.findall(r"<i>(Servicios online › .*?)</i>", GUIDE.step(1, RUT))
    c52 = code_problem("52")
    assert menu_path in c52.answer
    assert not c52.portal_button  # the SII asks not to use stored addresses
    assert url_buttons(keyboards.step(GUIDE, 1)) == [GUIDE.portal_url]


def test_installing_the_certificate_on_windows_and_in_firefox() -> None:
    windows = answer("certwin")
    positions = [windows.index(word) for word in WINDOWS_INSTALL]
    assert positions == sorted(positions)
    assert "doble clic" in windows and "cierre el navegador" in windows
    firefox = answer("certff")
    assert FIREFOX_IMPORT in firefox
    # First the system's certificates, which recent Firefox reads; importing only if not.
    assert firefox.index("instálelo primero") < firefox.index(FIREFOX_IMPORT)
    assert {p.key for p in GUIDE.problems_at(2, "certlist")} == {"certwin", "certff", "certmac"}


def test_step_2_says_the_certificate_must_be_on_this_computer() -> None:
    step2 = visible_text(GUIDE.step(2, RUT))
    assert SII_CERTIFICATE_LOGIN in step2
    assert "instalados en este computador" in step2
    assert "instalados en este mismo computador" in answer("certlist")


def test_registro_is_not_given_an_unsourced_meaning() -> None:
    explained = GUIDE.message("done", company_rut="76.086.428-5")
    [registro] = [line for line in explained.splitlines() if "<b>Registro</b>" in line]
    assert "puede registrar" not in registro and "consultar" not in registro


def test_the_welcome_says_the_certificate_is_on_the_computer() -> None:
    welcome = visible_text(GUIDE.message("welcome"))
    assert "certificado digital" in welcome and "computador donde está instalado" in welcome
    assert "no funciona en el celular" not in welcome


# --- where clients get lost -----------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_every_step_offers_the_sii_page(step: int) -> None:
    assert url_buttons(keyboards.step(GUIDE, step)) == [GUIDE.portal_url]


def test_the_session_expired_answer_offers_the_sii_page() -> None:
    expired = code_problem("28")
    assert {"28", "29", "71"} <= codes_of(expired.key)
    for step in expired.steps:
        assert url_buttons(keyboards.problem_answer(GUIDE, step, expired)) == [GUIDE.portal_url]


@pytest.mark.parametrize("key", ["on_phone"])
def test_opening_the_chat_on_the_computer_gives_each_phone_its_path(key: str) -> None:
    text = visible_text(GUIDE.message(key))
    assert "web.telegram.org" in text and "QR" in text
    android, iphone = text.index("Android"), text.index("iPhone")
    assert text.index(ANDROID_LINK, android) < iphone
    assert text.count(LINK_DESKTOP) == 2
    assert "contraseña de Telegram" in text  # two-step verification
    phone = answer("phone")
    assert "Android" in phone and "iPhone" in phone and LINK_DESKTOP in phone


def test_passing_it_on_works_on_a_computer_and_without_telegram() -> None:
    values = {"company_rut": "76.086.428-5", "expires": "01-01-2027"}
    intro = visible_text(GUIDE.message("pass_on_intro", **values))
    assert "clic derecho" in intro and "WhatsApp" in intro and "correo" in intro


def test_no_client_text_says_casillero_and_computer_steps_say_haga_clic() -> None:
    texts = [GUIDE.step(step, RUT) for step in STEPS]
    texts += [p.answer for step in STEPS for p in reachable(GUIDE, step)]
    for text in texts:
        assert not re.search(r"casiller", text, re.IGNORECASE), text
        assert not re.search(r"\b(toque|presione)\b", text, re.IGNORECASE), text
    for step in STEPS:
        assert "haga clic" in GUIDE.step(step, RUT).lower() or step in (1, 7)


def test_not_seen_at_step_7_offers_the_problem_menu() -> None:
    rows = keyboards.not_saved(GUIDE).inline_keyboard
    assert [b.callback_data for row in rows for b in row][-1] == f"pb:{TOTAL_STEPS}"


def test_labels_name_the_configured_representative() -> None:
    other = load_guide(
        None,
        firm_facts(make_settings(Path("unused"), representative_name="MARÍA PÉREZ")),
    )
    labels = [other.problem_label(p) for step in STEPS for p in reachable(other, step)]
    assert any("MARÍA PÉREZ" in label for label in labels)
    assert not any("ALEX" in label for label in labels)
    assert not any("ALEX" in p.label for step in STEPS for p in reachable(GUIDE, step))
    assert SII_SAVE_CHANGES in problem("listed").answer
