"""Every bad request gets a 4xx with `{"error": {"<parameter>": "<message>"}}` saying what is wrong."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services as accounts_services
from jobs.models import Job, JobState

from .helpers import make_job

pytestmark = pytest.mark.django_db

URI = "https://example.org/hook"


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


def bad(name: str, value: str, message: str) -> tuple[dict[str, str], str, str]:
    """A job with the parameter `name` set to `value`, refused with `message`."""
    return {"job[uri]": URI, f"job[{name}]": value}, name, message


@pytest.mark.parametrize(
    ("params", "parameter", "message"),
    [
        ({}, "uri", "Give the URL to call, e.g. job[uri]=https://example.org/hook."),
        ({"job[uri]": "ftp://example.org/x"}, "uri", "Must be an absolute http or https URL"),
        ({"job[uri]": "yourapp.com/hook"}, "uri", "Must be an absolute http or https URL"),
        ({"job[uri]": "http://example.org/a b"}, "uri", "Must be escaped: no spaces or control characters"),
        ({"job[uri]": "http://example.org:99999/"}, "uri", "Is not a valid URL"),
        bad("uri", "http://[::1/hook", "Is not a valid URL"),
        bad("at", "tomorrow", "Is not a time: 'tomorrow'. Write it as 2030-01-31T18:36:21"),
        bad("method", "FETCH", "Must be one of GET, POST, PUT, PATCH, DELETE"),
        bad("timeout", "0", "Must be from 1 to 120 seconds."),
        bad("timeout", "121", "Must be from 1 to 120 seconds."),
        bad("timeout", "soon", "A valid integer is required."),
        bad("retry_schedule", "60,10", "Must be increasing seconds"),
        bad("retry_schedule", "10,x", "Must be whole seconds"),
        bad("retry_schedule", "10,999999999", "The last retry may be at most"),
        bad("retry_schedule", ",".join(map(str, range(1, 13))), "At most 10"),
        bad("callback_uri", "nowhere", "Must be an absolute http or https URL"),
        ({"job[uri]": URI, "job[headers][Host]": "evil"}, "headers", "Host is set by the service and cannot be given."),
        ({"job[uri]": URI, "job[headers][Job-Signature]": "x"}, "headers", "Job-Signature is set by the service"),
        ({"job[uri]": URI, "job[headers][Bad Name]": "x"}, "headers", "'Bad Name' is not a header name."),
        bad("headers", "[1]", "Must be an object of header names to values"),
        bad("body", "a\x00b", "Null characters are not allowed."),
        bad("colour", "red", "Unknown job parameter; a job takes uri, at, method"),
        ({"job[uri]": URI, "job[headers][a][b]": "x"}, "job[headers][a][b]", "Unreadable parameter name"),
    ],
)
def test_a_bad_parameter_gets_a_400_naming_it(owner, jobs_api, params, parameter, message):
    _, key = owner
    response = jobs_api.post("/jobs.json", {**params, "apikey": key})
    error = error_of(response, 400)
    assert list(error) == [parameter]
    assert error[parameter].startswith(message), error[parameter]
    assert not Job.objects.exists()


def test_a_body_over_the_limit_is_refused(owner, jobs_api, settings):
    settings.JOBS_MAX_BODY_BYTES = 10
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[uri]": URI, "job[body]": "x" * 11, "apikey": key})
    assert error_of(response, 400) == {"body": "Must be at most 10 bytes."}


@pytest.mark.parametrize(
    ("body", "parameter", "message"),
    [
        ("[1, 2]", "body", "The body must be a JSON object"),
        ('{"job": "https://example.org/"}', "job", "job must be an object of parameters"),
        ("\xff", "body", "The body is not valid JSON"),
    ],
)
def test_a_json_body_of_the_wrong_shape_gets_a_400(owner, jobs_api, body, parameter, message):
    _, key = owner
    response = jobs_api.generic("POST", f"/jobs.json?apikey={key}", body, content_type="application/json")
    error = error_of(response, 400)
    assert error[parameter].startswith(message), error


def test_a_body_that_is_not_utf8_gets_a_400(owner, jobs_api):
    _, key = owner
    response = jobs_api.generic("POST", f"/jobs.json?apikey={key}", b"\xff\xfe", content_type="application/json")
    assert error_of(response, 400) == {"body": "The body is not UTF-8 text."}


def test_an_unsupported_media_type_gets_a_415(owner, jobs_api):
    _, key = owner
    response = jobs_api.generic("POST", f"/jobs.json?apikey={key}", "uri=x", content_type="text/plain")
    assert error_of(response, 415) == {"body": 'Unsupported media type "text/plain" in request.'}


def test_an_update_without_parameters_gets_a_400(owner, jobs_api):
    user, key = owner
    job = make_job(user, URI)
    response = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}")
    assert error_of(response, 400) == {"job": "Nothing to change: give at least one job parameter, e.g. job[at]=..."}


def test_an_unknown_method_override_gets_a_400(owner, jobs_api):
    user, key = owner
    job = make_job(user, URI)
    response = jobs_api.post(f"/jobs/{job.pk}.json", {"_method": "PATCHY", "apikey": key})
    assert error_of(response, 400) == {"_method": "_method must be PUT or DELETE, not 'PATCHY'."}


def test_a_post_to_a_job_without_method_override_gets_a_405(owner, jobs_api):
    user, key = owner
    job = make_job(user, URI)
    response = jobs_api.post(f"/jobs/{job.pk}.json", {"apikey": key})
    assert error_of(response, 405) == {
        "_method": "POST to a job needs _method=PUT (change it) or _method=DELETE (delete it)."
    }


def test_a_put_to_the_list_gets_a_405(owner, jobs_api):
    _, key = owner
    response = jobs_api.post("/jobs.json", {"_method": "PUT", "apikey": key})
    assert error_of(response, 405) == {"_method": "PUT is not allowed here; use GET, POST."}


def test_no_key_gets_a_401(jobs_api):
    response = jobs_api.post("/jobs.json", {"job[uri]": URI})
    error = error_of(response, 401)
    assert error == {
        "apikey": "No API key was given: pass it as the apikey parameter (query, form field or JSON body) "
        "or as 'Authorization: Token <key>'."
    }
    assert response["WWW-Authenticate"] == "Token"


def test_an_unknown_key_gets_a_401(jobs_api):
    response = jobs_api.post("/jobs.json", {"job[uri]": URI, "apikey": "0" * 40})
    assert error_of(response, 401) == {"apikey": "Invalid token."}


def test_an_expired_key_gets_a_401(make_token, jobs_api):
    _, key = make_token("jobs:readwrite", expires_at=timezone.now() - timedelta(seconds=1))
    response = jobs_api.get(f"/jobs.json?apikey={key}")
    assert error_of(response, 401) == {"apikey": "Token has expired."}


def test_a_revoked_key_in_a_json_body_gets_a_401(make_token, jobs_api):
    token, key = make_token("jobs:readwrite")
    accounts_services.token_revoke(token=token)
    response = jobs_api.post(
        "/jobs.json", json.dumps({"job": {"uri": URI}, "apikey": key}), content_type="application/json"
    )
    assert error_of(response, 401) == {"apikey": "Token has been revoked."}


def test_a_readonly_key_may_not_create_a_job(make_token, jobs_api):
    _, key = make_token("jobs:readonly")
    response = jobs_api.post("/jobs.json", {"job[uri]": URI, "apikey": key})
    assert error_of(response, 403) == {
        "apikey": "This token does not allow jobs write: it needs a jobs scope with role readwrite."
    }


def test_a_readonly_key_may_not_delete_through_a_method_override(make_token, jobs_api):
    token, key = make_token("jobs:readonly")
    job = make_job(token.user, URI)
    response = jobs_api.post(f"/jobs/{job.pk}.json?_method=DELETE&apikey={key}")
    assert error_of(response, 403)["apikey"].startswith("This token does not allow jobs write")
    assert Job.objects.filter(pk=job.pk).exists()


def test_a_key_without_the_jobs_scope_may_not_read_jobs(make_token, jobs_api):
    _, key = make_token("cache:readwrite")
    response = jobs_api.get(f"/jobs.json?apikey={key}")
    assert error_of(response, 403) == {
        "apikey": "This token does not allow jobs read: it needs a jobs scope with role readwrite or readonly."
    }


@pytest.mark.parametrize("verb", ["get", "put", "delete"])
def test_another_users_job_is_not_found(owner, outsider, jobs_api, verb):
    _, key = owner
    theirs = make_job(outsider.user, URI)
    response = getattr(jobs_api, verb)(f"/jobs/{theirs.pk}.json?apikey={key}&job[at]=2031-01-01T00:00:00")
    assert error_of(response, 404) == {"id": f"No job with id '{theirs.pk}'."}
    assert Job.objects.get(pk=theirs.pk).at == theirs.at


def test_a_malformed_job_id_is_not_found(owner, jobs_api):
    _, key = owner
    response = jobs_api.get(f"/jobs/not-an-id.json?apikey={key}")
    assert error_of(response, 404) == {"id": "No job with id 'not-an-id'."}


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_path_without_json_gets_a_404_saying_which_paths_exist(method):
    response = getattr(Client(enforce_csrf_checks=True), method)("/jobs/abc")
    assert error_of(response, 404) == {"path": "No jobs endpoint at /jobs/abc: use /jobs.json or /jobs/<id>.json."}


def test_an_unknown_state_filter_gets_a_400(owner, jobs_api):
    _, key = owner
    response = jobs_api.get(f"/jobs.json?apikey={key}&state=lost")
    assert error_of(response, 400) == {"state": "Select a valid choice. lost is not one of the available choices."}


def test_a_page_size_over_the_limit_gets_a_400(owner, jobs_api, settings):
    _, key = owner
    response = jobs_api.get(f"/jobs.json?apikey={key}&page_size={settings.API_MAX_PAGE_SIZE + 1}")
    assert list(error_of(response, 400)) == ["page_size"]


def test_retrying_a_job_that_has_not_failed_gets_a_409(owner, jobs_api):
    user, key = owner
    job = make_job(user, URI)
    response = jobs_api.post(f"/jobs/{job.pk}/retry.json?apikey={key}")
    assert error_of(response, 409) == {"state": "Only a failed or cancelled job can be retried; this one is scheduled."}
    assert Job.objects.get(pk=job.pk).state == JobState.SCHEDULED


def test_the_method_override_of_a_post_is_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    post = schema["paths"]["/jobs/{job_id}.json"]["post"]
    override = next(parameter for parameter in post["parameters"] if parameter["name"] == "_method")
    assert override["required"] is True
    assert set(override["schema"]["enum"]) == {"PUT", "DELETE"}
    assert "405" in post["responses"]


def test_a_body_over_the_limit_is_a_413_in_the_jobs_shape(owner, jobs_api, settings):
    _, key = owner
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = {"job": {"uri": URI, "body": "x" * 4096}}
    response = jobs_api.post(f"/jobs.json?apikey={key}", body, format="json")
    assert error_of(response, 413) == {
        "body": "The request body is larger than the limit of 2048 bytes (MAX_REQUEST_BODY_BYTES)."
    }
    assert not Job.objects.exists()
