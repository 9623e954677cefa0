"""DRF's multipart parser, refusing a body in which no part has a field name.

Every part of a multipart/form-data body names its field in a Content-Disposition header
(RFC 7578). Django skips a part without one, so a malformed body parsed as an empty form
and the request succeeded doing nothing; here it is a 400 that says what is wrong.
"""

from django.utils.http import parse_header_parameters
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        if not result.data and not result.files:
            request = parser_context["request"]
            boundary = parse_header_parameters(media_type or "")[1].get("boundary", "")
            closing = len(f"--{boundary}--\r\n")  # an empty form is the closing delimiter alone
            if int(request.META.get("CONTENT_LENGTH") or 0) > closing + 2:
                raise ParseError(
                    "The multipart body has no part with a field name: each part needs "
                    '"Content-Disposition: form-data; name=..." and a blank line before its value.'
                )
        return result
