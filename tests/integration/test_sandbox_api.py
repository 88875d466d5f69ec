"""The sandbox's Mailpit REST API over real HTTP: shapes, key order, behaviour a client relies on."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import httpx
import pytest

from emailkit.mailboxes import MAILPIT_VERSION, Mailbox
from emailkit.sandbox import Sandbox

SUMMARY_KEYS = [
    "ID",
    "MessageID",
    "Read",
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "Subject",
    "Created",
    "Username",
    "Tags",
    "Size",
    "Attachments",
    "Snippet",
]
PAGE_KEYS = ["total", "unread", "count", "messages_count", "messages_unread", "start", "tags", "messages"]
MESSAGE_KEYS = [
    "ID",
    "MessageID",
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "ReturnPath",
    "Subject",
    "ListUnsubscribe",
    "Date",
    "Tags",
    "Username",
    "Text",
    "HTML",
    "Size",
    "Inline",
    "Attachments",
]


def send(api: httpx.Client, **payload: object) -> str:
    body = {
        "From": {"Email": "ann@example.com", "Name": "Ann"},
        "To": [{"Email": "bob@example.com"}],
        "Subject": "hello",
        "Text": "Hi Bob",
    }
    body.update(payload)
    response = api.post("/api/v1/send", json=body)
    assert response.status_code == 200, response.text
    return response.json()["ID"]


def smtp_raw(box: Sandbox, data: bytes, rcpts: tuple[str, ...] = ("bob@example.com",)) -> str:
    with smtplib.SMTP(box.smtp_host, box.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("ann@example.com")
        for r in rcpts:
            smtp.rcpt(r)
        code, reply = smtp.data(data)
    assert code == 250
    return reply.decode().rsplit(" ", 1)[-1]


# --------------------------------------------------------------------------- list and search


def test_list_shape_and_key_order(api: httpx.Client) -> None:
    first = send(api, Subject="one", Tags=["alpha"])
    second = send(api, Subject="two", Cc=[{"Email": "cat@example.com", "Name": "Cat"}])
    response = api.get("/api/v1/messages")
    assert response.headers["content-type"] == "application/json"
    page = response.json()
    assert list(page) == PAGE_KEYS
    assert (
        page["total"],
        page["unread"],
        page["count"],
        page["messages_count"],
        page["messages_unread"],
        page["start"],
    ) == (2, 2, 2, 2, 2, 0)
    assert page["tags"] == ["alpha"]
    assert [m["ID"] for m in page["messages"]] == [second, first]
    newest = page["messages"][0]
    assert list(newest) == SUMMARY_KEYS
    assert newest["From"] == {"Name": "Ann", "Address": "ann@example.com"}
    assert newest["Cc"] == [{"Name": "Cat", "Address": "cat@example.com"}]
    # as real Mailpit (measured by tests/differential): an empty Bcc is null in lists, ReplyTo is []
    assert newest["Bcc"] is None and newest["ReplyTo"] == []
    assert newest["Snippet"] == "Hi Bob"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", newest["Created"])


def test_go_style_json_bytes(api: httpx.Client) -> None:
    send(api, Subject="<b> & co")
    body = api.get("/api/v1/messages").content
    assert body.endswith(b"}\n") and b'": ' not in body and b", " not in body.split(b'"Subject"')[0]
    assert b'"Subject":"\\u003cb\\u003e \\u0026 co"' in body


def test_pagination(api: httpx.Client) -> None:
    ids = [send(api, Subject=f"n{i}") for i in range(5)]
    newest_first = ids[::-1]
    page = api.get("/api/v1/messages", params={"start": 1, "limit": 2}).json()
    assert [m["ID"] for m in page["messages"]] == newest_first[1:3]
    assert (page["start"], page["count"], page["total"]) == (1, 2, 5)
    everything = api.get("/api/v1/messages", params={"limit": 0}).json()  # list: 0 = no limit
    assert [m["ID"] for m in everything["messages"]] == newest_first
    assert api.get("/api/v1/messages", params={"start": 10}).json()["messages"] == []


def test_list_before(api: httpx.Client) -> None:
    send(api)
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    assert api.get("/api/v1/messages", params={"before": future}).json()["count"] == 1
    assert api.get("/api/v1/messages", params={"before": past}).json()["count"] == 0


def test_search_counts_matches_and_mailbox_separately(api: httpx.Client) -> None:
    send(api, Subject="invoice 1")
    send(api, Subject="invoice 2")
    send(api, Subject="newsletter")
    api.get("/api/v1/message/latest")  # read the newsletter
    page = api.get("/api/v1/search", params={"query": "subject:invoice"}).json()
    assert list(page) == PAGE_KEYS
    assert [m["Subject"] for m in page["messages"]] == ["invoice 2", "invoice 1"]
    assert (page["total"], page["unread"], page["messages_count"], page["messages_unread"], page["count"]) == (
        3,
        2,
        2,
        2,
        2,
    )
    none = api.get("/api/v1/search", params={"query": "subject:invoice", "limit": 0}).json()
    assert none["messages"] == [] and none["messages_count"] == 2  # search: limit=0 returns nothing


@pytest.mark.parametrize(
    ("query", "subjects"),
    [
        ("from:ann", ["c", "a"]),
        ("to:dave", ["b"]),
        ("cc:erin", ["c"]),
        ("bcc:frank", ["b"]),
        ("subject:a", ["a"]),
        ("message-id:threaded", ["b"]),
        ("tag:vip", ["a"]),
        ("-tag:vip is:unread", ["c", "b"]),
        ("is:tagged", ["a"]),
        ("has:attachment", ["c"]),
        ('"quarterly numbers"', ["c"]),
        ("!quarterly", ["b", "a"]),
    ],
)
def test_search_terms_over_http(api: httpx.Client, query: str, subjects: list[str]) -> None:
    send(api, Subject="a", Tags=["vip"])
    send(
        api,
        Subject="b",
        From={"Email": "zed@example.com"},
        To=[{"Email": "dave@example.com"}],
        Bcc=["frank@example.com"],
        Headers={"Message-ID": "<threaded-1@example.com>"},
    )
    send(
        api,
        Subject="c",
        Cc=[{"Email": "erin@example.com"}],
        Text="the quarterly numbers",
        Attachments=[{"Filename": "q.csv", "Content": base64.b64encode(b"1,2").decode()}],
    )
    found = api.get("/api/v1/search", params={"query": query}).json()["messages"]
    assert [m["Subject"] for m in found] == subjects


# --------------------------------------------------------------------------- one message


def test_get_message_marks_it_read(api: httpx.Client) -> None:
    message_id = send(api)
    assert api.get("/api/v1/messages").json()["messages"][0]["Read"] is False
    assert api.get(f"/api/v1/message/{message_id}/raw").status_code == 200  # raw does not mark read
    assert api.get("/api/v1/messages").json()["unread"] == 1
    message = api.get(f"/api/v1/message/{message_id}").json()
    assert list(message) == MESSAGE_KEYS
    page = api.get("/api/v1/messages").json()
    assert page["messages"][0]["Read"] is True and page["unread"] == 0


def test_latest_and_latest_matching_a_query(api: httpx.Client) -> None:
    assert api.get("/api/v1/message/latest").status_code == 404
    assert api.get("/api/v1/message/latest").text == "Message not found"
    older = send(api, Subject="order shipped", To=[{"Email": "ops@example.com"}])
    newer = send(api, Subject="welcome")
    assert api.get("/api/v1/message/latest").json()["ID"] == newer
    assert api.get("/api/v1/message/latest", params={"query": "to:ops"}).json()["ID"] == older
    assert api.get("/api/v1/message/latest/headers", params={"query": "subject:order"}).json()["Subject"] == [
        "order shipped"
    ]
    assert b"Subject: welcome" in api.get("/api/v1/message/latest/raw").content
    missing = api.get("/api/v1/message/latest", params={"query": "subject:nothing"})
    assert (missing.status_code, missing.text) == (404, "Message not found")


@pytest.mark.parametrize("path", ["/api/v1/message/latest", "/view/latest.html", "/view/latest.txt",
                                  "/api/v1/message/latest/part/1/thumb", "/api/v1/message/latest/link-check"])
def test_latest_with_a_bad_query_or_zone_is_a_400_on_every_route(sandbox: Sandbox, path: str) -> None:
    """One `latest` lookup for all: the views and thumbnails once answered these with a 500.

    The sandbox's own rule (docs/sandbox.md: Mailpit ignores a search term it cannot read).
    """
    with httpx.Client(base_url=sandbox.api_url, timeout=10) as api:
        send(api, Subject="one")
        bad_date = api.get(path, params={"query": "before:someday"})
        assert (bad_date.status_code, bad_date.text) == (
            400, 'invalid date: "someday" (use yyyy/mm/dd, yyyy-mm-dd hh:mm or RFC 3339)')
        bad_zone = api.get(path, params={"query": "subject:one", "tz": "Nowhere/City"})
        assert bad_zone.status_code == 400 and 'invalid timezone: "Nowhere/City"' in bad_zone.text


def test_an_unknown_message_is_answered_as_mailpit_answers_each_route(api: httpx.Client) -> None:
    """Mailpit's answers differ on purpose: the API's 404 page, the views' words, the thumbnail's database error."""
    answers = {path: api.get(path) for path in ("/api/v1/message/nope", "/api/v1/message/nope/part/1",
                                                 "/view/nope.html", "/api/v1/message/nope/part/1/thumb")}
    assert {path: (r.status_code, r.text) for path, r in answers.items()} == {
        "/api/v1/message/nope": (404, "404 page not found"),
        "/api/v1/message/nope/part/1": (404, "404 page not found"),
        "/view/nope.html": (404, "Message not found"),
        "/api/v1/message/nope/part/1/thumb": (400, "sql: no rows in result set"),
    }
    assert answers["/view/nope.html"].headers["content-type"] == "text/plain; charset=utf-8"


def test_message_body_parts_and_attachments(api: httpx.Client) -> None:
    pdf = b"%PDF-1.4 fake"
    logo = b"\x89PNG fake"
    message_id = send(
        api,
        Subject="Grüße",
        HTML='<p>Hello <img src="cid:logo"></p>',
        Text="Hello",
        ReplyTo=[{"Email": "desk@example.com", "Name": "Desk"}],
        Attachments=[
            {"Filename": "report.pdf", "ContentType": "application/pdf", "Content": base64.b64encode(pdf).decode()},
            {
                "Filename": "logo.png",
                "ContentType": "image/png",
                "ContentID": "logo",
                "Content": "data:image/png;base64," + base64.b64encode(logo).decode(),
            },
        ],
    )
    message = api.get(f"/api/v1/message/{message_id}").json()
    assert message["Subject"] == "Grüße"
    assert message["Text"].strip() == "Hello"
    assert message["HTML"].strip() == '<p>Hello <img src="cid:logo"></p>'
    assert message["ReplyTo"] == [{"Name": "Desk", "Address": "desk@example.com"}]
    assert message["ReturnPath"] == "ann@example.com"
    [attachment] = message["Attachments"]
    assert {k: attachment[k] for k in ("FileName", "ContentType", "ContentID", "Size")} == {
        "FileName": "report.pdf",
        "ContentType": "application/pdf",
        "ContentID": "",
        "Size": len(pdf),
    }
    assert attachment["Checksums"] == {
        "MD5": hashlib.md5(pdf).hexdigest(),
        "SHA1": hashlib.sha1(pdf).hexdigest(),
        "SHA256": hashlib.sha256(pdf).hexdigest(),
    }
    [inline] = message["Inline"]
    assert (inline["FileName"], inline["ContentID"], inline["Size"]) == ("logo.png", "logo", len(logo))
    part = api.get(f"/api/v1/message/{message_id}/part/{attachment['PartID']}")
    assert (part.status_code, part.content, part.headers["content-type"]) == (200, pdf, "application/pdf")
    summary = api.get("/api/v1/messages").json()["messages"][0]
    assert summary["Attachments"] == 1
    assert summary["Snippet"] == "Hello"


@pytest.mark.parametrize("filename", ["日本語.txt", 'say "hi".txt', "back\\slash;x=1.txt", "plain.txt"])
def test_attachment_download_keeps_any_filename(api: httpx.Client, filename: str) -> None:
    data = f"contents of {filename}".encode()
    message_id = send(
        api,
        Attachments=[{"Filename": filename, "ContentType": "text/plain", "Content": base64.b64encode(data).decode()}],
    )
    [attachment] = api.get(f"/api/v1/message/{message_id}").json()["Attachments"]
    assert attachment["FileName"] == filename
    part = api.get(f"/api/v1/message/{message_id}/part/{attachment['PartID']}")
    assert (part.status_code, part.content) == (200, data)
    # As Mailpit: `inline; filename="<the name, percent-encoded as a URL path segment>"` (ASCII, unquoted)
    disposition, _, rest = part.headers["content-disposition"].partition("; ")
    assert disposition == "inline" and rest.startswith('filename="') and rest.endswith('"')
    assert rest[len('filename="'):-1].isascii() and unquote(rest[len('filename="'):-1]) == filename


def test_date_keeps_the_senders_offset_and_html_only_gets_text(mailbox: Mailbox, api: httpx.Client) -> None:
    data = (
        b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: tz\r\nDate: Mon, 20 Jul 2026 16:16:47 +1200\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<h1>Title</h1><p>Body &amp; more</p><script>x()</script>\r\n"
    )
    message_id = smtp_raw(mailbox, data)
    message = api.get(f"/api/v1/message/{message_id}").json()
    assert message["Date"] == "2026-07-20T16:16:47+12:00"
    assert message["Text"] == "*****\nTitle\n*****\n\nBody & more"  # Mailpit's down-conversion (enmime/html2text)
    assert api.get("/api/v1/messages").json()["messages"][0]["Snippet"] == "Title Body & more"


def test_headers_are_go_canonical_sorted_unfolded_and_raw(mailbox: Mailbox, api: httpx.Client) -> None:
    data = (
        b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"MIME-Version: 1.0\r\nX-Multi: one\r\nx-multi: two\r\nReferences: <a@x>\r\n  <b@x>\r\n\r\nbody\r\n"
    )
    message_id = smtp_raw(mailbox, data)
    headers = api.get(f"/api/v1/message/{message_id}/headers").json()
    assert list(headers) == sorted(headers)
    assert {"Message-Id", "Mime-Version", "Return-Path", "Received", "X-Multi"} <= set(headers)
    assert "Message-ID" not in headers
    assert headers["X-Multi"] == ["one", "two"]
    assert headers["References"] == ["<a@x> <b@x>"]
    assert headers["Subject"] == ["=?utf-8?q?caf=C3=A9?="]  # not decoded, as Go's net/mail leaves it
    assert all(isinstance(v, list) for v in headers.values())
    assert api.get(f"/api/v1/message/{message_id}").json()["Subject"] == "café"


def test_raw_and_download(api: httpx.Client) -> None:
    message_id = send(api, Subject="raw me")
    raw = api.get(f"/api/v1/message/{message_id}/raw")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-disposition" not in raw.headers
    assert b"Subject: raw me\r\n" in raw.content
    download = api.get(f"/api/v1/message/{message_id}/raw", params={"dl": "1"})
    assert download.headers["content-disposition"] == f'attachment; filename="{message_id}.eml"'
    assert download.content == raw.content


# --------------------------------------------------------------------------- changing state


def test_set_read_by_ids_search_and_all(api: httpx.Client) -> None:
    a = send(api, Subject="a")
    b = send(api, Subject="b")
    assert api.put("/api/v1/messages", json={"ids": [a], "read": True}).text == "ok"  # keys are case-insensitive
    assert {m["ID"]: m["Read"] for m in api.get("/api/v1/messages").json()["messages"]} == {a: True, b: False}
    assert api.put("/api/v1/messages", json={"Search": "subject:b", "Read": True, "Extra": 1}).text == "ok"
    assert api.get("/api/v1/messages").json()["unread"] == 0
    assert api.put("/api/v1/messages", json={"Read": False}).text == "ok"  # neither: every message
    assert api.get("/api/v1/messages").json()["unread"] == 2
    both = api.put("/api/v1/messages", json={"IDs": [a], "Search": "b", "Read": True})
    assert (both.status_code, both.text) == (400, "You may specify either IDs or a search query, not both")


def test_delete_by_ids_and_delete_all(api: httpx.Client) -> None:
    a = send(api, Subject="a")
    b = send(api, Subject="b")
    c = send(api, Subject="c")
    assert api.request("DELETE", "/api/v1/messages", json={"IDs": [a, "unknown-id"]}).text == "ok"
    assert [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]] == [c, b]
    assert api.request("DELETE", "/api/v1/messages", json={"IDs": []}).text == "ok"  # empty list: all, as Mailpit
    assert api.get("/api/v1/messages").json()["total"] == 0
    send(api)
    assert api.delete("/api/v1/messages").text == "ok"  # no body: all
    assert api.get("/api/v1/messages").json()["total"] == 0


def test_delete_search(api: httpx.Client) -> None:
    send(api, Subject="keep")
    send(api, Subject="spam 1")
    send(api, Subject="spam 2")
    assert api.delete("/api/v1/search", params={"query": "subject:spam"}).text == "ok"
    assert [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]] == ["keep"]
    empty = api.delete("/api/v1/search", params={"query": " "})
    assert (empty.status_code, empty.text) == (400, "Error: no search query")


def test_tags_endpoints(api: httpx.Client) -> None:
    a = send(api, Tags=["one"])
    b = send(api)
    assert api.get("/api/v1/tags").json() == ["one"]
    assert api.put("/api/v1/tags", json={"Tags": ["two", "three"], "IDs": [a, b]}).text == "ok"
    assert api.get("/api/v1/tags").json() == ["three", "two"]
    assert api.put("/api/v1/tags/two", json={"Name": "deux"}).text == "ok"
    assert api.get("/api/v1/message/latest").json()["Tags"] == ["deux", "three"]
    assert api.delete("/api/v1/tags/three").text == "ok"
    assert api.get("/api/v1/tags").json() == ["deux"]
    assert api.delete("/api/v1/tags/nope").status_code == 400


# --------------------------------------------------------------------------- send


def test_send_builds_the_whole_message(api: httpx.Client) -> None:
    message_id = send(
        api,
        From={"email": "ann@example.com", "name": "Ann Example"},  # lower-case keys work too
        To=[{"Email": "bob@example.com", "Name": "Bob"}],
        Cc=[{"Email": "cat@example.com"}],
        Bcc=["hidden@example.com"],
        ReplyTo=[{"Email": "desk@example.com"}],
        Subject="threaded",
        Tags=["Tag 1", "Tag 2"],
        Headers={
            "Message-ID": "<child@example.com>",
            "In-Reply-To": "<parent@example.com>",
            "References": "<root@example.com> <parent@example.com>",
            "X-IP": "1.2.3.4",
        },
        Unknown="ignored",
    )
    assert re.fullmatch(r"[0-9A-Za-z]{22}", message_id)
    headers = api.get(f"/api/v1/message/{message_id}/headers").json()
    assert headers["Message-Id"] == ["<child@example.com>"]
    assert headers["In-Reply-To"] == ["<parent@example.com>"]
    assert headers["References"] == ["<root@example.com> <parent@example.com>"]
    assert headers["X-Tags"] == ["Tag 1, Tag 2"]
    assert headers["X-Ip"] == ["1.2.3.4"]
    assert headers["Bcc"] == ["hidden@example.com"]
    assert headers["Return-Path"] == ["<ann@example.com>"]
    assert "Received" not in headers  # HTTP-sent mail has no SMTP hop
    summary = api.get("/api/v1/messages").json()["messages"][0]
    assert summary["MessageID"] == "child@example.com"
    assert summary["Tags"] == ["Tag 1", "Tag 2"]
    assert summary["From"] == {"Name": "Ann Example", "Address": "ann@example.com"}
    assert summary["Bcc"] == [{"Name": "", "Address": "hidden@example.com"}]


def test_send_generates_a_mailpit_message_id(api: httpx.Client) -> None:
    send(api)
    assert re.fullmatch(r"[0-9A-Za-z]{22}@mailpit", api.get("/api/v1/messages").json()["messages"][0]["MessageID"])


@pytest.mark.parametrize(
    "header", ["To", "From", "Cc", "Bcc", "Reply-To", "Date", "Subject", "Content-Type", "Mime-Version"]
)
def test_send_refuses_to_overwrite_listed_headers(api: httpx.Client, header: str) -> None:
    response = api.post(
        "/api/v1/send",
        json={"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Headers": {header: "x"}},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"Error":"cannot overwrite header: \\"' + header.encode() + b'\\""}\n'


def test_send_refuses_x_tags_header_together_with_tags(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/send",
        json={
            "From": {"Email": "a@example.com"},
            "To": [{"Email": "b@example.com"}],
            "Tags": ["t"],
            "Headers": {"X-Tags": "other"},
        },
    )
    assert response.json() == {"Error": 'cannot overwrite header: "X-Tags"'}
    assert send(api, Headers={"X-Tags": "fromheader"}) and api.get("/api/v1/tags").json() == ["fromheader"]


def test_send_records_the_basic_auth_user(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/send",
        auth=("api-user", "pw"),
        json={"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}]},
    )
    assert response.status_code == 200
    assert api.get("/api/v1/messages").json()["messages"][0]["Username"] == "api-user"


# --------------------------------------------------------------------------- the rest


def test_info(mailbox: Mailbox, api: httpx.Client) -> None:
    before = api.get("/api/v1/info").json()["RuntimeStats"]["SMTPAccepted"]
    send(api, Tags=["x"])
    info = api.get("/api/v1/info").json()
    assert list(info) == [
        "Version",
        "LatestVersion",
        "Database",
        "DatabaseSize",
        "Messages",
        "Unread",
        "Tags",
        "RuntimeStats",
    ]
    assert info["Version"].startswith(MAILPIT_VERSION)
    assert (info["Messages"], info["Unread"], info["Tags"]) == (1, 1, {"x": 1})
    if mailbox.sandbox is not None:
        assert info["Database"] == str(mailbox.sandbox.store.path)
    assert info["Database"].endswith(".db") and info["DatabaseSize"] > 0
    assert list(info["RuntimeStats"]) == [
        "Uptime",
        "Memory",
        "MessagesDeleted",
        "SMTPAccepted",
        "SMTPAcceptedSize",
        "SMTPRejected",
        "SMTPIgnored",
    ]
    assert info["RuntimeStats"]["SMTPAccepted"] == before + 1
    assert info["RuntimeStats"]["Memory"] > 0


def test_chaos_is_not_enabled(sandbox_factory: Callable[..., Sandbox]) -> None:
    api = httpx.Client(base_url=sandbox_factory().api_url)
    for response in (api.get("/api/v1/chaos"), api.put("/api/v1/chaos", json={})):
        assert (response.status_code, response.text) == (400, "Chaos is not enabled")


def test_health_endpoints_and_unknown_routes(api: httpx.Client) -> None:
    assert (api.get("/livez").status_code, api.get("/readyz").status_code) == (200, 200)
    missing = api.get("/api/v1/nothing-here")  # as Mailpit: GET /api/... is its embedded-file server
    assert (missing.status_code, missing.text) == (404, "File not found\n")
    assert (api.get("/nothing").status_code, api.get("/nothing").text) == (404, "404 page not found\n")
    wrong = api.post("/api/v1/nothing-here")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD, OPTIONS")


def test_sandbox_object_reports_where_it_listens(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory()
    assert box.api_url == f"http://127.0.0.1:{box.api_port}"
    assert box.smtp_host == "127.0.0.1" and box.smtp_port > 0
    assert httpx.get(box.api_url + "/readyz").text == "ok"
    assert json.loads(httpx.get(box.api_url + "/api/v1/messages").text)["total"] == 0
