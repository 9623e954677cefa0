"""API tokens in the admin: created with the secret shown once, then revoked, as the API sees it."""

import re

import httpx

from accounts.models import ApiToken, User

from .helpers import admin_messages, expect, result_rows, run_action, screenshot

ADMIN = "/admin/accounts/apitoken"


def api_status(live_server, raw: str) -> tuple[int, dict]:
    response = httpx.get(f"{live_server.url}/api/v1/schedule/", headers={"Authorization": f"Token {raw}"})
    return response.status_code, response.json()


def test_a_staff_member_creates_an_api_token_and_revokes_it(admin_page, live_server):
    page = admin_page
    member = User.objects.create_user(username="reports@example.org", grants=["messaging:read"])

    page.goto(f"{ADMIN}/add/")
    page.get_by_label("User").fill(str(member.pk))
    page.get_by_label("Name").fill("weekly reports")
    page.get_by_label("Scopes").fill("messaging:read")
    page.get_by_role("button", name="Save", exact=True).click()

    created = admin_messages(page).filter(has_text="Token created")
    expect(created).to_contain_text("copy it now, it is not shown again")
    raw = re.search(r"Token created: ([0-9a-f]{40})", created.inner_text()).group(1)
    row = result_rows(page).filter(has_text="weekly reports")
    expect(row).to_contain_text(raw[:8])
    expect(row).to_contain_text("messaging:read")
    expect(row).to_contain_text("active")
    screenshot(page, "08-token-created")
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (member, "weekly reports", raw[:8])
    assert api_status(live_server, raw)[0] == 200

    run_action(page, "Revoke selected tokens (and the tokens minted from them)", "weekly reports")

    expect(admin_messages(page)).to_contain_text("Revoked 1 token(s) at")
    expect(result_rows(page).filter(has_text="weekly reports")).to_contain_text("revoked")
    expect(page.locator("body")).not_to_contain_text(raw)  # the secret is never shown again
    screenshot(page, "08-token-revoked")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_status(live_server, raw) == (401, {"detail": "Token has been revoked."})
