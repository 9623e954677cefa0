"""POST /jobs/batch.json: many jobs in one transaction, each checked as a single create, all or none."""

import json

import pytest
from django.test import override_settings

from config.asgi import body_limit
from jobs import services
from jobs.dispatcher import dispatch_once
from jobs.models import Job, JobDeduplication, JobKind, JobState

from .helpers import make_job, requests_to, wait_until

BATCH = "/jobs/batch.json"
HOOK = "https://example.org/hook"


def post_batch(jobs_api, key: str | None, jobs, **headers):
    body = {"jobs": jobs} if key is None else {"jobs": jobs, "apikey": key}
    return jobs_api.generic("POST", BATCH, json.dumps(body), content_type="application/json", **headers)


def hook(n: int, **fields) -> dict:
    return {"job": {"uri": f"https://example.org/hook/{n}", **fields}}


@pytest.mark.django_db
def test_it_creates_every_job_and_answers_each_as_a_single_create_would_in_order(owner, jobs_api, clock):
    _, key = owner
    response = post_batch(
        jobs_api,
        key,
        [
            hook(0),
            hook(1, method="post", body="hello", headers={"Content-Type": "text/plain"}, retry_schedule=[5, 60]),
            {"job[uri]": "https://example.org/hook/2", "job[at]": "2030-02-01T00:00:00Z"},
        ],
    )
    assert response.status_code == 200, response.content
    answer = response.json()["success"]
    assert answer["deduplicated"] == []
    assert [job["uri"] for job in answer["jobs"]] == [f"https://example.org/hook/{n}" for n in range(3)]
    assert answer["jobs"][1]["method"] == "POST"
    assert answer["jobs"][1]["retry_schedule"] == [5, 60]
    assert answer["jobs"][2]["at"] == "2030-02-01 00:00:00 +0000"
    assert Job.objects.count() == 3
    single = jobs_api.post("/jobs.json", {"job[uri]": "https://example.org/single", "apikey": key}).json()
    assert set(answer["jobs"][0]) == set(single["success"]["job"])
    for shown in answer["jobs"]:
        detail = jobs_api.get(f"/jobs/{shown['id']}.json?apikey={key}").json()["success"]["job"]
        assert {name: detail[name] for name in shown} == shown
    assert Job.objects.get(uri="https://example.org/hook/1").headers == {"Content-Type": "text/plain"}


@pytest.mark.django_db
def test_when_any_job_is_wrong_nothing_is_created_and_each_error_is_given_by_position(owner, jobs_api, clock):
    _, key = owner
    existing = JobDeduplication.objects.count()
    response = post_batch(
        jobs_api,
        key,
        [
            hook(0, deduplication_id="fine"),
            {"job": {"at": "2030-01-01T00:00:00Z"}},
            hook(2),
            hook(3, method="FETCH", timeout=0),
            "not an object",
            {"job": {"uri": "http://169.254.169.254/latest/meta-data"}},
            {"job": {"uri": "https://example.org/x", "colour": "blue"}},
        ],
    )
    assert response.status_code == 400, response.content
    body = response.json()
    by_index = {each["index"]: each["error"] for each in body["errors"]}
    assert sorted(by_index) == [1, 3, 4, 5, 6]
    assert by_index[1] == {"uri": "Give the URL to call, e.g. job[uri]=https://example.org/hook."}
    assert set(by_index[3]) == {"method", "timeout"}
    assert "object as a JSON create takes" in by_index[4]["job"]
    assert by_index[5]["uri"].startswith("Refused: 169.254.169.254 is the cloud metadata address")
    assert "Unknown job parameter" in by_index[6]["colour"]
    assert body["error"]["jobs[1][uri]"] == by_index[1]["uri"]
    assert body["error"]["jobs[3][method]"] == by_index[3]["method"]
    assert set(body["error"]) == {f"jobs[{i}][{name}]" for i, error in by_index.items() for name in error}
    assert not Job.objects.exists()
    assert JobDeduplication.objects.count() == existing


