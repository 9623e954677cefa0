from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, extend_schema_view
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_token
from accounts.permissions import MessagingPermission
from accounts.scopes import describe_missing
from accounts.services import token_authenticate
from contentstore.models import Schedule
from core.addresses import address_within, parse_networks
from core.errors import AuthenticationError
from core.pagination import CursorPagination
from core.schema import FIELD_ERRORS

from . import metrics, selectors, services
from .filters import SubscriptionFilter
from .permissions import FindBehindSubscriptions, ViewBehindSubscriptions
from .serializers import (
    AcceptedSerializer,
    AcceptedTaskSerializer,
    BehindSubscriptionSerializer,
    MetricsAvailableSerializer,
    MetricsStartedSerializer,
    RequeuedSerializer,
    ScheduleSendAcceptedSerializer,
    SendRefusedSerializer,
    SubscriptionRequestSerializer,
    SubscriptionSendFailureSerializer,
    SubscriptionSerializer,
)

DATA_REQUIRED = {"data": ["This field is required."]}


class ScheduleSendView(APIView):
    """`POST schedule/{id}/send/`: a content store schedule's send, now."""

    permission_classes = [MessagingPermission]

    @extend_schema(request=None, responses={202: ScheduleSendAcceptedSerializer})
    def post(self, request, pk=None):
        """Queue the send of this schedule now (it also fires by itself on its cron)."""
        services.schedule_send_queue(schedule=get_object_or_404(Schedule, pk=pk))
        return Response({"accepted": True}, status=status.HTTP_202_ACCEPTED)


def _not_found(pk: str) -> Response:
    return Response(
        {"accepted": False, "reason": f"Cannot find subscription with ID {pk}"}, status=status.HTTP_400_BAD_REQUEST
    )


@extend_schema_view(
    create=extend_schema(responses={201: SubscriptionSerializer, 400: FIELD_ERRORS}),
    update=extend_schema(responses={200: SubscriptionSerializer, 400: FIELD_ERRORS}),
    partial_update=extend_schema(responses={200: SubscriptionSerializer, 400: FIELD_ERRORS}),
)
class SubscriptionViewSet(viewsets.ModelViewSet):
    """Subscriptions: an identity's place in a message set, sent its next message on its schedule. Newest first."""

    permission_classes = [MessagingPermission]
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    pagination_class = CursorPagination
    ordering_fields = ["created_at", "updated_at"]
    ordering = ["-created_at"]
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return selectors.subscription_list()

    def perform_create(self, serializer) -> None:
        serializer.instance = services.subscription_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.subscription_update(
            subscription=serializer.instance, updated_by=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance) -> None:
        services.subscription_delete(subscription=instance)

    @extend_schema(
        request=SubscriptionRequestSerializer,
        responses={201: AcceptedSerializer, 400: FIELD_ERRORS},
        filters=False,
        description=(
            'The Hub\'s webhook for a registration that needs a subscription: `{"hook": {...}, "data": '
            "{subscription fields}}`. `metadata` defaults to {}, `initial_sequence_number` to `next_sequence_number`."
        ),
    )
    @action(detail=False, methods=["post"], url_path="request", url_name="request", filterset_class=None)
    def hub_request(self, request):
        body = request.data
        if not isinstance(body, dict) or "data" not in body:
            return Response(DATA_REQUIRED, status=status.HTTP_400_BAD_REQUEST)
        if not isinstance(body["data"], dict):
            return Response({"data": ["Must be a JSON object of subscription fields."]}, status=400)
        serializer = SubscriptionSerializer(
            data=services.subscription_request_defaults(body["data"]), context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        services.subscription_create(created_by=request.user, via="hub", **serializer.validated_data)
        return Response({"accepted": True}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: AcceptedSerializer, 400: SendRefusedSerializer}, filters=False)
    @action(detail=True, methods=["post"], filterset_class=None)
    def send(self, request, pk=None):
        """Send the subscription its next message now (asynchronously): 202, or 400 saying why not."""
        subscription = selectors.subscription_find(pk)
        if subscription is None:
            return _not_found(pk)
        refusal = services.subscription_send_queue(subscription=subscription)
        if refusal is not None:
            return Response({"accepted": False, "reason": refusal}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"accepted": True}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: AcceptedSerializer, 400: SendRefusedSerializer}, filters=False)
    @action(detail=True, methods=["post"], filterset_class=None)
    def resend(self, request, pk=None):
        """Send the subscription's current message again (`"resend": "true"`), without advancing it."""
        subscription = selectors.subscription_find(pk)
        if subscription is None:
            return _not_found(pk)
        services.resend_request_create(subscription=subscription)
        return Response({"accepted": True}, status=status.HTTP_202_ACCEPTED)


class FailedTaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sends that failed (after their retries), newest first. `POST` requeues them all."""

    permission_classes = [MessagingPermission]
    serializer_class = SubscriptionSendFailureSerializer
    pagination_class = CursorPagination
    queryset = selectors.send_failure_list()
    ordering_fields = ["id"]
    ordering = ["-id"]

    @extend_schema(request=None, responses={201: RequeuedSerializer})
    def create(self, request):
        """Send again what each failure was for (if its subscription is still at that message)."""
        services.subscription_failures_requeue_all_queue()
        return Response({"requeued_failed_tasks": True}, status=status.HTTP_201_CREATED)


class BehindSubscriptionViewSet(viewsets.ReadOnlyModelViewSet):
    """Subscriptions found behind where their schedule says they should be, newest first.

    Listing needs the user permission `subscriptions.view_behindsubscription`;
    starting a search, `subscriptions.can_find_behind_subscriptions`.
    """

    permission_classes = [ViewBehindSubscriptions]
    serializer_class = BehindSubscriptionSerializer
    pagination_class = CursorPagination
    queryset = selectors.behind_subscription_list()
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    @extend_schema(request=None, responses={202: AcceptedTaskSerializer}, filters=False)
    @action(detail=False, methods=["post"], permission_classes=[FindBehindSubscriptions])
    def find_behind_subscriptions(self, request):
        """Check every ready subscription and record those behind (asynchronously)."""
        task_id = services.behind_subscriptions_find_queue()
        return Response({"accepted": True, "task_id": task_id}, status=status.HTTP_202_ACCEPTED)


class SendEstimateView(APIView):
    permission_classes = [MessagingPermission]

    @extend_schema(request=None, responses={202: AcceptedTaskSerializer})
    def post(self, request):
        """Record today's estimated sends per message set (asynchronously)."""
        task_id = services.estimated_sends_queue()
        return Response({"accepted": True, "task_id": task_id}, status=status.HTTP_202_ACCEPTED)


class MetricsView(APIView):
    permission_classes = [MessagingPermission]

    @extend_schema(responses=MetricsAvailableSerializer)
    def get(self, request):
        """The names of the metrics this service offers (in the Prometheus format at `/metrics`)."""
        return Response({"metrics_available": metrics.metric_names()})

    @extend_schema(request=None, responses={201: MetricsStartedSerializer})
    def post(self, request):
        """Compute the scheduled figures now (today's send estimates)."""
        services.estimated_sends_queue()
        return Response({"scheduled_metrics_initiated": True}, status=status.HTTP_201_CREATED)


def _unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = "Token"
    return response


def _scrape_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the caller may read /metrics: from METRICS_ALLOWED_NETWORKS, or with a messaging admin token."""
    if address_within(request.META.get("REMOTE_ADDR", ""), parse_networks(settings.METRICS_ALLOWED_NETWORKS)):
        return None
    try:
        raw = request_token(request)
        if raw is None:
            return _unauthorized("Authentication credentials were not provided.")
        token = token_authenticate(raw)
    except AuthenticationError as error:
        return _unauthorized(str(error))
    if not token.scope_set.allows("messaging", "admin"):
        return JsonResponse({"detail": describe_missing("messaging", "admin")}, status=403)
    return None


@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """The send pipeline's figures in the Prometheus exposition format, for operators."""
    refusal = _scrape_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)
