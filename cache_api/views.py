"""Cache control over REST: list caches, create one, delete one (with a grant covering it)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from . import services
from .models import Cache
from .permissions import CacheControlPermission
from .serializers import CacheSerializer


class CacheViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Caches: list them, create one (`PUT`), delete one with its items."""

    serializer_class = CacheSerializer
    permission_classes = [CacheControlPermission]
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no token
            return Cache.objects.none()
        grants = [grant for grant in self.request.auth.scope_set if grant.face in ("cache", "topics")]
        queryset = Cache.objects.all()
        if any(grant.cache is None for grant in grants):
            return queryset
        return queryset.filter(name__in={grant.cache for grant in grants})

    @extend_schema(
        request=CacheSerializer,
        responses={201: CacheSerializer, 204: OpenApiResponse(description="The cache exists already.")},
        description="Create the cache (201), or do nothing when it exists (204). Limits are optional.",
    )
    def update(self, request, name: str):
        serializer = CacheSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cache, created = services.cache_create(name=name, created_by=request.user, **serializer.validated_data)
        if not created:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(CacheSerializer(cache).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, description="Delete the cache; its items and topics go with it.")
    def destroy(self, request, name: str):
        cache = Cache.objects.filter(name=name).first()
        if cache is None:
            return Response({"detail": "Cache Not Found"}, status=status.HTTP_404_NOT_FOUND)
        services.cache_delete(cache=cache)
        return Response(status=status.HTTP_204_NO_CONTENT)
