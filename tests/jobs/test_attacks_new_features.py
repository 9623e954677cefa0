"""What an attacker tried on deduplication, batches and recurring jobs, each held: cron fields that
pick their minute at random, batches that claim the same ids in other orders at once, and changes
to a job racing its deletion."""

import json
import threading

import pytest
from django.db import connection, transaction
from django.urls import reverse

from jobs import services
from jobs.errors import JobParameterError
from jobs.models import AttemptOutcome, Job, JobDeduplication
from jobs.parsers import SINGLE_QUOTED_MAX_CHARS

from .helpers import make_job, requests_to, wait_until
from .test_attacks import FORMS, error_of, send_job

HOOK = "https://example.org/hook"


def _waiting_on_a_lock() -> int:
    """Other sessions of this database waiting for a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def in_thread(work) -> tuple[threading.Thread, dict]:
    """Run `work()` in a thread of its own (a connection of its own); its answer or error in the dict."""
    outcome: dict = {}

    def run():
        try:
            outcome["answer"] = work()
        except Exception as error:
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


# croniter reads R (random) and H (hashed) fields: a different minute each time a run time is
# worked out, so the run times the service shows are not those it fires at.
RANDOM_CRONS = ["R * * * *", "0 R * * *", "r(0-29) * * * *", "0 0 * * 1,R", "R/15 * * * *", "H * * * *"]


@pytest.mark.django_db
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("cron", RANDOM_CRONS)
def test_a_cron_that_picks_its_time_at_random_is_a_400(owner, jobs_api, clock, form, cron):
    _, key = owner
    error = error_of(send_job(jobs_api, key, form, {"uri": HOOK, "cron": cron}), 400)
    assert list(error) == ["cron"]
    assert "random" in error["cron"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_recurring_job_cannot_be_changed_to_a_random_cron_nor_a_batch_given_one(owner, jobs_api, clock):
    user, key = owner
    job = make_job(user, HOOK, cron="0 9 * * *")
    response = send_job(jobs_api, key, "json", {"cron": "R 9 * * *"}, path=f"/jobs/{job.pk}.json", method="put")
    assert list(error_of(response, 400)) == ["cron"]
    assert Job.objects.get(pk=job.pk).cron == "0 9 * * *"
    body = json.dumps({"jobs": [{"job": {"uri": HOOK, "cron": "R * * * *"}}], "apikey": key})
    response = jobs_api.generic("POST", "/jobs/batch.json", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]) == ["jobs[0][cron]"]
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_batches_claiming_the_same_ids_in_other_orders_wait_for_each_other_instead_of_deadlocking(owner, clock):
    """One create holds "a" and goes on to claim "b" (a batch past one INSERT of ids) while a batch
    lists "b" before "a": claimed in the order given, each would wait for the other."""
    user, _ = owner
    holding, go_on = threading.Event(), threading.Event()

    def claim_a_then_b():
        with transaction.atomic():
            first = services.jobs_create(user=user, jobs=[services.job_new(user=user, uri=HOOK, deduplication_id="a")])
            holding.set()
            go_on.wait(30)
            second = services.jobs_create(user=user, jobs=[services.job_new(user=user, uri=HOOK, deduplication_id="b")])
            return [first[0].job.pk, second[0].job.pk]

    def batch_of_b_and_a():
        jobs = [services.job_new(user=user, uri=HOOK, deduplication_id=key) for key in ("b", "a")]
        return [(created.job.pk, created.deduplicated) for created in services.jobs_create(user=user, jobs=jobs)]

    holder, held = in_thread(claim_a_then_b)
    holding.wait(30)
    batch, batched = in_thread(batch_of_b_and_a)
    wait_until(lambda: _waiting_on_a_lock() == 1, what="the batch to wait for the open create")
    go_on.set()
    holder.join(60)
    batch.join(60)
    assert "error" not in held, held
    assert "error" not in batched, batched
    a, b = held["answer"]
    assert batched["answer"] == [(b, True), (a, True)]
    assert Job.objects.count() == 2
    assert JobDeduplication.objects.count() == 2


def _deleted_under(job: Job, change) -> dict:
    """`change()` run while another transaction deletes `job` (holding its row), answered after that commits."""
    deleting, commit = threading.Event(), threading.Event()

    def delete_and_hold():
        with transaction.atomic():
            Job.objects.select_for_update().get(pk=job.pk)
            services.job_delete(job=job)
            deleting.set()
            commit.wait(30)

    deleter, _ = in_thread(delete_and_hold)
    deleting.wait(30)
    changer, changed = in_thread(change)
    wait_until(lambda: _waiting_on_a_lock() == 1, what="the change to wait for the delete")
    commit.set()
    deleter.join(60)
    changer.join(60)
    return changed


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("how", "recurring"),
    [("pause", True), ("resume", True), ("change", False), ("retry", True), ("retry", False)],
)
def test_a_change_racing_the_jobs_deletion_is_a_404_not_a_500(owner, jobs_api, clock, how, recurring):
    user, key = owner
    fields = {"cron": "0 9 * * *", "paused": how == "resume"} if recurring else {}
    job = make_job(user, HOOK, **fields)
    if how == "retry":
        services.job_cancel(job=job)
    requests = {
        "pause": lambda: jobs_api.post(f"/jobs/{job.pk}.json?apikey={key}&_method=PUT&job[paused]=true"),
        "resume": lambda: jobs_api.post(f"/jobs/{job.pk}.json?apikey={key}&_method=PUT&job[paused]=false"),
        "change": lambda: jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[uri]=https://example.org/other"),
        "retry": lambda: jobs_api.post(f"/jobs/{job.pk}/retry.json?apikey={key}"),
    }
    changed = _deleted_under(job, requests[how])
    assert "error" not in changed, changed
    assert list(error_of(changed["answer"], 404)) == ["id"]
    assert not Job.objects.filter(pk=job.pk).exists()


def post_batch(jobs_api, key: str, jobs: list[dict]):
    body = json.dumps({"jobs": [{"job": job} for job in jobs], "apikey": key})
    return jobs_api.generic("POST", "/jobs/batch.json", body, content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("form", FORMS)
def test_an_owner_may_have_at_most_jobs_max_recurring_jobs(owner, outsider, jobs_api, clock, settings, form):
    settings.JOBS_MAX_RECURRING_JOBS = 2
    user, key = owner
    paused = make_job(user, HOOK, cron="* * * * *", paused=True)
    make_job(user, HOOK, cron="* * * * *", deduplication_id="every-minute")
    error = error_of(send_job(jobs_api, key, form, {"uri": HOOK, "cron": "* * * * *"}), 400)
    assert list(error) == ["cron"]
    assert "at most 2 recurring jobs (JOBS_MAX_RECURRING_JOBS): you have 2" in error["cron"]
    response = post_batch(jobs_api, key, [{"uri": HOOK}, {"uri": HOOK, "cron": "0 9 * * *"}])
    # A batch gives it at the position of the job past the limit, as the single create words it.
    assert response.status_code == 400, response.content
    assert response.json() == {"error": {"jobs[1][cron]": error["cron"]}, "errors": [{"index": 1, "error": error}]}
    assert Job.objects.filter(user=user).count() == 2
    # One-off jobs, a create answered with the recurring job its id holds, and other owners are not held.
    assert send_job(jobs_api, key, form, {"uri": HOOK}).status_code == 200
    replayed = send_job(jobs_api, key, form, {"uri": HOOK, "cron": "* * * * *", "deduplication_id": "every-minute"})
    assert replayed.status_code == 200, replayed.content
    assert replayed["Idempotent-Replayed"] == "true"
    assert send_job(jobs_api, outsider.raw, form, {"uri": HOOK, "cron": "* * * * *"}).status_code == 200
    services.job_delete(job=paused)
    assert send_job(jobs_api, key, form, {"uri": HOOK, "cron": "* * * * *"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_recurring_jobs_count_each_other(owner, clock, settings):
    """The second create waits for the first's transaction, then counts its job: one past the limit."""
    settings.JOBS_MAX_RECURRING_JOBS = 1
    user, _ = owner
    holding, commit = threading.Event(), threading.Event()

    def create_and_hold():
        with transaction.atomic():
            job = make_job(user, HOOK, cron="0 9 * * *")
            holding.set()
            commit.wait(30)
            return job

    holder, held = in_thread(create_and_hold)
    holding.wait(30)
    racer, raced = in_thread(lambda: make_job(user, HOOK, cron="0 10 * * *"))
    wait_until(lambda: _waiting_on_a_lock() == 1, what="the second create to wait for the first")
    commit.set()
    holder.join(60)
    racer.join(60)
    assert "error" not in held, held
    assert isinstance(raced.get("error"), JobParameterError), raced
    assert list(Job.objects.values_list("cron", flat=True)) == ["0 9 * * *"]


