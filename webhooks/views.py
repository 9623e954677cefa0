"""Topic webhooks over REST, under their cache: `/api/v1/caches/{cache}/webhooks/{name}`.

Every request needs the jobs face's right (read to read, write to change) and a topics
grant with publish rights over the webhook's topic; webhooks of topics the token may
not publish to do not exist for it (404). The rules live in `services`.
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.scopes import describe_missing
from cache_api.models import Cache

from . import services
from .models import TopicWebhook, WebhookDelivery
from .permissions import WebhooksPermission, topic_allowed
from .serializers import (
    CreatedWebhookSerializer,
    DeliverySerializer,
    WebhookInputSerializer,
    WebhookRotationSerializer,
    WebhookSerializer,
)


class WebhookViewSet(viewsets.GenericViewSet):
    """A cache's topic webhooks: set one (`PUT`), list, read, remove, rotate its secret, list its deliveries."""

    serializer_class = WebhookSerializer
    permission_classes = [WebhooksPermission]
    lookup_field = "name"
    pagination_class = None

    def cache(self) -> Cache:
        cache = Cache.objects.filter(name=self.kwargs["cache"]).first()
        if cache is None:
            raise NotFound("Cache Not Found")
        return cache

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no token
            return TopicWebhook.objects.none()
        return TopicWebhook.objects.filter(cache=self.cache()).select_related("cache")

    def get_object(self) -> TopicWebhook:
        webhook = get_object_or_404(self.get_queryset(), name=self.kwargs["name"])
        if not topic_allowed(self.request.auth, cache=webhook.cache.name, topic=webhook.topic):
            raise NotFound()
        return webhook

    def list(self, request, cache: str):
        allowed = [w for w in self.get_queryset() if topic_allowed(request.auth, cache=cache, topic=w.topic)]
        return Response(WebhookSerializer(allowed, many=True).data)

    def retrieve(self, request, cache: str, name: str):
        return Response(WebhookSerializer(self.get_object()).data)

    @extend_schema(
        request=WebhookInputSerializer,
        responses={201: CreatedWebhookSerializer, 200: WebhookSerializer},
        description="Create the webhook (201, with its secret shown this once) or replace its topic and "
        "destination (200; it keeps its secret). Needs publish rights over the topic and jobs:readwrite.",
    )
    def update(self, request, cache: str, name: str):
        if len(name) > 128:
            raise ValidationError({"name": ["Ensure this field has no more than 128 characters."]})
        given = WebhookInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        topic = given.validated_data["topic"]
        if not topic_allowed(request.auth, cache=cache, topic=topic):
            raise PermissionDenied(describe_missing("topics", "publish", cache=cache, topic=topic))
        existing = self.get_queryset().filter(name=name).first()
        if existing is not None and not topic_allowed(request.auth, cache=cache, topic=existing.topic):
            raise PermissionDenied(describe_missing("topics", "publish", cache=cache, topic=existing.topic))
        try:
            webhook, secret = services.webhook_set(
                cache=self.cache(), name=name, user=request.user, **given.validated_data
            )
        except services.WebhookLimitReached as error:
            raise ValidationError({"name": [str(error)]}) from None
        if secret is None:
            return Response(WebhookSerializer(webhook).data)
        data = CreatedWebhookSerializer(webhook, context={"secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, description="Remove the webhook; deliveries not yet sent never are.")
    def destroy(self, request, cache: str, name: str):
        services.webhook_delete(webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=WebhookRotationSerializer,
        responses={200: CreatedWebhookSerializer},
        description="A new secret, shown this once. Deliveries are signed with both the new and the "
        "previous secret for `overlap` seconds, then with the new one only.",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, cache: str, name: str):
        webhook = self.get_object()
        given = WebhookRotationSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        overlap = given.validated_data.get("overlap", settings.JOBS_SIGNING_SECRET_OVERLAP)
        _, secret = services.webhook_rotate_secret(webhook=webhook, overlap=overlap)
        return Response(CreatedWebhookSerializer(webhook, context={"secret": secret}).data)

    @extend_schema(responses={200: DeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, cache: str, name: str):
        """The webhook's deliveries, newest first, each with its attempts; `?state=failed` for its dead letters."""
        webhook = self.get_object()
        deliveries = (
            WebhookDelivery.objects.filter(webhook=webhook).select_related("job").prefetch_related("job__attempts")
        )
        state = request.query_params.get("state")
        if state:
            deliveries = deliveries.filter(job__state=state)
        limit = settings.API_MAX_PAGE_SIZE
        return Response(DeliverySerializer(deliveries[:limit], many=True).data)
