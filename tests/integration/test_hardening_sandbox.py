"""Bad input to the sandbox's REST API: a 400 in Mailpit's shape, nothing changed, the connection kept.

Each class of input here once got an HTTP 500 with a traceback, after which the server reset
the client's keep-alive connection. Every test sends on one `httpx.Client` and checks that the
next request travels on the *same* TCP connection (same local port) and is answered.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emailkit.limits import (
    HEADER_MAX_FIELDS,
    INT_MAX,
    JSON_MAX_DEPTH,
    QUERY_MAX_LENGTH,
    RECIPIENTS_MAX,
    SEARCH_MAX_TERMS,
    TZ_MAX_LENGTH,
)
from emailkit.sandbox import Sandbox

GOOD = {"From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com"}], "Subject": "hi", "Text": "x"}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(chaos=True) as sandbox:
        yield sandbox


@pytest.fixture()
def http(box: Sandbox) -> Iterator[httpx.Client]:
    assert box.store is not None
    box.store.delete()
    with httpx.Client(base_url=box.api_url, timeout=20) as client:
        yield client


def port_of(response: httpx.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def still_serving(http: httpx.Client, refused: httpx.Response) -> dict:
    """The next request goes over the same connection and is answered; returns the mailbox page."""
    after = http.get("/api/v1/messages")
    assert after.status_code == 200, after.text
    assert port_of(after) == port_of(refused), "the server dropped the keep-alive connection"
    return dict(after.json())


def snapshot(http: httpx.Client) -> list[tuple[str, bool, list[str]]]:
    page = http.get("/api/v1/messages").json()
    return [(m["ID"], m["Read"], m["Tags"]) for m in page["messages"]]


def seed(http: httpx.Client) -> list[tuple[str, bool, list[str]]]:
    http.post("/api/v1/send", json={**GOOD, "Tags": ["keep"]}).raise_for_status()
    http.post("/api/v1/send", json=GOOD).raise_for_status()
    return snapshot(http)


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# (method, path, a body with %s where the bad value goes, the field that names it, is the answer JSON)
JSON_ROUTES = [
    ("POST", "/api/v1/send", b'{"From": {"Email": "ann@example.com"}, "To": [{"Email": "b@example.com"}], "Text": %s}',
     "Text", True),
    ("PUT", "/api/v1/messages", b'{"Read": true, "IDs": %s}', "IDs", False),
    ("DELETE", "/api/v1/messages", b'{"IDs": %s}', "IDs", False),
    ("PUT", "/api/v1/tags", b'{"Tags": ["x"], "IDs": %s}', "IDs", False),
    ("PUT", "/api/v1/tags/keep", b'{"Name": %s}', "Name", False),
    ("PUT", "/api/v1/chaos", b'{"Sender": {"ErrorCode": 451, "Probability": %s}}', "Sender.Probability", False),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _, _, _ in JSON_ROUTES]


def refusal_text(response: httpx.Response, as_json: bool) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    if as_json:
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert list(body) == ["Error"]
        return str(body["Error"])
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.mark.parametrize(("method", "path", "template", "field", "as_json"), JSON_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("levels", [JSON_MAX_DEPTH + 1, 5_000, 100_000])
def test_deeply_nested_json_is_a_400(http: httpx.Client, method: str, path: str, template: bytes, field: str,
                                     as_json: bool, levels: int) -> None:
    before = seed(http)
    response = http.request(method, path, content=template % deep(levels))
    text = refusal_text(response, as_json)
    assert text.startswith("invalid JSON: ") and f"nested deeper than {JSON_MAX_DEPTH} levels" in text
    assert "flatten" in text  # says what to do
    still_serving(http, response)
    assert snapshot(http) == before


@pytest.mark.parametrize(("method", "path", "template", "field", "as_json"), JSON_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("number", [str(INT_MAX + 1), "9" * 5_000, "-" + "9" * 5_000, "1e999"])
def test_out_of_range_numbers_are_a_400_naming_the_field(http: httpx.Client, method: str, path: str,
                                                         template: bytes, field: str, as_json: bool,
                                                         number: str) -> None:
    before = seed(http)
    response = http.request(method, path, content=template % number.encode())
    text = refusal_text(response, as_json)
    assert text.startswith(f"invalid JSON: {field}") and "out of range" in text, text
    assert str(INT_MAX) in text
    still_serving(http, response)
    assert snapshot(http) == before


def test_a_lone_surrogate_in_a_send_is_a_400_naming_the_field(http: httpx.Client) -> None:
    body = b'{"From": {"Email": "ann@example.com"}, "To": [{"Email": "b@example.com", "Name": "B\\udfff"}]}'
    response = http.post("/api/v1/send", content=body)
    text = refusal_text(response, True)
    assert text.startswith("invalid JSON: To[0].Name: ") and "surrogate" in text
    assert still_serving(http, response)["total"] == 0


def test_too_many_recipients_in_a_send_is_a_400(http: httpx.Client) -> None:
    many = [{"Email": f"r{i}@example.com"} for i in range(RECIPIENTS_MAX + 1)]
    response = http.post("/api/v1/send", json={**GOOD, "To": many})
    text = refusal_text(response, True)
    assert f"too many recipients: {RECIPIENTS_MAX + 1}" in text and f"at most {RECIPIENTS_MAX}" in text
    assert still_serving(http, response)["total"] == 0
    exactly = http.post("/api/v1/send", json={**GOOD, "To": many[:RECIPIENTS_MAX]})
    assert exactly.status_code == 200, exactly.text


def test_too_many_headers_in_a_send_is_a_400(http: httpx.Client) -> None:
    headers = {f"X-H{i}": "v" for i in range(HEADER_MAX_FIELDS + 1)}
    response = http.post("/api/v1/send", json={**GOOD, "Headers": headers})
    assert f"at most {HEADER_MAX_FIELDS} header fields" in refusal_text(response, True)
    assert still_serving(http, response)["total"] == 0


# --------------------------------------------------------------------------- searches

def search_routes(query: str, tz: str | None = None) -> list[tuple[str, str, dict, dict | None]]:
    """Every route that takes a search: (method, path, params, JSON body)."""
    params = {"query": query} | ({"tz": tz} if tz is not None else {})
    return [
        ("GET", "/api/v1/search", params, None),
        ("DELETE", "/api/v1/search", params, None),
        ("GET", "/api/v1/message/latest", params, None),
        ("PUT", "/api/v1/messages", {"tz": tz} if tz is not None else {}, {"Search": query, "Read": True}),
    ]


def check_search_refused(http: httpx.Client, query: str, expected: str, tz: str | None = None) -> None:
    before = seed(http)
    for method, path, params, body in search_routes(query, tz):
        response = http.request(method, path, params=params, json=body)
        assert response.status_code == 400, (method, path, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("text/plain")
        assert expected in response.text, (method, path, response.text[:300])
        still_serving(http, response)
    assert snapshot(http) == before  # no DELETE deleted, no PUT marked anything read


@pytest.mark.parametrize("term", ["larger:" + "9" * 30, "smaller:" + "9" * 30, "larger:99999999999999999mb",
                                  "-smaller:" + "9" * 400, f"larger:{INT_MAX + 1}"])
def test_sizes_past_64_bits_are_a_400(http: httpx.Client, term: str) -> None:
    check_search_refused(http, f"hi {term}", f"at most {INT_MAX} bytes")


def test_the_largest_size_is_still_a_search(http: httpx.Client) -> None:
    seed(http)
    page = http.get("/api/v1/search", params={"query": f"larger:{INT_MAX}"}).json()
    assert page["messages_count"] == 0
    assert http.get("/api/v1/search", params={"query": "smaller:9mb"}).json()["messages_count"] == 2


def test_a_thousand_terms_are_a_400(http: httpx.Client) -> None:
    query = " ".join("ab"[i % 2] + str(i % 10) for i in range(1_000))  # 2,999 characters: under the length limit
    assert len(query) <= QUERY_MAX_LENGTH
    check_search_refused(http, query, f"too many search terms: 1000 (at most {SEARCH_MAX_TERMS}")


def test_a_thousand_addressed_terms_are_a_400(http: httpx.Client) -> None:
    query = " ".join(f"addressed:a{i}" for i in range(1_000))
    check_search_refused(http, query, f"search query too long: {len(query)} characters (at most {QUERY_MAX_LENGTH}")


def test_the_most_terms_allowed_still_search(http: httpx.Client) -> None:
    seed(http)
    query = " ".join(["-addressed:nobody"] * (SEARCH_MAX_TERMS - 1) + ["hi"])
    response = http.get("/api/v1/search", params={"query": query})
    assert response.status_code == 200, response.text
    assert response.json()["messages_count"] == 2


@pytest.mark.parametrize("date", ["Mon, 1 Jan 99999999999999999999 00:00:00 +0000",
                                  "Mon, 99999999999999999999 Jan 2026 00:00:00",
                                  "1 Jan 2026 00:00:00 +99999999999999999999", "99999/01/01"])
@pytest.mark.parametrize("prefix", ["before", "after"])
def test_dates_with_absurd_numbers_are_a_400(http: httpx.Client, date: str, prefix: str) -> None:
    check_search_refused(http, f'hi {prefix}:"{date}"', "invalid date: ")


def test_an_absurd_before_parameter_is_a_400(http: httpx.Client) -> None:
    seed(http)
    response = http.get("/api/v1/messages", params={"before": "Mon, 1 Jan 99999999999999999999 00:00:00 +0000"})
    assert response.status_code == 400 and response.text.startswith("invalid before parameter")
    still_serving(http, response)


@pytest.mark.parametrize("tz", ["A" * 5_000, "Europe/" + "x" * 300, "x" * (TZ_MAX_LENGTH + 1)])
def test_very_long_tz_names_are_a_400(http: httpx.Client, tz: str) -> None:
    check_search_refused(http, "hi", "invalid timezone: ", tz=tz)
    response = http.get("/api/v1/messages", params={"before": "2026/01/01", "tz": tz})
    assert response.status_code == 400 and "at most" in response.text
    still_serving(http, response)


@pytest.mark.parametrize("message_id", ['<"a,b"@x>', '<"a;b(c)"@example.com>', '<"a.b,c"@example.com>',
                                        "<plain.id@example.com>"])
def test_message_id_search_finds_a_quoted_message_id(http: httpx.Client, message_id: str) -> None:
    """The retry policy looks a Message-ID up before sending again; a quoted local part must be found."""
    http.post("/api/v1/send", json=GOOD).raise_for_status()  # another message, which must not match
    sent = http.post("/api/v1/send", json={**GOOD, "Headers": {"Message-ID": message_id}})
    assert sent.status_code == 200, sent.text
    bare = message_id.strip("<>")
    for query in (f"message-id:{bare}", f"message-id:{message_id}"):
        found = http.get("/api/v1/search", params={"query": query}).json()
        assert [m["ID"] for m in found["messages"]] == [sent.json()["ID"]], query
        assert found["messages"][0]["MessageID"] == bare


def test_retry_lookup_finds_a_quoted_message_id(box: Sandbox, http: httpx.Client) -> None:
    from emailkit.mailpit import Mailpit

    sent = http.post("/api/v1/send", json={**GOOD, "Headers": {"Message-ID": '<"a,b"@x>'}}).json()["ID"]
    with Mailpit(box.api_url) as mailpit:  # the check emailkit.delivery makes before a re-send
        assert mailpit.stored_ids('<"a,b"@x>') == [sent]
