import logging

from django.core.exceptions import ValidationError

from core.exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)


class ContentInUse(ValidationError):
    """A record cannot be deleted while others use it (400, the message says which)."""


class MessageImportError(Exception):
    """A CSV import that was refused; `errors` lists every problem, each naming its row."""

    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} problem(s) found; nothing was imported.")
        self.errors = errors


class FileStorageUnavailable(ServiceUnavailable):
    """The object storage holding binary content could not be reached or refused a request (503)."""

    @classmethod
    def because(cls, error: Exception) -> "FileStorageUnavailable":
        logger.warning("File storage unavailable: %s", error)
        return cls("The file storage is unavailable; try again shortly.")
