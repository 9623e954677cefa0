import re

from .helpers import expect, log_in, screenshot


def test_a_staff_member_logs_in_through_the_login_form(page, staff_user):
    log_in(page, staff_user.username, "not the password")
    expect(page.locator(".errornote")).to_contain_text("Please enter the correct username and password")
    screenshot(page, "01-login-refused")

    log_in(page, staff_user.username)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text(staff_user.username)
    expect(page.get_by_role("heading", name="Administration", exact=True)).to_be_visible()
    # The index lists what the staff member may manage, and only that.
    for row, name in [
        ("contentstore-messageset", "Message sets"),
        ("subscriptions-subscriptionsendfailure", "Subscription send failures"),
        ("accounts-apitoken", "API tokens"),
    ]:
        expect(page.locator(f"#{row}")).to_have_text(name)
    expect(page.locator("#accounts-user")).to_have_count(0)
    screenshot(page, "01-logged-in")
