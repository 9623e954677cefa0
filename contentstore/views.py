from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, viewsets
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


class ContentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """CRUD over one content model; its writes go through the services named by the subclass."""

    permission_classes = [MessagingPermission]
    pagination_class = CursorPagination
    lookup_value_regex = r"\d+"
    ordering_fields = ["id"]
    ordering = ["id"]

    def create_instance(self, data: dict):
        raise NotImplementedError

    def update_instance(self, instance, data: dict):
        raise NotImplementedError

    def delete_instance(self, instance) -> None:
        raise NotImplementedError

    def perform_create(self, serializer) -> None:
        serializer.instance = self.create_instance(serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = self.update_instance(serializer.instance, serializer.validated_data)

    def perform_destroy(self, instance) -> None:
        self.delete_instance(instance)


@_content_schema(
    ScheduleSerializer,
    on_delete="Deletes the schedule and its periodic task; refused while message sets or subscriptions use it.",
)
class ScheduleViewSet(ContentViewSet):
    """Schedules: cron fields read in SCHEDULE_TIME_ZONE. Each fires by itself through its periodic task."""

    queryset = Schedule.objects.all()
    serializer_class = ScheduleSerializer

    def create_instance(self, data):
        return services.schedule_create(**data)

    def update_instance(self, instance, data):
        return services.schedule_update(schedule=instance, **data)

    def delete_instance(self, instance):
        services.schedule_delete(schedule=instance)


@_content_schema(
    MessageSetSerializer, on_delete="Deletes the set and its messages; refused while subscriptions use it."
)
class MessageSetViewSet(ContentViewSet):
    """Message sets: series of messages, one sent per fire of a subscription's schedule."""

    queryset = MessageSet.objects.all()
    serializer_class = MessageSetSerializer
    filterset_class = MessageSetFilter

    def get_queryset(self):
        if self.action == "messages":
            return selectors.messagesets_with_messages()
        return super().get_queryset()

    def create_instance(self, data):
        return services.messageset_create(**data)

    def update_instance(self, instance, data):
        return services.messageset_update(messageset=instance, **data)

    def delete_instance(self, instance):
        services.messageset_delete(messageset=instance)

    @extend_schema(responses=MessageSetMessagesSerializer, filters=False)
    @action(detail=True, methods=["get"], serializer_class=MessageSetMessagesSerializer, filterset_class=None)
    def messages(self, request, pk=None):
        """The set with its messages (as `message/{id}/content` shows them), by sequence number."""
        return Response(self.get_serializer(self.get_object()).data)


@_content_schema(MessageSerializer, on_delete="Deletes the message.", refusable=False)
class MessageViewSet(ContentViewSet):
    """Messages: text, a file or both, at a sequence number in a language of a set."""

    queryset = Message.objects.all()
    serializer_class = MessageSerializer
    filterset_class = MessageFilter

    def get_queryset(self):
        if self.action == "content":
            return Message.objects.select_related("binary_content")
        return super().get_queryset()

    def create_instance(self, data):
        return services.message_create(**data)

    def update_instance(self, instance, data):
        return services.message_update(message=instance, **data)

    def delete_instance(self, instance):
        services.message_delete(message=instance)

    @extend_schema(responses=MessageContentSerializer, filters=False)
    @action(detail=True, methods=["get"], serializer_class=MessageContentSerializer, filterset_class=None)
    def content(self, request, pk=None):
        """The message without its metadata, its file nested as `{id, content}`."""
        return Response(self.get_serializer(self.get_object()).data)


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

    def create_instance(self, data):
        return services.binary_content_create(**data)

    def update_instance(self, instance, data):
        if "content" not in data:
            return instance
        return services.binary_content_update(binary_content=instance, content=data["content"])

    def delete_instance(self, instance):
        services.binary_content_delete(binary_content=instance)


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