@pytest.mark.django_db
def test_a_jobs_error_is_what_a_single_create_of_it_answers(owner, jobs_api, clock):
    _, key = owner
    bad = {"uri": "https://example.org/x", "retry_schedule": [60, 10], "headers": {"Bad Name": "x"}}
    single = jobs_api.generic(
        "POST", "/jobs.json", json.dumps({"job": bad, "apikey": key}), content_type="application/json"
    )
    batch = post_batch(jobs_api, key, [hook(0), {"job": bad}])
    assert batch.json()["errors"] == [{"index": 1, "error": single.json()["error"]}]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"job": {"uri": "https://example.org"}}, 'The body must be a JSON object {"jobs": [...]}'),
        ({"jobs": {"uri": "https://example.org"}}, 'The body must be a JSON object {"jobs": [...]}'),
        ([], 'The body must be a JSON object {"jobs": [...]}'),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused_saying_how_to_write_one(owner, jobs_api, body, says, clock):
    _, key = owner
    response = jobs_api.generic("POST", f"{BATCH}?apikey={key}", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["jobs"].startswith(says)
    assert "errors" not in response.json()


@pytest.mark.django_db
def test_a_batch_may_hold_at_most_jobs_max_batch_jobs(owner, jobs_api, settings, clock):
    settings.JOBS_MAX_BATCH = 3
    _, key = owner
    assert post_batch(jobs_api, key, [hook(n) for n in range(3)]).status_code == 200
    response = post_batch(jobs_api, key, [hook(n) for n in range(4)])
    assert response.status_code == 400
    assert response.json()["error"] == {
        "jobs": "A batch may hold at most 3 jobs (JOBS_MAX_BATCH), not 4.",
    }
    assert Job.objects.count() == 3


@pytest.mark.django_db
def test_a_batch_over_its_byte_limit_is_a_413_and_creates_nothing(owner, jobs_api, settings, clock):
    settings.JOBS_MAX_BATCH_BYTES = 2048
    _, key = owner
    jobs = [hook(n, body="x" * 100) for n in range(30)]
    assert len(json.dumps({"jobs": jobs})) > 2048
    response = post_batch(jobs_api, None, jobs, HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 413
    assert response.json() == {
        "error": {"body": "The batch is larger than the limit of 2048 bytes (JOBS_MAX_BATCH_BYTES)."}
    }
    assert not Job.objects.exists()


def test_the_front_gives_a_batch_its_own_body_limit_and_every_other_request_the_usual_one():
    def scope(path: str) -> dict:
        return {"path": path, "headers": [(b"content-type", b"application/json")]}

    with override_settings(JOBS_MAX_BATCH_BYTES=10_000_000, DATA_UPLOAD_MAX_MEMORY_SIZE=2_000_000):
        assert body_limit(scope("/jobs/batch.json"))[0] == 10_000_000
        assert "JOBS_MAX_BATCH_BYTES" in body_limit(scope("/jobs/batch.json"))[1]
        assert body_limit(scope("/jobs.json"))[0] == 2_000_000


@pytest.mark.django_db
def test_a_batch_larger_than_a_single_request_may_be_is_taken(owner, jobs_api, settings, clock):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    settings.JOBS_MAX_BATCH_BYTES = 65_536
    _, key = owner
    jobs = [hook(n, body="x" * 200) for n in range(100)]
    assert len(json.dumps({"jobs": jobs})) > 4096
    assert post_batch(jobs_api, key, jobs).status_code == 200
    assert Job.objects.count() == 100


@pytest.mark.django_db
def test_an_empty_batch_creates_nothing(owner, jobs_api, clock):
    _, key = owner
    response = post_batch(jobs_api, key, [])
    assert response.status_code == 200
    assert response.json() == {"success": {"jobs": [], "deduplicated": []}}


@pytest.mark.django_db
def test_a_job_of_the_batch_with_an_existing_id_is_answered_with_that_job(owner, jobs_api, clock):
    user, key = owner
    existing = make_job(user, "https://example.org/existing", deduplication_id="known")
    response = post_batch(jobs_api, key, [hook(0), hook(1, deduplication_id="known"), hook(2)])
    answer = response.json()["success"]
    assert answer["deduplicated"] == [1]
    assert answer["jobs"][1]["id"] == str(existing.pk)
    assert answer["jobs"][1]["uri"] == "https://example.org/existing"
    assert Job.objects.count() == 3


@pytest.mark.django_db
def test_two_jobs_of_a_batch_with_the_same_id_make_one_and_the_second_answers_the_first(owner, jobs_api, clock):
    _, key = owner
    response = post_batch(
        jobs_api, key, [hook(0, deduplication_id="twice"), hook(1), hook(2, deduplication_id="twice", method="PUT")]
    )
    answer = response.json()["success"]
    assert answer["deduplicated"] == [2]
    assert answer["jobs"][2] == answer["jobs"][0]
    assert answer["jobs"][0]["uri"] == "https://example.org/hook/0"
    assert Job.objects.count() == 2
    again = post_batch(jobs_api, key, [hook(5, deduplication_id="twice")]).json()["success"]
    assert again == {"jobs": [answer["jobs"][0]], "deduplicated": [0]}


@pytest.mark.django_db
def test_ids_in_a_batch_are_the_owners_own(owner, outsider, jobs_api, clock):
    user, key = owner
    _, other_key = outsider
    mine = make_job(user, "https://example.org/mine", deduplication_id="same")
    theirs = post_batch(jobs_api, other_key, [hook(0, deduplication_id="same")]).json()["success"]
    assert theirs["deduplicated"] == []
    assert theirs["jobs"][0]["id"] != str(mine.pk)
    again = post_batch(jobs_api, key, [hook(1, deduplication_id="same")]).json()["success"]
    assert (again["deduplicated"], again["jobs"][0]["id"]) == ([0], str(mine.pk))


@pytest.mark.django_db
def test_a_batch_takes_no_idempotency_key_header(owner, jobs_api, clock):
    _, key = owner
    response = post_batch(jobs_api, key, [hook(0)], HTTP_IDEMPOTENCY_KEY="whole-batch")
    assert response.status_code == 400
    assert "give each job its own deduplication_id" in response.json()["error"]["Idempotency-Key"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_batch_needs_a_key_with_the_write_scope(owner, member, jobs_api, clock):
    assert post_batch(jobs_api, None, [hook(0)]).status_code == 401
    response = post_batch(jobs_api, member.raw, [hook(0)])
    assert response.status_code == 403
    assert "apikey" in response.json()["error"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_batch_is_json_only(owner, jobs_api, clock):
    _, key = owner
    response = jobs_api.post(BATCH, {"job[uri]": "https://example.org/x", "apikey": key}, format="multipart")
    assert response.status_code in (401, 415)
    assert set(response.json()["error"]) <= {"body", "apikey"}
    response = jobs_api.generic(
        "POST",
        f"{BATCH}?apikey={key}",
        "job[uri]=https://example.org/x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert "body" in response.json()["error"]


@pytest.mark.django_db
def test_a_batch_of_many_jobs_takes_a_few_queries_not_one_per_job(
    owner, jobs_api, clock, django_assert_max_num_queries
):
    _, key = owner
    jobs = [hook(n, deduplication_id=f"id-{n}") for n in range(300)]
    with django_assert_max_num_queries(12):
        response = post_batch(jobs_api, key, jobs)
    assert response.status_code == 200
    assert Job.objects.count() == 300
    with django_assert_max_num_queries(12):
        again = post_batch(jobs_api, key, jobs)
    assert again.json()["success"]["deduplicated"] == list(range(300))
    assert again.json()["success"]["jobs"] == response.json()["success"]["jobs"]


@pytest.mark.django_db
def test_a_batch_looks_each_queue_up_once_not_once_per_job(owner, jobs_api, clock, django_assert_max_num_queries):
    user, key = owner
    for name in ("a", "b"):
        services.queue_set(user=user, name=name)
    jobs = [hook(n, queue="ab"[n % 2]) for n in range(300)]
    with django_assert_max_num_queries(12):
        response = post_batch(jobs_api, key, jobs)
    assert response.status_code == 200, response.content
    assert [job["queue"] for job in response.json()["success"]["jobs"]] == ["ab"[n % 2] for n in range(300)]
    assert Job.objects.filter(queue__name="a").count() == Job.objects.filter(queue__name="b").count() == 150


def test_a_batch_naming_a_queue_that_does_not_exist_gives_the_error_at_each_of_its_jobs(owner, jobs_api, clock):
    user, key = owner
    services.queue_set(user=user, name="a")
    response = post_batch(jobs_api, key, [hook(0, queue="a"), hook(1, queue="nope"), hook(2, queue="nope")])
    assert response.status_code == 400
    by_index = {each["index"]: each["error"] for each in response.json()["errors"]}
    assert sorted(by_index) == [1, 2]
    assert {error["queue"] for error in by_index.values()} == {
        "There is no queue named 'nope': create it first with PUT /api/v1/job-queues/nope."
    }
    assert Job.objects.count() == 0


def past_the_limit(limit: int, existing: int, adding: int) -> str:
    """What a create past JOBS_MAX_RECURRING_JOBS answers about `cron`."""
    return (
        f"An owner may have at most {limit} recurring jobs (JOBS_MAX_RECURRING_JOBS): you have {existing}, "
        f"and this would add {adding}. Delete recurring jobs you no longer need first."
    )


@pytest.mark.django_db
def test_a_batch_past_jobs_max_recurring_jobs_gives_the_error_at_each_job_past_it_and_creates_nothing(
    owner, jobs_api, settings, clock
):
    settings.JOBS_MAX_RECURRING_JOBS = 3
    user, key = owner
    make_job(user, HOOK, cron="0 9 * * *")
    claims = JobDeduplication.objects.count()
    every = "* * * * *"
    response = post_batch(
        jobs_api,
        key,
        [
            hook(0, cron=every),
            hook(1),
            hook(2, cron=every, deduplication_id="two"),
            hook(3, cron=every),
            hook(4, deduplication_id="four"),
            hook(5, cron=every, paused=True),
        ],
    )
    assert response.status_code == 400, response.content
    message = past_the_limit(3, 1, 4)
    assert response.json() == {
        "error": {"jobs[3][cron]": message, "jobs[5][cron]": message},
        "errors": [{"index": 3, "error": {"cron": message}}, {"index": 5, "error": {"cron": message}}],
    }
    assert Job.objects.count() == 1
    assert JobDeduplication.objects.count() == claims
    # A single create past the limit answers as before: about `cron`, not by position.
    make_job(user, HOOK, cron="0 10 * * *")
    make_job(user, HOOK, cron="0 11 * * *")
    single = jobs_api.post("/jobs.json", {"job[uri]": HOOK, "job[cron]": every, "apikey": key})
    assert single.status_code == 400
    assert single.json() == {"error": {"cron": past_the_limit(3, 3, 1)}}


@pytest.mark.django_db
def test_a_batch_filling_jobs_max_recurring_jobs_exactly_creates_every_job_and_the_next_is_refused_at_its_position(
    owner, jobs_api, settings, clock
):
    settings.JOBS_MAX_RECURRING_JOBS = 3
    user, key = owner
    make_job(user, HOOK, cron="0 9 * * *")
    response = post_batch(jobs_api, key, [hook(0, cron="0 10 * * *"), hook(1), hook(2, cron="0 11 * * *")])
    assert response.status_code == 200, response.content
    assert Job.objects.filter(user=user, kind=JobKind.RECURRING).count() == 3
    assert Job.objects.count() == 4
    refused = post_batch(jobs_api, key, [hook(3), hook(4, cron="0 12 * * *"), hook(5)])
    assert refused.status_code == 400, refused.content
    assert refused.json()["errors"] == [{"index": 1, "error": {"cron": past_the_limit(3, 3, 1)}}]
    assert Job.objects.count() == 4


@pytest.mark.django_db
def test_jobs_of_a_batch_answered_with_another_job_take_no_room_under_jobs_max_recurring_jobs(
    owner, jobs_api, settings, clock
):
    settings.JOBS_MAX_RECURRING_JOBS = 3
    user, key = owner
    make_job(user, HOOK, cron="0 9 * * *", deduplication_id="daily")
    every = "* * * * *"
    jobs = [
        hook(0, cron=every, deduplication_id="daily"),  # the existing job
        hook(1, cron=every, deduplication_id="a"),
        hook(2, cron=every, deduplication_id="a"),  # the job at 1
        hook(3, cron=every),
        hook(4, cron=every, deduplication_id="daily"),  # the existing job
        hook(5, cron=every),
    ]
    response = post_batch(jobs_api, key, jobs)
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"index": 5, "error": {"cron": past_the_limit(3, 1, 3)}}]
    assert Job.objects.count() == 1
    fitting = post_batch(jobs_api, key, jobs[:5])
    assert fitting.status_code == 200, fitting.content
    assert fitting.json()["success"]["deduplicated"] == [0, 2, 4]
    assert Job.objects.filter(user=user, kind=JobKind.RECURRING).count() == 3


@pytest.mark.django_db
def test_the_schema_documents_the_batch(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/jobs/batch.json"]["post"]
    assert operation["operationId"] == "jobs_batch_create"
    assert {"200", "400", "401", "403", "413"} <= set(operation["responses"])
    schemas = schema["components"]["schemas"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    item = schemas[request]["properties"]["jobs"]["items"]["$ref"].rsplit("/", 1)[1]
    assert schemas[item]["properties"]["job"]["$ref"].endswith("/JobInputRequest")
    success = schemas["JobBatch"]["properties"]
    assert set(success) == {"jobs", "deduplicated"}
    assert set(schemas["JobBatchError"]["properties"]) == {"error", "errors"}
    assert set(schemas["JobBatchErrorItem"]["properties"]) == {"index", "error"}


def test_the_jobs_of_a_batch_are_delivered_by_a_real_worker(owner, target, worker, clock, jobs_api):
    _, key = owner
    for n in range(3):
        target.expect_request(f"/batch/{n}").respond_with_data("ok")
    jobs = [{"job": {"uri": target.url_for(f"/batch/{n}"), "method": "POST", "body": f"job {n}"}} for n in range(3)]
    response = post_batch(jobs_api, key, jobs)
    assert response.status_code == 200, response.content
    ids = [job["id"] for job in response.json()["success"]["jobs"]]
    assert dispatch_once() == 3
    wait_until(
        lambda: set(Job.objects.filter(pk__in=ids).values_list("state", flat=True)) == {JobState.SUCCEEDED},
        what="the batch's jobs to be delivered",
    )
    for n in range(3):
        [request] = requests_to(target, f"/batch/{n}")
        assert request.get_data(as_text=True) == f"job {n}"


@pytest.mark.parametrize("path", [BATCH, "/jobs.json"])
@pytest.mark.parametrize("apikey", [5, None, ["key"], {"key": 1}])
def test_a_body_apikey_that_is_not_text_is_refused_even_with_the_key_in_a_header(owner, jobs_api, path, apikey):
    _, key = owner
    body = {"apikey": apikey, **({"jobs": []} if path == BATCH else {"job": {"uri": "https://example.org/h"}})}

    answer = jobs_api.generic(
        "POST", path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["apikey"] == 'The API key must be a string, e.g. "apikey": "<key>".'
    assert not Job.objects.exists()
