"""Content managers' work in the admin: schedules, message sets, messages, files, CSV import."""

import re

from contentstore.models import BinaryContent, Message, MessageSet, Schedule
from tests.contentstore.factories import AUDIO_BYTES, make_message, make_messageset, make_schedule

from .helpers import admin_messages, expect, result_rows, screenshot

ADMIN = "/admin/contentstore"


def test_a_staff_member_creates_a_schedule_and_a_message_set(admin_page):
    page = admin_page
    page.goto(f"{ADMIN}/schedule/add/")
    page.get_by_label("Minute").fill("30")
    page.get_by_label("Hour").fill("9")
    page.get_by_label("Day of week").fill("1-5")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(admin_messages(page)).to_contain_text("was added successfully")
    expect(result_rows(page)).to_have_count(1)
    expect(result_rows(page)).to_contain_text("30 9 * * 1-5")
    screenshot(page, "02-schedule-added")
    schedule = Schedule.objects.get()
    assert schedule.cron_string == "30 9 * * 1-5"
    assert schedule.periodic_task.enabled

    page.goto(f"{ADMIN}/messageset/add/")
    page.get_by_label("Short name").fill("pregnancy")
    page.get_by_label("Label").fill("Pregnancy messages")
    page.get_by_label("Content type").select_option(label="Text")
    page.get_by_label("Default schedule").select_option(label=str(schedule))
    page.get_by_role("button", name="Save", exact=True).click()

    expect(admin_messages(page)).to_contain_text("was added successfully")
    row = result_rows(page).filter(has_text="pregnancy")
    expect(row).to_contain_text("Pregnancy messages")
    expect(row).to_contain_text("30 9 * * 1-5")
    screenshot(page, "02-message-set-added")
    messageset = MessageSet.objects.get()
    assert (messageset.short_name, messageset.default_schedule) == ("pregnancy", schedule)


def test_a_staff_member_adds_messages_to_a_message_set(admin_page):
    page = admin_page
    messageset = make_messageset("pregnancy")
    page.goto(f"{ADMIN}/messageset/{messageset.pk}/change/")
    for number, text in [(1, "Welcome to the programme."), (2, "Remember your clinic visit.")]:
        page.get_by_role("button", name="Add another Message").click()
        row = page.locator("#messages-group tr.dynamic-messages").last
        row.locator("input[name$=sequence_number]").fill(str(number))
        row.locator("input[name$=lang]").fill("eng")
        row.locator("textarea[name$=text_content]").fill(text)
    screenshot(page, "03-messages-filled-in")
    page.get_by_role("button", name="Save and continue editing").click()

    expect(admin_messages(page)).to_contain_text("was changed successfully")
    saved = page.locator("#messages-group tr.has_original")
    expect(saved).to_have_count(2)
    expect(saved.first.locator("textarea[name$=text_content]")).to_have_value("Welcome to the programme.")
    screenshot(page, "03-messages-added")
    assert list(messageset.messages.values_list("sequence_number", "lang", "text_content")) == [
        (1, "eng", "Welcome to the programme."),
        (2, "eng", "Remember your clinic visit."),
    ]


def test_a_staff_member_uploads_an_audio_file(admin_page):
    page = admin_page
    page.goto(f"{ADMIN}/binarycontent/add/")
    page.get_by_label("Content").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errorlist")).to_contain_text("'notes.txt' is of type text/plain; allowed types: audio/*")
    screenshot(page, "04-upload-refused")
    assert not BinaryContent.objects.exists()

    page.get_by_label("Content").set_input_files(
        {"name": "welcome.mp3", "mimeType": "audio/mpeg", "buffer": AUDIO_BYTES}
    )
    page.get_by_role("button", name="Save", exact=True).click()

    expect(admin_messages(page)).to_contain_text("was added successfully")
    item = BinaryContent.objects.get()
    expect(result_rows(page)).to_have_count(1)
    expect(result_rows(page)).to_contain_text(item.file_name)
    screenshot(page, "04-audio-uploaded")
    assert item.file_name.endswith(".mp3")
    with item.content.open("rb") as stored:
        assert stored.read() == AUDIO_BYTES


def test_a_csv_import_with_a_bad_row_shows_the_row_and_imports_nothing(admin_page):
    page = admin_page
    messageset = make_messageset("pregnancy", schedule=make_schedule())
    make_message(messageset, 1, "eng", text_content="The old first message.")
    page.goto(f"{ADMIN}/messageset/{messageset.pk}/change/")
    page.get_by_role("link", name="Import messages (CSV)").click()
    expect(page.get_by_role("heading", name="Import messages into pregnancy")).to_be_visible()

    bad = (
        "sequence_number,lang,text_content\r\n"
        "1,eng,The new first message.\r\n"
        "two,eng,A row whose position is not a number.\r\n"
    )
    page.get_by_label("CSV file").set_input_files(
        {"name": "messages.csv", "mimeType": "text/csv", "buffer": bad.encode()}
    )
    page.get_by_role("button", name="Import").click()

    expect(page.locator(".errornote")).to_have_text("Nothing was imported: 1 problem.")
    expect(page.locator("ul.errorlist li")).to_have_text(["Row 3: sequence_number: 'two' is not a whole number."])
    screenshot(page, "05-import-bad-row")
    assert list(Message.objects.values_list("text_content", flat=True)) == ["The old first message."]

    good = bad.replace("two,", "2,")
    page.get_by_label("CSV file").set_input_files(
        {"name": "messages.csv", "mimeType": "text/csv", "buffer": good.encode()}
    )
    page.get_by_role("button", name="Import").click()

    expect(page).to_have_url(re.compile(rf"/messageset/{messageset.pk}/change/$"))
    expect(admin_messages(page)).to_have_text("Imported into pregnancy: 1 created, 1 updated, 0 deleted.")
    screenshot(page, "05-import-fixed")
    assert list(messageset.messages.values_list("sequence_number", "text_content")) == [
        (1, "The new first message."),
        (2, "A row whose position is not a number."),
    ]
