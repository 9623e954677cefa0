"""Callbacks carry the reference's JSON and are retried; every request and callback is signed."""

import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jobs import signing
from jobs.models import Job, JobKind, JobState

from .helpers import make_job, requests_to

pytestmark = pytest.mark.django_db


def answer_report(code: int, code_type: str, content_type: str, body: str, **more) -> dict:
    """What a callback carries about the target's HTTP/1.1 answer `code` with `body` (and `more`)."""
    return {
        "response_http_version": "1.1",
        "response_code": code,
        "response_code_type": code_type,
        "response_content_length": len(body.encode()),
        "response_content_type": content_type,
        "response_body": body,
        **more,
    }


def test_a_success_posts_the_references_json_to_the_callback_uri(owner, target, run_due):
    user, _ = owner
    target.expect_request("/hook").respond_with_data('{"ok": true}', status=201, content_type="application/json")
    target.expect_request("/done", method="POST").respond_with_data("thanks")
    job = make_job(user, target.url_for("/hook"), callback_uri=target.url_for("/done"))
    run_due()  # the job
    assert requests_to(target, "/done") == []
    run_due()  # its callback
    [callback] = requests_to(target, "/done")
    assert callback.headers["Content-Type"] == "application/json"
    assert callback.headers["Job-Id"] == str(job.pk)
    assert json.loads(callback.get_data()) == answer_report(201, "success", "application/json", '{"ok": true}')
    [record] = Job.objects.filter(parent=job)
    assert (record.kind, record.state) == (JobKind.CALLBACK, JobState.SUCCEEDED)


