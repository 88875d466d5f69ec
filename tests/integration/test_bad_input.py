"""Bad input to the sandbox gets a clear refusal, and nothing is half-stored (or lost).

These pin the sandbox's own policy for bad input, so they run on the sandbox alone: real Mailpit
answers some of the same input differently (tests/differential measures how; docs/sandbox.md lists it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from emailkit.mailboxes import Mailbox
from emailkit.sandbox import Sandbox
from tests.support.sandbox import Wire


@pytest.fixture()
def mailbox(sandbox: Sandbox) -> Sandbox:
    """The sandbox alone (see above), emptied; it stands in for the two-backend `mailbox` fixture here."""
    assert sandbox.store is not None
    sandbox.store.delete()
    return sandbox


def stored(box: Mailbox | Sandbox) -> int:
    """Messages in the mailbox, by its REST API (and, on the sandbox, by its store as well)."""
    total = int(httpx.get(box.api_url + "/api/v1/messages").json()["total"])
    store = box.sandbox.store if isinstance(box, Mailbox) and box.sandbox else getattr(box, "store", None)
    if store is not None:
        assert total == store.counts().total
    return total


GOOD = {"From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com"}], "Subject": "hi", "Text": "x"}


def post_send(api: httpx.Client, **changes: object) -> httpx.Response:
    return api.post("/api/v1/send", json={**GOOD, **changes})


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address", ["not an address", "<not an address>", "no-at-sign", "a@", "two@@example.com", "a b@example.com"]
)
def test_smtp_refuses_a_malformed_recipient(mailbox: Sandbox, address: str) -> None:
    w = Wire(mailbox)
    try:
        w.send("EHLO client.example")
        assert w.send("MAIL FROM:<ann@example.com>") == "250 2.1.0 Ok"
        # Mailpit's words for an address in <...> that is not RFC 5321 (measured by tests/differential)
        assert w.send(f"RCPT TO:{address if address.startswith('<') else '<' + address + '>'}") == (
            "553 5.1.3 The address is not a valid RFC 5321 address"
        )
        assert w.send("DATA").startswith("503 5.5.1")  # no valid recipient, so no message
    finally:
        w.close()
    assert stored(mailbox) == 0


def test_smtp_refuses_a_malformed_sender(mailbox: Sandbox) -> None:
    w = Wire(mailbox)
    try:
        w.send("EHLO client.example")
        assert w.send("MAIL FROM:<nobody>") == "553 5.1.3 The address is not a valid RFC 5321 address"
        assert (
            w.send("MAIL FROM:garbage here")
            == "501 5.5.4 Syntax error in parameters or arguments (invalid FROM parameter)"
        )
    finally:
        w.close()
    assert stored(mailbox) == 0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("To", [{"Email": "not an address"}], "invalid To address: not an address"),
        ("To", [{"Email": ""}], "invalid To address: "),
        ("Cc", [{"Email": "x@"}], "invalid Cc address: x@"),
        ("Bcc", ["two words@example.com"], "invalid Bcc address: two words@example.com"),
        ("ReplyTo", [{"Email": "nope"}], "invalid Reply-To address: nope"),
        ("From", {"Email": "nobody"}, "invalid From address: nobody"),
        (
            "From",
            {"Email": "a@example.com\r\nBcc: victim@example.com"},
            "invalid From address: a@example.com\r\nBcc: victim@example.com",
        ),
    ],
)
def test_send_refuses_malformed_addresses(
    api: httpx.Client, mailbox: Sandbox, field: str, value: object, error: str
) -> None:
    response = post_send(api, **{field: value})
    assert response.status_code == 400
    assert response.json() == {"Error": error}
    assert stored(mailbox) == 0


# --------------------------------------------------------------------------- header injection


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Subject": "hi\r\nBcc: victim@example.com"}, "subject"),
        ({"Subject": "hi\nX-Evil: 1"}, "subject"),
        ({"Headers": {"X-Campaign": "spring\r\nBcc: victim@example.com"}}, "headers.X-Campaign"),
        ({"Headers": {"X-Campaign": "spring\rX"}}, "headers.X-Campaign"),
        ({"Headers": {"In-Reply-To": "<a@b>\r\nBcc: victim@example.com"}}, "headers.In-Reply-To"),
        ({"Headers": {"Message-ID": "<a@b>\nBcc: victim@example.com"}}, "message_id"),
        ({"To": [{"Email": "bob@example.com", "Name": "Bob\r\nBcc: victim@example.com"}]}, "to[0]"),
        ({"From": {"Email": "ann@example.com", "Name": "Ann\nBcc: victim@example.com"}}, "sender"),
        ({"Tags": ["ok", "bad\r\nBcc: victim@example.com"]}, "headers.X-Tags"),
        ({"Headers": {"Bad Name": "x"}}, "headers.Bad Name"),
        ({"Attachments": [{"Filename": "a\r\n.txt", "Content": "eA=="}]}, "attachments[0].filename"),
    ],
)
def test_send_refuses_crlf_injection(api: httpx.Client, mailbox: Sandbox, changes: dict, field: str) -> None:
    response = post_send(api, **changes)
    assert response.status_code == 400
    error = response.json()["Error"]
    assert error.startswith(f"{field}: "), error
    assert " — " in error  # the fix follows the problem
    assert stored(mailbox) == 0


@pytest.mark.parametrize("breaker", ["\u0085", "\u2028", "\u2029"])
def test_send_refuses_unicode_line_breaks_in_a_header(
    api: httpx.Client, mailbox: Sandbox, breaker: str
) -> None:
    """Python's email package treats these as line breaks; the answer is a 400, never a 500."""
    response = post_send(api, Subject=f"hi{breaker}Bcc: victim@example.com")
    assert response.status_code == 400
    assert response.json()["Error"]
    assert stored(mailbox) == 0


