from django.core.exceptions import ValidationError


class ContentInUse(ValidationError):
    """A record cannot be deleted while others use it (400, the message says which)."""


class MessageImportError(Exception):
    """A CSV import that was refused; `errors` lists every problem, each naming its row."""

    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} problem(s) found; nothing was imported.")
        self.errors = errors
