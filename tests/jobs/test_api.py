"""The API as the reference has it: every parameter form, every answer shape."""

import json
from datetime import UTC, datetime

import pytest

from jobs.models import Job, JobState

from .helpers import make_job

pytestmark = pytest.mark.django_db

REFERENCE_URI = "http://yourapp.com/?var1=true&var2=false"


def job_at(response) -> Job:
    return Job.objects.get(pk=response.json()["success"]["job"]["id"])


def test_it_creates_a_job_from_query_parameters_as_in_the_reference(owner, jobs_api):
    _, key = owner
    response = jobs_api.post(
        "/jobs.json",
        QUERY_STRING=(
            "job[at]=2011-01-31T18:36:21&job[method]=POST"
            "&job[uri]=http%3A%2F%2Fyourapp.com%2F%3Fvar1%3Dtrue%26var2%3Dfalse"
            f"&apikey={key}"
        ),
    )
    assert response.status_code == 200, response.content
    job = response.json()["success"]["job"]
    assert job["uri"] == "http://yourapp.com/?var1=true&var2=false"
    assert job["method"] == "POST"
    assert job["at"] == "2011-01-31 18:36:21 +0000"
    assert job["state"] == "scheduled"
    assert Job.objects.get(pk=job["id"]).at == datetime(2011, 1, 31, 18, 36, 21, tzinfo=UTC)


