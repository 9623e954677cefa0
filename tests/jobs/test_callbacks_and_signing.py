"""Callbacks carry the reference's JSON and are retried; every request and callback is signed with its
owner's secret in the Standard Webhooks format, which the `standardwebhooks` library verifies."""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from jobs.dispatcher import dispatch_once
from jobs.models import Job, JobKind, JobState

from .helpers import make_job, requests_to, wait_until
from .signatures import delivered, secret_of, verifies

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


def test_every_request_is_signed_for_its_owner_in_the_standard_webhooks_format(owner, target, run_due):
    user, raw = owner
    job, request = delivered(user, target, run_due, body='{"order": 7}')
    secret = secret_of(raw)  # made when the first job was sent; shown now, once
    assert secret.startswith("whsec_")
    assert request.headers["webhook-signature"].count("v1,") == 1
    assert request.headers["webhook-id"].startswith(f"{job.delivery_id}_")
    assert request.headers["Job-Delivery-Id"] == str(job.delivery_id)
    assert request.headers["Job-Attempt"] == "1"
    assert "Job-Signature" not in request.headers
    assert verifies(secret, request.headers, b'{"order": 7}')
    assert not verifies(secret, request.headers, b'{"order": 8}')
    assert not verifies(
        "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode(), request.headers, b'{"order": 7}'
    )


def test_a_real_worker_sends_requests_and_callbacks_a_receiver_verifies(owner, target, worker, clock):
    user, raw = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/done").respond_with_data("thanks")
    job = make_job(user, target.url_for("/hook"), method="PUT", body="payload", callback_uri=target.url_for("/done"))
    dispatch_once()
    wait_until(lambda: Job.objects.filter(parent=job, state=JobState.SCHEDULED).exists(), what="the callback")
    dispatch_once()
    wait_until(lambda: Job.objects.filter(parent=job, state=JobState.SUCCEEDED).exists(), what="the callback sent")
    secret = secret_of(raw)
    [request], [callback] = requests_to(target, "/hook"), requests_to(target, "/done")
    assert verifies(secret, request.headers, b"payload")
    assert verifies(secret, callback.headers, callback.get_data())
    assert callback.headers["Job-Id"] == str(job.pk)


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(owner, target, run_due, clock, settings):
    settings.JOBS_SIGNING_SECRET_OVERLAP = 3600
    user, raw = owner
    old = secret_of(raw)
    rotated = APIClient().post(f"/jobs/signing-secret/rotate.json?apikey={raw}")
    new = rotated.json()["success"]["signing_secret"]["secret"]
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/done").respond_with_data("ok")
    make_job(user, target.url_for("/hook"), method="PUT", body="payload", callback_uri=target.url_for("/done"))
    run_due()
    run_due()
    for request in (*requests_to(target, "/hook"), *requests_to(target, "/done")):
        assert request.headers["webhook-signature"].count("v1,") == 2
        assert verifies(old, request.headers, request.get_data())
        assert verifies(new, request.headers, request.get_data())

    clock.advance(seconds=3600)
    later = make_job(user, target.url_for("/hook"), method="POST", body="later")
    run_due()
    [request] = [r for r in requests_to(target, "/hook") if r.headers["Job-Delivery-Id"] == str(later.delivery_id)]
    assert request.headers["webhook-signature"].count("v1,") == 1
    assert verifies(new, request.headers, b"later")
    assert not verifies(old, request.headers, b"later")


def test_the_signature_is_the_documented_hmac(owner, target, run_due):
    user, raw = owner
    job, request = delivered(user, target, run_due, body="hello")
    key = base64.b64decode(secret_of(raw).removeprefix("whsec_"))
    webhook_id, timestamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    signed = f"{webhook_id}.{timestamp}.hello".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    target_digest = hashlib.sha256(f"POST\n{job.uri}\n".encode()).hexdigest()
    assert webhook_id.rpartition("_")[2] == target_digest


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


def _documented_check():
    text = (Path(__file__).resolve().parents[2] / "docs" / "jobs.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "docs/jobs.md", "exec"), namespace)  # noqa: S102 - the documented code itself
    return namespace["job_request_is_genuine"]


def test_the_receivers_example_in_the_docs_verifies_real_requests_and_callbacks(owner, target, run_due):
    is_genuine = _documented_check()
    user, raw = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/done").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), method="POST", body="hello", callback_uri=target.url_for("/done"))
    hook, done = job.uri, job.callback_uri  # as the API shows them
    run_due()
    run_due()
    secret = secret_of(raw)
    [request], [callback] = requests_to(target, "/hook"), requests_to(target, "/done")
    headers, body = request.headers, request.get_data()
    assert is_genuine(headers, body, secret, "POST", hook)
    assert is_genuine(callback.headers, callback.get_data(), secret, "POST", done, str(job.pk))
    assert not is_genuine(headers, body + b"!", secret, "POST", hook)
    assert not is_genuine(headers, body, secret, "PUT", hook)  # meant for another method
    assert not is_genuine(headers, body, secret, "POST", done)  # meant for another address
    assert not is_genuine(callback.headers, callback.get_data(), secret, "POST", done, str(uuid.uuid4()))
