"""Every way clients type a RUT is read; anything else is refused with the right reason."""

import pytest
from stdnum.util import clean

from bot.domain.rut import RutError, RutProblem, format_rut, parse_rut

RUT = "76086428-5"


@pytest.mark.parametrize(
    "typed",
    [
        "76.086.428-5",
        "76086428-5",
        "760864285",
        "76 086 428 5",
        "  76.086.428-5  ",
        "\t76086428-5\n",
        "76086428 - 5",
        "76.086.428 -5",
        "076.086.428-5",
        "0076086428-5",
        "RUT: 76086428-5",
        "RUT:76.086.428-5",
        "rut 76086428-5",
        "Rut: 76.086.428-5",
        "R.U.T. 76.086.428-5",
        "r.u.t.: 76.086.428-5",
        "RUT N° 76.086.428-5",
        "Rol Único Tributario 76.086.428-5",
        "76\u00a0086\u00a0428-5",  # non-breaking spaces, as pasted from a web page
    ],
)
def test_usual_ways_of_typing_a_rut_are_accepted(typed: str) -> None:
    assert parse_rut(typed) == RUT


@pytest.mark.parametrize(
    ("name", "dash"),
    [
        ("hyphen", "\u2010"),
        ("non-breaking hyphen", "\u2011"),
        ("figure dash", "\u2012"),
        ("en dash", "\u2013"),
        ("em dash", "\u2014"),
        ("minus sign", "\u2212"),
        ("fullwidth hyphen-minus", "\uff0d"),
    ],
)
def test_unicode_dashes_before_the_check_digit_are_accepted(name: str, dash: str) -> None:
    assert clean(dash) == "-", f"stdnum no longer maps the {name}"
    assert parse_rut(f"76.086.428{dash}5") == RUT
    assert parse_rut(f"RUT: 76086428{dash}5") == RUT


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("10.000.013-k", "10000013-K"),
        ("10.000.013-K", "10000013-K"),
        ("10000013k", "10000013-K"),
        ("rut 10000013 \u2013 k", "10000013-K"),
        ("1.234.567-4", "1234567-4"),
        ("1234567-4", "1234567-4"),
        ("12345674", "1234567-4"),
        ("7.654.321-6", "7654321-6"),
        ("07.654.321-6", "7654321-6"),
    ],
)
def test_k_check_digits_and_seven_digit_ruts(typed: str, expected: str) -> None:
    assert parse_rut(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["76.086.428-4", "76086428-0", "760864284", "RUT: 76.086.428-K", "10.000.013-0", "1234567-5"],
)
def test_wrong_check_digit_is_told_apart(typed: str) -> None:
    with pytest.raises(RutError) as raised:
        parse_rut(typed)
    assert raised.value.problem is RutProblem.WRONG_CHECK_DIGIT


@pytest.mark.parametrize(
    "typed",
    [
        "hola",
        "",
        "   ",
        "12",
        "1-9",
        "0-0",
        "00000000-0",
        "RUT",
        "RUT: ",
        "x" * 5000,
        "7" * 5000,
        "76.086.428-5 " * 400,
        "76.086.428-5 y algo más",
        "mi rut es 76.086.428-5 gracias",
        "76.O86.428-5",  # letter O for a zero
        "7608a6428-5",
        "76.086.428_5",
        "76,086,428-5",
        "76.086.428-5; 77.777.777-7",
        "123456789012345-6",
    ],
)
def test_things_that_are_not_a_rut(typed: str) -> None:
    with pytest.raises(RutError) as raised:
        parse_rut(typed)
    assert raised.value.problem is RutProblem.NOT_A_RUT


def test_rut_error_is_a_value_error_carrying_its_problem() -> None:
    with pytest.raises(ValueError, match="not_a_rut"):
        parse_rut("hola")


@pytest.mark.parametrize(
    ("compact", "shown"),
    [
        ("76086428-5", "76.086.428-5"),
        ("10000013-K", "10.000.013-K"),
        ("1234567-4", "1.234.567-4"),
        ("13322924-8", "13.322.924-8"),
    ],
)
def test_format_rut_adds_dots(compact: str, shown: str) -> None:
    assert format_rut(compact) == shown
    assert parse_rut(shown) == compact
