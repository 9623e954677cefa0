"""An owner's signing secret: shown once, rotated with an overlap, listed without its value,
kept encrypted, its at-rest key rotatable; who may do what with it."""

import base64
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from jobs import signing
from jobs.models import AttemptOutcome, JobState, SigningSecret

from .helpers import make_job, requests_to, state_of
from .signatures import delivered, secret_of, verifies

pytestmark = pytest.mark.django_db

SECRET = "/jobs/signing-secret.json"
ROTATE = "/jobs/signing-secret/rotate.json"


def listed(jobs_api, key: str) -> list[dict]:
    answer = jobs_api.get(f"{SECRET}?apikey={key}")
    assert answer.status_code == 200, answer.content
    return answer.json()["success"]["signing_secrets"]


def rotate(jobs_api, key: str, **parameters):
    return jobs_api.post(f"{ROTATE}?apikey={key}", parameters, format="json")


def test_the_secret_is_shown_once(owner, jobs_api):
    _, key = owner
    first = jobs_api.post(f"{SECRET}?apikey={key}")
    assert first.status_code == 200
    shown = first.json()["success"]["signing_secret"]
    assert shown["secret"].startswith("whsec_")
    assert len(base64.b64decode(shown["secret"].removeprefix("whsec_"))) == 32
    assert shown["current"] is True and shown["expires_at"] is None
    assert shown["fingerprint"] == signing.fingerprint(shown["secret"])

    again = jobs_api.post(f"{SECRET}?apikey={key}")
    assert again.status_code == 409
    assert "rotate" in again.json()["error"]["secret"]
    assert shown["secret"] not in again.content.decode()


def test_a_secret_made_when_a_job_is_sent_is_listed_unshown_and_never_with_its_value(owner, jobs_api, target, run_due):
    user, key = owner
    assert listed(jobs_api, key) == []
    target.expect_request("/hook").respond_with_data("ok")
    make_job(user, target.url_for("/hook"))
    run_due()
    [entry] = listed(jobs_api, key)
    assert (entry["current"], entry["shown_at"]) == (True, None)
    assert "secret" not in entry
    value = secret_of(key)
    [entry] = listed(jobs_api, key)
    assert entry["shown_at"] is not None
    assert value not in jobs_api.get(f"{SECRET}?apikey={key}").content.decode()
    assert verifies(value, requests_to(target, "/hook")[0].headers, b"")


def test_the_secret_is_stored_encrypted(owner):
    user, key = owner
    value = secret_of(key)
    stored = SigningSecret.objects.get(user=user)
    assert value not in stored.encrypted
    assert value.removeprefix("whsec_") not in stored.encrypted
    assert signing.decrypt(stored) == value


def test_a_rotation_shows_the_new_secret_and_keeps_the_old_one_for_the_overlap(owner, jobs_api, clock, settings):
    settings.JOBS_SIGNING_SECRET_OVERLAP = 600
    _, key = owner
    old = secret_of(key)
    answer = rotate(jobs_api, key, overlap=60)
    assert answer.status_code == 200, answer.content
    new = answer.json()["success"]["signing_secret"]
    assert new["secret"].startswith("whsec_") and new["secret"] != old
    current, previous = listed(jobs_api, key)
    assert (current["fingerprint"], current["current"]) == (new["fingerprint"], True)
    assert (previous["fingerprint"], previous["current"]) == (signing.fingerprint(old), False)
    assert previous["expires_at"] is not None
    clock.advance(seconds=60)
    assert [entry["fingerprint"] for entry in listed(jobs_api, key)] == [new["fingerprint"]]
    assert jobs_api.post(f"{SECRET}?apikey={key}").status_code == 409  # the rotated one was shown


def test_the_overlap_defaults_to_the_setting_and_zero_ends_the_old_secret_at_once(owner, jobs_api, clock, settings):
    settings.JOBS_SIGNING_SECRET_OVERLAP = 600
    user, key = owner
    secret_of(key)
    rotate(jobs_api, key)
    previous = SigningSecret.objects.get(user=user, expires_at__isnull=False)
    assert previous.expires_at == clock.now() + timedelta(seconds=600)
    assert rotate(jobs_api, key, overlap=0).status_code == 200
    assert len(listed(jobs_api, key)) == 1


def test_rotating_during_an_overlap_leaves_at_most_two_secrets_signing(owner, jobs_api):
    _, key = owner
    for _ in range(3):
        assert rotate(jobs_api, key).status_code == 200
    assert [entry["current"] for entry in listed(jobs_api, key)] == [True, False]


