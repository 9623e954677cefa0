"""Binary content on S3-compatible object storage (MEDIA_STORAGE=s3), so that web machines share no volume.

django-storages' S3 backend, held to what the content store promises on disk: a new
upload never replaces another's object, each object is served with the media type of
its own extension (never the type the uploading client claimed), every request to the
bucket is bounded in time, and a bucket that cannot be reached is a 503, not a 500.
"""

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage

from .errors import FileStorageUnavailable
from .validators import guess_media_type

# Attempts of one request to the bucket, the first included.
ATTEMPTS = 2


class ObjectStorage(S3Storage):
    file_overwrite = False  # two uploads in the same microsecond get two objects, as on disk

    def __init__(self, **options):
        super().__init__(**options)
        bounds = Config(
            signature_version="s3v4",  # what every region and S3-compatible service accepts (the old one is not)
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
        )
        self.client_config = self.client_config.merge(bounds)

    def get_default_settings(self) -> dict:
        # Seconds a request to the bucket may take to connect, and to answer (MEDIA_STORAGE_TIMEOUT).
        return {**super().get_default_settings(), "timeout": 10}

    def get_object_parameters(self, name: str) -> dict:
        media_type = guess_media_type(name) or "application/octet-stream"
        return {**super().get_object_parameters(name), "ContentType": media_type}

    def save(self, name, content, max_length=None):
        try:
            return super().save(name, content, max_length=max_length)
        except (BotoCoreError, ClientError) as error:
            raise FileStorageUnavailable.because(error) from error

    def delete(self, name) -> None:
        try:
            super().delete(name)
        except (BotoCoreError, ClientError) as error:
            raise FileStorageUnavailable.because(error) from error
