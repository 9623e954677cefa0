"""Job queues over REST: `/api/v1/job-queues/{name}`, in the /api/v1/ conventions (DRF's error shapes).

An owner's queues are theirs alone: another owner's queue does not exist for them (404).
Reads need jobs:readonly, changes jobs:readwrite, as for jobs. The rules live in
`services.queues`; the dispatcher applies a queue's settings (`services.dispatch`).
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from . import clock, selectors, services, values
from .models import JobQueue
from .permissions import JobsPermission
from .serializers import JobQueueInputSerializer, JobQueuePurgeSerializer, JobQueueSerializer


class JobQueueViewSet(viewsets.GenericViewSet):
    """Your job queues: set one up or change it (`PUT`), list, read, remove, purge."""

    serializer_class = JobQueueSerializer
    permission_classes = [JobsPermission]
    lookup_field = "name"
    pagination_class = None  # at most JOBS_MAX_QUEUES

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no token
            return JobQueue.objects.none()
        return selectors.queues_of_user(user=self.request.user, now=self.now)

    def initial(self, request, *args, **kwargs):
        self.now = clock.now()  # what the lateness of due jobs is measured against
        super().initial(request, *args, **kwargs)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": self.now}

    def get_object(self) -> JobQueue:
        name = self.kwargs["name"]
        queue = self.get_queryset().filter(name=name).first()
        if queue is None:
            raise NotFound(f"You have no queue named {name!r}; create it with PUT /api/v1/job-queues/{name}.")
        return queue

    def list(self, request):
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    def retrieve(self, request, name: str):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        request=JobQueueInputSerializer,
        responses={201: JobQueueSerializer, 200: JobQueueSerializer},
        description="Create the queue (201) or change the settings given (200; the others keep their value). "
        "A new queue's parallelism and rate are unbounded (null) and it is not paused. Needs jobs:readwrite.",
    )
    def update(self, request, name: str):
        try:
            values.queue_name(name)
        except values.InvalidValue as error:
            raise ValidationError({"name": [str(error)]}) from None
        given = JobQueueInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        _, created = services.queue_set(user=request.user, name=name, **given.validated_data)
        answer = self.get_serializer(self.get_object()).data
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(description="It still holds scheduled or running jobs; the message says what to do."),
        },
        description="Remove the queue, once it holds no scheduled or running job.",
    )
    def destroy(self, request, name: str):
        services.queue_delete(queue=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={200: JobQueuePurgeSerializer},
        description="Cancel the queue's scheduled jobs (those in flight are not recalled); answers how many.",
    )
    @action(detail=True, methods=["post"])
    def purge(self, request, name: str):
        cancelled = services.queue_purge(queue=self.get_object())
        return Response({"cancelled": cancelled})
