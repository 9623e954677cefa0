"""The operations dashboard: the service's figures as charts, each also as CSV (staff only, in the admin)."""

from django.contrib import admin
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse

from jobs import clock

from . import charts, selectors


def dashboard(request):
    sections = selectors.dashboard_sections(now=clock.now())
    context = {
        **admin.site.each_context(request),
        "title": "Operations dashboard",
        "sections": [
            {
                "title": section.title,
                "nothing_recorded": section.nothing_recorded,
                "charts": [
                    {"chart": chart, "svg": charts.to_svg(chart), "rows": chart.rows()} for chart in section.charts
                ],
            }
            for section in sections
        ],
    }
    return TemplateResponse(request, "admin/dashboard/dashboard.html", context)


def chart_csv(request, slug: str):
    chart = selectors.dashboard_chart(slug=slug, now=clock.now())
    if chart is None:
        raise Http404(f"No chart {slug}.")
    response = HttpResponse(charts.to_csv(chart), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}.csv"'
    return response
