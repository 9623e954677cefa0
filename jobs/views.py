"""The jobs API, as the Moment reference has it: `/jobs.json`, `/jobs/{id}.json`; and
`/jobs/batch.json`, which creates many jobs at once.

Parameters come as query parameters, form fields or a JSON body; the API key as
`apikey` (or any other token form); `_method=PUT|DELETE` turns a POST into that
method. Bodies are `{"success": {...}}` or `{"error": {"<parameter>": "<message>"}}`.
A create's deduplication id may also come as an `Idempotency-Key` header.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import CursorPagination
from core.parsers import MultiPartParser

from . import selectors, services, values
from .authentication import JobsTokenAuthentication
from .errors import (
    JobBatchInvalid,
    JobParameterError,
    JobParameterErrorAt,
    JobsError,
    jobs_exception_handler,
    parameter_errors,
)
from .filters import JobFilter
from .models import Job
from .parsers import (
    BatchJSONParser,
    LenientJSONParser,
    batch_job_parameters,
    batch_jobs,
    job_parameters,
    method_override,
)
from .permissions import JobsPermission
from .schema import (
    APIKEY,
    BATCH_WRITE,
    BODY_ERRORS,
    ERRORS,
    IDEMPOTENCY_KEY,
    JOB_CREATE,
    JOB_REQUEST,
    JOB_WRITE,
    LIST_PARAMETERS,
    JobDetailSuccessSerializer,
    JobListSuccessSerializer,
    JobsErrorSerializer,
    JobsMessageSuccessSerializer,
    JobSuccessSerializer,
)
from .serializers import JobDetailSerializer, JobInputSerializer, JobSerializer


def _job_input(params: dict, *, partial: bool = False) -> dict:
    """A job's parameters, checked; for an update (`partial`), only those given."""
    serializer = JobInputSerializer(data=params, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _job_answer(job: Job) -> Response:
    return Response({"success": {"job": JobSerializer(job).data}})


def _with_idempotency_key(request, fields: dict) -> dict:
    """`fields` with the `Idempotency-Key` header, when given, as their deduplication id: a 400 when
    it is not one, or when job[deduplication_id] is another."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return fields
    try:
        key = values.deduplication_id(key.strip())
    except values.InvalidValue as error:
        raise JobParameterError(IDEMPOTENCY_KEY, str(error)) from None
    given = fields.get("deduplication_id")
    if given is not None and given != key:
        raise JobParameterError(
            "deduplication_id",
            f"job[deduplication_id] ({given!r}) and the {IDEMPOTENCY_KEY} header ({key!r}) differ: "
            "send one of them, or the same id in both.",
        )
    return {**fields, "deduplication_id": key}


def _batch_jobs(request) -> list[Job]:
    """A batch's jobs, each read and checked as a single create's (not saved yet); JobBatchInvalid
    with the errors of every job that is wrong."""
    checker = JobInputSerializer()  # validates each job as `_job_input` does; its fields are made once, not per job
    jobs, errors, queues = [], {}, {}
    for index, element in enumerate(batch_jobs(request)):
        try:
            fields = checker.run_validation(batch_job_parameters(element))
            jobs.append(services.job_new(user=request.user, queues=queues, **fields))
        except (serializers.ValidationError, JobsError) as error:
            errors[index] = parameter_errors(error)
    if errors:
        raise JobBatchInvalid(errors)
    return jobs


class JobsPagination(CursorPagination):
    """The service's cursor pages, in the jobs face's envelope."""

    ordering = ("-created_at", "-id")

    def get_paginated_response(self, data) -> Response:
        return Response({"success": {"jobs": data, "next": self.get_next_link(), "previous": self.get_previous_link()}})


class JobsView(APIView):
    authentication_classes = [JobsTokenAuthentication]
    permission_classes = [JobsPermission]
    parser_classes = [LenientJSONParser, FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return jobs_exception_handler

    def perform_authentication(self, request) -> None:
        """Authenticate first (the body is read only when it must hold the key), then take `_method`
        into account before the permissions, which depend on the method."""
        super().perform_authentication(request)
        if request.method == "POST" and request.auth is not None:
            override = method_override(request)
            if override is not None:
                request._request.method = override

    def http_method_not_allowed(self, request, *args, **kwargs):
        allowed = ", ".join(method for method in self.allowed_methods if method not in ("OPTIONS", "HEAD"))
        raise MethodNotAllowed(request.method, detail=f"{request.method} is not allowed here; use {allowed}.")


class JobCollectionView(JobsView):
    """`/jobs.json`: list your jobs, schedule a job."""

    @extend_schema(
        operation_id="jobs_list",
        parameters=[APIKEY, *LIST_PARAMETERS],
        responses={200: JobListSuccessSerializer, **ERRORS},
        description="Your jobs, newest first, a page at a time; `state=failed` is the dead-letter list.",
    )
    def get(self, request):
        queryset = selectors.jobs_of_user(user=request.user)
        filterset = JobFilter(request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = JobsPagination()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(
        operation_id="jobs_create",
        **JOB_CREATE,
        description=(
            "Schedule a request. Parameters as `job[uri]`, `job[at]`, `job[method]`, ... (query or form) "
            'or a JSON body `{"job": {...}, "apikey": "..."}`. With a `deduplication_id` (or an '
            "`Idempotency-Key` header) that another create of yours gave within JOBS_DEDUPLICATION_SECONDS, "
            "nothing is created: the answer is that job (the first create's parameters win), with the header "
            "`Idempotent-Replayed: true`."
        ),
    )
    def post(self, request):
        fields = _with_idempotency_key(request, _job_input(job_parameters(request)))
        created = services.jobs_create(user=request.user, jobs=[services.job_new(user=request.user, **fields)])[0]
        response = _job_answer(created.job)
        if created.deduplicated:
            response["Idempotent-Replayed"] = "true"
        return response


class JobBatchView(JobsView):
    """`/jobs/batch.json`: schedule many requests at once, all or none."""

    parser_classes = [BatchJSONParser]

    @extend_schema(
        operation_id="jobs_batch_create",
        **BATCH_WRITE,
        description=(
            'Schedule up to JOBS_MAX_BATCH requests in one transaction: a JSON body `{"jobs": [{"job": {...}}, '
            '...], "apikey": "..."}`, each job as a JSON create takes it and checked as one. The answer lists '
            "the jobs in the same order; `deduplicated` holds the positions answered with an existing job (by "
            "its `deduplication_id`, also an earlier one of the batch). When any job is wrong nothing is "
            "created, and `errors` says what is wrong with each, by position."
        ),
    )
    def post(self, request):
        if IDEMPOTENCY_KEY in request.headers:
            raise JobParameterError(
                IDEMPOTENCY_KEY, "A batch takes no Idempotency-Key: give each job its own deduplication_id."
            )
        try:
            created = services.jobs_create(user=request.user, jobs=_batch_jobs(request))
        except JobParameterErrorAt as error:
            raise JobBatchInvalid({index: parameter_errors(error) for index in error.positions}) from None
        jobs = JobSerializer([each.job for each in created], many=True).data
        deduplicated = [index for index, each in enumerate(created) if each.deduplicated]
        return Response({"success": {"jobs": jobs, "deduplicated": deduplicated}})


class JobView(JobsView):
    """`/jobs/{id}.json`: a job with its attempts; change it; delete it."""

    @extend_schema(
        operation_id="jobs_retrieve",
        parameters=[APIKEY],
        responses={200: JobDetailSuccessSerializer, **ERRORS},
        description="The job with every attempt and its callbacks.",
    )
    def get(self, request, job_id: str):
        job = selectors.job_with_history(user=request.user, job_id=job_id)
        return Response({"success": {"job": JobDetailSerializer(job).data}})

    @extend_schema(
        operation_id="jobs_update",
        **JOB_WRITE,
        description=(
            "Change the parameters given and schedule the job afresh at its `at` (POST with `_method=PUT` "
            "does the same). A job not yet sent is never sent in its old form."
        ),
    )
    def put(self, request, job_id: str):
        job = selectors.job_of_user(user=request.user, job_id=job_id)
        params = job_parameters(request)
        if not params:
            raise JobParameterError("job", "Nothing to change: give at least one job parameter, e.g. job[at]=...")
        job = services.job_update(job=job, **_job_input(params, partial=True))
        return _job_answer(job)

    @extend_schema(
        operation_id="jobs_destroy",
        parameters=[APIKEY],
        request=None,
        responses={200: JobsMessageSuccessSerializer, **ERRORS},
        description="Delete the job (POST with `_method=DELETE` does the same); it is not sent if it has not been.",
    )
    def delete(self, request, job_id: str):
        job = selectors.job_of_user(user=request.user, job_id=job_id)
        services.job_delete(job=job)
        return Response({"success": {"message": "Job deleted"}})

    @extend_schema(
        operation_id="jobs_method_override",
        parameters=[
            APIKEY,
            OpenApiParameter(
                "_method",
                OpenApiTypes.STR,
                enum=["PUT", "DELETE"],
                required=True,
                description="The method to take this POST as (also accepted as a form or JSON field).",
            ),
        ],
        request=JOB_REQUEST,
        responses={
            200: PolymorphicProxySerializer(
                component_name="JobOverrideSuccess",
                serializers=[JobSuccessSerializer, JobsMessageSuccessSerializer],
                resource_type_field_name=None,
            ),
            405: OpenApiResponse(JobsErrorSerializer, description="A POST without `_method`."),
            **BODY_ERRORS,
        },
        description="For clients that can only POST: `_method=PUT` changes the job, `_method=DELETE` deletes it.",
    )
    def post(self, request, job_id: str):
        # Reached only without `_method`: with it, `initial` has already turned the POST into a PUT or DELETE.
        raise MethodNotAllowed(
            "POST", detail="POST to a job needs _method=PUT (change it) or _method=DELETE (delete it)."
        )


class JobRetryView(JobsView):
    """`/jobs/{id}/retry.json`: send a failed (or cancelled) job again."""

    @extend_schema(
        operation_id="jobs_retry",
        parameters=[APIKEY],
        request=None,
        responses={200: JobSuccessSerializer, 409: OpenApiResponse(JobsErrorSerializer), **ERRORS},
        description="Take a job off the dead-letter list: try it now, with a fresh retry schedule.",
    )
    def post(self, request, job_id: str):
        job = selectors.job_of_user(user=request.user, job_id=job_id)
        return _job_answer(services.job_retry(job=job))


@csrf_exempt  # it answers 404 to every method; a CSRF check would answer an HTML 403 first
def unknown_path(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    return JsonResponse(
        {"error": {"path": f"No jobs endpoint at {request.path}: use /jobs.json or /jobs/<id>.json."}}, status=404
    )
