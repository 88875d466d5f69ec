"""Hypothesis against the sandbox's real sockets: no 5xx, no crash, nothing half-stored.

* `POST /api/v1/send` gets arbitrary JSON-ish payloads (Mailpit's field names with values of
  any JSON type, or any JSON at all): the answer is 200 or a 4xx, never a 5xx; a 200 adds
  exactly one message, readable through every read endpoint; a 4xx adds none.
* SMTP gets arbitrary bytes as HELO/EHLO, MAIL FROM and RCPT TO arguments and as header
  values: every command gets a well-formed reply, a ``250 … queued as`` adds exactly one
  readable message, anything else adds none, and the server still answers afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from emailkit.replies import parse_reply
from emailkit.sandbox import Sandbox

# EMAILKIT_FUZZ_EXAMPLES=3000 for a long hunt; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("EMAILKIT_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(max_messages=0, max_message_size=200_000) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def http(box: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=box.api_url, timeout=10) as client:
        yield client


def count(http: httpx.Client) -> int:
    return int(http.get("/api/v1/info").json()["Messages"])


def readable(http: httpx.Client, message_id: str) -> None:
    for path in ("", "/headers", "/raw"):
        r = http.get(f"/api/v1/message/{message_id}{path}")
        assert r.status_code == 200, (path, r.status_code, r.text[:300])


# --------------------------------------------------------------------------- HTTP send API

leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40))
anything = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                          max_size=3), max_leaves=10)
address = st.integers(1, 3).flatmap(lambda k: st.text(max_size=40) if k == 2 else st.emails())
well_formed = st.fixed_dictionaries({"Email": st.emails()}, optional={"Name": st.text(max_size=40)})
# Mostly plausible people (so that many sends get through and the stored message is read
# back), sometimes anything at all.
odd = st.fixed_dictionaries({"Email": address, "Name": st.text(max_size=40)})


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Five times in six a value of the right shape, else any JSON value."""
    return st.integers(1, 6).flatmap(lambda k: anything if k == 4 else valid)


person = mostly(st.integers(1, 4).flatmap(lambda k: odd if k == 3 else well_formed))
people = mostly(st.lists(person, min_size=1, max_size=3))
attachment = st.fixed_dictionaries(
    {"Filename": st.text(max_size=30), "Content": st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
     | st.text(max_size=30)},
    optional={"ContentType": st.text(max_size=30), "ContentID": st.text(max_size=20)},
)


_optional = {
    "Cc": people,
    "Bcc": mostly(st.lists(address, max_size=3)),
    "ReplyTo": people,
    "Subject": mostly(st.text(max_size=200)),
    "Text": mostly(st.text(max_size=500)),
    "HTML": mostly(st.text(max_size=500)),
    "Headers": mostly(st.dictionaries(st.text(max_size=30), mostly(st.text(max_size=80)), max_size=3)),
    "Tags": mostly(st.lists(st.text(max_size=20), max_size=3)),
    "Attachments": mostly(st.lists(attachment, max_size=2)),
}
payloads = st.fixed_dictionaries({"From": person, "To": people}, optional=_optional)


def check_send(http: httpx.Client, content: bytes, headers: dict[str, str]) -> None:
    before = count(http)
    r = http.post("/api/v1/send", content=content, headers=headers)
    event(f"HTTP {r.status_code}")
    assert r.status_code < 500, (content[:500], r.status_code, r.text[:500])
    if r.status_code == 200:
        message_id = r.json()["ID"]
        readable(http, message_id)
        assert count(http) == before + 1
    else:
        assert r.status_code in (400, 413), (r.status_code, r.text)
        assert count(http) == before, content[:500]


@FUZZ
@given(payload=payloads)
# Found by this test: U+0085 (and U+2028, VT, FF …) count as line breaks for the email package.
@example(payload={"From": {"Email": "0@A.AC"}, "To": [{"Email": "2@A.sB"}], "Subject": "\u00850"})
@example(payload={"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": "x\u2028y"})
def test_send_api_with_mailpit_shaped_payloads(http: httpx.Client, payload: dict[str, Any]) -> None:
    check_send(http, json.dumps(payload).encode(), {"Content-Type": "application/json"})


