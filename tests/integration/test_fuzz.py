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
