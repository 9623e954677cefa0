import os

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile

from contentstore.models import BinaryContent, Message, MessageSet, Schedule

from .factories import (
    OGG_BYTES,
    fire_tasks,
    make_binary_content,
    make_message,
    make_messageset,
    make_schedule,
    upload,
)

pytestmark = pytest.mark.django_db

ADMIN = "/admin/contentstore"


@pytest.fixture
def content(db):
    schedule = make_schedule()
    messageset = make_messageset("baby", schedule=schedule, channel="whatsapp")
    file = make_binary_content()
    make_message(messageset, 2, "eng")
    make_message(messageset, 1, "zul", binary_content=file)
    make_message(messageset, 1, "eng")
    return {"schedule": schedule, "messageset": messageset, "file": file}


@pytest.mark.parametrize("model", ["schedule", "messageset", "message", "binarycontent"])
def test_every_list_and_add_page_opens(admin_client, content, model):
    assert admin_client.get(f"{ADMIN}/{model}/").status_code == 200
    assert admin_client.get(f"{ADMIN}/{model}/add/").status_code == 200
    assert admin_client.get(f"{ADMIN}/{model}/?q=baby").status_code == 200


@pytest.mark.parametrize(
    ("model", "key"), [("schedule", "schedule"), ("messageset", "messageset"), ("binarycontent", "file")]
)
def test_every_change_page_opens(admin_client, content, model, key):
    assert admin_client.get(f"{ADMIN}/{model}/{content[key].pk}/change/").status_code == 200


def test_a_schedule_shows_its_cron_string_and_next_runs(admin_client, content):
    page = admin_client.get(f"{ADMIN}/schedule/").content.decode()
    assert "0 8 * * 1" in page
    assert page.count(" 08:00 UTC") >= 3
    assert "Mon " in page