def test_it_creates_a_job_from_form_fields(owner, jobs_api):
    _, key = owner
    response = jobs_api.post(
        "/jobs.json",
        {"job[at]": "2030-01-31T18:36:21Z", "job[method]": "put", "job[uri]": REFERENCE_URI, "apikey": key},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    assert response.json()["success"]["job"]["method"] == "PUT"


def test_it_creates_a_job_from_urlencoded_form_fields_with_headers_and_a_body(owner, jobs_api):
    _, key = owner
    body = (
        "job[uri]=https%3A%2F%2Fexample.org%2Fhook&job[method]=POST&job[body]=%7B%22a%22%3A1%7D"
        "&job[headers][Content-Type]=application%2Fjson&job[headers][X-Trace]=abc"
        f"&job[retry_schedule]=5,60&job[timeout]=7&apikey={key}"
    )
    response = jobs_api.generic("POST", "/jobs.json", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    job = job_at(response)
    assert job.headers == {"Content-Type": "application/json", "X-Trace": "abc"}
    assert job.body == '{"a":1}'
    assert job.retry_schedule == [5, 60]
    assert job.timeout == 7


def test_it_creates_a_job_from_a_json_body(owner, jobs_api):
    _, key = owner
    payload = {
        "job": {
            "uri": "https://example.org/hook",
            "at": "2030-01-31T18:36:21+02:00",
            "method": "POST",
            "callback_uri": "https://example.org/done",
            "headers": {"Content-Type": "text/plain"},
            "body": "hello",
            "retry_schedule": [10, 60],
        },
        "apikey": key,
    }
    response = jobs_api.post("/jobs.json", json.dumps(payload), content_type="application/json")
    assert response.status_code == 200, response.content
    shown = response.json()["success"]["job"]
    assert shown["at"] == "2030-01-31 16:36:21 +0000"
    assert shown["callback_uri"] == "https://example.org/done"
    assert shown["retry_schedule"] == [10, 60]
    assert job_at(response).body == "hello"


def test_the_references_curl_example_with_single_quotes_works(owner, jobs_api):
    _, key = owner
    body = (
        f"{{ 'job':{{ 'uri':'http://yoursite.com',\n'at':'2011-01-31T18:36:21', 'method':'POST' }}, 'apikey':'{key}' }}"
    )
    response = jobs_api.generic("POST", "/jobs.json", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["success"]["job"] == {
        **response.json()["success"]["job"],
        "uri": "http://yoursite.com",
        "method": "POST",
        "at": "2011-01-31 18:36:21 +0000",
    }


def test_a_body_that_is_not_json_gets_a_400_saying_what_to_fix(owner, jobs_api):
    _, key = owner
    response = jobs_api.generic(
        "POST", f"/jobs.json?apikey={key}", "{ job: { uri: http://x } }", content_type="application/json"
    )
    assert response.status_code == 400
    message = response.json()["error"]["body"]
    assert message.startswith("The body is not valid JSON (Expecting property name enclosed in double quotes")
    assert "double-quoted names and strings" in message


def test_times_without_a_zone_are_read_in_the_jobs_time_zone(owner, jobs_api, settings):
    settings.JOBS_TIME_ZONE = "America/Los_Angeles"
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[at]": "2011-01-31T18:36:21", "job[uri]": REFERENCE_URI, "apikey": key})
    assert response.json()["success"]["job"]["at"] == "2011-01-31 18:36:21 -0800"
    assert job_at(response).at == datetime(2011, 2, 1, 2, 36, 21, tzinfo=UTC)


def test_the_at_it_answers_with_can_be_sent_back(owner, jobs_api):
    _, key = owner
    response = jobs_api.post(
        "/jobs.json", {"job[at]": "2011-01-31 18:36:21 -0800", "job[uri]": REFERENCE_URI, "apikey": key}
    )
    assert response.json()["success"]["job"]["at"] == "2011-02-01 02:36:21 +0000"


def test_a_job_without_at_is_due_now(owner, jobs_api, clock):
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[uri]": REFERENCE_URI, "apikey": key})
    assert job_at(response).next_attempt_at == clock.now()


def test_it_updates_a_job_with_put(owner, jobs_api):
    user, key = owner
    job = make_job(user, "https://example.org/old", method="GET")
    response = jobs_api.put(
        f"/jobs/{job.pk}.json?apikey={key}",
        json.dumps({"job": {"at": "2031-01-01T00:00:00Z", "uri": "https://example.org/new"}}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "success": {
            "job": {
                **response.json()["success"]["job"],
                "id": str(job.pk),
                "uri": "https://example.org/new",
                "method": "GET",
                "at": "2031-01-01 00:00:00 +0000",
            }
        }
    }


def test_it_updates_a_job_with_a_post_that_says_method_put(owner, jobs_api):
    user, key = owner
    job = make_job(user, "https://example.org/hook")
    response = jobs_api.post(f"/jobs/{job.pk}.json", {"_method": "PUT", "job[method]": "DELETE", "apikey": key})
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.method == "DELETE"


def test_it_deletes_a_job(owner, jobs_api):
    user, key = owner
    job = make_job(user, "https://example.org/hook")
    response = jobs_api.delete(f"/jobs/{job.pk}.json?apikey={key}")
    assert response.status_code == 200
    assert response.json() == {"success": {"message": "Job deleted"}}
    assert not Job.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize("where", ["query", "form", "json"])
def test_it_deletes_a_job_with_a_post_that_says_method_delete(owner, jobs_api, where):
    user, key = owner
    job = make_job(user, "https://example.org/hook")
    url = f"/jobs/{job.pk}.json"
    if where == "query":
        response = jobs_api.post(f"{url}?_method=DELETE&apikey={key}")
    elif where == "form":
        response = jobs_api.post(url, {"_method": "DELETE", "apikey": key})
    else:
        response = jobs_api.post(url, {"_method": "DELETE", "apikey": key}, format="json")
    assert response.json() == {"success": {"message": "Job deleted"}}
    assert not Job.objects.filter(pk=job.pk).exists()


def test_a_job_shows_every_attempt(owner, jobs_api, target, run_due, clock):
    user, key = owner
    target.expect_request("/hook").respond_with_data("busy", status=503, headers={"X-Reason": "maintenance"})
    job = make_job(user, target.url_for("/hook"))
    run_due()
    response = jobs_api.get(f"/jobs/{job.pk}.json?apikey={key}")
    assert response.status_code == 200
    shown = response.json()["success"]["job"]
    assert shown["state"] == "scheduled"
    assert shown["attempt_count"] == 1
    assert shown["next_attempt_at"] == "2030-01-31 18:36:31 +0000"
    [attempt] = shown["attempts"]
    assert attempt["number"] == 1
    assert attempt["outcome"] == "failed"
    assert attempt["started_at"] == "2030-01-31 18:36:21 +0000"
    assert attempt["status_code"] == 503
    assert attempt["http_version"] == "HTTP/1.1"
    assert ["X-Reason", "maintenance"] in attempt["response_headers"]
    assert attempt["body_excerpt"] == "busy"
    assert attempt["error"] == "HTTP 503"
    assert attempt["duration_ms"] >= 0
    assert shown["callbacks"] == []


def test_it_lists_your_jobs_newest_first_a_page_at_a_time(owner, outsider, jobs_api):
    user, key = owner
    jobs = [make_job(user, f"https://example.org/{n}") for n in range(3)]
    make_job(outsider.user, "https://example.org/theirs")
    first = jobs_api.get(f"/jobs.json?apikey={key}&page_size=2").json()["success"]
    assert [job["id"] for job in first["jobs"]] == [str(jobs[2].pk), str(jobs[1].pk)]
    second = jobs_api.get(first["next"]).json()["success"]
    assert [job["id"] for job in second["jobs"]] == [str(jobs[0].pk)]
    assert second["next"] is None


def test_it_lists_jobs_by_state(owner, jobs_api):
    user, key = owner
    make_job(user, "https://example.org/waiting")
    failed = make_job(user, "https://example.org/failed")
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)
    listed = jobs_api.get(f"/jobs.json?apikey={key}&state=failed").json()["success"]["jobs"]
    assert [job["id"] for job in listed] == [str(failed.pk)]


def test_listing_costs_the_same_few_queries_however_many_jobs(owner, jobs_api, django_assert_num_queries):
    user, key = owner
    for n in range(5):
        make_job(user, f"https://example.org/{n}")
    jobs_api.get(f"/jobs.json?apikey={key}")  # the key's first use is recorded; later ones within a minute are not
    with django_assert_num_queries(2):  # the token, the page
        response = jobs_api.get(f"/jobs.json?apikey={key}")
    assert len(response.json()["success"]["jobs"]) == 5


def test_a_job_with_its_attempts_and_callbacks_costs_a_fixed_number_of_queries(
    owner, jobs_api, target, run_due, clock, django_assert_num_queries
):
    user, key = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/done").respond_with_data("busy", status=503)
    job = make_job(user, target.url_for("/hook"), callback_uri=target.url_for("/done"))
    run_due()
    for _ in range(3):  # the callback fails three times
        run_due()
        clock.advance(days=1)
    jobs_api.get(f"/jobs/{job.pk}.json?apikey={key}")
    with django_assert_num_queries(5):  # the token, the job, its attempts, its callbacks, their attempts
        response = jobs_api.get(f"/jobs/{job.pk}.json?apikey={key}")
    [callback] = response.json()["success"]["job"]["callbacks"]
    assert len(callback["attempts"]) == 3


def test_it_retries_a_failed_job_from_the_dead_letter_list(owner, jobs_api, clock):
    user, key = owner
    job = make_job(user, "https://example.org/hook")
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, attempt_count=6, next_attempt_at=None)
    clock.advance(hours=30)
    response = jobs_api.post(f"/jobs/{job.pk}/retry.json?apikey={key}")
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert (job.state, job.attempt_count, job.next_attempt_at) == (JobState.SCHEDULED, 0, clock.now())


def test_a_key_may_be_given_in_the_authorization_header_too(owner, jobs_api):
    user, key = owner
    make_job(user, "https://example.org/hook")
    response = jobs_api.get("/jobs.json", HTTP_AUTHORIZATION=f"Token {key}")
    assert len(response.json()["success"]["jobs"]) == 1


def test_a_readonly_key_may_read_jobs(make_token, jobs_api):
    token, key = make_token("jobs:readonly")
    make_job(token.user, "https://example.org/hook")
    assert jobs_api.get(f"/jobs.json?apikey={key}").status_code == 200


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("2030-11-03T01:30:00", "2030-11-03 01:30:00 -0400"),  # falls twice: the first
        ("2030-03-10T02:30:00", "2030-03-10 03:30:00 -0400"),  # does not exist: read with the offset before
        ("2030-07-01T12:00:00", "2030-07-01 12:00:00 -0400"),
        ("2030-07-01T12:00:00Z", "2030-07-01 08:00:00 -0400"),
    ],
)
def test_local_times_follow_the_documented_daylight_saving_rules(owner, jobs_api, settings, given, shown):
    settings.JOBS_TIME_ZONE = "America/New_York"
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[at]": given, "job[uri]": REFERENCE_URI, "apikey": key})
    assert response.json()["success"]["job"]["at"] == shown
