from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with or without the trailing slash.

    Existing clients call some paths without it (`subscriptions/{id}/resend`);
    a redirect would lose a POST body.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
