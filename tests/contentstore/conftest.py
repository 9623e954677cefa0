import pytest

from harness.object_storage import object_store as started_object_store


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Uploads go to a fresh directory per test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """A local S3-compatible store (moto's server) for the session; each test makes its own bucket."""
    with started_object_store(log=tmp_path_factory.mktemp("object-store") / "server.log") as store:
        yield store
