"""Without a signing key (DEBUG off and JOBS_SIGNING_KEY unset) no request is signed:
signing refuses, saying how to set the key. (That such a process does not start at
all is tested with the other settings, in tests/core/test_settings.py.)"""

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobs.signing import signature_header


def test_nothing_is_signed_without_a_signing_key(settings):
    settings.JOBS_SIGNING_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="JOBS_SIGNING_KEY is not set"):
        signature_header(timestamp=1, body=b"{}")
