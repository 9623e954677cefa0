"""The operations dashboard: each chart drawn from the figures in the database, the same figures as CSV,
for staff only; the cache and topics section says when nothing is recorded."""

import csv
import io
import re

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from core import metrics
from dashboard import charts, selectors
from harness.waiting import wait_until
from jobs import clock
from subscriptions import services

from .factories import NOW, make_figures

URL = "/admin/dashboard/"
MARK = re.compile(r'data-label="([^"]*)" data-series="([^"]*)" data-value="([^"]*)"')
FIGURE = re.compile(r'<figure class="dashboard-chart" data-chart="([^"]+)">(.*?)</figure>', re.S)


@pytest.fixture
def now():
    with clock.using(clock.ManualClock(NOW)):
        yield NOW


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_user(username="ops@example.org", password="x", is_staff=True))
    return client


def drawn(page: str) -> dict[str, dict]:
    """Each chart's bars or points on the page that are not zero: {slug: {(label, series): value}}."""
    return {
        slug: {(label, series): float(value) for label, series, value in MARK.findall(body) if float(value)}
        for slug, body in FIGURE.findall(page)
    }


def test_each_chart_draws_the_figures_in_the_database(staff, now):
    expected = make_figures(User.objects.get())

    response = staff.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert drawn(page) == expected
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == len(expected)
    for slug in expected:
        assert f'<title id="chart-{slug}-title">' in page and f'<desc id="chart-{slug}-desc">' in page


def test_each_csv_holds_the_figures_its_chart_draws(staff, now):
    make_figures(User.objects.get())
    page = staff.get(URL).content.decode()
    slugs = [slug for slug, _ in FIGURE.findall(page)]

    for slug in slugs:
        response = staff.get(f"{URL}{slug}.csv")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert f'href="{URL}{slug}.csv"' in page
        header, *rows = list(csv.reader(io.StringIO(response.content.decode())))
        from_csv = {
            (row[0], name): float(value) for row in rows for name, value in zip(header[1:], row[1:], strict=True)
        }
        assert {key: value for key, value in from_csv.items() if value} == drawn(page)[slug]
        chart = selectors.dashboard_chart(slug=slug, now=now)
        assert header == [chart.x_label, *(series.name for series in chart.series)]
        assert [row[0] for row in rows] == list(chart.labels)


def test_charts_with_nothing_recorded_say_so(staff, now):
    page = staff.get(URL).content.decode()

    assert page.count('<p class="nothing-recorded">Nothing recorded.</p>') == 8
    assert drawn(page)["sends-per-day"] == {}


@pytest.fixture
def a_stream_subscriber():
    """This process holds one topic stream subscriber while the test runs (the gauge is the process's)."""
    metrics.gauge_add("topics_subscribers", 1, "stream")
    yield
    metrics.gauge_add("topics_subscribers", -1, "stream")


def test_the_cache_and_topics_charts_draw_what_every_process_recorded(staff, a_stream_subscriber):
    # Operations of this test's own, so that what earlier tests counted in this process (flushed
    # meanwhile) cannot be taken for this test's figures; the unlabelled counters are at least these.
    for operation, method, status in [("get-t", "GET", 200)] * 3 + [("get-t", "GET", 404), ("set-t", "PUT", 204)]:
        metrics.request_observed("cache", operation, method, status, 0.001)
    metrics.request_observed("topics", "publish-t", "POST", 204, 0.001)
    metrics.count("cache_hits", 3)
    metrics.count("cache_misses", 1)
    metrics.count("topics_publishes", 2)
    metrics.count("topics_deliveries", 2, "long_poll")
    metrics.buffer.flush()

    def charts() -> dict:
        return {chart.slug: chart for chart in selectors.cache_topics_charts(now=timezone.now())}

    def totals(built: dict) -> dict:
        return {slug: {series.name: series.total for series in chart.series} for slug, chart in built.items()}

    def recorded(built: dict) -> bool:
        found = totals(built)
        return (
            {name: found.get("cache-requests", {}).get(name) for name in ("get-t 2xx", "get-t 4xx", "set-t 2xx")}
            == {"get-t 2xx": 3, "get-t 4xx": 1, "set-t 2xx": 1}
            and found.get("topics-requests", {}).get("publish-t 2xx") == 1
            and found["topic-messages"]["published"] >= 2
            and found["topic-messages"]["delivered (long_poll)"] >= 2
            and found["topic-subscribers"]["subscribers"] >= 1
        )

    # The flushing thread may be adding its part meanwhile: wait for all of it.
    wait_until(lambda: recorded(charts()), what="the figures to be flushed to Redis", timeout=10)
    built = charts()
    hits, misses = map(
        int, re.search(r"\((\d+) found, (\d+) not found in the hour", built["cache-hit-ratio"].description).groups()
    )
    assert hits >= 3 and misses >= 1
    assert 0 < max(built["cache-hit-ratio"].series[0].values) <= 100
    assert built["topic-subscribers"].labels == ("long_poll", "stream")

    page = staff.get(URL).content.decode()
    assert selectors.NO_CACHE_TOPICS_FIGURES not in page
    assert drawn(page)["topic-subscribers"].get(("stream", "subscribers"), 0) >= 1
    assert any(series == "get-t 2xx" for _, series in drawn(page)["cache-requests"])  # drawn from the same figures
    assert staff.get(f"{URL}cache-requests.csv").status_code == 200


