"""Scenario 3: PostgreSQL is stopped for a few seconds under messaging API traffic, then started again.

Client loops run all along against `/api/v1/`: list schedules, create schedules
(a write), list message sets, list subscriptions. PostgreSQL is stopped (fast
shutdown: every connection is cut), left down, then started again.

Expected: while it is down every request gets a 503 with a JSON `detail`, never
a 500 and never a hang; a write that got a 503 left nothing behind (the
schedules in the database are exactly those answered 201); afterwards the same
processes serve again by themselves, and a job scheduled then runs (the
dispatcher and the worker reconnected too).
"""

from __future__ import annotations

import json
import time
from collections import Counter

from harness.waiting import wait_until

from .helpers import create_jobs, jobs_of, json_error
from .traffic import CHANGING, Traffic

COMMAND = ".venv/bin/pytest faults/test_postgres_restart.py"
DOWN_SECONDS = 5
PHASES = ("before", "stopping", "down", "starting", "recovering", "after", CHANGING)
MARK = "17"  # the minute of every schedule this scenario creates


def test_postgres_restarted_under_messaging_api_traffic(service, postgres, target, report):
    scenario = report.scenario("3. PostgreSQL restarted under messaging API traffic", COMMAND)
    target.behave("/after-restart", status=200)
    traffic = Traffic()
    clients = [service.client(timeout=20) for _ in range(4)]
    lister, writer, sets, subscriptions = clients

    def create_schedule() -> None:
        traffic.call("POST /api/v1/schedule/", lambda: writer.post("/api/v1/schedule/", json={"minute": MARK}))

    try:
        traffic.loop(
            "list schedules",
            lambda: traffic.call(
                "GET /api/v1/schedule/", lambda: lister.get("/api/v1/schedule/", params={"page_size": 20})
            ),
        )
        traffic.loop("create schedules", create_schedule)
        traffic.loop(
            "list sets", lambda: traffic.call("GET /api/v1/messageset/", lambda: sets.get("/api/v1/messageset/"))
        )
        traffic.loop(
            "list subscriptions",
            lambda: traffic.call(
                "GET /api/v1/subscriptions/",
                lambda: subscriptions.get("/api/v1/subscriptions/", params={"page_size": 20}),
            ),
        )
        time.sleep(3)

        traffic.phase = "stopping"
        postgres.stop()
        traffic.phase = "down"
        time.sleep(DOWN_SECONDS)
        traffic.phase = "starting"
        postgres.start()
        traffic.phase = "recovering"

        def serving() -> bool:
            with service.client() as client:
                return client.get("/api/v1/schedule/", params={"page_size": 1}).status_code == 200

        wait_until(serving, what="the messaging API to serve again", timeout=60, every=0.5)
        traffic.phase = "after"
        time.sleep(4)
    finally:
        traffic.stop()
        for client in clients:
            client.close()

    with service.client() as client:
        job_ids = create_jobs(client, [f"{target.url}/after-restart"], timeout=3)
    job_ran = wait_until(
        lambda: jobs_of(postgres, job_ids)[job_ids[0]][0] == "succeeded",
        what="a job scheduled after the restart to run",
        timeout=90,
        every=0.5,
    )
    with postgres.connect("faults") as connection:
        stored = connection.execute("SELECT count(*) FROM contentstore_schedule WHERE minute = %s", [MARK]).fetchone()[
            0
        ]

    down = traffic.statuses(phase="down")
    after = traffic.statuses(phase="after")
    created = traffic.statuses(kind="POST /api/v1/schedule/")[201]
    errors = [outcome for outcome in traffic.of() if isinstance(outcome.status, int) and outcome.status >= 400]
    not_json = [outcome for outcome in errors if not json_error(outcome.body, "detail")]
    details = Counter(json.loads(outcome.body)["detail"] for outcome in errors if json_error(outcome.body, "detail"))

    scenario.add("PostgreSQL down for", f"{DOWN_SECONDS} s (fast shutdown, then started again)")
    traffic.report(scenario, PHASES)
    scenario.add("error answers without a JSON detail", len(not_json))
    for detail, count in details.items():
        scenario.add(f"detail of the errors: {detail!r}", count)
    scenario.add("schedules answered 201 / found in the database", f"{created} / {stored}")
    scenario.add("job scheduled after the restart", "succeeded" if job_ran else "not run")
    alive = service.all_alive
    scenario.add("processes restarted", "none" if alive else "some died")

    assert not traffic.unclean()
    assert set(down) <= {503}, down
    assert down[503] > 0
    assert not not_json
    assert set(after) <= {200, 201}, after
    assert stored == created
    assert alive
    scenario.outcome = "passed: clean JSON 503s while down, recovered by itself"
