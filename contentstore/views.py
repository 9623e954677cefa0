"""The content store's REST API: schedules, message sets, messages and files, written through the services."""

from collections.abc import Callable

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import parsers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import MessagingPermission
from core.pagination import CursorPagination
from core.parsers import MultiPartParser
from core.schema import FIELD_ERRORS, VALIDATION_ERRORS

from . import selectors, services
from .filters import MessageFilter, MessageSetFilter
from .models import BinaryContent, Message, MessageSet, Schedule
from .serializers import (
    BinaryContentSerializer,
    MessageContentSerializer,
    MessageSerializer,
    MessageSetMessagesSerializer,
    MessageSetSerializer,
    ScheduleSerializer,
)

# Bytes of a multipart body that are not the file (boundaries, headers, other fields).
MULTIPART_OVERHEAD = 65_536

IN_USE = OpenApiResponse(
    response=VALIDATION_ERRORS, description="Refused while other records use it: `non_field_errors` names them."
)


def _content_schema(serializer, *, on_delete: str, refusable: bool = True):
    """The OpenAPI shapes of a content viewset's writes, with their 400s."""
    deleted = {204: None, 400: IN_USE} if refusable else {204: None}
    return extend_schema_view(
        create=extend_schema(responses={201: serializer, 400: FIELD_ERRORS}),
        update=extend_schema(responses={200: serializer, 400: FIELD_ERRORS}),
        partial_update=extend_schema(responses={200: serializer, 400: FIELD_ERRORS}),
        destroy=extend_schema(description=on_delete, responses=deleted),
    )


class ContentViewSet(viewsets.ModelViewSet):
    """CRUD over one content model; its writes go through the services the subclass names in `writes`."""

    permission_classes = [MessagingPermission]
    pagination_class = CursorPagination
    lookup_value_regex = r"\d+"
    ordering_fields = ["id"]
    ordering = ["id"]
    writes: services.Writes
    # A queryset of its own for an action that shows more than the record (related rows fetched with it).
    action_querysets: dict[str, Callable] = {}

    def get_queryset(self):
        queryset = self.action_querysets.get(self.action)
        return queryset() if queryset else super().get_queryset()

    def update_instance(self, instance, data: dict):
        return self.writes.update_record(instance, data)

    def perform_create(self, serializer) -> None:
        serializer.instance = self.writes.create(**serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = self.update_instance(serializer.instance, serializer.validated_data)

    def perform_destroy(self, instance) -> None:
        self.writes.delete_record(instance)


@_content_schema(
    ScheduleSerializer,
    on_delete="Deletes the schedule and its periodic task; refused while message sets or subscriptions use it.",
)
class ScheduleViewSet(ContentViewSet):
    """Schedules: cron fields read in SCHEDULE_TIME_ZONE. Each fires by itself through its periodic task."""

    queryset = Schedule.objects.all()
    serializer_class = ScheduleSerializer

    writes = services.SCHEDULE_WRITES


@_content_schema(
    MessageSetSerializer, on_delete="Deletes the set and its messages; refused while subscriptions use it."
)
class MessageSetViewSet(ContentViewSet):
    """Message sets: series of messages, one sent per fire of a subscription's schedule."""

    queryset = MessageSet.objects.all()
    serializer_class = MessageSetSerializer
    filterset_class = MessageSetFilter

    writes = services.MESSAGESET_WRITES
    action_querysets = {"messages": selectors.messagesets_with_messages}

    @extend_schema(responses=MessageSetMessagesSerializer, filters=False)
    @action(detail=True, methods=["get"], serializer_class=MessageSetMessagesSerializer, filterset_class=None)
    def messages(self, request, pk=None):
        """The set with its messages (as `message/{id}/content` shows them), by sequence number."""
        return self.retrieve(request)


@_content_schema(MessageSerializer, on_delete="Deletes the message.", refusable=False)
class MessageViewSet(ContentViewSet):
    """Messages: text, a file or both, at a sequence number in a language of a set."""

    queryset = Message.objects.all()
    serializer_class = MessageSerializer
    filterset_class = MessageFilter

    writes = services.MESSAGE_WRITES
    action_querysets = {"content": lambda: Message.objects.select_related("binary_content")}

    @extend_schema(responses=MessageContentSerializer, filters=False)
    @action(detail=True, methods=["get"], serializer_class=MessageContentSerializer, filterset_class=None)
    def content(self, request, pk=None):
        """The message without its metadata, its file nested as `{id, content}`."""
        return self.retrieve(request)


def _refuse_oversized_body(request) -> None:
    """Answer 400 before reading a body that cannot hold an allowed file."""
    limit = settings.BINARY_CONTENT_MAX_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit + MULTIPART_OVERHEAD:
        raise ValidationError(
            {"content": [f"The upload is larger than the {limit} bytes allowed (BINARY_CONTENT_MAX_BYTES)."]}
        )


@_content_schema(BinaryContentSerializer, on_delete="Deletes the record and its file; refused while messages use it.")
class BinaryContentViewSet(ContentViewSet):
    """Files (audio, images) for messages: multipart upload in the field `content`."""

    queryset = BinaryContent.objects.all()
    serializer_class = BinaryContentSerializer
    parser_classes = [MultiPartParser, parsers.FormParser]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("POST", "PUT", "PATCH"):
            _refuse_oversized_body(request)

    writes = services.BINARY_CONTENT_WRITES

    def update_instance(self, instance, data):
        return super().update_instance(instance, data) if "content" in data else instance


class MessageSetLanguagesView(APIView):
    permission_classes = [MessagingPermission]

    @extend_schema(
        responses={
            200: {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "example": {"1": ["afr", "eng"], "2": ["eng"]},
            }
        }
    )
    def get(self, request):
        """The languages of each message set's messages, sorted: `{"<messageset id>": ["afr", "eng"]}`."""
        return Response({str(pk): langs for pk, langs in selectors.messageset_languages().items()})
