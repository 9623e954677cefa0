"""The operations dashboard in a real browser: reached from the admin's index, each chart drawn from
the figures the test wrote, a chart's CSV downloaded, the cache and topics section saying it has no data."""

import csv
import re

from jobs import clock
from tests.dashboard.factories import NOW, make_figures

from .helpers import expect, screenshot

MARKS = "marks => marks.map(mark => [mark.dataset.label, mark.dataset.series, Number(mark.dataset.value)])"


def test_a_staff_member_opens_the_dashboard_and_each_chart_shows_the_figures(admin_page, staff_user, tmp_path):
    page = admin_page
    with clock.using(clock.ManualClock(NOW)):
        expected = make_figures(staff_user)

        page.goto("/admin/")
        page.get_by_role("link", name="Operations dashboard").click()

        expect(page).to_have_url(re.compile(r"/admin/dashboard/$"))
        expect(page.locator("svg.chart")).to_have_count(len(expected))
        screenshot(page, "10-dashboard")
        for slug, marks in expected.items():
            figure = page.locator(f'figure[data-chart="{slug}"]')
            drawn = figure.locator("svg [data-value]").evaluate_all(MARKS)
            assert {(label, series): value for label, series, value in drawn if value} == marks, slug
            mark = figure.locator("svg .bar, svg .point").first
            box = mark.bounding_box()
            assert box["width"] > 0 and box["height"] > 0, slug  # drawn, not only in the markup
            expect(figure.locator("svg > title")).to_have_text(figure.locator("figcaption").inner_text())
            figure.scroll_into_view_if_needed()
            screenshot(page, f"10-dashboard-{slug}", full_page=False)

        figure = page.locator('figure[data-chart="sends-per-day"]')
        with page.expect_download() as download:
            figure.get_by_role("link", name="Download CSV").click()
        saved = tmp_path / "sends-per-day.csv"
        download.value.save_as(saved)
        header, *rows = list(csv.reader(saved.open()))
        from_csv = {
            (row[0], name): float(value) for row in rows for name, value in zip(header[1:], row[1:], strict=True)
        }
        assert {key: value for key, value in from_csv.items() if value} == expected["sends-per-day"]

        cache_topics = page.locator("section", has=page.get_by_role("heading", name="Cache and topics"))
        expect(cache_topics).to_contain_text("No data recorded")
        expect(cache_topics.locator("svg")).to_have_count(0)
        cache_topics.scroll_into_view_if_needed()
        screenshot(page, "10-dashboard-cache-and-topics", full_page=False)
