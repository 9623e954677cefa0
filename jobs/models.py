"""Jobs and their attempts as stored.

A time a client gives (a job's `at`, and `next_attempt_at` that starts from it) is read
back within the times a job may have (`values.EARLIEST..LATEST`): a row written around
the API with a time Python cannot hold (before year 1 or after 9999 in UTC) still lists,
shows and sends, instead of failing every query that reads it.
"""

import uuid

from django.conf import settings
from django.db import models

from . import values


class ClientTimeField(models.DateTimeField):
    """A time a client gives: read back clamped to `values.EARLIEST..LATEST`."""

    def select_format(self, compiler, sql, params):
        sql, params = super().select_format(compiler, sql, params)
        low, high = values.EARLIEST, values.LATEST  # NULL stays NULL (LEAST and GREATEST would skip it)
        clamped = f"CASE WHEN {sql} < %s THEN %s WHEN {sql} > %s THEN %s ELSE {sql} END"
        return clamped, (*params, low, low, *params, high, high, *params)


def earliest(jobs: models.QuerySet, name: str) -> models.QuerySet:
    """The earliest `name` (a ClientTimeField) of `jobs`, read back clamped: a one-row query to use as a
    subquery. It is ordered by the column itself, so an index on it gives the order; ordered by the
    value read back, as `jobs.order_by(name).values(name)` is, the database would clamp and sort every
    row first, once for each time the subquery appears in the clamp of an outer query."""
    time = models.ExpressionWrapper(models.F(name), output_field=ClientTimeField())
    return jobs.order_by(name).values(earliest=time)[:1]


