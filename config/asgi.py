"""The ASGI entry point: the web process serves everything through this.

The cache data path (`/cache/`) and topics (`/topics/`) are lean ASGI apps that
never enter Django's request handler (see DESIGN.md); Django serves the admin,
the REST APIs and the docs.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()  # sets Django up: import the lean apps after it

from core.startup import refuse_without_secrets  # noqa: E402

refuse_without_secrets()

from cache_api.asgi import cache_app  # noqa: E402
from core.asgi import PrefixRouter  # noqa: E402
from topics.asgi import topics_app  # noqa: E402

# Everything loaded so far lives as long as the process: keep it out of the garbage
# collector's full passes, which otherwise walk it all and stall requests (p99).
gc.freeze()

application = PrefixRouter({"/cache/": cache_app, "/topics/": topics_app}, default=django_application)
