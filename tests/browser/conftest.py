"""The admin site and the API docs driven in a real browser: Debian's Chromium through Playwright.

One browser serves every test of this folder; each test gets a fresh browser context
(no cookies) on pages of the live server, whose database is the test database.
"""

import os
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.db.models import Q
from django.test import Client

from accounts.models import User
from core import outbound

from .helpers import ARTIFACTS, PASSWORD, screenshot

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Longest wait for one thing on a page or one assertion about it (milliseconds): a step that
# works takes well under a second or two; one that does not fails after this.
STEP_TIMEOUT_MS = 10_000
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(scope="package")
def browser():
    """Chromium, launched once for all the browser tests."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it. "
            "Install it with `apt-get install chromium` (or set CHROMIUM_PATH to a Chromium binary).",
            pytrace=False,
        )
    try:
        from playwright.sync_api import Error, expect, sync_playwright
    except ImportError:
        pytest.fail(
            "The playwright package is not installed: `.venv/bin/pip install -r requirements.txt`.", pytrace=False
        )
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("*.png"):
        stale.unlink()
    # Playwright's synchronous API keeps an event loop running in this thread while it is
    # started, and Django refuses database calls from a thread with a running loop unless told.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        try:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--disable-dev-shm-usage"]
            )
        except Error as error:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {error}", pytrace=False)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, request, settings, tmp_path):
    """A page of a fresh browser context on the live server; the page is saved if the test fails."""
    settings.MEDIA_ROOT = tmp_path / "media"
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    yield page
    if request.node.stash.get(FAILED, False):
        screenshot(page, f"failed-{request.node.name}")
    context.close()


@pytest.fixture
def staff_user(transactional_db) -> User:
    """A staff member (not a superuser) who may manage content, subscriptions and API tokens."""
    user = User.objects.create_user(
        username="editor@example.org", email="editor@example.org", password=PASSWORD, is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            Q(content_type__app_label__in=["contentstore", "subscriptions"])
            | Q(content_type__app_label="accounts", content_type__model="apitoken")
        )
    )
    return user


@pytest.fixture
def admin_page(page, staff_user, live_server, settings):
    """A page logged in to the admin site as the staff member (the login form has a test of its own)."""
    client = Client()
    client.force_login(staff_user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    return page


@pytest.fixture
def sender(httpserver, settings):
    """The message sender: a local HTTP server answering each POST /outbound/ with 201 and an id."""
    httpserver.expect_request("/outbound/", method="POST").respond_with_json({"id": str(uuid.uuid4())}, status=201)
    settings.MESSAGE_SENDER_URL = httpserver.url_for("").rstrip("/")
    settings.SEND_RETRY_DELAYS = [0.01]
    yield httpserver
    outbound.close_clients()
