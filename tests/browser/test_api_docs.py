"""The interactive API docs: Swagger UI, served by the service itself, renders the operations."""

from .helpers import expect, screenshot


def test_the_api_docs_render_the_operations_from_local_assets(page, live_server):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto("/api/docs/")

    # The first render parses the whole schema: on a busy machine it takes a few seconds.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Stage-based messaging store", timeout=20_000)
    for method, path in [
        ("get", "/api/v1/schedule/"),
        ("post", "/api/v1/messageset/"),
        ("post", "/api/v1/subscriptions/{id}/resend/"),
        ("delete", "/api/v1/tokens/{id}/"),
        ("put", "/cache/{cacheName}"),
        ("post", "/jobs.json"),
    ]:
        expect(page.locator(f".opblock-{method} .opblock-summary-path[data-path='{path}']")).to_have_count(1)
    assert page.locator(".opblock").count() >= 40
    for face in ("content", "subscriptions", "tokens", "caches", "cache items", "topics", "webhooks", "jobs"):
        expect(page.locator(f"h3.opblock-tag[data-tag='{face}']")).to_have_count(1)  # a group of its own
    expect(page.locator("h3.opblock-tag[data-tag='cache items']")).to_contain_text("Momento's HTTP cache API")
    screenshot(page, "09-api-docs", full_page=False)  # the whole list is very long

    page.locator(".opblock-get .opblock-summary-path[data-path='/api/v1/schedule/']").click()
    operation = page.locator(".opblock-get.is-open")
    expect(operation.get_by_role("button", name="Try it out")).to_be_visible()
    expect(operation.locator(".parameters")).to_contain_text("page_size")
    screenshot(page, "09-api-docs-operation", full_page=False)

    elsewhere = [url for url in requested if not url.startswith((live_server.url, "data:", "blob:"))]
    assert not elsewhere, f"The docs page loaded assets from elsewhere: {elsewhere}"