@pytest.mark.django_db
def test_a_firing_is_checked_at_send_time_not_only_when_its_recurring_job_was_created(
    owner, target, run_due, clock, settings
):
    """A recurring job to a name that resolves to loopback passes creation; each firing is refused when sent."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    user, _ = owner
    target.expect_request("/hook").respond_with_data("should never be reached")
    recurring = make_job(user, target.url_for("/hook").replace("127.0.0.1", "localhost"), cron="* * * * *")
    for _ in range(2):
        clock.advance(seconds=60)
        run_due()
    firings = Job.objects.filter(recurring_job_id=recurring.pk)
    assert firings.count() == 2
    for firing in firings:
        [attempt] = firing.attempts.all()
        assert attempt.outcome == AttemptOutcome.REFUSED, attempt.error
    assert requests_to(target, "/hook") == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/jobs.json", "/jobs/batch.json"])
def test_single_quoted_json_is_read_only_in_a_small_body(owner, jobs_api, clock, path, settings):
    """Reading single quotes walks the body in Python: unbounded, a 10 MB batch took seconds of CPU,
    key or no key. A body past SINGLE_QUOTED_MAX_CHARS must be JSON; a small one is still read."""
    _, key = owner

    def body(padding: int) -> str:
        job = f"{{'job': {{'uri': '{HOOK}', 'body': '{'x' * padding}'}}}}"
        return f"{{'jobs': [{job}]}}" if path.endswith("batch.json") else job

    small = jobs_api.generic("POST", f"{path}?apikey={key}", body(100), content_type="application/json")
    assert small.status_code == 200, small.content
    large = jobs_api.generic(
        "POST", f"{path}?apikey={key}", body(SINGLE_QUOTED_MAX_CHARS), content_type="application/json"
    )
    error = error_of(large, 400)
    assert error["body"].startswith("The body is not valid JSON"), error
    assert "double-quoted names and strings" in error["body"]
    assert Job.objects.count() == 1


DONE = {"retry_now": "will be sent now", "cancel": "cancelled"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["retry_now", "cancel"])
def test_an_admin_action_on_a_job_deleted_meanwhile_skips_it(client, admin_user, owner, clock, action):
    user, _ = owner
    client.force_login(admin_user)
    job = make_job(user, HOOK, cron="0 9 * * *")
    kept = make_job(user, HOOK)
    selected = {"action": action, "_selected_action": [str(job.pk), str(kept.pk)]}
    changed = _deleted_under(job, lambda: client.post(reverse("admin:jobs_job_changelist"), selected, follow=True))
    assert "error" not in changed, changed
    page = changed["answer"]
    assert page.status_code == 200
    assert [str(message) for message in page.context["messages"]] == [f"1 job(s) {DONE[action]}."]
    assert not Job.objects.filter(pk=job.pk).exists()
    assert Job.objects.filter(recurring_job_id=job.pk).count() == 0
