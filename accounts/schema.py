"""The OpenAPI description of the token every API takes."""

from core.schema import api_key_scheme

TokenAuthenticationScheme = api_key_scheme(
    "accounts.authentication.TokenAuthentication",
    name="tokenAuth",
    location="header",
    parameter="Authorization",
    description="`Token <token>`, `Bearer <token>` or the token alone.",
)
