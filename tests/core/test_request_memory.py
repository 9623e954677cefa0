"""A request lets go of what it parsed from its body when its response is ready, not when the garbage collector
next walks the reference cycles a request sits in."""

import gc
import json
import os
import subprocess
import sys
import uuid

import pytest

from core.startup import WEB_YOUNG_GENERATION_THRESHOLD

from .serving import serve

REQUESTS = 3


def parsed_still_held(marker: str) -> int:
    """The lists still alive whose first item starts with `marker`: what a request parsed from a body of such items."""
    return sum(1 for held in gc.get_objects() if type(held) is list and held and str(held[0]).startswith(marker))


@pytest.mark.django_db(transaction=True)
def test_what_a_refused_request_parsed_is_not_held_until_the_collector_runs(make_token):
    """Each POST carries a thousand values that the view parses and its serializer refuses (400): none may outlive
    the request while the collector does not run (the REST request, the view, the response and the serializer are
    reference cycles, which hold them until it does)."""
    _, token = make_token("messaging:write")
    marker = f"held-{uuid.uuid4().hex}-"
    body = json.dumps({"short_name": "x", "notes": [f"{marker}{n}" for n in range(1000)]})  # a list, not text
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    async def post(client) -> list[int]:
        return [
            (await client.post("/api/v1/messageset/", headers=headers, content=body)).status_code
            for _ in range(REQUESTS)
        ]

    gc.collect()
    gc.disable()
    try:
        statuses = serve(post)
        held = parsed_still_held(marker)
    finally:
        gc.enable()

    assert statuses == [400] * REQUESTS
    assert held == 0


def test_a_web_process_sizes_the_young_generation_past_its_requests_in_flight():
    """What a web process sets when it loads the application: checked in a process of its own, as a server starts."""
    started = subprocess.run(
        [sys.executable, "-c", "import gc, config.asgi; print(gc.get_threshold()[0], gc.get_freeze_count() > 0)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert started.stdout.split() == [str(WEB_YOUNG_GENERATION_THRESHOLD), "True"]
