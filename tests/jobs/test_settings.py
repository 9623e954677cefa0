"""Without a signing key (DEBUG off and JOBS_SIGNING_KEY unset) no owner's secret can be read,
so nothing is signed: signing refuses, saying how to set the key. (That such a process does
not start at all is tested with the other settings, in tests/core/test_settings.py.)"""

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobs import signing
from jobs.models import SigningSecret


def test_nothing_is_signed_without_a_signing_key(settings):
    settings.JOBS_SIGNING_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="JOBS_SIGNING_KEY is not set"):
        signing.decrypt(SigningSecret(encrypted="stored secret", fingerprint="0123456789ab", user_id=1))
