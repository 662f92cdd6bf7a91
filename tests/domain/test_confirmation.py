"""Reading the SII's confirmation screen from OCR text: confirm only on proof, say what differs."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.confirmation import (
    COMPANY_RUT,
    PERMISSION,
    USER_RUT,
    Answer,
    Difference,
    Expected,
    Screen,
    Verdict,
    read_confirmation,
    unreadable,
)
from bot.domain.settings import DEFAULT_PERMISSIONS

COMPANY = "76086428-5"
REPRESENTATIVE = "13322924-8"
EXPECTED = Expected(
    company_rut=COMPANY,
    representative_rut=REPRESENTATIVE,
    representative_name="ALEX PATRICIO BRITO MARDONES",
    permissions=DEFAULT_PERMISSIONS,
)


def saved_screen(
    company: str = "76.086.428-5",
    user: str = "13322924-8",
    name: str = "ALEX PATRICIO BRITO MARDONES",
    answers: tuple[str, str, str] = ("SI", "SI", "SI"),
) -> list[str]:
    """The lines an engine gives for step 7's screen, one table row per line."""
    return [
        "SII Servicio de Impuestos Internos",
        "Usted está en: > Factura electrónica > Mantención de usuarios autorizados",
        "INGRESO DE USUARIOS AUTORIZADOS",
        "Esta opción muestra el estado del ingreso del nuevo usuario.",
        "Se ha grabado satisfactoriamente el nuevo usuario en la empresa COMERCIAL LOS ANDES",
        f"LIMITADA, Rut {company}, con los siguientes antecedentes:",
        f"Rut Usuario {user}",
        f"Nombre Usuario {name}",
        f"Usuario-Administrador {answers[0]}",
        f"Firmar Documentos {answers[1]}",
        f"Registro {answers[2]}",
        "Autorizado por MARIA ELENA SOTO PEÑA",
        "Ingresar Otro Usuario | Modificar Otro Usuario",
    ]


def test_the_saved_screen_with_everything_as_expected_is_confirmed() -> None:
    reading = read_confirmation(saved_screen(), EXPECTED)
    assert reading.verdict is Verdict.CONFIRMED
    assert reading.screen is Screen.SAVED and reading.saved
    assert reading.company_rut == COMPANY
    assert reading.company_name == "COMERCIAL LOS ANDES LIMITADA"
    assert reading.user_rut == REPRESENTATIVE
    assert reading.user_name == "ALEX PATRICIO BRITO MARDONES"
    assert reading.permissions == tuple((p, Answer.YES) for p in DEFAULT_PERMISSIONS)
    assert reading.name_matches is True
    assert reading.differences == () and reading.unread == ()


def test_ocr_noise_is_read_through() -> None:
    lines = [
        "INGRESO DE USUARIOS AUTORIZADOS",
        # An OCR slip in the key word, accents lost, the sentence split mid-name.
        "Se ha grabado satistactonamente el nuevo usuario en la",
        "empresa COMERCIAL LOS ANDES LIMITADA, Rut 76086428:5, con los",
        "siguientes antecedentes",
        # O for 0 and l for 1 in the RUT, a stray border.
        "| Rut Usuario   l3.322.924-8",
        "Nombre Usuario MARDONES BRITO ALEX PATRICIO",
        "Usuario-Administrador si",
        "Firmar Documentos S]",
        "Registro Si |",
    ]
    reading = read_confirmation(lines, EXPECTED)
    assert reading.verdict is Verdict.CONFIRMED, reading
    assert reading.user_rut == REPRESENTATIVE
    # Word order and accents do not matter for the name.
    assert reading.name_matches is True


def test_each_cell_on_its_own_line_in_order_is_read() -> None:
    lines = [
        "Se ha grabado satisfactoriamente el nuevo usuario en la empresa",
        "COMERCIAL LOS ANDES LIMITADA, Rut 76.086.428-5, con los siguientes antecedentes:",
        "Rut Usuario",
        "13.322.924-8",
        "Nombre Usuario",
        "ALEX PATRICIO BRITO MARDONES",
        "Usuario-Administrador",
        "SI",
        "Firmar Documentos",
        "SI",
        "Registro",
        "SI",
        "Autorizado por",
        "MARIA ELENA SOTO PEÑA",
    ]
    assert read_confirmation(lines, EXPECTED).verdict is Verdict.CONFIRMED


