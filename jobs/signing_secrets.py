"""The jobs face's endpoints for the owner's signing secret: see it once, rotate it, list what signs.

    GET  /jobs/signing-secret.json          the secrets that sign now (never their values)
    POST /jobs/signing-secret.json          the current secret's value, once (made if there is none)
    POST /jobs/signing-secret/rotate.json   a new secret, shown once; the old one signs for `overlap` s more

Reading needs jobs:readonly, the rest jobs:readwrite. Answers come in the face's
`{"success": {...}}` / `{"error": {...}}` envelopes. The rules live in `signing`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from . import signing
from .errors import JobConflict, JobParameterError
from .models import SigningSecret
from .schema import APIKEY, BODY_ERRORS, ERRORS, JobsErrorSerializer
from .serializers import JobTimeField, OptionalJobTimeField
from .views import JobsView


class SigningSecretSerializer(serializers.ModelSerializer):
    """What may be known of a secret without seeing it."""

    created_at = JobTimeField(read_only=True)
    shown_at = OptionalJobTimeField(read_only=True, help_text="When its value was shown (it is shown once).")
    expires_at = OptionalJobTimeField(
        read_only=True, help_text="Null for the current secret; else when this previous one stops signing."
    )
    current = serializers.SerializerMethodField()

    class Meta:
        model = SigningSecret
        fields = ["fingerprint", "created_at", "shown_at", "expires_at", "current"]

    def get_current(self, secret: SigningSecret) -> bool:
        return secret.expires_at is None


class RevealedSecretSerializer(SigningSecretSerializer):
    """A secret with its value, as it is shown once."""

    secret = serializers.SerializerMethodField(help_text="whsec_<base64>: keep it; it is not shown again.")

    class Meta(SigningSecretSerializer.Meta):
        fields = ["secret", *SigningSecretSerializer.Meta.fields]

    def get_secret(self, secret: SigningSecret) -> str:
        return self.context["secret"]


class WholeNumberField(serializers.IntegerField):
    """An integer written as one: DRF's own also takes 2.0, "2.0" and true."""

    def to_internal_value(self, data) -> int:
        if isinstance(data, (bool, float)) or (isinstance(data, str) and not re.fullmatch(r"\s*[+-]?\d+\s*", data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class RotationSerializer(serializers.Serializer):
    overlap = WholeNumberField(
        required=False,
        min_value=0,
        help_text="Seconds the previous secret still signs (0: it stops now); at most, and by default, "
        "JOBS_SIGNING_SECRET_OVERLAP.",
    )

    def validate_overlap(self, value: int) -> int:
        if value > settings.JOBS_SIGNING_SECRET_OVERLAP:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.JOBS_SIGNING_SECRET_OVERLAP}."
            )
        return value


def _overlaps_given(request) -> list:
    """Every `overlap` the request gives: in the query, then in the body (form or JSON)."""
    given = list(request.query_params.getlist("overlap"))
    data = request.data
    if not isinstance(data, Mapping):
        raise JobParameterError("body", 'The body must be a JSON object, e.g. {"overlap": 3600}.')
    if "overlap" in data:
        given += data.getlist("overlap") if hasattr(data, "getlist") else [data["overlap"]]
    return given


def _revealed(secret: SigningSecret, value: str) -> Response:
    data = RevealedSecretSerializer(secret, context={"secret": value}).data
    return Response({"success": {"signing_secret": data}})


REVEALED = inline_serializer(
    "JobSigningSecretSuccess",
    {"success": inline_serializer("JobSigningSecret", {"signing_secret": RevealedSecretSerializer()})},
)
LISTED = inline_serializer(
    "JobSigningSecretsSuccess",
    {"success": inline_serializer("JobSigningSecrets", {"signing_secrets": SigningSecretSerializer(many=True)})},
)
# No record is looked up by id here (no 404); a GET takes no parameter to be wrong (no 400).
READ_ERRORS = {code: error for code, error in ERRORS.items() if code in (401, 403)}
WRITE_ERRORS = {code: error for code, error in BODY_ERRORS.items() if code != 404}


class SigningSecretView(JobsView):
    """`/jobs/signing-secret.json`: the secrets that sign your jobs; the current one's value, once."""

    @extend_schema(
        operation_id="jobs_signing_secrets_list",
        parameters=[APIKEY],
        responses={200: LISTED, **READ_ERRORS},
        description="The secrets that sign your requests and callbacks now, the current one first; never their values.",
    )
    def get(self, request):
        secrets = signing.signing_secrets_of(user=request.user)
        return Response({"success": {"signing_secrets": SigningSecretSerializer(secrets, many=True).data}})

    @extend_schema(
        operation_id="jobs_signing_secret_reveal",
        parameters=[APIKEY],
        request=None,
        responses={
            200: REVEALED,
            409: OpenApiResponse(JobsErrorSerializer, description="It was shown already: rotate it for a new one."),
            **WRITE_ERRORS,
        },
        description=(
            "The value of your current signing secret, shown this once (made now if you have none). "
            "Afterwards only a rotation gives a secret to see."
        ),
    )
    def post(self, request):
        try:
            secret, value = signing.signing_secret_reveal(user=request.user)
        except signing.SecretAlreadyShown as error:
            raise JobConflict(
                "secret", f"{error} Rotate it to get a new one: POST /jobs/signing-secret/rotate.json."
            ) from None
        return _revealed(secret, value)


class SigningSecretRotationView(JobsView):
    """`/jobs/signing-secret/rotate.json`: a new secret, shown once; the old one signs for a while more."""

    @extend_schema(
        operation_id="jobs_signing_secret_rotate",
        parameters=[
            APIKEY,
            OpenApiParameter("overlap", int, description=RotationSerializer().fields["overlap"].help_text),
        ],
        request=RotationSerializer,
        responses={200: REVEALED, **WRITE_ERRORS},
        description=(
            "Make a new current secret and show it this once. Requests and callbacks are signed with "
            "both the new and the previous secret for `overlap` seconds, then with the new one only."
        ),
    )
    def post(self, request):
        overlap = settings.JOBS_SIGNING_SECRET_OVERLAP
        for value in _overlaps_given(request):  # each is checked; the body's wins over the query's
            rotation = RotationSerializer(data={"overlap": value})
            rotation.is_valid(raise_exception=True)
            overlap = rotation.validated_data["overlap"]
        return _revealed(*signing.signing_secret_rotate(user=request.user, overlap=overlap))
