"""What an attacker tried on the jobs face, each held: times out of range, rows that cannot be
sent, headers and URLs that cannot be sent, and bodies that cannot be parsed."""

import json
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.urls import reverse

from jobs.models import Attempt, AttemptOutcome, Job, JobState

from .helpers import make_job, requests_to

pytestmark = pytest.mark.django_db

URI = "https://example.org/hook"
SECRET = "s3cr3t-pass"


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


def send_job(jobs_api, key: str, form: str, job: dict, path: str = "/jobs.json", method: str = "post"):
    """`job`'s parameters as a JSON body, as form fields (urlencoded: a multipart name cannot hold a
    line break) or as query parameters."""
    if form == "json":
        return jobs_api.generic(
            method.upper(), f"{path}?apikey={key}", json.dumps({"job": job}), content_type="application/json"
        )
    fields = {f"job[{name}]": value for name, value in job.items()}
    if form == "form":
        form_body = urlencode({**fields, "apikey": key})
        return jobs_api.generic(method.upper(), path, form_body, content_type="application/x-www-form-urlencoded")
    return getattr(jobs_api, method)(path, QUERY_STRING=urlencode({**fields, "apikey": key}))


def force(job: Job, **columns: str) -> None:
    """Write `columns` (SQL literals, cast by the column) as they are, around the API and the ORM."""
    assignments = ", ".join(f"{name} = %s" for name in columns)
    with connection.cursor() as cursor:
        sql = f"UPDATE jobs_job SET {assignments} WHERE id = %s"  # noqa: S608 (column names are the test's own)
        cursor.execute(sql, [*columns.values(), job.pk])