def test_a_permission_left_as_no_is_a_mismatch_naming_it() -> None:
    reading = read_confirmation(saved_screen(answers=("SI", "NO", "SI")), EXPECTED)
    assert reading.verdict is Verdict.MISMATCH
    assert reading.differences == (Difference(PERMISSION, "SI", "NO", "Firmar Documentos"),)
    assert dict(reading.permissions)["Firmar Documentos"] is Answer.NO


def test_two_permissions_left_as_no_are_both_named() -> None:
    reading = read_confirmation(saved_screen(answers=("N0", "SI", "NO")), EXPECTED)
    assert reading.verdict is Verdict.MISMATCH
    assert {d.permission for d in reading.differences} == {"Usuario Administrador", "Registro"}


def test_another_user_is_a_mismatch_with_the_rut_read() -> None:
    reading = read_confirmation(saved_screen(user="13.322.942-6"), EXPECTED)
    assert reading.verdict is Verdict.MISMATCH
    assert reading.differences == (Difference(USER_RUT, REPRESENTATIVE, "13322942-6"),)


def test_another_company_is_a_mismatch_with_the_rut_read() -> None:
    reading = read_confirmation(saved_screen(company="77.123.456-9"), EXPECTED)
    assert reading.verdict is Verdict.MISMATCH
    assert reading.differences == (Difference(COMPANY_RUT, COMPANY, "77123456-9"),)


def test_a_different_name_with_the_right_rut_is_confirmed_and_noted() -> None:
    reading = read_confirmation(saved_screen(name="ALEX BRITO"), EXPECTED)
    assert reading.verdict is Verdict.CONFIRMED
    assert reading.name_matches is False


def test_a_rut_with_a_wrong_check_digit_is_unread_not_confirmed() -> None:
    reading = read_confirmation(saved_screen(user="13022924-8"), EXPECTED)
    assert reading.verdict is Verdict.NOT_CONFIRMATION
    assert reading.unread == (USER_RUT,)
    reading = read_confirmation(saved_screen(company="76.086.428-4"), EXPECTED)
    assert reading.verdict is Verdict.NOT_CONFIRMATION
    assert reading.unread == (COMPANY_RUT,)


def test_a_misread_si_is_unread_not_confirmed() -> None:
    reading = read_confirmation(saved_screen(answers=("El]", "SI", "SI")), EXPECTED)
    assert reading.verdict is Verdict.NOT_CONFIRMATION
    assert reading.unread == ("Usuario Administrador",)


def test_the_step_6_screen_is_not_the_confirmation() -> None:
    lines = [
        "CONFIRMACION USUARIO AUTORIZADO",
        "A través de esta opción usted podrá confirmar el ingreso del nuevo usuario.",
        "Se está creando el siguiente usuario en la empresa COMERCIAL LOS ANDES LIMITADA, "
        "Rut 76086428-5.",
        *saved_screen()[6:12],
        "Grabar Usuario Modificar Datos",
    ]
    reading = read_confirmation(lines, EXPECTED)
    assert reading.verdict is Verdict.NOT_CONFIRMATION
    assert reading.screen is Screen.CREATING
    # What it shows is still read, for the firm; only the saved screen proves anything.
    assert reading.user_rut == REPRESENTATIVE and reading.differences == ()


def test_other_pages_and_nothing_are_not_the_confirmation() -> None:
    users_list = [
        "MANTENCION DE USUARIOS AUTORIZADOS",
        "Empresa: COMERCIAL LOS ANDES LIMITADA Rut: 76086428-5",
        "Rut Usuario Nombre Usuario Usuario-Administrador Firmar Documentos Registro",
        "13322924-8 ALEX PATRICIO BRITO MARDONES SI SI SI",
        "Ingresar Nuevo Usuario Modificar Usuario Eliminar Usuario",
    ]
    login = ["IDENTIFICACIÓN DE CONTRIBUYENTES", "RUT", "Clave", "INGRESAR"]
    for lines in (users_list, login, [], ["", "  "]):
        reading = read_confirmation(lines, EXPECTED)
        assert reading.verdict is Verdict.NOT_CONFIRMATION, lines
        assert reading.screen is Screen.OTHER
    assert unreadable(EXPECTED).verdict is Verdict.NOT_CONFIRMATION


