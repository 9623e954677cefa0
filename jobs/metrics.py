"""The jobs' figures read at scrape time from the database (the counted ones are in core/metrics.py).

Both counts use partial indexes (jobs_job_due, jobs_job_in_flight), so a scrape costs
one index range each, however many finished jobs the table holds.
"""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from . import clock
from .models import ACTIVE_STATES, Job, JobState


class JobsCollector:
    def collect(self) -> Iterator:
        due = Job.objects.filter(state__in=ACTIVE_STATES, next_attempt_at__lte=clock.now()).count()
        yield GaugeMetricFamily(
            "jobs_due", "Jobs whose time has come and that no worker holds (scheduled, or their lease ran out).", due
        )
        in_flight = Job.objects.filter(state=JobState.RUNNING).count()
        yield GaugeMetricFamily(
            "jobs_in_flight", "Jobs claimed and not yet recorded (queued or being sent).", in_flight
        )
