from django.conf import settings
from rest_framework import serializers

from .models import ApiToken
from .scopes import ScopeError, ScopeSet


class ScopesField(serializers.ListField):
    """A list of scopes, each a string (`cache:readonly:news`) or an object."""

    child = serializers.JSONField()

    def to_internal_value(self, data) -> ScopeSet:
        values = super().to_internal_value(data)
        try:
            return ScopeSet.parse(values)
        except ScopeError as error:
            raise serializers.ValidationError(str(error)) from None


class UserTokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    scopes = ScopesField(required=False, allow_empty=False)


class UserTokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class MintRequestSerializer(serializers.Serializer):
    scopes = ScopesField(allow_empty=False)
    expires_in = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Lifetime in seconds; at most TOKEN_MINT_MAX_LIFETIME (default 90000, 25 h).",
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")

    def validate_expires_in(self, value: int) -> int:
        limit = settings.TOKEN_MINT_MAX_LIFETIME
        if value > limit:
            raise serializers.ValidationError(
                f"A minted token may live at most {limit} seconds (TOKEN_MINT_MAX_LIFETIME)."
            )
        return value


class TokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its secret."""

    status = serializers.CharField(read_only=True)
    parent = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "status",
            "parent",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class MintedTokenSerializer(serializers.Serializer):
    """A minted token, as the Momento token vending machine answers, plus its id."""

    id = serializers.IntegerField()
    authToken = serializers.CharField()  # noqa: N815 - the reference's name
    expiresAt = serializers.IntegerField(help_text="Expiry as Unix epoch seconds.")  # noqa: N815
    scopes = serializers.ListField(child=serializers.DictField())
