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
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import CursorPagination, page_size_schema
from core.parsers import MultiPartParser

from . import selectors, services
from .authentication import JobsTokenAuthentication
from .errors import JobParameterError, jobs_exception_handler
from .filters import JobFilter
from .models import JobState
from .parsers import LenientJSONParser, job_parameters, method_override
from .permissions import JobsPermission
from .serializers import (
    JobDetailSerializer,
    JobDetailSuccessSerializer,
    JobInputSerializer,
    JobListSuccessSerializer,
    JobSerializer,
    JobsErrorSerializer,
    JobsMessageSuccessSerializer,
    JobSuccessSerializer,
)

JOB_BODY = inline_serializer(
    "JobRequest",
    {
        "job": JobInputSerializer(),
        "apikey": serializers.CharField(required=False, help_text="The API key (or send it another way)."),
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

    def initial(self, request, *args, **kwargs) -> None:
        if request.method == "POST":
            override = method_override(request)
            if override is not None:
                request._request.method = override
        super().initial(request, *args, **kwargs)

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
        parameters=[APIKEY],
        request=JOB_REQUEST,
        responses={200: JobSuccessSerializer, **BODY_ERRORS},
        description=(
            "Schedule a request. Parameters as `job[uri]`, `job[at]`, `job[method]`, ... (query or form) "
            'or a JSON body `{"job": {...}, "apikey": "..."}`.'
        ),
    )
    def post(self, request):
        serializer = JobInputSerializer(data=job_parameters(request))
        serializer.is_valid(raise_exception=True)
        job = services.job_create(user=request.user, **serializer.validated_data)
        return Response({"success": {"job": JobSerializer(job).data}})


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
        parameters=[APIKEY],
        request=JOB_REQUEST,
        responses={200: JobSuccessSerializer, **BODY_ERRORS},
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
        serializer = JobInputSerializer(data=params, partial=True)
        serializer.is_valid(raise_exception=True)
        job = services.job_update(job=job, **serializer.validated_data)
        return Response({"success": {"job": JobSerializer(job).data}})

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
        job = services.job_retry(job=job)
        return Response({"success": {"job": JobSerializer(job).data}})


@csrf_exempt  # it answers 404 to every method; a CSRF check would answer an HTML 403 first
def unknown_path(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    return JsonResponse(
        {"error": {"path": f"No jobs endpoint at {request.path}: use /jobs.json or /jobs/<id>.json."}}, status=404
    )
