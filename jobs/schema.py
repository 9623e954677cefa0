"""The jobs API in the OpenAPI schema: its API key, the envelopes its answers come in,
its parameters and its errors.

The views answer `{"success": {...}}` or `{"error": {"<parameter>": "<message>"}}`
themselves; the serializers below only describe those shapes.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.pagination import page_size_schema
from core.schema import api_key_scheme

from .models import LISTED_KINDS, JobState
from .serializers import JobDetailSerializer, JobInputSerializer, JobSerializer

JobsApiKeyScheme = api_key_scheme(
    "jobs.authentication.JobsTokenAuthentication",
    name="jobsApiKey",
    location="query",
    parameter="apikey",
    description=(
        "The API key as the `apikey` parameter (query, form field or JSON body field), or `Authorization: Token <key>`."
    ),
)


class JobEnvelopeSerializer(serializers.Serializer):
    job = JobSerializer()


class JobSuccessSerializer(serializers.Serializer):
    success = JobEnvelopeSerializer()


class JobDetailEnvelopeSerializer(serializers.Serializer):
    job = JobDetailSerializer()


class JobDetailSuccessSerializer(serializers.Serializer):
    success = JobDetailEnvelopeSerializer()


class JobsMessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class JobsMessageSuccessSerializer(serializers.Serializer):
    success = JobsMessageSerializer()


class JobPageSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class JobListSuccessSerializer(serializers.Serializer):
    success = JobPageSerializer()


class JobsErrorSerializer(serializers.Serializer):
    error = serializers.DictField(child=serializers.CharField(), help_text='{"<parameter>": "<message>"}')


class JobBatchSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True, help_text="The job standing for each of the batch's, in its order.")
    deduplicated = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Positions answered with an existing job (or an earlier one of the batch) by their deduplication_id.",
    )


class JobBatchSuccessSerializer(serializers.Serializer):
    success = JobBatchSerializer()


class JobBatchErrorItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The job's position in the batch, from 0.")
    error = serializers.DictField(child=serializers.CharField(), help_text='{"<parameter>": "<message>"}')


class JobBatchErrorSerializer(serializers.Serializer):
    error = serializers.DictField(
        child=serializers.CharField(),
        help_text='{"jobs[<index>][<parameter>]": "<message>"}, or {"<parameter>": "<message>"} about the whole batch.',
    )
    errors = JobBatchErrorItemSerializer(
        many=True, required=False, help_text="Each job that is wrong, by position (when the batch itself is readable)."
    )


JOB_BODY = inline_serializer(
    "JobRequest",
    {
        "job": JobInputSerializer(),
        "apikey": serializers.CharField(
            required=False, allow_blank=True, help_text="The API key (or send it another way; empty: not given)."
        ),
    },
)
ERRORS = {
    code: OpenApiResponse(JobsErrorSerializer, description=description)
    for code, description in (
        (400, "A parameter is wrong; the message says how."),
        (401, "No API key, or an unknown, expired or revoked one."),
        (403, "The key lacks the jobs scope needed."),
        (404, "No such job (or not yours)."),
    )
}
# What a request with a body may also be told.
BODY_ERRORS = {
    **ERRORS,
    413: OpenApiResponse(JobsErrorSerializer, description="The body is over MAX_REQUEST_BODY_BYTES."),
}
APIKEY = OpenApiParameter("apikey", OpenApiTypes.STR, description="The API key (any token form works).")
LIST_PARAMETERS = [
    OpenApiParameter(
        "state",
        OpenApiTypes.STR,
        enum=JobState.values,
        many=True,
        description="Only jobs in this state (repeat for several); `failed` is the dead-letter list.",
    ),
    OpenApiParameter(
        "kind",
        OpenApiTypes.STR,
        enum=[kind for kind, _ in LISTED_KINDS],
        description="`recurring`: only recurring jobs; `request`: only one-off jobs and firings of recurring ones.",
    ),
    OpenApiParameter("recurring_job", OpenApiTypes.UUID, description="Only the firings of this recurring job."),
    OpenApiParameter("at_after", OpenApiTypes.DATETIME, description="Only jobs due at or after this time."),
    OpenApiParameter("at_before", OpenApiTypes.DATETIME, description="Only jobs due before this time."),
    OpenApiParameter("page_size", page_size_schema(), description="Jobs per page."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The page, from a `next` or `previous` link."),
]
# A job's parameters come as JSON, or as form fields (`job[uri]`, ...).
JOB_REQUEST = {
    "application/json": JOB_BODY,
    "application/x-www-form-urlencoded": OpenApiTypes.OBJECT,
    "multipart/form-data": OpenApiTypes.OBJECT,
}
# What an operation that writes a job's parameters takes and answers (create, update).
JOB_WRITE = {"parameters": [APIKEY], "request": JOB_REQUEST, "responses": {200: JobSuccessSerializer, **BODY_ERRORS}}
IDEMPOTENCY_KEY = "Idempotency-Key"
# A create also takes its deduplication id as a header.
JOB_CREATE = {
    **JOB_WRITE,
    "parameters": [
        APIKEY,
        OpenApiParameter(
            IDEMPOTENCY_KEY,
            OpenApiTypes.STR,
            location=OpenApiParameter.HEADER,
            description=(
                "The job's deduplication_id as a header (1 to 128 visible ASCII characters); "
                "when job[deduplication_id] is given too, they must be the same."
            ),
        ),
    ],
}
BATCH_JOB = inline_serializer("JobBatchItem", {"job": JobInputSerializer()})
BATCH_WRITE = {
    "parameters": [APIKEY],
    "request": {
        "application/json": inline_serializer(
            "JobBatchCreate",
            {
                "jobs": serializers.ListField(child=BATCH_JOB, help_text="At most JOBS_MAX_BATCH jobs."),
                "apikey": serializers.CharField(
                    required=False,
                    allow_blank=True,
                    help_text="The API key (or send it another way; empty: not given).",
                ),
            },
        )
    },
    "responses": {
        200: JobBatchSuccessSerializer,
        **{code: response for code, response in ERRORS.items() if code != 404},
        400: OpenApiResponse(
            JobBatchErrorSerializer,
            description="The batch cannot be read or holds too many jobs, or some jobs are wrong: nothing was created.",
        ),
        413: OpenApiResponse(JobsErrorSerializer, description="The body is over JOBS_MAX_BATCH_BYTES."),
    },
}