class JobState(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"  # waiting for next_attempt_at
    RUNNING = "running", "Running"  # claimed by a dispatcher; a worker holds it until next_attempt_at
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"  # every retry failed, or the target was refused: the dead-letter list
    CANCELLED = "cancelled", "Cancelled"


class JobKind(models.TextChoices):
    REQUEST = "request", "Request"  # a job a client scheduled, or a firing of a recurring job
    RECURRING = "recurring", "Recurring"  # a cron schedule: never sent itself, it makes a firing at each run time
    CALLBACK = "callback", "Callback"  # reports a request's success to its callback_uri
    FAILURE_CALLBACK = "failure_callback", "Failure callback"  # reports a request's failure


class HttpMethod(models.TextChoices):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


ACTIVE_STATES = (JobState.SCHEDULED, JobState.RUNNING)
# The kinds of job the API lists: one-off jobs and firings (request), recurring jobs.
LISTED_KINDS = [(kind.value, kind.label) for kind in (JobKind.REQUEST, JobKind.RECURRING)]


class JobQueue(models.Model):
    """A named queue of an owner's jobs, with flow control: at most `parallelism` of its jobs in flight
    and at most `rate_per_second` started a second (a token bucket holding up to max(1, rate) tokens);
    a paused queue's jobs are not claimed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="job_queues")
    name = models.CharField(max_length=values.QUEUE_NAME_MAX_LENGTH)
    parallelism = models.PositiveIntegerField(null=True, blank=True, help_text="Jobs in flight at most; empty: any.")
    rate_per_second = models.FloatField(null=True, blank=True, help_text="Jobs started a second at most; empty: any.")
    paused = models.BooleanField(default=False, help_text="Its jobs wait until it is resumed.")
    tokens = models.FloatField(default=0, editable=False, help_text="The token bucket's tokens at tokens_at.")
    tokens_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When tokens was counted; empty: the bucket is full."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="jobs_queue_owner_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def burst(self) -> float | None:
        """The most jobs the bucket lets start at once: max(1, rate); None when the rate is unbounded."""
        return None if self.rate_per_second is None else max(1.0, self.rate_per_second)


class Job(models.Model):
    """An HTTP request to make at a time, retried until it gets a 2xx or runs out of retries."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by jobs_job_owner_state, which starts with it.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs", db_index=False)
    kind = models.CharField(max_length=16, choices=JobKind.choices, default=JobKind.REQUEST)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="callbacks",
        db_index=False,  # jobs_job_callbacks: only the callbacks, not every job's NULL
        help_text="For a callback: the job it reports on.",
    )

    method = models.CharField(max_length=7, choices=HttpMethod.choices, default=HttpMethod.GET)
    uri = models.TextField()
    at = ClientTimeField(help_text="When the first attempt is due.")
    headers = models.JSONField(default=dict, blank=True, help_text="Headers to send: name to value.")
    body = models.TextField(blank=True)
    timeout = models.PositiveIntegerField(help_text="Seconds each attempt may take.")
    retry_schedule = models.JSONField(
        null=True,
        blank=True,
        help_text="Retries, in seconds after the first attempt; empty means the service's schedule.",
    )
    callback_uri = models.TextField(blank=True)
    failure_callback_uri = models.TextField(blank=True)

    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.SCHEDULED)
    next_attempt_at = ClientTimeField(
        null=True,
        blank=True,
        help_text="Scheduled: when the next attempt is due. Running: when the worker's lease expires.",
    )
    first_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Retries are counted from this.")
    attempt_count = models.PositiveIntegerField(
        default=0, help_text="Attempts since it was last (re)scheduled, counted when claimed."
    )
    attempt_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When attempt number attempt_count was claimed; cleared once it is recorded."
    )
    lease = models.UUIDField(null=True, blank=True, editable=False, help_text="The claim a worker must hold.")
    delivery_id = models.UUIDField(default=uuid.uuid4, editable=False, help_text="Sent as Job-Delivery-Id.")
    keyring = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Whose secrets sign it: empty for the owner's own, else one thing of the owner's (a topic webhook).",
    )
    deduplication_id = models.CharField(
        max_length=values.DEDUPLICATION_ID_MAX_LENGTH,
        blank=True,
        editable=False,
        help_text="The id its create was given to happen once (see JobDeduplication); empty when none.",
    )
    queue = models.ForeignKey(
        JobQueue,
        null=True,
        blank=True,
        on_delete=models.PROTECT,  # a queue is deleted once it holds no active job; its finished ones let go first
        related_name="jobs",
        db_index=False,  # jobs_job_queue_due and jobs_job_queue_running: only queued jobs, not every job's NULL
        help_text="The owner's queue whose flow control it follows; empty: none.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    cron = models.CharField(max_length=200, blank=True, help_text="A recurring job's five-field cron expression.")
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="The IANA zone a recurring job's cron is read in."
    )
    paused = models.BooleanField(default=False, help_text="A recurring job that makes no firings until resumed.")
    next_run_at = models.DateTimeField(
        null=True, blank=True, help_text="A recurring job's next run time; empty while paused or cancelled."
    )
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="The run time of its latest firing.")
    # Not a foreign key: a firing outlives the recurring job that made it (deleting that stops only future firings).
    recurring_job_id = models.UUIDField(
        null=True, blank=True, editable=False, help_text="For a firing: the id of the recurring job that made it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="jobs_job_due",
                condition=models.Q(state__in=["scheduled", "running"], queue__isnull=True),
            ),
            models.Index(
                fields=["queue", "next_attempt_at"],
                name="jobs_job_queue_due",
                condition=models.Q(state__in=["scheduled", "running"], queue__isnull=False),
            ),
            models.Index(
                fields=["queue", "next_attempt_at"],
                name="jobs_job_queue_running",
                condition=models.Q(state="running", queue__isnull=False),
            ),
            models.Index(fields=["user", "kind", "state", "-created_at"], name="jobs_job_owner_state"),
            models.Index(fields=["lease"], name="jobs_job_in_flight", condition=models.Q(state="running")),
            models.Index(fields=["parent"], name="jobs_job_callbacks", condition=models.Q(parent__isnull=False)),
            # The condition is the one every query of recurring run times states, so that the planner takes
            # this index without the table's statistics (a table that has just grown has none yet).
            models.Index(
                fields=["next_run_at"],
                name="jobs_job_recurring_due",
                condition=models.Q(kind="recurring", state="scheduled", next_run_at__isnull=False),
            ),
            models.Index(
                fields=["recurring_job_id"], name="jobs_job_firings", condition=models.Q(recurring_job_id__isnull=False)
            ),
            # Retention finds finished jobs by it; scheduled and running ones (what the claim reads) are not in it.
            models.Index(
                fields=["state", "finished_at"],
                name="jobs_job_finished",
                condition=models.Q(state__in=["succeeded", "failed", "cancelled"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {values.without_userinfo(self.uri)} at {self.at.isoformat()}"

    @property
    def retry_delays(self) -> list[int]:
        """Retry delays in effect, seconds after the first attempt: the job's own or the service's."""
        return self.retry_schedule if self.retry_schedule else list(settings.JOBS_RETRY_SCHEDULE)

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.retry_delays)


class JobDeduplication(models.Model):
    """Which of an owner's jobs a deduplication id stands for, until when.

    A create with an id its owner used less than JOBS_DEDUPLICATION_SECONDS ago answers
    with that job instead of making another. A table of its own rather than a unique index
    on the job: a unique index cannot say "unique while not expired" (its condition may not
    read the clock), while a row here is taken over in place once expired, by an
    `INSERT ... ON CONFLICT (user, deduplication_id) DO UPDATE ... WHERE expires_at <= now`
    (see `services.creation`). The unique constraint makes concurrent creates with the same
    id wait for each other: one inserts, the others find its job. Deleting the job deletes
    its row (the id is free again); the job keeps its `deduplication_id` for display after
    another job has taken the id over.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    deduplication_id = models.CharField(max_length=values.DEDUPLICATION_ID_MAX_LENGTH)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(help_text="Until then a create with this id answers with the job.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "deduplication_id"], name="jobs_one_job_per_deduplication_id")
        ]

    def __str__(self) -> str:
        return f"{self.deduplication_id} of {self.user_id}: {self.job_id} until {self.expires_at.isoformat()}"


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"  # 2xx
    FAILED = "failed", "Failed"  # non-2xx, timeout, connection error
    REFUSED = "refused", "Refused"  # the destination is not allowed
    LOST = "lost", "Lost"  # the worker stopped before recording a result; the job was claimed again


# What sending and recording a job read of it (the rest is not loaded).
SENT_FIELDS = (
    "id",
    "user",
    "kind",
    "parent",
    "method",
    "uri",
    "headers",
    "body",
    "timeout",
    "retry_schedule",
    "callback_uri",
    "failure_callback_uri",
    "attempt_count",
    "first_attempt_at",
    "delivery_id",
    "keyring",
    "lease",
    "queue",
    "at",
)

LOST_ATTEMPT_ERROR = (
    "No result was recorded (the worker stopped, or never took the job); it was claimed again when its lease expired."
)


class Attempt(models.Model):
    """One request made for a job, and what came of it."""

    # Indexed by jobs_attempt_job_outcome, which starts with it.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveIntegerField(help_text="1 for the first attempt since the job was (re)scheduled.")
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    http_version = models.CharField(max_length=16, blank=True)
    response_headers = models.JSONField(default=list, blank=True, help_text="[name, value] pairs.")
    body_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["job", "outcome"], name="jobs_attempt_job_outcome")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.job_id}: {self.outcome}"


class SigningSecret(models.Model):
    """A job owner's secret that signs their requests and callbacks (Standard Webhooks), or one of a
    keyring of theirs that signs only the jobs made for it (a topic webhook's deliveries).

    Kept encrypted (it must be read back to sign); shown to its owner once. The current
    secret has no `expires_at`; after a rotation the previous one stays valid until then.
    """

    # Indexed by jobs_signing_keyring, which starts with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="job_signing_secrets", db_index=False
    )
    keyring = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Empty: the owner's own secrets. Else the secrets of one thing of the owner's (a topic webhook).",
    )
    encrypted = models.TextField(editable=False, help_text="The secret, encrypted with a key from JOBS_SIGNING_KEY.")
    fingerprint = models.CharField(max_length=16, editable=False, help_text="Tells secrets apart; reveals nothing.")
    created_at = models.DateTimeField()
    shown_at = models.DateTimeField(null=True, blank=True, help_text="When its owner was shown it (only once).")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the current secret. Else: signs alongside the new one until then."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "keyring"],
                condition=models.Q(expires_at__isnull=True),
                name="jobs_one_current_signing_secret",
            )
        ]
        # A keyring's secrets are read with each job signed (an owner may have a keyring for each of many topic
        # webhooks): found by the keyring, not among all of the owner's secrets.
        indexes = [models.Index(fields=["user", "keyring"], name="jobs_signing_keyring")]

    def __str__(self) -> str:
        return f"signing secret {self.fingerprint} of {self.user_id}"