def test_a_schedule_added_in_the_admin_gets_its_periodic_task(admin_client):
    response = admin_client.post(
        f"{ADMIN}/schedule/add/",
        {"minute": "30", "hour": "9", "day_of_week": "*", "day_of_month": "1", "month_of_year": "*"},
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.periodic_task.crontab.day_of_month == "1"


def test_the_admin_names_an_invalid_cron_field(admin_client):
    response = admin_client.post(
        f"{ADMIN}/schedule/add/",
        {"minute": "75", "hour": "9", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
    )
    assert response.status_code == 200
    assert "&#x27;75&#x27; is not a valid minute" in response.content.decode()
    assert not fire_tasks().exists()


def test_deleting_a_schedule_in_the_admin_removes_its_periodic_task(admin_client):
    schedule = make_schedule()
    response = admin_client.post(f"{ADMIN}/schedule/{schedule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Schedule.objects.exists()
    assert not fire_tasks().exists()


def test_a_message_set_page_lists_its_messages_by_sequence_and_language(admin_client, content):
    response = admin_client.get(f"{ADMIN}/messageset/{content['messageset'].pk}/change/")
    formset = response.context["inline_admin_formsets"][0].formset
    assert [(form.instance.sequence_number, form.instance.lang) for form in formset.forms] == [
        (1, "eng"),
        (1, "zul"),
        (2, "eng"),
    ]
    assert "Import messages (CSV)" in response.content.decode()


def test_the_clone_action_copies_a_set_with_its_messages(admin_client, content):
    original = content["messageset"]
    changelist = f"{ADMIN}/messageset/"
    asked = admin_client.post(changelist, {"action": "clone", ACTION_CHECKBOX_NAME: [original.pk]})
    assert asked.status_code == 200
    assert "Short name of the copy" in asked.content.decode()
    crumbs = f'<a href="{ADMIN}/messageset/">Message sets</a> &rsaquo; Clone message set baby'
    assert crumbs in " ".join(asked.content.decode().split())
    done = admin_client.post(
        changelist,
        {"action": "clone", ACTION_CHECKBOX_NAME: [original.pk], "clone": "Clone", "short_name": "baby-copy"},
    )
    assert done.status_code == 302
    copy = MessageSet.objects.get(short_name="baby-copy")
    assert (copy.channel, copy.default_schedule) == (original.channel, original.default_schedule)
    fields = ("sequence_number", "lang", "text_content", "binary_content")
    assert list(copy.messages.order_by(*fields).values_list(*fields)) == list(
        original.messages.order_by(*fields).values_list(*fields)
    )


def test_the_clone_action_refuses_a_taken_short_name(admin_client, content):
    original = content["messageset"]
    response = admin_client.post(
        f"{ADMIN}/messageset/",
        {"action": "clone", ACTION_CHECKBOX_NAME: [original.pk], "clone": "Clone", "short_name": "baby"},
    )
    assert response.status_code == 200
    assert "A message set with this short name exists already." in response.content.decode()
    assert MessageSet.objects.count() == 1


def test_the_admin_imports_a_csv_all_or_nothing(admin_client, content):
    messageset = content["messageset"]
    url = f"{ADMIN}/messageset/{messageset.pk}/import/"
    bad = SimpleUploadedFile("m.csv", b"sequence_number,lang,text_content\n3,eng,Fine\n4,eng,Two\nlines\n")
    response = admin_client.post(url, {"file": bad})
    assert response.status_code == 200
    assert response.context["problems"] == ["Row 4: sequence_number: 'lines' is not a whole number."]
    crumbs = (
        f'<a href="{ADMIN}/messageset/">Message sets</a> '
        f'&rsaquo; <a href="{ADMIN}/messageset/{messageset.pk}/change/">baby</a> &rsaquo; Import messages'
    )
    assert crumbs in " ".join(response.content.decode().split())
    assert messageset.messages.count() == 3

    good = SimpleUploadedFile("m.csv", b"sequence_number,lang,text_content\n3,eng,Week three\n")
    response = admin_client.post(url, {"file": good})
    assert response.status_code == 302
    assert messageset.messages.get(sequence_number=3).text_content == "Week three"


def test_the_admin_import_lists_each_bad_row(admin_client, content):
    messageset = content["messageset"]
    csv = "sequence_number,lang,text_content\n3,eng,Fine\nx,eng,Bad\n4,eng,Tab\there\n"
    response = admin_client.post(
        f"{ADMIN}/messageset/{messageset.pk}/import/", {"file": SimpleUploadedFile("m.csv", csv.encode())}
    )
    assert response.context["problems"] == [
        "Row 3: sequence_number: 'x' is not a whole number.",
        "Row 4: text_content: Text for WhatsApp must not include newline, tabs, or 4 consecutive spaces.",
    ]
    assert "Nothing was imported: 2 problems." in response.content.decode()
    assert not messageset.messages.filter(sequence_number=3).exists()


def test_the_admin_exports_a_sets_messages(admin_client, content):
    response = admin_client.get(f"{ADMIN}/messageset/{content['messageset'].pk}/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="baby-messages.csv"'
    lines = response.content.decode().splitlines()
    assert lines[0] == "sequence_number,lang,text_content,binary_content,metadata"
    assert len(lines) == 4


def test_a_file_uploaded_in_the_admin_is_stored_like_an_api_upload(admin_client):
    response = admin_client.post(f"{ADMIN}/binarycontent/add/", {"content": upload("Intro.ogg", OGG_BYTES)})
    assert response.status_code == 302
    item = BinaryContent.objects.get()
    assert item.content.name.endswith(".ogg")
    assert item.content.name != "Intro.ogg"


def test_the_admin_refuses_an_upload_over_the_limit(admin_client, settings):
    settings.BINARY_CONTENT_MAX_BYTES = 10
    response = admin_client.post(f"{ADMIN}/binarycontent/add/", {"content": upload("a.mp3", b"x" * 11)})
    assert response.status_code == 200
    assert "uploads may be at most 10 bytes" in response.content.decode()
    assert not BinaryContent.objects.exists()


def test_deleting_a_file_in_the_admin_deletes_it_from_storage(admin_client, django_capture_on_commit_callbacks):
    item = make_binary_content()
    path = item.content.path
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{ADMIN}/binarycontent/{item.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not BinaryContent.objects.exists()
    assert not os.path.exists(path)


def test_a_message_saved_in_the_admin_follows_the_text_rules(admin_client, content):
    messageset = content["messageset"]
    response = admin_client.post(
        f"{ADMIN}/message/add/",
        {"messageset": messageset.pk, "sequence_number": 5, "lang": "eng", "text_content": "It’s", "metadata": "{}"},  # noqa: RUF001
    )
    assert response.status_code == 200
    assert "Text has special characters which can be replaced" in response.content.decode()
    assert not Message.objects.filter(sequence_number=5).exists()


def test_a_message_set_page_adds_changes_and_deletes_its_messages(admin_client, content):
    messageset = content["messageset"]
    first, zulu, second = messageset.messages.order_by("sequence_number", "lang")
    data = {
        "short_name": "baby",
        "label": "Baby",
        "content_type": "text",
        "channel": "whatsapp",
        "default_schedule": messageset.default_schedule_id,
        "messages-TOTAL_FORMS": 4,
        "messages-INITIAL_FORMS": 3,
        "messages-MIN_NUM_FORMS": 0,
        "messages-MAX_NUM_FORMS": 1000,
    }
    rows = [
        (first, {"text_content": "Week one"}),
        (zulu, {"DELETE": "on"}),
        (second, {}),
        (None, {"sequence_number": 3, "lang": "eng", "text_content": "Week three"}),
    ]
    for index, (message, changes) in enumerate(rows):
        fields = {"metadata": "{}", "messageset": messageset.pk}
        if message is not None:
            fields |= {"id": message.pk, "sequence_number": message.sequence_number, "lang": message.lang}
            fields |= {"text_content": message.text_content, "binary_content": message.binary_content_id or ""}
        data |= {f"messages-{index}-{name}": value for name, value in (fields | changes).items()}

    response = admin_client.post(f"{ADMIN}/messageset/{messageset.pk}/change/", data)

    assert response.status_code == 302
    assert MessageSet.objects.get().label == "Baby"
    assert list(
        messageset.messages.order_by("sequence_number").values_list("sequence_number", "lang", "text_content")
    ) == [
        (1, "eng", "Week one"),
        (2, "eng", "Message 2 in eng"),
        (3, "eng", "Week three"),
    ]


def test_a_message_set_added_in_the_admin_is_listed_with_its_message_count(admin_client, content):
    data = {"short_name": "toddler", "label": "", "content_type": "text", "default_schedule": content["schedule"].pk}
    data |= {"messages-TOTAL_FORMS": 0, "messages-INITIAL_FORMS": 0}
    assert admin_client.post(f"{ADMIN}/messageset/add/", data).status_code == 302
    by_count = admin_client.get(f"{ADMIN}/messageset/", {"o": "7"})  # the messages column (after the checkbox)
    rows = [(messageset.short_name, messageset.row_count) for messageset in by_count.context["cl"].result_list]
    assert rows == [("toddler", 0), ("baby", 3)]
