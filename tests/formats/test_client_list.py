"""Reading the client list the firm uploads: .csv as Excel and Google Sheets save it, .xlsx."""

import io
import zipfile
from typing import Any

import openpyxl
import pytest
from stdnum.cl import rut as stdnum_rut

from bot.formats.client_list import (
    ClientList,
    ClientListError,
    ClientRow,
    Note,
    Rejected,
    normalize_email,
    normalize_header,
    normalize_phone,
    read_client_list,
)


def valid_rut(number: int) -> str:
    """Return number's compact RUT with its right check digit."""
    return f"{number}-{stdnum_rut.calc_check_digit(str(number))}"


def wrong_rut(number: int) -> str:
    """Return number with a check digit that is not its own."""
    right = stdnum_rut.calc_check_digit(str(number))
    return f"{number}-{'1' if right != '1' else '2'}"


def dotted(compact: str) -> str:
    return str(stdnum_rut.format(compact))


def xlsx(rows: list[list[Any]], *, text_cells: dict[tuple[int, int], str] | None = None) -> bytes:
    """Build an .xlsx whose first sheet holds `rows` (None leaves a cell empty)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Clientes"
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            if value is not None:
                sheet.cell(row=r, column=c, value=value)
    for (r, c), text in (text_cells or {}).items():
        cell = sheet.cell(row=r, column=c)
        cell.value = text
        cell.data_type = "s"  # stored as text even though it starts with "="
    workbook.create_sheet("Otra").append(["RUT", "ignored"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


A, B, C, D = valid_rut(76086428), valid_rut(96790240), valid_rut(77123456), valid_rut(12345678)


def test_latin1_csv_with_semicolons_as_spanish_excel_saves_it() -> None:
    text = (
        "RUT;Razón social;Teléfono;Correo electrónico\r\n"
        f"{dotted(A)};Ferretería Ñuñoa Ltda.;+56 9 1234 5678;contacto@ñuñoa.cl\r\n"
        f"{dotted(B)};Panadería «El Álamo», SpA;(9) 8765-4321;ventas@alamo.cl\r\n"
    )
    result = read_client_list(text.encode("cp1252"), "Clientes.CSV")
    assert result == ClientList(
        rows=(
            ClientRow(2, A, "Ferretería Ñuñoa Ltda.", "+56912345678", "contacto@ñuñoa.cl"),
            ClientRow(3, B, "Panadería «El Álamo», SpA", "+56987654321", "ventas@alamo.cl"),
        ),
        rejected=(),
        notes=(),
    )


def test_utf8_csv_with_bom_and_commas_as_google_sheets_saves_it() -> None:
    text = (
        "Rut empresa,Nombre cliente,Celular,E-mail\n"
        f'{A},"Soto, Pérez y Cía.",56912345678,ana@soto.cl\n'
        f'{dotted(B)},"Línea 1\nLínea 2",912345678,\n'
        f"{C},Café ☕,,\n"
    )
    result = read_client_list(b"\xef\xbb\xbf" + text.encode("utf-8"), "clientes.csv")
    assert result.rows == (
        ClientRow(2, A, "Soto, Pérez y Cía.", "+56912345678", "ana@soto.cl"),
        # A quoted line break is one spreadsheet row; spaces are tidied.
        ClientRow(3, B, "Línea 1 Línea 2", "+56912345678", None),
        ClientRow(4, C, "Café ☕", None, None),
    )
    assert result.rejected == ()
    assert result.notes == ()


def test_utf8_without_bom_and_utf16_tab_separated() -> None:
    text = f"RUT\tNombre\n{A}\tÑandú SpA\n"
    for data in (text.replace("\t", ",").encode("utf-8"), text.encode("utf-16")):
        result = read_client_list(data, "clientes.txt")
        assert result.rows == (ClientRow(2, A, "Ñandú SpA", None, None),)


def test_the_delimiter_is_the_one_whose_header_names_columns() -> None:
    # Commas inside unquoted names must not fool the sniffing of a ';' file.
    text = f"Rut cliente;Cliente;Fono\n{A};Gómez, Ltda.;9 1234 5678\n{B};Díaz, Díaz, SpA;\n"
    result = read_client_list(text.encode("cp1252"), "lista.csv")
    assert [(r.rut, r.name, r.phone) for r in result.rows] == [
        (A, "Gómez, Ltda.", "+56912345678"),
        (B, "Díaz, Díaz, SpA", None),
    ]


def test_xlsx_with_title_blank_rows_extra_columns_and_header_below() -> None:
    data = xlsx(
        [
            ["Listado de clientes 2026"],
            [],
            [None, "N°", "RUT de la empresa", "Razón social", "Comuna", "Móvil", "Mail", "Obs."],
            [None, 1, dotted(A), "Ferretería Ñuñoa", "Ñuñoa", 56912345678, "a@b.cl", "x"],
            [],
            [],
            [None, 2, B, "  Panadería   El Álamo ", "Maipú", 912345678.0, None, None],
            [None, None, None, None, None, None, None, None],
            [None, 3, int(C.replace("-", "")), None, "Santiago", "9 8765 4321", "ventas@c.cl"],
        ]
    )
    result = read_client_list(data, "clientes.xlsx")
    assert result.rows == (
        ClientRow(4, A, "Ferretería Ñuñoa", "+56912345678", "a@b.cl"),
        ClientRow(7, B, "Panadería El Álamo", "+56912345678", None),
        ClientRow(9, C, None, "+56987654321", "ventas@c.cl"),
    )
    assert result.rejected == ()


def test_xlsx_formulas_are_never_evaluated_and_formula_text_stays_text() -> None:
    hyperlink = '=HYPERLINK("http://evil.example","clic")'
    data = xlsx(
        [
            ["RUT", "Nombre", "Teléfono"],
            [A, None, "=1+1"],  # a real formula with no cached value: an empty cell
            ["=CONCAT(1)", "Formula RUT", None],
        ],
        text_cells={(2, 2): hyperlink},
    )
    result = read_client_list(data, "clientes.xlsx")
    assert result.rows == (ClientRow(2, A, hyperlink, None, None),)
    assert result.rejected == (Rejected(3, "empty", "Formula RUT"),)


def test_csv_formula_looking_cells_are_kept_as_text() -> None:
    text = (
        "RUT,Nombre,Correo\n"
        f'{A},"=HYPERLINK(""http://evil.example"",""clic"")",@SUM(1)\n'
        "=1+1,+cmd|calc,\n"
    )
    result = read_client_list(text.encode(), "c.csv")
    assert result.rows == (ClientRow(2, A, '=HYPERLINK("http://evil.example","clic")', None, None),)
    assert result.notes == (Note(2, "bad_email", "@SUM(1)"),)
    assert result.rejected == (Rejected(3, "bad_rut", "=1+1"),)


def test_rejections_have_their_reason_value_and_line() -> None:
    text = (
        "RUT;Nombre;Teléfono\n"
        f"{A};Primera;\n"
        "12.345;RUT muy corto;\n"
        f"{wrong_rut(76086428)};Dígito malo;\n"
        ";;\n"  # blank: skipped silently
        f"{dotted(A)};Repetida con puntos;\n"
        ";Sin RUT;9 1234 5678\n"
        ";;+56 9 8765 4321\n"
        f"RUT {A.replace('-', '')};Repetida sin guion;\n"
        "no sé;;\n"
        f"{B};Segunda;\n"
    )
    result = read_client_list(text.encode("cp1252"), "c.csv")
    assert result.rows == (
        ClientRow(2, A, "Primera", None, None),
        ClientRow(11, B, "Segunda", None, None),
    )
    assert result.rejected == (
        Rejected(3, "bad_rut", "12.345"),
        Rejected(4, "wrong_check_digit", wrong_rut(76086428)),
        Rejected(6, "duplicate", dotted(A)),
        Rejected(7, "empty", "Sin RUT"),
        Rejected(8, "empty", "+56 9 8765 4321"),
        Rejected(9, "duplicate", f"RUT {A.replace('-', '')}"),
        Rejected(10, "bad_rut", "no sé"),
    )


def test_a_rut_rejected_once_can_still_come_right_later() -> None:
    text = f"RUT\n{wrong_rut(76086428)}\n{A}\n"
    result = read_client_list(text.encode(), "c.csv")
    assert result.rows == (ClientRow(3, A, None, None, None),)
    assert [r.reason for r in result.rejected] == ["wrong_check_digit"]


def test_a_long_rejected_value_is_shortened() -> None:
    text = "RUT;Nombre\n" + "x" * 500 + ";a\n"
    (rejected,) = read_client_list(text.encode(), "c.csv").rejected
    assert rejected.reason == "bad_rut"
    assert len(rejected.value) == 80 and rejected.value.endswith("…")


def test_bad_phones_and_emails_are_dropped_with_a_note_not_rejected() -> None:
    text = (
        "RUT;Nombre;WhatsApp;Email\n"
        f"{A};Uno;+56 2 2345 6789;ana@@x.cl\n"
        f"{B};Dos;1234;ana@localhost\n"
        f"{C};Tres;9 1234 5678;Ana@Empresa.CL\n"
    )
    result = read_client_list(text.encode(), "c.csv")
    assert [(r.line, r.phone, r.email) for r in result.rows] == [
        (2, None, None),
        (3, None, None),
        (4, "+56912345678", "Ana@Empresa.CL"),
    ]
    assert result.notes == (
        Note(2, "bad_phone", "+56 2 2345 6789"),
        Note(2, "bad_email", "ana@@x.cl"),
        Note(3, "bad_phone", "1234"),
        Note(3, "bad_email", "ana@localhost"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9 1234 5678", "+56912345678"),
        ("+56 9 1234 5678", "+56912345678"),
        ("56912345678", "+56912345678"),
        ("912345678", "+56912345678"),
        ("+56-9-1234-5678", "+56912345678"),
        ("(+56) 9 1234-5678", "+56912345678"),
        ("(9) 1234 5678", "+56912345678"),
        ("0056 9 1234 5678", "+56912345678"),
        (" +569.1234.5678 ", "+56912345678"),
        ("+56912345678", "+56912345678"),
        ("12345678", None),  # the old eight digits, without the 9
        ("+56 2 2345 6789", None),  # a landline
        ("22345678", None),
        ("+54 9 11 1234 5678", None),  # not Chilean
        ("9 1234 567", None),
        ("9 1234 56789", None),
        ("+56 9 1234 5678 anexo 2", None),
        ("912345678 / 987654321", None),
        ("", None),
        ("abc", None),
    ],
)
def test_phone_normalization(text: str, expected: str | None) -> None:
    assert normalize_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana@empresa.cl", "ana@empresa.cl"),
        ("  Ana.Perez+sii@Empresa.CL ", "Ana.Perez+sii@Empresa.CL"),
        ("mailto:ana@empresa.cl", "ana@empresa.cl"),
        ("contacto@ñuñoa.cl", "contacto@ñuñoa.cl"),
        ("ana@empresa", None),
        ("ana@@empresa.cl", None),
        ("ana@x@empresa.cl", None),
        ("@empresa.cl", None),
        ("ana empresa.cl", None),
        ("ana @empresa.cl", None),
        ("ana@.cl", None),
        ("ana@empresa..cl", None),
        ("a@b.cl; c@d.cl", None),
        ("ana@empresa.cl?subject=x", None),
        ("", None),
    ],
)
def test_email_validation(text: str, expected: str | None) -> None:
    assert normalize_email(text) == expected


@pytest.mark.parametrize(
    ("header", "field_found"),
    [
        ("RUT", True),
        ("R.U.T.", True),
        ("rut empresa", True),
        ("RUT de la Empresa", True),
        ("Rut  cliente", True),
        ("  RUT_CLIENTE ", True),
        ("Rol Único Tributario", True),
        ("Número", False),
        ("RUT representante legal", False),
    ],
)
def test_rut_header_variants(header: str, field_found: bool) -> None:
    data = f"{header};Nombre\n{A};Uno\n".encode()
    if field_found:
        assert read_client_list(data, "c.csv").rows[0].rut == A
    else:
        with pytest.raises(ClientListError) as raised:
            read_client_list(data, "c.csv")
        assert raised.value.reason == "no_rut_column"


@pytest.mark.parametrize(
    ("name_header", "phone_header", "email_header"),
    [
        ("Razón social", "Teléfono", "Correo"),
        ("RAZON SOCIAL", "Telefono", "Email"),
        ("Nombre", "Celular", "E-mail"),
        ("Nombre cliente", "Móvil", "Correo electrónico"),
        ("Cliente", "Fono", "Mail"),
        ("Empresa", "WhatsApp", "E-Mail"),
    ],
)
def test_contact_header_variants(name_header: str, phone_header: str, email_header: str) -> None:
    data = f"{email_header};{phone_header};RUT;{name_header}\n a@b.cl;912345678;{A};Uno\n"
    (row,) = read_client_list(data.encode("cp1252"), "c.csv").rows
    assert (row.name, row.phone, row.email) == ("Uno", "+56912345678", "a@b.cl")


def test_header_normalization() -> None:
    assert normalize_header("  Correo Electrónico: ") == "correoelectronico"
    assert normalize_header("RAZÓN_SOCIAL") == "razonsocial"
    assert normalize_header("Teléfono (móvil)") == "telefonomovil"


def test_the_first_of_two_matching_columns_wins() -> None:
    data = f"RUT;Nombre;Razón social\n{A};Ana;Ferretería Ana SpA\n".encode()
    assert read_client_list(data, "c.csv").rows[0].name == "Ana"


def test_no_rut_column_is_a_clear_error() -> None:
    for data, name in (
        (b"Nombre;Telefono\nAna;912345678\n", "c.csv"),
        (f"{A};Ana\n{B};Pedro\n".encode(), "c.csv"),  # no header at all
        (b"", "c.csv"),
        (xlsx([["Nombre"], ["Ana"]]), "c.xlsx"),
        (xlsx([]), "c.xlsx"),
    ):
        with pytest.raises(ClientListError) as raised:
            read_client_list(data, name)
        assert raised.value.reason == "no_rut_column"
        assert str(raised.value) == "no_rut_column"


def test_the_header_is_looked_for_only_among_the_first_rows() -> None:
    data = ("título\n" * 10 + f"RUT\n{A}\n").encode()
    with pytest.raises(ClientListError, match="no_rut_column"):
        read_client_list(data, "c.csv")
    assert read_client_list(("título\n" * 9 + f"RUT\n{A}\n").encode(), "c.csv").rows[0].line == 11


def test_over_the_row_limit_is_too_big() -> None:
    rows = [valid_rut(10_000_000 + n) for n in range(4)]
    data = ("RUT\n" + "\n".join(rows[:3]) + "\n\n\n").encode()
    assert len(read_client_list(data, "c.csv", max_rows=3).rows) == 3  # blank rows are free
    data = ("RUT\n" + "\n".join(rows) + "\n").encode()
    with pytest.raises(ClientListError) as raised:
        read_client_list(data, "c.csv", max_rows=3)
    assert raised.value.reason == "too_big"
    # Rejected rows count as rows too, and so do .xlsx rows.
    with pytest.raises(ClientListError, match="too_big"):
        read_client_list(xlsx([["RUT"], *([["malo"]] * 4)]), "c.xlsx", max_rows=3)


def test_over_the_byte_limit_is_too_big() -> None:
    data = ("RUT\n" + f"{A}\n" * 100).encode()
    assert read_client_list(data, "c.csv", max_bytes=len(data)).rows
    for name in ("c.csv", "c.xlsx", "c.pdf"):
        with pytest.raises(ClientListError) as raised:
            read_client_list(data, name, max_bytes=len(data) - 1)
        assert raised.value.reason == "too_big"


def test_an_xlsx_that_unpacks_to_far_more_than_the_limit_is_too_big() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * 600_000)
    data = buffer.getvalue()
    assert len(data) < 10_000
    with pytest.raises(ClientListError, match="too_big"):
        read_client_list(data, "c.xlsx", max_bytes=20_000)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"not a spreadsheet", "c.xlsx"),
        (b"PK\x03\x04 broken zip", "c.xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "c.xls"),  # old Excel
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "c.csv"),
        (b"%PDF-1.4 RUT", "c.pdf"),
        (b"RUT\n76086428-5\n", "c.docx"),
        (b"RUT\x00;\x00N\x00", "c.csv"),  # binary, NUL bytes
        (b"\xff\xfeR\x00U\x00T", "c.csv"),  # UTF-16 cut in the middle of a character
    ],
)
def test_unreadable_files(data: bytes, name: str) -> None:
    with pytest.raises(ClientListError) as raised:
        read_client_list(data, name)
    assert raised.value.reason == "unreadable"


def test_a_zip_that_is_not_a_workbook_is_unreadable() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "RUT\n")
    with pytest.raises(ClientListError, match="unreadable"):
        read_client_list(buffer.getvalue(), "c.xlsx")


def test_a_csv_field_too_long_for_the_csv_reader_is_unreadable() -> None:
    data = b'RUT;Nombre\n76086428-5;"' + b"x" * 200_000 + b'"\n'
    with pytest.raises(ClientListError, match="unreadable"):
        read_client_list(data, "c.csv", max_bytes=1_000_000)


def test_an_xlsx_is_read_by_its_content_whatever_its_name() -> None:
    data = xlsx([["RUT"], [A]])
    for name in ("clientes.xlsx", "clientes.csv", "clientes", "CLIENTES.XLSM"):
        assert read_client_list(data, name).rows == (ClientRow(2, A, None, None, None),)


def test_the_result_is_immutable() -> None:
    result = read_client_list(f"RUT\n{A}\n".encode(), "c.csv")
    with pytest.raises(AttributeError):
        result.rows[0].rut = B  # type: ignore[misc]
    assert isinstance(result.rows, tuple) and isinstance(result.notes, tuple)


def test_the_first_sheet_is_read_and_d_is_valid() -> None:
    # The helper adds a second sheet whose RUT column must not be read.
    result = read_client_list(xlsx([["Rut"], [D]]), "c.xlsx")
    assert [r.rut for r in result.rows] == [D]