def test_a_rotation_may_be_asked_for_from_form_fields_or_the_query(owner, jobs_api, settings):
    settings.JOBS_SIGNING_SECRET_OVERLAP = 600
    user, key = owner
    assert jobs_api.post(f"{ROTATE}?apikey={key}", {"overlap": "30"}).status_code == 200
    assert jobs_api.post(f"{ROTATE}?apikey={key}&overlap=0").status_code == 200
    assert SigningSecret.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    ("overlap", "message"),
    [
        (601, "less than or equal to 600"),
        (-1, "greater than or equal to 0"),
        ("soon", "valid integer"),
        ("0.0", "valid integer"),
        (1.0, "valid integer"),
        (True, "valid integer"),
    ],
)
def test_an_overlap_out_of_bounds_is_refused(owner, jobs_api, settings, overlap, message):
    settings.JOBS_SIGNING_SECRET_OVERLAP = 600
    _, key = owner
    answer = rotate(jobs_api, key, overlap=overlap)
    assert answer.status_code == 400
    assert message in answer.json()["error"]["overlap"]
    assert SigningSecret.objects.count() == 0


def test_every_overlap_given_is_checked_wherever_it_comes(owner, jobs_api):
    _, key = owner
    answer = jobs_api.post(f"{ROTATE}?apikey={key}&overlap=null", {"overlap": 0}, format="json")
    assert answer.status_code == 400
    assert "valid integer" in answer.json()["error"]["overlap"]
    answer = jobs_api.post(f"{ROTATE}?apikey={key}&overlap=0", [None], format="json")
    assert answer.status_code == 400
    assert "JSON object" in answer.json()["error"]["body"]
    assert SigningSecret.objects.count() == 0


def test_each_user_sees_and_rotates_only_their_own_secret(owner, outsider, jobs_api):
    _, key = owner
    mine = secret_of(key)
    rotate(jobs_api, outsider.raw)
    assert [entry["fingerprint"] for entry in listed(jobs_api, key)] == [signing.fingerprint(mine)]
    assert len(listed(jobs_api, outsider.raw)) == 1


def test_reading_needs_jobs_readonly_and_the_rest_jobs_readwrite(member, jobs_api, make_token):
    _, key = member  # jobs:readonly
    assert jobs_api.get(f"{SECRET}?apikey={key}").status_code == 200
    assert jobs_api.post(f"{SECRET}?apikey={key}").status_code == 403
    assert rotate(jobs_api, key).status_code == 403
    _, unrelated = make_token("cache:readwrite")
    assert jobs_api.get(f"{SECRET}?apikey={unrelated}").status_code == 403
    assert jobs_api.get(SECRET).status_code == 401
    assert jobs_api.post(ROTATE).status_code == 401
    assert SigningSecret.objects.count() == 0


def test_after_the_operator_rotates_the_key_at_rest_the_same_secret_still_signs(owner, target, run_due, settings):
    user, key = owner
    value = secret_of(key)
    settings.JOBS_SIGNING_NEXT_KEY = "the-next-key-at-rest"
    output = io.StringIO()
    call_command("reencryptsigningsecrets", stdout=output)
    assert output.getvalue().startswith("1 signing secret(s)")
    settings.JOBS_SIGNING_KEY, settings.JOBS_SIGNING_NEXT_KEY = "the-next-key-at-rest", None
    _, request = delivered(user, target, run_due, body="still")
    assert verifies(value, request.headers, b"still")


def test_a_secret_that_no_longer_decrypts_fails_its_owners_attempts_only(owner, outsider, target, run_due, settings):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    make_job(user, target.url_for("/hook"), retry_schedule=[60])
    run_due()
    settings.JOBS_SIGNING_KEY = "a-key-changed-without-a-rotation"  # the owner's secret is now unreadable
    stranded = make_job(user, target.url_for("/hook"), retry_schedule=[60])
    other = make_job(outsider.user, target.url_for("/hook"))
    run_due()
    assert state_of(other) == JobState.SUCCEEDED
    assert state_of(stranded) == JobState.SCHEDULED
    [attempt] = stranded.attempts.all()
    assert attempt.outcome == AttemptOutcome.FAILED
    assert "does not decrypt" in attempt.error
    assert len(requests_to(target, "/hook")) == 2  # nothing unsigned left


def test_the_admin_lists_secrets_without_their_values(client, admin_user, owner):
    client.force_login(admin_user)
    admin_client = client
    user, key = owner
    value = secret_of(key)
    stored = SigningSecret.objects.get(user=user)
    page = admin_client.get(reverse("admin:jobs_signingsecret_changelist"))
    assert page.status_code == 200
    assert stored.fingerprint.encode() in page.content
    detail = admin_client.get(reverse("admin:jobs_signingsecret_change", args=[stored.pk]))
    assert detail.status_code == 200
    for text in (value, value.removeprefix("whsec_"), stored.encrypted):
        assert text.encode() not in page.content + detail.content
    assert admin_client.get(reverse("admin:jobs_signingsecret_add")).status_code == 403