FORMS = ["json", "form", "query"]
# Each is within years 1..9999 as written and outside them in UTC, or shown in JOBS_TIME_ZONE.
OUT_OF_RANGE = [
    "9999-12-31T23:59:59-05:00",
    "9999-12-31 23:59:59 -0000",
    "0001-01-01T00:00:00+05:00",
    "0001-01-01 00:30:00 +0000",  # year 0 once shown in America/Los_Angeles
    "9999-12-31T20:00:00",  # read in America/Los_Angeles: year 10000 in UTC
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("at", OUT_OF_RANGE)
def test_a_time_outside_the_years_python_and_postgresql_share_is_a_400(owner, jobs_api, settings, form, at):
    settings.JOBS_TIME_ZONE = "America/Los_Angeles"
    _, key = owner
    response = send_job(jobs_api, key, form, {"uri": URI, "at": at})
    error = error_of(response, 400)
    assert list(error) == ["at"]
    assert error["at"].startswith("Must be from 0001-01-02T00:00:00Z to 9999-12-30T23:59:59.999999Z in UTC")
    assert not Job.objects.exists()


def test_a_change_to_a_time_out_of_range_is_a_400_and_the_job_keeps_its_time(owner, jobs_api):
    user, key = owner
    job = make_job(user, URI)
    response = send_job(jobs_api, key, "json", {"at": OUT_OF_RANGE[0]}, path=f"/jobs/{job.pk}.json", method="put")
    assert list(error_of(response, 400)) == ["at"]
    assert Job.objects.get(pk=job.pk).at == job.at


@pytest.mark.parametrize("name", ["at_after", "at_before"])
def test_a_list_filtered_by_a_time_out_of_range_is_a_400(owner, jobs_api, name):
    _, key = owner
    response = jobs_api.get("/jobs.json", {name: "9999-12-31T23:59:59-05:00", "apikey": key})
    assert list(error_of(response, 400)) == [name]


def test_the_first_and_last_times_a_job_may_have_are_accepted_and_shown(owner, jobs_api, settings):
    settings.JOBS_TIME_ZONE = "Pacific/Kiritimati"  # +14:00
    _, key = owner
    for at in ("0001-01-02T00:00:00Z", "9999-12-30T23:59:59Z"):
        response = send_job(jobs_api, key, "json", {"uri": URI, "at": at})
        assert response.status_code == 200, response.content
    settings.JOBS_TIME_ZONE = "Etc/GMT+12"  # -12:00
    listed = jobs_api.get("/jobs.json", {"apikey": key})
    assert listed.status_code == 200
    assert sorted(job["at"] for job in listed.json()["success"]["jobs"]) == [
        "0001-01-01 12:00:00 -1200",
        "9999-12-30 11:59:59 -1200",
    ]


EXTREME_TIMES = ["10000-01-01 04:59:59+00", "0001-12-31 19:00:00+00 BC"]


@pytest.mark.parametrize("moment", EXTREME_TIMES)
def test_a_row_with_a_time_python_cannot_hold_still_lists_shows_and_deletes(owner, jobs_api, admin_client, moment):
    user, key = owner
    job = make_job(user, URI)
    force(job, at=moment, next_attempt_at=moment)
    listed = jobs_api.get("/jobs.json", {"apikey": key})
    assert listed.status_code == 200, listed.content
    assert [shown["id"] for shown in listed.json()["success"]["jobs"]] == [str(job.pk)]
    assert jobs_api.get(f"/jobs/{job.pk}.json", {"apikey": key}).status_code == 200
    assert admin_client.get(reverse("admin:jobs_job_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).status_code == 200
    assert jobs_api.delete(f"/jobs/{job.pk}.json?apikey={key}").status_code == 200
    assert not Job.objects.exists()


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_one_bad_row_never_stops_the_other_jobs_of_its_chunk(owner, outsider, target, run_due, clock):
    user, _ = owner
    other, _ = outsider
    target.expect_request("/good").respond_with_data("ok")
    target.expect_request("/bad").respond_with_data("no", status=500)
    good = make_job(other, target.url_for("/good"))
    before_year_one = make_job(user, target.url_for("/bad"))
    force(before_year_one, at=EXTREME_TIMES[1], next_attempt_at=EXTREME_TIMES[1])
    uncountable = make_job(user, target.url_for("/bad"))
    force(uncountable, retry_schedule='["soon"]')  # fails when its retry is planned
    unreadable = make_job(user, target.url_for("/bad"))
    force(unreadable, retry_schedule="[" + "9" * 5000 + "]")  # more digits than Python reads
    unsendable = make_job(user, target.url_for("/bad"))
    force(unsendable, headers='{"X-Name": "Zo\u00eb"}')

    assert run_due() == 5

    assert Job.objects.get(pk=good.pk).state == JobState.SUCCEEDED
    assert len(requests_to(target, "/good")) == 1
    assert not Job.objects.filter(state=JobState.RUNNING).exists()
    for job in (uncountable, unreadable):
        assert Job.objects.filter(pk=job.pk).values_list("state", flat=True).get() == JobState.FAILED
        (attempt,) = Attempt.objects.filter(job_id=job.pk)
        assert attempt.outcome == AttemptOutcome.FAILED
        assert attempt.error.startswith("Unexpected error: ")
    for job in (before_year_one, unsendable):
        assert Job.objects.get(pk=job.pk).state == JobState.SCHEDULED  # failed once, retried as usual
        assert Attempt.objects.get(job_id=job.pk).outcome == AttemptOutcome.FAILED


UNSENDABLE_HEADERS = [
    ("X-Name", "Zo\u00eb"),
    ("X-Name", "\u2028"),
    ("X-Name", "a\x01b"),
    ("X-Name", "a\x7fb"),
    ("X-Name", "a\x00b"),
    ("X-Name", "a\r\nX-Evil: 1"),
    ("X-Name", "a\nb"),
    ("X Name", "v"),
    ("X-Name:", "v"),
    ("Zo\u00eb", "v"),
    ("X-Name\r\nX-Evil", "v"),
    ("X-Name\n", "v"),
    ("X-Name", "v\n"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("name", "value"), UNSENDABLE_HEADERS)
def test_a_header_that_cannot_be_sent_is_refused_when_the_job_is_made(owner, jobs_api, form, name, value):
    _, key = owner
    if form == "json":
        response = send_job(jobs_api, key, form, {"uri": URI, "headers": {name: value}})
    else:
        response = send_job(jobs_api, key, form, {"uri": URI, f"headers][{name}": value})
    assert list(error_of(response, 400)) == ["headers"]
    assert not Job.objects.exists()


def test_a_header_value_is_sent_without_the_spaces_around_it(owner, jobs_api, target, run_due):
    _, key = owner
    target.expect_request("/hook").respond_with_data("ok")
    headers = {"X-Spaced": " \ta  \t b\t ", "X-Empty": ""}
    response = send_job(jobs_api, key, "json", {"uri": target.url_for("/hook"), "headers": headers})
    assert response.status_code == 200, response.content
    run_due()
    (request,) = requests_to(target, "/hook")
    assert request.headers["X-Spaced"] == "a  \t b"
    assert request.headers["X-Empty"] == ""


CREDENTIALED = [
    f"http://user:{SECRET}@example.org/",
    f"http://{SECRET}@example.org/",
    f"http://:{SECRET}@example.org/",
    f"https://user%40x:{SECRET}@example.org:8443/hook",
    f"HTTP://user:{SECRET}@[2001:db8::1]/",
    f"http://user:{SECRET}@example.org/a b",  # refused for its space: the message does not repeat the secret
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field", ["uri", "callback_uri", "failure_callback_uri"])
@pytest.mark.parametrize("uri", CREDENTIALED)
def test_a_url_with_credentials_is_refused_without_repeating_them(owner, jobs_api, form, field, uri):
    _, key = owner
    response = send_job(jobs_api, key, form, {"uri": URI, field: uri})
    assert list(error_of(response, 400)) == [field]
    assert SECRET not in response.content.decode()
    assert not Job.objects.exists()


def test_credentials_a_stored_row_holds_are_never_shown(owner, jobs_api, admin_client):
    user, key = owner
    job = make_job(user, URI)
    held = f"http://user:{SECRET}@example.org:80/"
    force(job, uri=held, callback_uri=held, failure_callback_uri=held)
    pages = [
        jobs_api.get("/jobs.json", {"apikey": key}),
        jobs_api.get(f"/jobs/{job.pk}.json", {"apikey": key}),
        admin_client.get(reverse("admin:jobs_job_changelist")),
        admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "example.org" in page.content.decode()
        assert SECRET not in page.content.decode()


NESTED = "[" * 200_000


@pytest.mark.parametrize(
    "body",
    [NESTED, '{"apikey": "x", "job": ' + NESTED, "['x', " * 50_000 + "]" * 50_000, '{"a":' * 100_000 + "1"],
)
@pytest.mark.parametrize("token", ["none", "query", "header"])
def test_a_body_nested_too_deeply_is_a_400_with_or_without_a_token(owner, jobs_api, body, token):
    _, key = owner
    path = f"/jobs.json?apikey={key}" if token == "query" else "/jobs.json"
    extra = {"HTTP_AUTHORIZATION": f"Token {key}"} if token == "header" else {}
    response = jobs_api.generic("POST", path, body, content_type="application/json", **extra)
    assert list(error_of(response, 400)) == ["body"]


def test_a_post_to_a_job_with_a_deeply_nested_body_is_a_400(owner, jobs_api):
    user, _ = owner
    job = make_job(user, URI)
    response = jobs_api.generic("POST", f"/jobs/{job.pk}.json", NESTED, content_type="application/json")
    assert list(error_of(response, 400)) == ["body"]


def test_a_number_python_will_not_read_is_a_400(owner, jobs_api):
    _, key = owner
    body = json.dumps({"job": {"uri": URI}})[:-2] + ', "timeout": ' + "9" * 5000 + "}}"
    response = jobs_api.generic("POST", f"/jobs.json?apikey={key}", body, content_type="application/json")
    assert error_of(response, 400)["body"].startswith("The body cannot be read: it holds a value that cannot be read")


@pytest.mark.parametrize(
    "job",
    [
        {"uri": URI, "body": "\ud800"},
        {"uri": URI, "\udfff": "x"},
        {"uri": URI, "headers": {"X-Name": "a\ud800"}},
    ],
)
def test_a_json_string_that_is_not_text_is_a_400(owner, jobs_api, job):
    _, key = owner
    body = json.dumps({"job": job})  # ensure_ascii: the lone surrogate is sent as its \\u escape
    response = jobs_api.generic("POST", f"/jobs.json?apikey={key}", body, content_type="application/json")
    assert error_of(response, 400)["body"].startswith("The body cannot be read: it holds a value")


@pytest.mark.parametrize("headers", ["[" * 100_000, '{"X-Name": ' + "9" * 5000 + "}"])
def test_headers_as_json_text_that_cannot_be_read_are_a_400(owner, jobs_api, headers):
    _, key = owner
    response = send_job(jobs_api, key, "form", {"uri": URI, "headers": headers})
    assert error_of(response, 400)["headers"].startswith("Must be an object of header names to values")


def test_a_json_body_over_the_request_limit_is_a_413(owner, jobs_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps({"job": {"uri": URI, "body": "x" * 4096}})
    response = jobs_api.generic("POST", "/jobs.json", body, content_type="application/json")
    assert list(error_of(response, 413)) == ["body"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("job[uri]=x", "text/plain"), ("job%5Buri%5D=x", "application/x-www-form-urlencoded"), ("", "application/json")],
)
def test_a_request_without_a_token_is_a_401(jobs_api, body, content_type):
    response = jobs_api.generic("POST", "/jobs.json", body, content_type=content_type)
    assert list(error_of(response, 401)) == ["apikey"]
