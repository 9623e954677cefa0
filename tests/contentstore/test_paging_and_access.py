from urllib.parse import parse_qs, urlsplit

import pytest

from .factories import make_binary_content, make_message, make_messageset, make_schedule

pytestmark = pytest.mark.django_db

LIST_URLS = [
    "/api/v1/schedule/",
    "/api/v1/messageset/",
    "/api/v1/message/",
    "/api/v1/binarycontent/",
    "/api/v1/messageset_languages/",
]


def follow(client, url: str, params: dict | None = None) -> list[dict]:
    """Every page of a list, following `next`; returns the pages' bodies."""
    pages = [client.get(url, params).json()]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    return pages


def test_paging_follows_next_over_several_pages_keeping_the_filters(reader):
    baby, other = make_messageset("baby"), make_messageset("other")
    wanted = []
    for number in range(1, 6):
        wanted.append(make_message(baby, number, "eng").pk)
        make_message(baby, number, "zul")
        make_message(other, number, "eng")
    pages = follow(reader, "/api/v1/message/", {"messageset": baby.pk, "lang": "eng", "page_size": 2})
    assert len(pages) == 3
    assert [item["id"] for page in pages for item in page["results"]] == wanted
    for page in pages[:-1]:
        link = urlsplit(page["next"])
        assert (link.scheme, link.netloc, link.path) == ("http", "testserver", "/api/v1/message/")
        query = parse_qs(link.query)
        assert query["messageset"] == [str(baby.pk)]
        assert query["lang"] == ["eng"]
        assert query["page_size"] == ["2"]
        assert "cursor" in query
    assert pages[0]["previous"] is None
    assert pages[-1]["next"] is None


def test_previous_leads_back_to_the_page_before(reader):
    messageset = make_messageset()
    ids = [make_message(messageset, number).pk for number in range(1, 6)]
    second = follow(reader, "/api/v1/message/", {"page_size": 2})[1]
    back = reader.get(second["previous"]).json()
    assert [item["id"] for item in back["results"]] == ids[:2]


def test_the_default_page_size_is_a_setting(reader, settings):
    settings.API_PAGE_SIZE = 2
    for minute in range(3):
        make_schedule(minute=str(minute))
    body = reader.get("/api/v1/schedule/").json()
    assert len(body["results"]) == 2
    assert body["next"] is not None


@pytest.mark.parametrize("page_size", ["0", "-1", "many", "5001"])
def test_it_refuses_a_page_size_out_of_bounds(reader, page_size):
    response = reader.get("/api/v1/schedule/", {"page_size": page_size})
    assert response.status_code == 400
    assert response.json() == {"page_size": ["Must be a whole number from 1 to 5000."]}


def test_the_largest_page_size_is_a_setting(reader, settings):
    settings.API_MAX_PAGE_SIZE = 10
    assert reader.get("/api/v1/schedule/", {"page_size": "10"}).status_code == 200
    assert reader.get("/api/v1/schedule/", {"page_size": "11"}).json() == {
        "page_size": ["Must be a whole number from 1 to 10."]
    }


def test_it_refuses_a_cursor_it_did_not_make(reader):
    response = reader.get("/api/v1/schedule/", {"cursor": "bz1hYmM="})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_lists_can_run_newest_first(reader):
    first, second = make_schedule(), make_schedule()
    body = reader.get("/api/v1/schedule/", {"ordering": "-id"}).json()
    assert [item["id"] for item in body["results"]] == [second.pk, first.pk]


@pytest.mark.parametrize(
    ("url", "queries"),
    [
        ("/api/v1/schedule/", 2),
        ("/api/v1/messageset/", 2),
        ("/api/v1/message/", 2),
        ("/api/v1/message/?messageset={set}&lang=eng", 2),
        ("/api/v1/binarycontent/", 2),
        ("/api/v1/messageset_languages/", 3),
    ],
)
def test_each_list_takes_the_same_queries_however_long(reader, django_assert_num_queries, url, queries):
    schedule = make_schedule()
    sets = [make_messageset(f"set-{number}", schedule=schedule) for number in range(4)]
    for messageset in sets:
        for number in range(1, 4):
            make_message(messageset, number, "eng", binary_content=make_binary_content())
            make_message(messageset, number, "zul")
    url = url.format(set=sets[0].pk)
    reader.get(url)  # the token's first use is recorded once
    with django_assert_num_queries(queries):  # the token, then the list
        response = reader.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("url", LIST_URLS)
def test_anonymous_requests_are_asked_for_a_token(api, url):
    response = api().get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("url", LIST_URLS)
def test_a_token_without_a_messaging_scope_may_not_read(make_token, api, url):
    _, raw = make_token("cache:readwrite")
    response = api(raw).get(url)
    assert response.status_code == 403
    assert "messaging" in response.json()["detail"]


@pytest.mark.parametrize("url", LIST_URLS[:4])
def test_a_read_token_may_read_but_not_write(reader, url):
    assert reader.get(url).status_code == 200
    response = reader.post(url, {}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This token does not allow messaging write: it needs a messaging scope with role write or admin."
    }


def test_a_read_token_may_not_delete(reader):
    schedule = make_schedule()
    assert reader.delete(f"/api/v1/schedule/{schedule.pk}/").status_code == 403
