"""What the browser tests do on admin pages, in one place."""

import re
from pathlib import Path

from django.conf import settings

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the `browser` fixture fails every test, saying how to install it
    Page = expect = None

# Screenshots of every step (and of the page a failing test was on), for people and CI to look at.
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "browser"
PASSWORD = "correct horse battery staple"


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save the page (all of it, or what the window shows) as `<name>.png` in the artifacts directory."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=full_page)
    return path


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Open the admin, which sends to its login form, and submit the form with these credentials."""
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def run_action(page: Page, action: str, *rows: str) -> None:
    """On a change list: tick the rows whose text contains each of `rows`, and run the action labelled `action`."""
    for text in rows:
        result_rows(page).filter(has_text=text).locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label=action)
    page.get_by_role("button", name="Go").click()


def admin_messages(page: Page):
    """The locator of the messages the admin shows at the top of a page (success, info, warning, error)."""
    return page.locator("ul.messagelist li")


def result_rows(page: Page):
    """The locator of a change list's rows."""
    return page.locator("#result_list tbody tr")
