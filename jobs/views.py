"""The jobs API, as the Moment reference has it: `/jobs.json`, `/jobs/{id}.json`.

Parameters come as query parameters, form fields or a JSON body; the API key as
`apikey` (or any other token form); `_method=PUT|DELETE` turns a POST into that
method. Bodies are `{"success": {...}}` or `{"error": {"<parameter>": "<message>"}}`.
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

from . import selectors, services
from .authentication import JobsTokenAuthentication
from .errors import JobParameterError, jobs_exception_handler
from .filters import JobFilter
from .models import Job
from .parsers import LenientJSONParser, job_parameters, method_override
from .permissions import JobsPermission
from .schema import (
    APIKEY,
    BODY_ERRORS,
    ERRORS,
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
        **JOB_WRITE,
        description=(
            "Schedule a request. Parameters as `job[uri]`, `job[at]`, `job[method]`, ... (query or form) "
            'or a JSON body `{"job": {...}, "apikey": "..."}`.'
        ),
    )
    def post(self, request):
        job = services.job_create(user=request.user, **_job_input(job_parameters(request)))
        return _job_answer(job)


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