def test_values_out_of_order_are_never_taken_for_another_row() -> None:
    # Cells read in no order: the NO ends up after another label. Nothing may be guessed.
    lines = [
        *saved_screen()[4:6],
        "Rut Usuario",
        "13322924-8",
        "Nombre Usuario",
        "ALEX PATRICIO BRITO MARDONES",
        "Usuario-Administrador",
        "Firmar Documentos",
        "SI",
        "NO",
        "Registro",
        "SI",
    ]
    reading = read_confirmation(lines, EXPECTED)
    assert reading.verdict is not Verdict.CONFIRMED
    assert dict(reading.permissions)["Usuario Administrador"] is Answer.UNKNOWN
    assert dict(reading.permissions)["Firmar Documentos"] is Answer.UNKNOWN


def test_two_rows_run_together_are_unread() -> None:
    lines = saved_screen()
    lines[8:10] = ["Usuario-Administrador SI Firmar Documentos NO"]
    reading = read_confirmation(lines, EXPECTED)
    assert reading.verdict is Verdict.NOT_CONFIRMATION
    assert "Firmar Documentos" in reading.unread


def test_the_company_rut_is_never_taken_from_the_table() -> None:
    # The sentence cut before its RUT (a cropped picture): the user's RUT is not the company's.
    lines = [
        "Se ha grabado satisfactoriamente el nuevo usuario en la empresa PATRICIO ALEXANDRE",
        *saved_screen()[6:],
    ]
    expected = Expected(REPRESENTATIVE, REPRESENTATIVE, "ALEX", DEFAULT_PERMISSIONS)
    reading = read_confirmation(lines, expected)
    assert reading.company_rut is None
    assert reading.verdict is Verdict.NOT_CONFIRMATION


def test_a_configured_permission_the_screen_does_not_show_is_never_confirmed() -> None:
    expected = Expected(COMPANY, REPRESENTATIVE, "ALEX", (*DEFAULT_PERMISSIONS, "Ver Boletas"))
    reading = read_confirmation(saved_screen(), expected)
    assert reading.verdict is Verdict.NOT_CONFIRMATION
    assert reading.unread == ("Ver Boletas",)


def test_the_record_keeps_what_was_read_as_plain_values() -> None:
    record = read_confirmation(saved_screen(answers=("SI", "NO", "SI")), EXPECTED).as_record()
    assert record["verdict"] == "mismatch" and record["screen"] == "saved"
    assert record["company_rut"] == COMPANY and record["user_rut"] == REPRESENTATIVE
    assert record["permissions"] == {
        "Usuario Administrador": "SI",
        "Firmar Documentos": "NO",
        "Registro": "SI",
    }
    assert record["differences"] == [
        {"field": "permission", "permission": "Firmar Documentos", "expected": "SI", "read": "NO"}
    ]


_WRONG_SCREENS = [
    saved_screen(answers=("SI", "NO", "SI")),
    saved_screen(answers=("NO", "SI", "SI")),
    saved_screen(answers=("SI", "SI", "NO")),
    saved_screen(user="13322942-6"),
    saved_screen(company="77.123.456-9"),
]


@settings(max_examples=300, deadline=None)
@given(
    screen=st.sampled_from(_WRONG_SCREENS),
    operations=st.lists(
        st.tuples(st.sampled_from(["drop", "swap", "merge", "split"]), st.integers(0, 20)),
        max_size=8,
    ),
)
def test_a_wrong_screen_is_never_confirmed_however_its_lines_come_out(
    screen: list[str], operations: list[tuple[str, int]]
) -> None:
    lines = list(screen)
    for operation, at in operations:
        if len(lines) < 2:
            break
        i = at % (len(lines) - 1)
        if operation == "drop":
            del lines[i]
        elif operation == "swap":
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif operation == "merge":
            lines[i : i + 2] = [f"{lines[i]} {lines[i + 1]}"]
        else:
            words = lines[i].split()
            lines[i : i + 1] = [
                " ".join(words[: len(words) // 2]),
                " ".join(words[len(words) // 2 :]),
            ]
    assert read_confirmation(lines, EXPECTED).verdict is not Verdict.CONFIRMED
