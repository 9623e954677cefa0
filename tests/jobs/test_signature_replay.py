"""A job's signature is no oracle: what one user gets signed verifies nowhere but where it was sent.

The attack: a user schedules a job to their own endpoint with a body that imitates a
success callback, captures the signed request, and replays it (over HTTP) at another
user's callback receiver with that user's Job-Id. Each receiver checks with the
`standardwebhooks` library, holding its own owner's secret.
"""

import json

import httpx
import pytest

from jobs.models import Job

from .helpers import make_job, requests_to
from .signatures import delivered, secret_of, verifies

pytestmark = pytest.mark.django_db

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
FORGED_REPORT = {
    "response_http_version": "1.1",
    "response_code": 200,
    "response_code_type": "success",
    "response_content_length": 2,
    "response_content_type": "text/plain",
    "response_body": "ok",
}


@pytest.fixture
def captured(owner, target, run_due):
    """What the attacker (`owner`) captured: a request of theirs, signed, with a callback's body."""
    attacker, _ = owner
    headers = {"Content-Type": "application/json"}
    return delivered(attacker, target, run_due, body=json.dumps(FORGED_REPORT), path="/attacker", headers=headers)[1]


@pytest.fixture
def victim_job(outsider, target, run_due):
    """The victim's job, done, and its genuine callback received at the victim's receiver."""
    victim, _ = outsider
    target.expect_request("/victim").respond_with_data("ok")
    target.expect_request("/victim-callback").respond_with_data("thanks")
    job = make_job(victim, target.url_for("/victim"), callback_uri=target.url_for("/victim-callback"))
    run_due()
    run_due()
    return job


def replay(target, request, **changed_headers) -> object:
    """Send the captured request's body and signature headers again, to the victim's callback receiver."""
    headers = {name: request.headers[name] for name in SIGNATURE_HEADERS} | changed_headers
    headers["Content-Type"] = "application/json"
    httpx.post(target.url_for("/victim-callback"), content=request.get_data(), headers=headers, timeout=10)
    return requests_to(target, "/victim-callback")[-1]


def test_a_signature_captured_by_one_user_is_refused_at_another_users_receiver(
    owner, outsider, target, captured, victim_job
):
    attacker_secret, victim_secret = secret_of(owner.raw), secret_of(outsider.raw)
    assert verifies(attacker_secret, captured.headers, captured.get_data())  # genuine where it was sent
    [genuine] = requests_to(target, "/victim-callback")
    assert verifies(victim_secret, genuine.headers, genuine.get_data())  # the victim's receiver works

    forged = replay(target, captured, **{"Job-Id": str(victim_job.pk)})
    assert forged.get_data() == captured.get_data()
    assert not verifies(victim_secret, forged.headers, forged.get_data())


def test_a_captured_signature_does_not_verify_for_another_webhook_id(owner, outsider, target, captured, victim_job):
    attacker_secret, victim_secret = secret_of(owner.raw), secret_of(outsider.raw)
    [genuine] = requests_to(target, "/victim-callback")
    for other_id in (genuine.headers["webhook-id"], captured.headers["Job-Delivery-Id"], "msg_1"):
        forged = replay(target, captured, **{"webhook-id": other_id})
        assert not verifies(attacker_secret, forged.headers, forged.get_data())
        assert not verifies(victim_secret, forged.headers, forged.get_data())


def test_each_owner_signs_with_a_secret_of_their_own(owner, outsider, target, captured, victim_job):
    [genuine] = requests_to(target, "/victim-callback")
    assert captured.headers["webhook-signature"] != genuine.headers["webhook-signature"]
    assert secret_of(owner.raw) != secret_of(outsider.raw)
    assert Job.objects.get(pk=victim_job.pk).user == outsider.user


@pytest.mark.parametrize(
    "name", ["webhook-id", "Webhook-Signature", "WEBHOOK-TIMESTAMP", "Job-Signature", "Job-Id", "Job-Delivery-Id"]
)
def test_a_job_may_not_set_a_signature_header_itself(owner, jobs_api, name):
    _, key = owner
    answer = jobs_api.post(
        f"/jobs.json?apikey={key}",
        {"job": {"uri": "https://example.org/", "headers": {name: "v1,AAAA"}}},
        format="json",
    )
    assert answer.status_code == 400
    assert "set by the service" in json.dumps(answer.json()["error"])
