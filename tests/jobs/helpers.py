from collections.abc import Callable

from django.db import connection

from harness import waiting
from jobs import services
from jobs.models import Job
from tests.worker import running_worker


def make_job(user, uri: str, **fields) -> Job:
    return services.job_create(user=user, uri=uri, **fields)


def wait_until(condition: Callable[[], bool], *, what: str, limit: float = 30.0) -> None:
    """Wait for `condition` (a state the test then checks); TimeoutError naming `what` after `limit` seconds."""
    waiting.wait_until(condition, what=what, timeout=limit, every=0.02)


def state_of(job: Job) -> str:
    return Job.objects.get(pk=job.pk).state


def requests_to(server, path: str) -> list:
    """The requests `server` received on `path`, in order."""
    return [request for request, _ in list(server.log) if request.path == path]


celery_worker = running_worker  # a real worker for the length of a `with`


def plan_without_statistics(sql: str, params=None) -> str:
    """PostgreSQL's plan of `sql` on the jobs table as it stands, which must never have been analysed (a table
    that has just grown has no statistics yet): what the planner chooses without them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'jobs_job'")
        assert cursor.fetchone()[0] < 0  # never analysed
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())
