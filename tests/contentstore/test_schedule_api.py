from urllib.parse import urlencode

import pytest
from django_celery_beat.models import PeriodicTask

from contentstore.models import Schedule

from .factories import fire_tasks, make_messageset, make_schedule
from .helpers import assert_delete_refused

pytestmark = pytest.mark.django_db

URL = "/api/v1/schedule/"
CRON = {"minute": "0", "hour": "8", "day_of_week": "1,3", "day_of_month": "*", "month_of_year": "*"}


def test_it_creates_a_schedule(writer):
    response = writer.post(URL, CRON, format="json")
    assert response.status_code == 201, response.content
    schedule = Schedule.objects.get()
    assert response.json() == {"id": schedule.pk, **CRON}
    assert schedule.cron_string == "0 8 * * 1,3"


def test_it_fills_missing_cron_fields_with_a_star(writer):
    response = writer.post(URL, {"minute": "30"}, format="json")
    assert response.status_code == 201, response.content
    assert Schedule.objects.get().cron_string == "30 * * * *"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("minute", "60"),
        ("hour", "24"),
        ("day_of_week", "7"),
        ("day_of_week", "funday"),
        ("day_of_month", "0"),
        ("month_of_year", "13"),
        ("minute", "*/0"),
        ("hour", "1,,2"),
    ],
)
def test_it_names_an_invalid_cron_field(writer, field, value):
    response = writer.post(URL, {**CRON, field: value}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert f"{value!r} is not a valid {field.replace('_', ' ')}" in body[field][0]
    assert not Schedule.objects.exists()
    assert not fire_tasks().exists()


@pytest.mark.parametrize("encoding", ["json", "multipart", "form"])
def test_a_blank_cron_field_is_an_error_not_every_minute(writer, encoding):
    body = {**CRON, "minute": ""}
    if encoding == "form":
        response = writer.post(URL, urlencode(body), content_type="application/x-www-form-urlencoded")
    else:
        response = writer.post(URL, body, format=encoding)
    assert response.status_code == 400
    assert response.json() == {"minute": ["This field may not be blank."]}
    assert not Schedule.objects.exists()


def test_a_form_may_still_leave_a_cron_field_out(writer):
    body = {key: value for key, value in CRON.items() if key != "day_of_month"}
    response = writer.post(URL, urlencode(body), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201, response.content
    assert Schedule.objects.get().day_of_month == "*"


def test_it_names_every_invalid_field_at_once(writer):
    response = writer.post(URL, {**CRON, "minute": "61", "hour": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"minute", "hour"}


def test_it_lists_schedules_by_id(reader):
    first, second = make_schedule(minute="5"), make_schedule(minute="1")
    response = reader.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert body["previous"] is None
    assert [item["id"] for item in body["results"]] == [first.pk, second.pk]
    assert "count" not in body


def test_it_shows_one_schedule(reader):
    schedule = make_schedule()
    response = reader.get(f"{URL}{schedule.pk}/")
    assert response.status_code == 200
    assert response.json() == {
        "id": schedule.pk,
        "minute": "0",
        "hour": "8",
        "day_of_week": "1",
        "day_of_month": "*",
        "month_of_year": "*",
    }


def test_it_answers_404_for_an_unknown_schedule(reader):
    response = reader.get(f"{URL}999/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No Schedule matches the given query."}


def test_it_replaces_a_schedule(writer):
    schedule = make_schedule()
    response = writer.put(f"{URL}{schedule.pk}/", {**CRON, "hour": "9"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["hour"] == "9"
    schedule.refresh_from_db()
    assert schedule.cron_string == "0 9 * * 1,3"


def test_it_changes_one_field_of_a_schedule(writer):
    schedule = make_schedule()
    response = writer.patch(f"{URL}{schedule.pk}/", {"minute": "45"}, format="json")
    assert response.status_code == 200, response.content
    schedule.refresh_from_db()
    assert schedule.cron_string == "45 8 * * 1"


def test_it_refuses_an_invalid_change_and_keeps_the_schedule(writer):
    schedule = make_schedule()
    response = writer.patch(f"{URL}{schedule.pk}/", {"hour": "25"}, format="json")
    assert response.status_code == 400
    assert "hour" in response.json()
    schedule.refresh_from_db()
    assert schedule.hour == "8"
    assert schedule.periodic_task.crontab.hour == "8"


def test_it_deletes_an_unused_schedule(writer):
    schedule = make_schedule()
    response = writer.delete(f"{URL}{schedule.pk}/")
    assert response.status_code == 204
    assert not Schedule.objects.exists()


def test_it_refuses_to_delete_a_schedule_a_message_set_uses(writer):
    schedule = make_schedule()
    make_messageset("baby-eng", schedule=schedule)
    response = writer.delete(f"{URL}{schedule.pk}/")
    assert_delete_refused(response, what="schedule", pk=schedule.pk, users="1 message set (baby-eng)")
    assert Schedule.objects.filter(pk=schedule.pk).exists()
    assert PeriodicTask.objects.filter(pk=schedule.periodic_task_id).exists()


def test_a_refused_delete_names_the_first_users_and_counts_the_rest(writer):
    schedule = make_schedule()
    for number in range(12):
        make_messageset(f"set-{number:02}", schedule=schedule)
    response = writer.delete(f"{URL}{schedule.pk}/")
    assert response.status_code == 400
    names = ", ".join(f"set-{number:02}" for number in range(10))
    assert response.json() == {
        "non_field_errors": [
            f"Cannot delete schedule {schedule.pk}: it is used by 12 message sets ({names} and 2 more). "
            "Change or delete those first."
        ]
    }
