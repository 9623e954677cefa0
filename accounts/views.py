"""The token endpoints: `user/token` for admins, and `tokens/` where a token mints,
lists and revokes itself and the tokens minted from it."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import ApiToken
from .permissions import MessagingAdminPermission, TokensPermission
from .serializers import (
    MintedTokenSerializer,
    MintRequestSerializer,
    TokenSerializer,
    UserTokenRequestSerializer,
    UserTokenResponseSerializer,
)
from .throttles import MINT_LIMITED, MintLimited


class UserTokenView(MintLimited, APIView):
    """Create a user for an email address (or use the existing one) and a new token for it."""

    permission_classes = [MessagingAdminPermission]

    @extend_schema(request=UserTokenRequestSerializer, responses={201: UserTokenResponseSerializer, 429: MINT_LIMITED})
    def post(self, request):
        serializer = UserTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _, raw = services.user_token_create(
            email=serializer.validated_data["email"],
            issuer=request.auth,
            scopes=serializer.validated_data.get("scopes"),
        )
        return Response({"token": raw}, status=status.HTTP_201_CREATED)


class TokenViewSet(
    MintLimited, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """This token and those minted from it: mint a short-lived one, list them (never
    the secret), revoke one."""

    permission_classes = [TokensPermission]
    serializer_class = TokenSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no token
            return ApiToken.objects.none()
        return services.token_family(self.request.auth).order_by("-id")

    @extend_schema(request=MintRequestSerializer, responses={201: MintedTokenSerializer, 429: MINT_LIMITED})
    def create(self, request):
        serializer = MintRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = services.token_mint(
            parent=request.auth,
            scopes=serializer.validated_data["scopes"],
            lifetime=serializer.validated_data.get("expires_in"),
            name=serializer.validated_data["name"],
        )
        body = {
            "id": token.pk,
            "authToken": raw,
            "expiresAt": int(token.expires_at.timestamp()),
            "scopes": token.scopes,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, description="Revoke the token and every token minted from it.")
    def destroy(self, request, pk=None):
        services.token_revoke(token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