def test_the_cache_and_topics_section_says_no_data_is_recorded(staff, now):
    assert selectors.cache_topics_charts(now=now) == []

    page = staff.get(URL).content.decode()

    section = page[page.index(">Cache and topics</h2>") :]
    assert selectors.NO_CACHE_TOPICS_FIGURES in section
    assert 'class="chart"' not in section
    assert staff.get(f"{URL}cache-requests.csv").status_code == 404


@pytest.mark.parametrize("path", [URL, f"{URL}job-states.csv"])
def test_only_staff_see_the_dashboard(db, path):
    anonymous = Client()
    member = Client()
    member.force_login(User.objects.create_user(username="member@example.org", password="x"))

    for client in (anonymous, member):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        assert b"svg" not in response.content


def test_the_admin_index_links_to_the_dashboard(staff):
    assert f'href="{URL}"' in staff.get("/admin/").content.decode()


def test_the_forecast_counts_as_the_daily_estimate_does(db, now):
    make_figures(User.objects.create_user(username="owner@example.org"))
    days = [NOW.date(), NOW.date().replace(day=14)]

    forecast = services.estimated_sends_forecast(days=days)

    for day in days:
        recorded = services.estimated_sends_calculate(day=day)
        assert forecast[day] == {estimate.messageset_id: estimate.estimate_subscriptions for estimate in recorded}


def test_a_chart_says_its_figures_in_words_and_scales_its_axis():
    chart = charts.Chart(
        slug="example",
        title="Example",
        description="Things per day.",
        x_label="Day",
        y_label="Things",
        labels=("mon", "tue"),
        series=(charts.Series("good", (3, 40)), charts.Series("bad", (1, 0))),
    )

    svg = charts.to_svg(chart)

    assert "good: total 43, highest 40 at tue; bad: total 1, highest 1 at mon." in svg
    assert MARK.findall(svg) == [("mon", "good", "3"), ("mon", "bad", "1"), ("tue", "good", "40")]
    assert ">50</text>" in svg and ">40</text>" in svg  # the axis' top: 43 rounded up, in whole steps
    assert "good (43)" in svg and "bad (1)" in svg
    assert charts.to_csv(chart) == "Day,good,bad\nmon,3,1\ntue,40,0\n"
    assert [charts.nice_ceiling(value) for value in (0, 7, 11, 21, 2400)] == [1, 10, 20, 25, 2500]
    assert [charts.tick_count(top, whole=True) for top in (1, 2, 5, 10, 25, 1000)] == [1, 2, 5, 5, 5, 4]
    assert charts.tick_count(2.5, whole=False) == 4


def test_a_chart_of_figures_that_do_not_add_up_shows_no_totals():
    chart = charts.Chart(
        slug="late",
        title="Lateness",
        description="Percentiles.",
        x_label="Percentile",
        y_label="ms",
        labels=("p50", "p99"),
        series=(charts.Series("lateness", (12.5, 40.0)),),
        totals=False,
    )

    svg = charts.to_svg(chart)

    assert "lateness: highest 40 at p99." in svg and "total" not in svg
    assert ">lateness</text>" in svg