@FUZZ
@given(body=anything.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
def test_send_api_with_any_body(http: httpx.Client, body: bytes) -> None:
    check_send(http, body, {"Content-Type": "application/json"})


def test_the_api_still_answers_after_fuzzing(http: httpx.Client) -> None:
    assert http.get("/readyz").status_code == 200
    assert http.get("/api/v1/messages").status_code == 200


# --------------------------------------------------------------------------- SMTP arguments and headers

line_bytes = st.binary(max_size=120).filter(lambda b: b"\r" not in b and b"\n" not in b)
# Half the time a valid address (or one with odd but legal characters), so the
# conversation gets past MAIL/RCPT and the header values are fuzzed too.
address_bytes = st.emails().map(str.encode) | line_bytes
header_value = st.text(max_size=120).filter(lambda t: "\r" not in t and "\n" not in t)


class SMTPWire:
    """A raw SMTP client on a socket: any bytes go out, every reply is read whole."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            raw = self.file.readline()
            assert raw, f"the server closed the connection after {lines!r}"
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            parsed = parse_reply(text)
            assert parsed is not None, f"not an SMTP reply: {text!r}"
            lines.append(text)
            if parsed.final:
                return parsed.code, "\n".join(lines)

    def command(self, line: bytes) -> tuple[int, str]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
        except (OSError, AssertionError):
            pass
        self.file.close()
        self.sock.close()


@FUZZ
@given(verb=st.sampled_from([b"HELO", b"EHLO"]), helo=line_bytes, sender=address_bytes, rcpt=address_bytes,
       subject=header_value, extra=line_bytes)
def test_smtp_arguments_and_header_values(box: Sandbox, http: httpx.Client, verb: bytes, helo: bytes,
                                          sender: bytes, rcpt: bytes, subject: str, extra: bytes) -> None:
    before = count(http)
    wire = SMTPWire(box.smtp_host, box.smtp_port)
    stored: list[str] = []
    try:
        assert wire.greeting[0] == 220
        wire.command(verb + b" " + helo)
        mail, _ = wire.command(b"MAIL FROM:<" + sender + b">")
        rcpt_code, _ = wire.command(b"RCPT TO:<" + rcpt + b">")
        if rcpt_code != 250:  # also try a plain recipient, so the header values get their turn
            rcpt_code, _ = wire.command(b"RCPT TO:<ann@example.com>")
        event(f"MAIL {mail}, RCPT {rcpt_code}")
        if mail == 250 and rcpt_code == 250:
            code, _ = wire.command(b"DATA")
            assert code == 354
            message = (f"From: fuzz@example.com\r\nTo: ann@example.com\r\nSubject: {subject}\r\n".encode()
                       + b"X-Fuzz: " + extra + b"\r\n\r\nbody\r\n.")
            code, text = wire.command(message)
            event(f"DATA {code}")
            assert code in (250, 451, 550, 552, 554), text
            if code == 250:
                assert "queued as" in text
                stored.append(text.rsplit(" ", 1)[-1])
    finally:
        wire.close()
    for message_id in stored:
        readable(http, message_id)
    assert count(http) == before + len(stored)


def test_smtp_still_answers_after_fuzzing(box: Sandbox) -> None:
    wire = SMTPWire(box.smtp_host, box.smtp_port)
    try:
        assert wire.command(b"EHLO still.alive")[0] == 250
        assert wire.command(b"NOOP")[0] == 250
    finally:
        wire.close()


# --------------------------------------------------------------------------- the limits (emailkit.limits)
#
# Strategies for the classes of input that once crashed a server: deep nesting, huge numbers, lone
# surrogates, long queries and many terms. Every answer is a 200 or a 4xx in the API's own shape,
# the keep-alive connection survives (the next request travels on the same TCP connection), and the
# in-process parsers (SMTP and POP3 commands over the wire, the search query, the MIME summariser)
# either work or refuse with their own error — never anything else.

from emailkit.limits import INT_MAX, INT_MIN, JSON_MAX_DEPTH, SEARCH_MAX_TERMS  # noqa: E402

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`

QUICK = settings(max_examples=int(os.environ.get("EMAILKIT_FUZZ_EXAMPLES", "60")), deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: JSON text nested from a little below the limit to far past what the C decoder could take.
nesting = st.tuples(st.integers(JSON_MAX_DEPTH - 3, 3_000), st.sampled_from(["[", '{"k":']),
                    st.sampled_from(["1", '"x"', "[]", "{}"])).map(
    lambda t: t[1] * t[0] + t[2] + ("]" if t[1] == "[" else "}") * t[0])
#: Numbers as JSON text: past 64 bits, thousands of digits, floats that overflow; and a few that fit.
huge_numbers = (st.integers(INT_MAX + 1, 10**60) | st.integers(-(10**60), INT_MIN - 1)).map(str) | \
    st.integers(20, 6_000).map(lambda n: "9" * n) | st.sampled_from(["1e999", "-1e400", "1" + "0" * 400 + ".5"]) | \
    st.sampled_from([str(INT_MAX), str(INT_MIN), "0"])
#: Text with lone UTF-16 surrogates, as JSON escapes (json.dumps writes them as \udXXX).
surrogates = st.lists(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(),
                      min_size=1, max_size=12).map(lambda cs: json.dumps("".join(cs)))
_value = (st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
          | st.tuples(st.integers(1, 45), st.sampled_from(["", "k", "kb", "mb", ".5mb"])).map(lambda t: "9" * t[0] + t[1])
          | st.builds('"Mon, {} Jan {} 00:00:00 {}"'.format, st.integers(1, 10**20), st.integers(1, 10**20),
                      st.sampled_from(["+0000", "+99999999999999999999"])))
_term = st.tuples(st.sampled_from(["from:", "to:", "subject:", "message-id:", "tag:", "larger:", "smaller:", "before:",
                                   "after:", "-", "!", "addressed:", "-addressed:", "is:", "has:", ""]), _value).map(
    "".join)
#: Queries up to 12 x the term limit (SQLite refuses an expression 1,000 deep), and single terms up to
#: 6,000 characters.
many_terms = st.lists(_term, max_size=SEARCH_MAX_TERMS * 12).map(" ".join) | \
    st.integers(1, 1_500).map(lambda n: " ".join(["x"] * n)) | \
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6_000)
bad_json_value = nesting | huge_numbers | surrogates


def same_connection(first: httpx.Response, second: httpx.Response) -> None:
    ports = [r.extensions["network_stream"].get_extra_info("client_addr") for r in (first, second)]
    assert ports[0] == ports[1], "the server dropped the keep-alive connection"


SANDBOX_JSON_ROUTES = [
    ("POST", "/api/v1/send", '{"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": %s}'),
    ("PUT", "/api/v1/messages", '{"Read": true, "IDs": %s}'),
    ("DELETE", "/api/v1/messages", '{"IDs": %s}'),
    ("PUT", "/api/v1/tags", '{"Tags": %s, "IDs": []}'),
    ("PUT", "/api/v1/tags/none", '{"Name": %s}'),
]


@QUICK
@given(route=st.sampled_from(SANDBOX_JSON_ROUTES), value=bad_json_value)
def test_sandbox_json_bodies_past_the_limits(http: httpx.Client, route: tuple[str, str, str], value: str) -> None:
    method, path, template = route
    before = count(http)
    r = http.request(method, path, content=(template % value).encode("utf-8", "surrogatepass"),
                     headers={"Content-Type": "application/json"})
    event(f"{method} {path}: HTTP {r.status_code}")
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    if r.status_code == 400:  # Mailpit's shapes: {"Error": ...} from /send, text/plain elsewhere
        assert (r.json()["Error"] if path == "/api/v1/send" else r.text)
    after = http.get("/api/v1/info")
    same_connection(r, after)
    if path != "/api/v1/send" or r.status_code != 200:
        # Deletes are only ever of IDs that exist nowhere, so the count stays (or grows by the one sent).
        assert int(after.json()["Messages"]) == before


@QUICK
@given(query=many_terms, route=st.sampled_from(["GET /api/v1/search", "DELETE /api/v1/search",
                                                 "GET /api/v1/message/latest", "PUT /api/v1/messages"]))
def test_every_search_route_with_long_and_many_terms(http: httpx.Client, query: str, route: str) -> None:
    http.post("/api/v1/send", json={"From": {"Email": "keep@example.com"}, "To": [{"Email": "b@example.com"}],
                                    "Subject": "kept", "Text": "kept"})
    method, path = route.split(" ")
    if method == "PUT":
        r = http.put(path, json={"Search": query, "Read": False})
    else:
        r = http.request(method, path, params={"query": query})
    event(f"{route}: HTTP {r.status_code}")
    assert r.status_code in (200, 400, 404), (r.status_code, r.text[:300])  # 404: latest found no match
    if r.status_code == 400:
        assert r.headers["content-type"].startswith("text/plain") and r.text
    same_connection(r, http.get("/api/v1/info"))


# -- the search-query parser, in process: a query either becomes SQL that SQLite runs, or a SearchError


@pytest.fixture(scope="module")
def search_store() -> Iterator[Any]:
    from emailkit.sandbox.store import Store

    with Store() as store:
        store.add(b'Message-ID: <"a,b"@x>\r\nFrom: Ann <ann@example.com>\r\nTo: bob@example.com\r\n'
                  b"Subject: fuzz\r\n\r\nhello\r\n")
        yield store


@settings(max_examples=int(os.environ.get("EMAILKIT_FUZZ_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=many_terms, tz=st.none() | st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12"]) |
       st.text(max_size=400))
def test_search_query_parser(search_store: Any, query: str, tz: str | None) -> None:
    from emailkit.sandbox.search import SearchError, resolve_tz

    try:
        zone = resolve_tz(tz)
        page, matches, unread = search_store.search(query, 0, 10, tz=zone)
    except SearchError as exc:
        event("SearchError")
        assert str(exc)
        return
    event("searched")
    assert 0 <= unread <= matches <= 1 and len(page) == matches


# -- the MIME summariser, in process: any bytes give a summary, or MessageTooComplex past a limit

_mime_leaf = st.sampled_from([b"Content-Type: text/plain\r\n\r\nhello\r\n",
                              b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n",
                              b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
                              b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
                              b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n"])


def _multipart(parts: list[bytes], boundary: bytes) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + p for p in parts)
    return b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n' + body + b"--" + boundary + b"--\r\n"


_counter = iter(range(10**9))
mime_trees = st.recursive(_mime_leaf, lambda inner: st.lists(inner, min_size=1, max_size=3).map(
    lambda parts: _multipart(parts, b"b%d" % next(_counter))), max_leaves=12)
deep_mime = st.integers(1, 1_500).map(lambda depth: b"".join(
    b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (i, i) for i in range(depth))
    + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + b"".join(b"--d%d--\r\n" % i for i in reversed(range(depth))))


@settings(max_examples=int(os.environ.get("EMAILKIT_FUZZ_EXAMPLES", "300")), deadline=None)
@given(body=mime_trees | deep_mime | st.binary(max_size=2_000),
       head=st.binary(max_size=200).filter(lambda b: b"\r\n\r\n" not in b))
def test_mime_summariser(body: bytes, head: bytes) -> None:
    from emailkit.sandbox.summary import MessageTooComplex, find_part, parse_message, summarize

    raw = b"From: a@example.com\r\nSubject: fuzz\r\n" + head + b"\r\n" + body
    try:
        summary = summarize(raw)
        parsed = parse_message(raw)
        find_part(raw, "1.1")
    except MessageTooComplex as exc:
        event(f"refused: {exc.limit}")
        return
    event("summarised")
    assert summary.size == len(raw) and isinstance(parsed.text, str)


# -- the SMTP and POP3 command parsers, over the wire: every line gets a reply, the server keeps answering

command_lines = st.binary(max_size=600).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")) | \
    st.sampled_from([b"MAIL FROM:<a@example.com> SIZE=" + b"9" * 40, b"RCPT TO:<" + b"x" * 2_000 + b"@example.com>",
                     b"AUTH PLAIN " + b"A" * 70_000, b"EHLO " + b"\xff" * 50, b"DATA", b"RSET", b"\x00" * 10,
                     b"BDAT 10", b"VRFY " + b"\xed\xa0\x80"])


@QUICK
@given(lines=st.lists(command_lines, min_size=1, max_size=8))
def test_smtp_command_parser(box: Sandbox, http: httpx.Client, lines: list[bytes]) -> None:
    before = count(http)
    wire = SMTPWire(box.smtp_host, box.smtp_port)
    try:
        wire.command(b"EHLO fuzz.example")
        for line in lines:
            if line.strip().upper() == b"DATA":
                continue  # DATA would take the next lines as a message; the message paths are fuzzed above
            code, text = wire.command(line)
            event(f"SMTP {code}")
            assert 200 <= code < 600, text
            if code == 421 or "goodbye" in text:  # aiosmtpd ends a session of bogus commands: a reply, then the end
                return
        assert wire.command(b"RSET")[0] == 250
        assert wire.command(b"NOOP")[0] == 250
    finally:
        wire.close()
    assert count(http) == before


@pytest.fixture(scope="module")
def pop3_box() -> Iterator[Sandbox]:
    with Sandbox(pop3_auth={"fuzz": "pw"}) as sandbox:
        assert sandbox.store is not None
        for i in range(3):
            sandbox.store.add(b"Subject: m%d\r\n\r\n.body\r\n" % i)
        yield sandbox


pop3_lines = st.tuples(st.sampled_from([b"STAT", b"LIST", b"UIDL", b"RETR", b"TOP", b"DELE", b"RSET", b"NOOP",
                                        b"USER", b"PASS", b"CAPA", b"APOP", b"STLS", b""]),
                       st.lists(st.sampled_from([b"0", b"1", b"3", b"4", b"-1", b"99999999999999999999", b"x",
                                                 b"\xff"]), max_size=3)).map(lambda t: b" ".join([t[0], *t[1]])) | \
    st.binary(max_size=700).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))


def _pop3_reply(reader: Any, multiline: bool) -> bytes:
    first = reader.readline()
    assert first.startswith((b"+OK", b"-ERR")), first
    if multiline and first.startswith(b"+OK"):
        while reader.readline() not in (b".\r\n", b""):
            pass
    return first


@QUICK
@given(lines=st.lists(pop3_lines, min_size=1, max_size=10), login=st.booleans())
def test_pop3_command_parser(pop3_box: Sandbox, lines: list[bytes], login: bool) -> None:
    assert pop3_box.store is not None and pop3_box.pop3_port
    before = pop3_box.store.counts().total
    with socket.create_connection((pop3_box.pop3_host, pop3_box.pop3_port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        if login:
            sock.sendall(b"USER fuzz\r\nPASS pw\r\n")
            _pop3_reply(reader, False)
            _pop3_reply(reader, False)
        for line in lines:
            verb = line.split(b" ")[0].upper()
            if verb in (b"QUIT", b"USER", b"PASS"):  # these may end the session on purpose
                continue
            sock.sendall(line + b"\r\n")
            words = line.split()
            multiline = verb == b"CAPA" or verb in (b"RETR", b"TOP") or (verb in (b"LIST", b"UIDL") and len(words) == 1)
            first = _pop3_reply(reader, multiline)
            event(f"POP3 {verb[:5]!r} {first[:4]!r}")
        sock.sendall(b"NOOP\r\n")
        assert _pop3_reply(reader, False).startswith((b"+OK", b"-ERR"))
    # The connection ended without QUIT: whatever DELE marked is kept (RFC 1939 §6).
    assert pop3_box.store.counts().total == before


# -- the provider, with the same strategies: its envelope (or OAuth's shape), never a 5xx, the connection kept


PROVIDER_BODIES = [
    ("/messages/send", '{"to": [{"email": "b@example.com"}], "subject": %s, "body": "x"}'),
    ("/messages/send", '{"to": [{"email": "b@example.com"}], "body": "x", "template": {"id": "t", "variables": %s}}'),
    ("/messages/send-batch", '{"messages": [{"to": [{"email": "b@example.com"}], "body": %s}]}'),
    ("/templates", '{"name": "n", "subject": %s, "body": "b"}'),
    ("/v3/connect/token", '{"grant_type": "refresh_token", "refresh_token": %s}'),
    ("/v3/connect/revoke", '{"token": %s}'),
]


@QUICK
@given(route=st.sampled_from(PROVIDER_BODIES), value=bad_json_value)
def test_provider_json_bodies_past_the_limits(lab: Any, route: tuple[str, str], value: str) -> None:
    path, template = route
    grant = lab.grant("fuzz")
    url = path if path.startswith("/v3/") else f"/v3/grants/{grant.id}{path}"
    r = lab.http.post(url, content=(template % value).encode("utf-8", "surrogatepass"),
                      headers={"Content-Type": "application/json"})
    event(f"{path}: HTTP {r.status_code}")
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert ("error_description" in body) if path.startswith("/v3/connect/") else \
            (body["error"]["message"] and body["request_id"] == r.headers["request-id"]), body
    same_connection(r, lab.http.get("/v3/grants"))
