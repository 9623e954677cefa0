"""What the signing tests share: an owner's secret as the API shows it, and a receiver's check
made with the `standardwebhooks` library, as receivers make it."""

from rest_framework.test import APIClient
from standardwebhooks import Webhook, WebhookVerificationError

from jobs.models import Job

from .helpers import make_job, requests_to


def secret_of(raw_token: str) -> str:
    """The owner's current signing secret, through the API's show-once endpoint."""
    answer = APIClient().post(f"/jobs/signing-secret.json?apikey={raw_token}")
    assert answer.status_code == 200, answer.content
    return answer.json()["success"]["signing_secret"]["secret"]


def verifies(secret: str, headers, body: bytes) -> bool:
    """Whether a Standard Webhooks receiver holding `secret` accepts a request with `headers` and `body`."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def delivered(user, target, run_due, *, body: str, path: str = "/hook", **fields) -> tuple[Job, object]:
    """A POST job of `user`'s with `body`, sent to `target` at `path`: the job and the request as received."""
    target.expect_request(path).respond_with_data("ok")
    job = make_job(user, target.url_for(path), method="POST", body=body, **fields)
    run_due()
    [request] = requests_to(target, path)
    return job, request
