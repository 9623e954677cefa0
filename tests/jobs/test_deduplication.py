"""A create with a deduplication id happens once per owner and window, in every parameter form and under races."""

import json
import threading

import pytest
from django.db import connection, transaction
from django.urls import reverse

from jobs import services
from jobs.models import Job, JobDeduplication

from .helpers import make_job, wait_until

HOOK = "https://example.org/hook"


def create(jobs_api, key: str, form: str, dedup: str | None, uri: str = HOOK, **extra):
    """POST /jobs.json with the deduplication id in `form`: query, form, json or header."""
    headers = {}
    if form == "header":
        headers["HTTP_IDEMPOTENCY_KEY"] = dedup
    if form == "json":
        job = {"uri": uri, **extra}
        if dedup is not None:
            job["deduplication_id"] = dedup
        return jobs_api.generic(
            "POST", "/jobs.json", json.dumps({"job": job, "apikey": key}), content_type="application/json", **headers
        )
    fields = {"job[uri]": uri, **{f"job[{name}]": value for name, value in extra.items()}, "apikey": key}
    if form in ("query", "form") and dedup is not None:
        fields["job[deduplication_id]"] = dedup
    if form == "query":
        return jobs_api.post(f"/jobs.json?{'&'.join(f'{k}={v}' for k, v in fields.items())}", **headers)
    return jobs_api.post("/jobs.json", fields, **headers)


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["query", "form", "json", "header"])
def test_a_second_create_with_the_same_id_creates_nothing_and_answers_the_first_job(owner, jobs_api, form, clock):
    _, key = owner
    first = create(jobs_api, key, form, "order-1234")
    second = create(jobs_api, key, form, "order-1234")
    assert first.status_code == 200, first.content
    assert second.status_code == 200, second.content
    assert second.json() == first.json()
    assert first.json()["success"]["job"]["deduplication_id"] == "order-1234"
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_the_field_and_the_header_are_the_same_id(owner, jobs_api, clock):
    _, key = owner
    first = create(jobs_api, key, "form", "order-1234")
    second = create(jobs_api, key, "header", "order-1234")
    assert second.json() == first.json()
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_the_first_create_wins_when_the_parameters_differ(owner, jobs_api, clock):
    _, key = owner
    first = create(jobs_api, key, "json", "once", method="POST", body="first")
    second = create(jobs_api, key, "json", "once", uri="https://example.org/other", method="PUT", body="second")
    assert second.json() == first.json()
    job = Job.objects.get()
    assert (job.uri, job.method, job.body) == ("https://example.org/hook", "POST", "first")


@pytest.mark.django_db
def test_creates_without_an_id_are_never_deduplicated(owner, jobs_api, clock):
    _, key = owner
    create(jobs_api, key, "form", None)
    create(jobs_api, key, "form", None)
    assert Job.objects.count() == 2
    assert not JobDeduplication.objects.exists()