def test_no_callback_follows_a_failure(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("", status=500)
    target.expect_request("/done").respond_with_data("")
    make_job(user, target.url_for("/hook"), callback_uri=target.url_for("/done"))
    run_due()
    clock.advance(seconds=10)
    run_due()
    assert requests_to(target, "/done") == []


def test_a_failing_callback_is_retried_on_the_schedule(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_oneshot_request("/done").respond_with_data("", status=503)
    target.expect_request("/done").respond_with_data("thanks")
    job = make_job(user, target.url_for("/hook"), callback_uri=target.url_for("/done"))
    run_due()
    run_due()
    callback = Job.objects.get(parent=job)
    assert (callback.state, callback.next_attempt_at) == (JobState.SCHEDULED, clock.now() + timedelta(seconds=10))
    clock.advance(seconds=10)
    run_due()
    callback.refresh_from_db()
    assert callback.state == JobState.SUCCEEDED
    first, second = requests_to(target, "/done")
    assert first.get_data() == second.get_data()
    assert (first.headers["Job-Attempt"], second.headers["Job-Attempt"]) == ("1", "2")


def test_a_failure_callback_follows_the_last_retry(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("no such order", status=404, content_type="text/plain")
    target.expect_request("/failed", method="POST").respond_with_data("noted")
    job = make_job(user, target.url_for("/hook"), failure_callback_uri=target.url_for("/failed"), retry_schedule=[5])
    run_due()
    run_due()
    assert requests_to(target, "/failed") == []  # a retry is still to come
    clock.advance(seconds=5)
    run_due()
    run_due()
    [report] = requests_to(target, "/failed")
    assert report.headers["Job-Id"] == str(job.pk)
    assert json.loads(report.get_data()) == answer_report(
        404, "client_error", "text/plain", "no such order", error="HTTP 404", attempts=2
    )


def test_a_failure_callback_reports_a_request_that_got_no_response(owner, target, run_due, settings, unused_port):
    settings.JOBS_RETRY_SCHEDULE = []
    user, _ = owner
    target.expect_request("/failed").respond_with_data("noted")
    make_job(user, f"http://127.0.0.1:{unused_port}/", failure_callback_uri=target.url_for("/failed"))
    run_due()
    run_due()
    [report] = requests_to(target, "/failed")
    payload = json.loads(report.get_data())
    assert payload["response_code"] is None
    assert payload["attempts"] == 1
    assert payload["error"].startswith("OutboundConnectionError: ")


def test_every_request_is_signed_with_the_current_key(owner, target, run_due):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), method="POST", body='{"order": 7}')
    run_due()
    [request] = requests_to(target, "/hook")
    header = request.headers["Job-Signature"]
    assert header.count("v1=") == 1
    assert request.headers["Job-Delivery-Id"] == str(job.delivery_id)
    assert request.headers["Job-Attempt"] == "1"
    now = int(time.time())
    assert signing.verify(header, b'{"order": 7}', key="current-signing-key-for-tests", now=now)
    assert not signing.verify(header, b'{"order": 8}', key="current-signing-key-for-tests", now=now)
    assert not signing.verify(header, b'{"order": 7}', key="another-key", now=now)
    assert not signing.verify(header, b'{"order": 7}', key="current-signing-key-for-tests", now=now + 3600)


def test_during_a_rotation_the_signature_verifies_with_either_key(owner, target, run_due, settings):
    settings.JOBS_SIGNING_NEXT_KEY = "next-signing-key-for-tests"
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/done").respond_with_data("ok")
    make_job(user, target.url_for("/hook"), method="PUT", body="payload", callback_uri=target.url_for("/done"))
    run_due()
    run_due()
    now = int(time.time())
    for request in (*requests_to(target, "/hook"), *requests_to(target, "/done")):
        header, body = request.headers["Job-Signature"], request.get_data()
        assert header.count("v1=") == 2
        assert signing.verify(header, body, key="current-signing-key-for-tests", now=now)
        assert signing.verify(header, body, key="next-signing-key-for-tests", now=now)
        assert not signing.verify(header, body, key="an-old-key", now=now)


def test_the_signature_is_the_documented_hmac(owner, target, run_due):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    make_job(user, target.url_for("/hook"))
    run_due()
    [request] = requests_to(target, "/hook")
    fields = dict(part.split("=", 1) for part in request.headers["Job-Signature"].split(","))
    expected = hmac.new(b"current-signing-key-for-tests", f"{fields['t']}.".encode(), hashlib.sha256).hexdigest()
    assert fields["v1"] == expected


def test_a_jobs_own_headers_and_body_are_sent(owner, target, run_due):
    user, _ = owner
    target.expect_request("/hook", method="PATCH").respond_with_data("ok")
    make_job(
        user,
        target.url_for("/hook?a=1&b=2"),
        method="PATCH",
        headers={"Content-Type": "text/csv", "X-Trace": "t-1"},
        body="a,b\n1,2\n",
    )
    run_due()
    [request] = requests_to(target, "/hook")
    assert (request.headers["Content-Type"], request.headers["X-Trace"]) == ("text/csv", "t-1")
    assert request.get_data() == b"a,b\n1,2\n"
    assert request.args.to_dict() == {"a": "1", "b": "2"}


def test_the_receivers_snippet_in_the_docs_verifies_a_real_request(owner, target, run_due, settings):
    settings.JOBS_SIGNING_NEXT_KEY = "next-signing-key-for-tests"
    text = (Path(__file__).resolve().parents[2] / "docs" / "jobs.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "docs/jobs.md", "exec"), namespace)  # noqa: S102 - the documented code itself
    is_genuine = namespace["job_request_is_genuine"]

    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    make_job(user, target.url_for("/hook"), method="POST", body="hello")
    run_due()
    [request] = requests_to(target, "/hook")
    header, body = request.headers["Job-Signature"], request.get_data()
    assert is_genuine(header, body, ["current-signing-key-for-tests"])
    assert is_genuine(header, body, ["next-signing-key-for-tests"])
    assert not is_genuine(header, body + b"!", ["current-signing-key-for-tests"])
    assert not is_genuine(header, body, ["some-other-key"])
