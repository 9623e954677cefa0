import io

import pytest
from django.core.management import CommandError, call_command

from contentstore import selectors, services
from contentstore.errors import MessageImportError
from contentstore.models import Message

from .factories import make_binary_content, make_message, make_messageset

pytestmark = pytest.mark.django_db


def import_text(messageset, text: str, **options):
    return services.message_import_csv(messageset=messageset, file=io.StringIO(text), **options)


def messages_of(messageset) -> list[tuple]:
    return list(
        messageset.messages.order_by("sequence_number", "lang").values_list(
            "sequence_number", "lang", "text_content", "binary_content", "metadata"
        )
    )


def test_it_imports_messages_from_csv():
    messageset = make_messageset()
    file = make_binary_content()
    result = import_text(
        messageset,
        "sequence_number,lang,text_content,binary_content,metadata\n"
        '1,eng,"Hello, mother",,\n'
        f'1,zul,Sawubona,{file.content.name},"{{""week"": 5}}"\n'
        f"2,eng,,{file.pk},\n",
    )
    assert result == services.ImportResult(created=3, updated=0, deleted=0)
    assert messages_of(messageset) == [
        (1, "eng", "Hello, mother", None, {}),
        (1, "zul", "Sawubona", file.pk, {"week": 5}),
        (2, "eng", None, file.pk, {}),
    ]


def test_it_updates_the_messages_it_matches_and_keeps_the_others():
    messageset = make_messageset()
    kept = make_message(messageset, 3, "eng", text_content="Kept")
    changed = make_message(messageset, 1, "eng", text_content="Old")
    result = import_text(messageset, "sequence_number,lang,text_content\n1,eng,New\n2,eng,Added\n")
    assert result == services.ImportResult(created=1, updated=1, deleted=0)
    changed.refresh_from_db()
    assert changed.text_content == "New"
    assert Message.objects.filter(pk=kept.pk).exists()


def test_replace_deletes_the_messages_the_file_does_not_list():
    messageset = make_messageset()
    make_message(messageset, 3, "eng")
    result = import_text(messageset, "sequence_number,lang,text_content\n1,eng,Only\n", replace=True)
    assert result.deleted == 1
    assert messages_of(messageset) == [(1, "eng", "Only", None, {})]


def test_a_bad_row_leaves_nothing_written_and_every_problem_is_named_by_row():
    messageset = make_messageset(channel="whatsapp")
    existing = make_message(messageset, 1, "eng", text_content="Before")
    with pytest.raises(MessageImportError) as raised:
        import_text(
            messageset,
            "sequence_number,lang,text_content,binary_content,metadata\n"
            "1,eng,After,,\n"  # row 2: fine on its own
            "two,eng,Text,,\n"  # row 3
            "3,eng,,,\n"  # row 4
            "4,eng,“Quoted”,,\n"  # row 5
            "5,eng,Line\tbreak,,\n"  # row 6
            "6,eng,Text,missing.mp3,\n"  # row 7
            "7,eng,Text,,{oops}\n"  # row 8
            "1,eng,Again,,\n"  # row 9
            "8,,Text,,\n"  # row 10
            "9,eng,Text,,[1]\n",  # row 11
            replace=True,
        )
    assert raised.value.errors == [
        "Row 3: sequence_number: 'two' is not a whole number.",
        "Row 4: text_content: Messages must have text or file attached",
        'Row 5: text_content: Text has special characters which can be replaced: “ (use "), ” (use ").',
        "Row 6: text_content: Text for WhatsApp must not include newline, tabs, or 4 consecutive spaces.",
        "Row 7: binary_content: no binary content with id or file name 'missing.mp3'.",
        "Row 8: metadata: not valid JSON (Expecting property name enclosed in double quotes at column 2).",
        "Row 9: sequence_number 1 in lang 'eng' is also on row 2.",
        "Row 10: lang: This field cannot be blank.",
        "Row 11: metadata: Must be a JSON object.",
    ]
    assert list(Message.objects.values_list("pk", "text_content")) == [(existing.pk, "Before")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "The file is empty: it needs a header row."),
        ("sequence_number,text_content\n1,x\n", "Row 1: missing column(s) lang."),
        (
            "sequence_number,lang,text_content,colour\n",
            "Row 1: unknown column(s) colour; the columns are "
            "sequence_number, lang, text_content, binary_content, metadata.",
        ),
        ("sequence_number,lang,text_content\n1,eng,x,extra\n", "Row 2: more values than columns."),
    ],
)
def test_it_refuses_a_file_of_the_wrong_shape(text, problem):
    with pytest.raises(MessageImportError) as raised:
        import_text(make_messageset(), text)
    assert raised.value.errors == [problem]


def test_export_writes_the_format_import_reads():
    source = make_messageset("source")
    file = make_binary_content()
    make_message(source, 2, "eng", text_content='Say "hi",\nthen go', metadata={"week": 2})
    make_message(source, 1, "zul", binary_content=file, text_content=None)
    make_message(source, 1, "eng")
    out = io.StringIO()
    assert selectors.message_export_csv(messageset=source, file=out) == 3
    assert out.getvalue().splitlines()[:3] == [
        "sequence_number,lang,text_content,binary_content,metadata",
        "1,eng,Message 1 in eng,,",
        f"1,zul,,{file.content.name},",
    ]
    target = make_messageset("target")
    import_text(target, out.getvalue())
    assert messages_of(target) == messages_of(source)


def test_the_import_command_imports_a_file_with_a_progress_bar(tmp_path):
    messageset = make_messageset("baby")
    path = tmp_path / "messages.csv"
    rows = "".join(f"{number},eng,Week {number}\n" for number in range(1, 1201))
    path.write_text("\ufeffsequence_number,lang,text_content\n" + rows, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    call_command("import_messages", "baby", str(path), "--progress", stdout=out, stderr=err)
    assert messageset.messages.count() == 1200
    assert out.getvalue() == "Imported into baby: 1200 created, 0 updated, 0 deleted.\n"
    assert "Checking  [##############################] 100% 1200/1200" in err.getvalue()
    assert "Writing   [##############################] 100% 1200/1200" in err.getvalue()


def test_the_import_command_lists_every_bad_row_and_writes_nothing(tmp_path):
    messageset = make_messageset("baby")
    path = tmp_path / "messages.csv"
    path.write_text("sequence_number,lang,text_content\n1,eng,Fine\n0,eng,Zero\n2,eng,\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"2 problem\(s\) found; nothing was imported."):
        call_command("import_messages", str(messageset.pk), str(path), stdout=io.StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        "Row 3: sequence_number: Ensure this value is greater than or equal to 1.",
        "Row 4: text_content: Messages must have text or file attached",
    ]
    assert not messageset.messages.exists()


def test_the_import_command_names_an_unknown_set(tmp_path):
    with pytest.raises(CommandError, match=r"No message set with short name or id 'nope'\."):
        call_command("import_messages", "nope", str(tmp_path / "x.csv"))


def test_the_export_command_writes_a_file(tmp_path):
    messageset = make_messageset("baby")
    make_message(messageset, 1, "eng")
    path = tmp_path / "out.csv"
    call_command("export_messages", "baby", "--output", str(path), stderr=io.StringIO())
    assert path.read_text(encoding="utf-8").splitlines() == [
        "sequence_number,lang,text_content,binary_content,metadata",
        "1,eng,Message 1 in eng,,",
    ]
