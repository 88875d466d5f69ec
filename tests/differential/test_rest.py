"""Every Mailpit REST endpoint the sandbox implements, called the same way on both; answers compared field
by field (status, the compared headers, the body). The mailbox is filled with the same corpus first.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from conftest import Pair, Side
from corpus import BY_NAME, CASES, png

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`


def fill(pair: Pair) -> dict[str, tuple[str, str]]:
    """The corpus delivered by smtplib, oldest first; message IDs per case on (Mailpit, sandbox)."""
    return {case.name: pair.deliver(case.raw(), case.sender, case.recipients) for case in CASES}


SEARCHES = [
    "hello", "subject:hello", '"plain text"', "-hello", "from:alice@corpus.test", "to:bob", "cc:dave",
    "bcc:erin", "reply-to:replies", "is:read", "is:unread", "has:attachment", "has:inline", "tag:Invoices",
    "tag:alpha", "!tag:alpha", "subject:\"HTML and text\"", "message-id:plain@corpus.test", "larger:2KB",
    "smaller:2KB", "after:2020-01-01", "before:2100-01-01", "filename:report.pdf", "Grüße", "日本語", "東京", "...", "-",
    "Fourth", "italic", "127.0.0.1:9/x", "link", "alt text", "ignored",
    "is:tagged", "-is:tagged", "addressed:carol@corpus.test", "list-unsubscribe:mailto",
]


def test_list_paging_and_search(pair: Pair) -> None:
    fill(pair)
    for params in ({}, {"limit": 2}, {"start": 3, "limit": 2}, {"limit": 0}, {"start": 100}):
        pair.json(f"list {params}", *pair.call("GET", "/api/v1/messages", params=params))
    for query in SEARCHES:
        pair.json(f"search {query}", *pair.call("GET", "/api/v1/search", params={"query": query}))
    pair.json("search without query", *pair.call("GET", "/api/v1/search"))
    pair.json("latest", *pair.call("GET", "/api/v1/message/latest"))
    pair.json("latest matching", *pair.call("GET", "/api/v1/message/latest", params={"query": "tag:alpha"}))


def _outcome(resp: httpx.Response) -> dict[str, Any]:
    """What a client acts on after bad input: status, type, and how many messages an answer lists."""
    out: dict[str, Any] = {"status": resp.status_code, "type": resp.headers.get("content-type", "")}
    if out["type"].startswith("application/json"):
        out["messages_count"] = resp.json().get("messages_count")
    return out


def test_parameters_and_bad_input(pair: Pair) -> None:
    """Query parameters, then the inputs where the sandbox refuses on purpose what Mailpit lets pass."""
    fill(pair)
    pair.json("params before", *pair.call("GET", "/api/v1/messages", params={"before": "2100-01-01"}))
    pair.json("params search tz", *pair.call("GET", "/api/v1/search", params={"query": "after:2020-01-01",
                                                                               "tz": "Pacific/Auckland"}))
    pair.json("latest raw", *pair.call("GET", "/api/v1/message/latest/raw"))
    for name, (path, params) in {
        "bad start": ("/api/v1/messages", {"start": "x"}), "bad limit": ("/api/v1/messages", {"limit": "-1"}),
        "bad before": ("/api/v1/messages", {"before": "someday"}),
        "bad search date": ("/api/v1/search", {"query": "before:someday"}),
    }.items():
        pair.json(f"outcome {name}", *(_outcome(r) for r in pair.call("GET", path, params=params)))
    pair.json("outcome set read, bad JSON",
              *(_outcome(r) for r in pair.call("PUT", "/api/v1/messages", content=b"{not json")))
    pair.json("outcome delete, bad JSON",
              *(_outcome(r) for r in pair.call("DELETE", "/api/v1/messages", content=b"{not json")))
    pair.json("count after the bad delete", *(s.count() for s in pair.sides))


def test_read_status_tags_and_delete(pair: Pair) -> None:
    ids = fill(pair)
    side_ids = lambda side, *names: [ids[n][0 if side is pair.real else 1] for n in names]  # noqa: E731

    def each(method: str, path: str, body: Any) -> tuple[Any, Any]:
        out = []
        for side in pair.sides:
            out.append(side.http.request(method, path, json=body(side) if callable(body) else body))
        return out[0], out[1]

    pair.json("mark two read", *each("PUT", "/api/v1/messages",
                                     lambda s: {"IDs": side_ids(s, "plain", "utf8"), "Read": True}))
    pair.json("mark by search", *each("PUT", "/api/v1/messages", {"Search": "tag:alpha", "Read": True}))
    pair.json("IDs and search", *each("PUT", "/api/v1/messages", {"IDs": ["x"], "Search": "a", "Read": True}))
    pair.json("after read marks", *pair.call("GET", "/api/v1/messages"))
    pair.json("set tags", *each("PUT", "/api/v1/tags",
                                lambda s: {"IDs": side_ids(s, "plain"), "Tags": ["zeta", "Beta", "alpha", "beta"]}))
    pair.json("tags", *pair.call("GET", "/api/v1/tags"))
    pair.json("rename tag", *each("PUT", "/api/v1/tags/zeta", {"Name": "Omega"}))
    pair.json("rename to existing", *each("PUT", "/api/v1/tags/Omega", {"Name": "alpha"}))
    pair.json("rename missing", *each("PUT", "/api/v1/tags/nope", {"Name": "x"}))
    pair.json("delete tag", *pair.call("DELETE", "/api/v1/tags/Beta"))
    pair.json("delete missing tag", *pair.call("DELETE", "/api/v1/tags/nope"))
    pair.json("after tags", *pair.call("GET", "/api/v1/messages"))
    pair.json("delete one", *each("DELETE", "/api/v1/messages", lambda s: {"IDs": side_ids(s, "plain")}))
    pair.json("delete by search", *pair.call("DELETE", "/api/v1/search", params={"query": "tag:alpha"}))
    pair.json("after deletes", *pair.call("GET", "/api/v1/messages"))
    pair.json("info", *pair.call("GET", "/api/v1/info"))
    pair.json("gone message", *each("GET", "/api/v1/message/" + "A" * 22, None))


SENDS: dict[str, dict[str, Any]] = {
    "minimal": {"From": {"Email": "api@corpus.test"}, "To": [{"Email": "bob@corpus.test"}], "Subject": "s",
                "Text": "t"},
    "full": {"From": {"Email": "api@corpus.test", "Name": "API Sender"},
             "To": [{"Email": "bob@corpus.test", "Name": "Bob"}], "Cc": [{"Email": "cc@corpus.test"}],
             "Bcc": ["bcc@corpus.test"], "ReplyTo": [{"Email": "r@corpus.test"}], "Subject": "Full",
             "Text": "text", "HTML": "<p>html</p>", "Tags": ["Sent", "api"], "Headers": {"X-Thing": "1"},
             "Attachments": [{"Content": "aGVsbG8=", "Filename": "hello.txt"}]},
    "mostly ASCII, long lines, inline and sniffed parts": {
        "From": {"Email": "api@corpus.test", "Name": "Zoë Æsir"}, "To": [{"Email": "bob@corpus.test", "Name": "Jürgen"}],
        "Subject": "Grüße aus Köln — a subject long enough to need more than one encoded word in the header, "
                   "really quite long",
        "Text": "Grüße aus Köln, this is mostly ASCII text with a few umlauts and a line that is long enough to be "
                "softly broken by quoted-printable = signs included\nand a trailing space \nend",
        "HTML": '<p>Grüße <img src="cid:pic@x"></p>',
        "Headers": {"x-lower-case": "v", "X-Non-ASCII": "café"},
        "Attachments": [{"Content": base64.b64encode(png(20, 10)).decode(), "Filename": "pic.png", "ContentID": "pic@x"},
                        {"Content": base64.b64encode(png(30, 30)).decode(), "Filename": "résumé photo.png"},
                        {"Content": base64.b64encode(b"%PDF-1.4 x").decode(), "Filename": "doc.pdf",
                         "ContentType": "application/pdf"}]},
    "From with a name in Email": {"From": {"Email": "API <api@corpus.test>"}, "To": [{"Email": "bob@corpus.test"}],
                                  "Subject": "s", "Text": "t"},
    "From without a domain dot": {"From": {"Email": "root@localhost"}, "To": [{"Email": "bob@corpus.test"}],
                                  "Subject": "s", "Text": "t"},
    "From quoted local part": {"From": {"Email": '"a b"@corpus.test'}, "To": [{"Email": "bob@corpus.test"}],
                               "Subject": "s", "Text": "t"},
    "From missing": {"To": [{"Email": "bob@corpus.test"}], "Subject": "s", "Text": "t"},
    "bad To": {"From": {"Email": "api@corpus.test"}, "To": [{"Email": "not-an-address"}], "Subject": "s"},
    "restricted header": {"From": {"Email": "api@corpus.test"}, "To": [{"Email": "bob@corpus.test"}],
                          "Headers": {"Subject": "x"}},
}


@pytest.mark.parametrize("name", list(SENDS))
def test_send(pair: Pair, name: str) -> None:
    replies = pair.call("POST", "/api/v1/send", json=SENDS[name])
    pair.json(f"send {name}", *replies)
    if replies[0].status_code == 200 and replies[1].status_code == 200:
        real_id, our_id = replies[0].json()["ID"], replies[1].json()["ID"]
        by_side = {pair.real: real_id, pair.ours: our_id}
        pair.json(f"send {name}: message", *pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}"), smtp=False)
        pair.json(f"send {name}: headers",
                  *pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}/headers"), smtp=False)
        raw = pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}/raw")
        pair.lines(f"send {name}: raw", *(r.text.split("\n") for r in raw))


def test_chaos(pair: Pair) -> None:
    pair.json("chaos get", *pair.call("GET", "/api/v1/chaos"))
    pair.json("chaos set", *pair.call("PUT", "/api/v1/chaos", json={"Recipient": {"ErrorCode": 451,
                                                                                   "Probability": 100}}))
    steps = ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "RCPT TO:<b@corpus.test>", "QUIT"]
    from test_sessions import smtp_dialogue

    pair.lines("chaos RCPT", *(smtp_dialogue(side, steps) for side in pair.sides))
    pair.json("chaos bad code", *pair.call("PUT", "/api/v1/chaos", json={"Sender": {"ErrorCode": 200}}))
    pair.json("chaos reset", *pair.call("PUT", "/api/v1/chaos", json={}))


def test_info_webui_swagger(pair: Pair) -> None:
    pair.json("info", *pair.call("GET", "/api/v1/info"))
    pair.json("webui", *pair.call("GET", "/api/v1/webui"))
    real, ours = pair.call("GET", "/api/v1/swagger.json")
    pair.json("swagger", real, ours)


def test_cors_options_and_405(pair: Pair) -> None:
    def with_origin(side: Side, origin: str, method: str = "GET", path: str = "/api/v1/messages"):
        return side.http.request(method, path, headers={"Origin": origin})

    same = [with_origin(s, s.box.api_url) for s in pair.sides]
    pair.json("CORS same origin", *same)
    pair.json("CORS other origin", *(with_origin(s, "http://evil.example") for s in pair.sides))
    pair.json("CORS other origin, preflight", *(with_origin(s, "http://evil.example", "OPTIONS") for s in pair.sides))
    pair.json("CORS unparsable origin", *(with_origin(s, "::not a url") for s in pair.sides))
    for method, path in [("OPTIONS", "/api/v1/messages"), ("OPTIONS", "/api/v1/message/x/part/1/thumb"),
                         ("PATCH", "/api/v1/messages"), ("POST", "/api/v1/messages"), ("PATCH", "/livez"),
                         ("OPTIONS", "/livez"), ("GET", "/api/v1/send"), ("DELETE", "/api/v1/info"),
                         ("POST", "/api/v1/nothing"), ("GET", "/api/v1/nothing"), ("GET", "/nothing"),
                         ("GET", "/api/v1/message/x/release"), ("PUT", "/api/v1/tags/x/y")]:
        pair.json(f"{method} {path}", *pair.call(method, path))


def test_message_extras_and_errors(pair: Pair) -> None:
    ids = fill(pair)
    by = {name: dict(zip(pair.sides, pair_ids)) for name, pair_ids in ids.items()}
    pair.json("html-check plain", *pair.call("GET", lambda s: f"/api/v1/message/{by['plain'][s]}/html-check"))
    checked = pair.call("GET", lambda s: f"/api/v1/message/{by['attachments'][s]}/html-check")
    pair.json("html-check with HTML", *({"status": r.status_code, "type": r.headers["content-type"]} for r in checked))
    for body in (None, b"{}", b'{"To": []}', b'{"To": ["bad"]}', b'{"To": ["ok@corpus.test"]}'):
        pair.json(f"release {body!r}", *pair.call("POST", lambda s: f"/api/v1/message/{by['plain'][s]}/release",
                                                  content=body))
    missing = "A" * 22
    for path in ("", "/headers", "/raw", "/part/1", "/part/1/thumb", "/html-check", "/link-check"):
        pair.json(f"missing message{path}", *pair.call("GET", f"/api/v1/message/{missing}{path}"))
    pair.json("missing part", *pair.call("GET", lambda s: f"/api/v1/message/{by['attachments'][s]}/part/9"))
    for view in (f"/view/{missing}.html", f"/view/{missing}.txt", "/view/latest.html", "/view/latest.txt"):
        pair.json(f"view {view}", *pair.call("GET", view))
    pair.json("link-check latest", *pair.call("GET", "/api/v1/message/latest/link-check"))
    plain = BY_NAME["plain"]
    assert plain.name in ids