@pytest.mark.django_db
def test_a_field_and_a_header_that_differ_are_refused_and_nothing_is_created(owner, jobs_api, clock):
    _, key = owner
    response = jobs_api.post(
        "/jobs.json",
        {"job[uri]": HOOK, "job[deduplication_id]": "a-1", "apikey": key},
        HTTP_IDEMPOTENCY_KEY="b-2",
    )
    assert response.status_code == 400
    message = response.json()["error"]["deduplication_id"]
    assert "'a-1'" in message and "'b-2'" in message and "differ" in message
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("x" * 129, "at most 128 characters"),
        ("two words", "visible ASCII"),
        ("caf\u00e9", "visible ASCII"),
        ("", "Must not be empty"),
    ],
)
def test_an_id_that_is_too_long_or_not_visible_ascii_is_refused(owner, jobs_api, value, says, clock):
    _, key = owner
    response = create(jobs_api, key, "json", value)
    assert response.status_code == 400
    assert says in response.json()["error"]["deduplication_id"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_longest_id_is_taken(owner, jobs_api, clock):
    _, key = owner
    value = "~" + "A" * 126 + "!"
    assert create(jobs_api, key, "json", value).json()["success"]["job"]["deduplication_id"] == value


@pytest.mark.django_db
def test_a_bad_idempotency_key_header_is_refused_by_its_name(owner, jobs_api, clock):
    _, key = owner
    response = create(jobs_api, key, "header", "x" * 200)
    assert response.status_code == 400
    assert "at most 128 characters" in response.json()["error"]["Idempotency-Key"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_id_cannot_be_changed_by_an_update(owner, jobs_api, clock):
    user, key = owner
    job = make_job(user, HOOK, deduplication_id="first")
    response = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[deduplication_id]=second")
    assert response.status_code == 400
    assert "cannot be changed" in response.json()["error"]["deduplication_id"]
    assert Job.objects.get(pk=job.pk).deduplication_id == "first"


@pytest.mark.django_db
def test_within_the_window_the_id_answers_the_job_and_after_it_a_new_job_is_made(owner, jobs_api, clock, settings):
    settings.JOBS_DEDUPLICATION_SECONDS = 3600
    _, key = owner
    first = create(jobs_api, key, "header", "nightly")
    clock.advance(seconds=3599)
    assert create(jobs_api, key, "header", "nightly").json() == first.json()
    clock.advance(seconds=1)
    later = create(jobs_api, key, "header", "nightly")
    assert later.status_code == 200
    assert "Idempotent-Replayed" not in later
    assert later.json()["success"]["job"]["id"] != first.json()["success"]["job"]["id"]
    assert Job.objects.count() == 2
    # The new job holds the id for a window of its own; the old one still shows the id it was made with.
    clock.advance(seconds=3599)
    assert create(jobs_api, key, "header", "nightly").json() == later.json()
    assert set(Job.objects.values_list("deduplication_id", flat=True)) == {"nightly"}


@pytest.mark.django_db
def test_deleting_the_job_frees_its_id(owner, jobs_api, clock):
    _, key = owner
    first = create(jobs_api, key, "form", "again").json()["success"]["job"]["id"]
    assert jobs_api.delete(f"/jobs/{first}.json?apikey={key}").status_code == 200
    second = create(jobs_api, key, "form", "again").json()["success"]["job"]["id"]
    assert second != first
    assert list(Job.objects.values_list("pk", flat=True)) == [Job.objects.get().pk]


@pytest.mark.django_db
def test_owners_never_see_each_others_jobs_through_an_id(owner, outsider, jobs_api, clock):
    _, key = owner
    _, other_key = outsider
    mine = create(jobs_api, key, "header", "shared-id", uri="https://example.org/mine").json()
    theirs = create(jobs_api, other_key, "header", "shared-id", uri="https://example.org/theirs").json()
    assert theirs["success"]["job"]["id"] != mine["success"]["job"]["id"]
    assert theirs["success"]["job"]["uri"] == "https://example.org/theirs"
    assert create(jobs_api, key, "header", "shared-id").json() == mine
    assert create(jobs_api, other_key, "header", "shared-id").json() == theirs


@pytest.mark.django_db
def test_the_id_is_shown_on_the_job_in_the_list_the_detail_and_the_admin(owner, jobs_api, client, admin_user, clock):
    user, key = owner
    job = make_job(user, HOOK, deduplication_id="shown-id")
    make_job(user, HOOK)
    detail = jobs_api.get(f"/jobs/{job.pk}.json?apikey={key}").json()["success"]["job"]
    listed = jobs_api.get(f"/jobs.json?apikey={key}").json()["success"]["jobs"]
    assert detail["deduplication_id"] == "shown-id"
    assert sorted(each["deduplication_id"] or "" for each in listed) == ["", "shown-id"]
    client.force_login(admin_user)
    page = client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    assert b"shown-id" in page.content
    found = client.get(reverse("admin:jobs_job_changelist"), {"q": "shown-id"})
    assert list(found.context["cl"].result_list) == [job]


@pytest.mark.django_db(transaction=True)
def test_a_create_racing_an_uncommitted_one_with_the_same_id_waits_and_answers_its_job(owner, clock):
    user, _ = owner
    held, release, first = threading.Event(), threading.Event(), {}

    def create_and_hold_the_transaction_open():
        try:
            with transaction.atomic():
                first["job"] = services.job_create(user=user, uri=HOOK, deduplication_id="race")
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=create_and_hold_the_transaction_open)
    holder.start()
    held.wait(30)
    second = {}

    def create_the_same():
        try:
            second["created"] = services.jobs_create(
                user=user, jobs=[services.job_new(user=user, uri="https://example.org/second", deduplication_id="race")]
            )[0]
        finally:
            connection.close()

    racer = threading.Thread(target=create_the_same)
    racer.start()
    wait_until(lambda: _waiting_on_a_lock() == 1, what="the second create to wait for the first's transaction")
    assert "created" not in second
    release.set()
    holder.join()
    racer.join()
    assert second["created"].deduplicated
    assert second["created"].job.pk == first["job"].pk
    assert list(Job.objects.values_list("uri", flat=True)) == [HOOK]


def _waiting_on_a_lock() -> int:
    """Other sessions of this database waiting for a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("expired", [False, True], ids=["new-id", "expired-id"])
def test_concurrent_creates_with_the_same_id_make_one_job(owner, clock, expired, settings):
    user, _ = owner
    if expired:
        make_job(user, HOOK, deduplication_id="race-0")
        clock.advance(seconds=settings.JOBS_DEDUPLICATION_SECONDS)
    racers, rounds = 6, 10
    start = threading.Barrier(racers)
    answers: list[tuple[str, str, bool]] = []

    def race():
        try:
            for round_ in range(rounds):
                start.wait(30)
                created = services.jobs_create(
                    user=user, jobs=[services.job_new(user=user, uri=HOOK, deduplication_id=f"race-{round_}")]
                )[0]
                answers.append((f"race-{round_}", str(created.job.pk), created.deduplicated))
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == racers * rounds
    for round_ in range(rounds):
        mine = [answer for answer in answers if answer[0] == f"race-{round_}"]
        assert len({job for _, job, _ in mine}) == 1, mine
        assert sum(not deduplicated for _, _, deduplicated in mine) == 1
    assert Job.objects.count() == rounds + (1 if expired else 0)
    assert JobDeduplication.objects.count() == rounds


@pytest.mark.django_db
def test_the_schema_documents_the_id_and_the_header(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    create_operation = schema["paths"]["/jobs.json"]["post"]
    header = next(each for each in create_operation["parameters"] if each["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert "deduplication_id" in header["description"]
    job_input = schema["components"]["schemas"]["JobInputRequest"]["properties"]
    assert "JOBS_DEDUPLICATION_SECONDS" in job_input["deduplication_id"]["description"]
    assert "deduplication_id" in schema["components"]["schemas"]["Job"]["properties"]