# --------------------------------------------------------------------------- size


def test_smtp_data_over_the_size_limit(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(max_message_size=2000)
    w = Wire(box)
    try:
        w.send("EHLO client.example")
        w.send("MAIL FROM:<ann@example.com>")
        w.send("RCPT TO:<bob@example.com>")
        assert w.send("DATA").startswith("354")
        body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3
        assert w.send(body + b".") == "552 5.3.4 Requested mail action aborted: exceeded storage allocation (2000)"
        assert w.send("NOOP") == "250 2.0.0 Ok"  # the session survives and is in sync
        w.send("MAIL FROM:<ann@example.com>")
        w.send("RCPT TO:<bob@example.com>")
        w.send("DATA")
        assert w.send(b"Subject: small\r\n\r\nok\r\n.").startswith("250 2.0.0 Ok: queued as ")
    finally:
        w.close()
    subjects = [m["Subject"] for m in httpx.get(box.api_url + "/api/v1/messages").json()["messages"]]
    assert subjects == ["small"]


def test_smtp_size_declared_too_big_is_refused_before_data(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(max_message_size=2000)
    w = Wire(box)
    try:
        assert "250-SIZE 2000" in w.send("EHLO client.example")
        assert w.send("MAIL FROM:<ann@example.com> SIZE=2001") == (
            "552 5.3.4 Requested mail action aborted: exceeded storage allocation (2000)"
        )
        assert w.send("MAIL FROM:<ann@example.com> SIZE=1999") == "250 2.1.0 Ok"
    finally:
        w.close()
    assert stored(box) == 0


def test_send_body_over_the_size_limit(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(max_message_size=4000)
    with httpx.Client(base_url=box.api_url) as api:
        response = post_send(api, Text="x" * 5000)
        assert response.status_code == 413
        assert response.json() == {"Error": "http: request body too large"}
        assert post_send(api, Text="x" * 100).status_code == 200
    assert stored(box) == 1


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("body", [b"{", b"not json", b"[1, 2]", b'{"From": ', b"\xff\xfe"])
def test_send_with_invalid_json(api: httpx.Client, mailbox: Sandbox, body: bytes) -> None:
    response = api.post("/api/v1/send", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["Error"].startswith("invalid JSON: ")
    assert stored(mailbox) == 0


def test_send_with_an_empty_body_or_wrong_types(api: httpx.Client, mailbox: Sandbox) -> None:
    assert api.post("/api/v1/send", content=b"").json() == {
        "Error": "invalid JSON: the body is empty (send a JSON object)"
    }
    assert post_send(api, To="bob@example.com").json() == {"Error": 'invalid JSON: field "To" must be an array'}
    assert post_send(api, Subject=["x"]).json() == {"Error": 'invalid JSON: field "Subject" must be a string'}
    assert post_send(api, Tags="t").json() == {"Error": 'invalid JSON: field "Tags" must be an array of strings'}
    assert stored(mailbox) == 0


def test_send_with_bad_base64_attachment(api: httpx.Client, mailbox: Sandbox) -> None:
    response = post_send(api, Attachments=[{"Filename": "a.bin", "Content": "%%% not base64"}])
    assert response.status_code == 400
    assert response.json()["Error"].startswith('error decoding base64 attachment "a.bin"')
    assert stored(mailbox) == 0


def test_send_without_any_recipient(api: httpx.Client, mailbox: Sandbox) -> None:
    response = post_send(api, To=[])
    assert response.status_code == 400
    assert response.json()["Error"].startswith("to: no recipient given")
    assert stored(mailbox) == 0


def test_invalid_json_in_put_and_delete_changes_nothing(api: httpx.Client, mailbox: Sandbox) -> None:
    message_id = api.post("/api/v1/send", json=GOOD).json()["ID"]
    bad_put = api.put("/api/v1/messages", content=b'{"Read": tru')
    assert bad_put.status_code == 400 and bad_put.text.startswith("invalid JSON: ")
    wrong_type = api.put("/api/v1/messages", json={"IDs": message_id, "Read": True})
    assert (wrong_type.status_code, wrong_type.text) == (400, 'invalid JSON: field "IDs" must be an array of strings')
    assert api.put("/api/v1/messages", json={"Read": "yes"}).status_code == 400
    # Mailpit would delete *everything* on an unreadable DELETE body; the sandbox refuses instead.
    bad_delete = api.request("DELETE", "/api/v1/messages", content=b'{"IDs": ["' + message_id.encode())
    assert bad_delete.status_code == 400 and bad_delete.text.startswith("invalid JSON: ")
    assert api.put("/api/v1/tags", content=b"{").status_code == 400
    page = api.get("/api/v1/messages").json()
    assert [(m["ID"], m["Read"], m["Tags"]) for m in page["messages"]] == [(message_id, False, [])]


# --------------------------------------------------------------------------- unknown IDs


@pytest.mark.parametrize(
    "path",
    ["/api/v1/message/{id}", "/api/v1/message/{id}/headers", "/api/v1/message/{id}/raw", "/api/v1/message/{id}/part/1"],
)
def test_unknown_ids_are_404(api: httpx.Client, mailbox: Sandbox, path: str) -> None:
    api.post("/api/v1/send", json=GOOD)
    response = api.get(path.format(id="AAAAAAAAAAAAAAAAAAAAAA"))
    assert (response.status_code, response.text) == (404, "404 page not found")
    assert stored(mailbox) == 1


def test_unknown_ids_in_bulk_calls_change_nothing(api: httpx.Client, mailbox: Sandbox) -> None:
    message_id = api.post("/api/v1/send", json=GOOD).json()["ID"]
    assert api.put("/api/v1/messages", json={"IDs": ["nope"], "Read": True}).text == "ok"
    assert api.request("DELETE", "/api/v1/messages", json={"IDs": ["nope"]}).text == "ok"
    assert api.put("/api/v1/tags", json={"IDs": ["nope"], "Tags": ["x"]}).text == "ok"
    page = api.get("/api/v1/messages").json()
    assert [(m["ID"], m["Read"]) for m in page["messages"]] == [(message_id, False)] and page["tags"] == []


def test_unknown_part_of_a_known_message(api: httpx.Client) -> None:
    message_id = api.post("/api/v1/send", json=GOOD).json()["ID"]
    assert api.get(f"/api/v1/message/{message_id}/part/9.9").status_code == 404


# --------------------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/messages", {"start": "-1"}, 'invalid start parameter: "-1"'),
        ("/api/v1/messages", {"start": "abc"}, 'invalid start parameter: "abc"'),
        ("/api/v1/messages", {"limit": "ten"}, 'invalid limit parameter: "ten"'),
        ("/api/v1/messages", {"before": "someday"}, 'invalid before parameter: "someday"'),
        ("/api/v1/search", {"query": "x", "limit": "-5"}, 'invalid limit parameter: "-5"'),
        ("/api/v1/search", {"query": "x", "tz": "Nowhere/City"}, 'invalid timezone: "Nowhere/City"'),
        ("/api/v1/search", {"query": "before:31/31/2026"}, 'invalid date: "31/31/2026"'),
        ("/api/v1/search", {"query": "   "}, "Error: no search query"),
        ("/api/v1/search", {}, "Error: no search query"),
        ("/api/v1/message/latest", {"query": "after:never"}, 'invalid date: "never"'),
    ],
)
def test_bad_query_parameters(api: httpx.Client, mailbox: Sandbox, path: str, params: dict, message: str) -> None:
    api.post("/api/v1/send", json=GOOD)
    response = api.get(path, params=params)
    assert response.status_code == 400
    assert response.text.startswith(message), response.text
    assert stored(mailbox) == 1


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/search"])
@pytest.mark.parametrize("name", ["start", "limit"])
@pytest.mark.parametrize("raw", [str(2**63), "9" * 25, "9" * 5000])
def test_huge_integer_query_parameters_are_refused(
    api: httpx.Client, mailbox: Sandbox, path: str, name: str, raw: str
) -> None:
    api.post("/api/v1/send", json=GOOD)
    response = api.get(path, params={"query": "hi", name: raw})
    assert response.status_code == 400, response.text
    assert response.text.startswith(f'invalid {name} parameter: "{raw}"'), response.text[:200]
    assert str(2**63 - 1) in response.text  # says what the largest accepted value is
    assert stored(mailbox) == 1  # the server still answers, and nothing changed
    largest = api.get(path, params={"query": "hi", name: str(2**63 - 1)})
    assert largest.status_code == 200, largest.text
    assert largest.json()["total"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"query": "x", "tz": "Nowhere/City"}, 'invalid timezone: "Nowhere/City"'),
        ({"query": "x before:soon"}, 'invalid date: "soon"'),
        ({"query": ""}, "Error: no search query"),
    ],
)
def test_refused_delete_search_deletes_nothing(api: httpx.Client, mailbox: Sandbox, params: dict, message: str) -> None:
    api.post("/api/v1/send", json=GOOD)  # its text is "x", so the query would match it
    response = api.delete("/api/v1/search", params=params)
    assert response.status_code == 400 and response.text.startswith(message)
    assert stored(mailbox) == 1


def test_unknown_smtp_auth_mechanism_and_bad_base64(mailbox: Sandbox) -> None:
    w = Wire(mailbox)
    try:
        w.send("EHLO client.example")
        assert w.send("AUTH CRAM-MD5") == "504 5.5.4 Unrecognized authentication type"
        assert w.send("AUTH PLAIN !!!notbase64").startswith("501 5.5.2")
        assert w.send("AUTH PLAIN " + base64.b64encode(b"no-separators").decode()).startswith("501 5.5.2")
        assert w.send("NOOP") == "250 2.0.0 Ok"
    finally:
        w.close()
    assert stored(mailbox) == 0
