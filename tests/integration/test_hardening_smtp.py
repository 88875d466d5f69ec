"""The sandbox's SMTP and POP3 servers against messages past the limits and clients that never finish.

* A message nested deeper than `MIME_MAX_DEPTH` or with more than `HEADER_MAX_FIELDS` header
  fields is refused *permanently* (5xx): a 451 would have a conforming client retry for days a
  message that can never be stored. Nothing is stored; the session goes on.
* Timeouts (`SessionTimeouts`, POP3's idle/line/session): a client that drips a byte a second
  is cut after the line deadline, not after the idle time; a busy connection after the session
  budget; one that keeps moving is not cut while it moves. Short timeouts make the tests fast;
  the defaults are checked against the numbers docs/sandbox.md gives.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from emailkit.limits import (
    HEADER_MAX_FIELDS,
    LINE_SECONDS,
    MIME_MAX_DEPTH,
    POP3_IDLE_SECONDS,
    POP3_SESSION_SECONDS,
    SMTP_IDLE_SECONDS,
    SMTP_SESSION_SECONDS,
)
from emailkit.sandbox import Sandbox
from emailkit.sandbox.pop3_server import POP3Server
from emailkit.sandbox.smtp_server import SMTPServer, SessionTimeouts
from emailkit.sandbox.store import Store
from tests.support.sandbox import Wire


#: Mailpit's words when it closes a session on a timeout (the sandbox's `hostname` here is mx.test).
CLOSING = b"421 4.4.2 mx.test Mailpit ESMTP Service closing transmission channel after "


def nested(depth: int) -> bytes:
    """A message whose text part sits inside `depth` levels of multipart/mixed."""
    out = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: deep\r\n"
    for i in range(depth):
        out += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    out += b"Content-Type: text/plain\r\n\r\nthe innermost words\r\n"
    for i in reversed(range(depth)):
        out += b"--b%d--\r\n" % i
    return out


def with_headers(count: int) -> bytes:
    head = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: many\r\n"
    return head + b"".join(b"X-H%d: v\r\n" % i for i in range(count - 3)) + b"\r\nbody\r\n"


def transaction(w: Wire, data: bytes) -> str:
    assert w.send("MAIL FROM:<ann@example.com>") == "250 2.1.0 Ok"
    assert w.send("RCPT TO:<bob@example.com>") == "250 2.1.5 Ok"
    assert w.send("DATA").startswith("354")
    return w.send(data + b".")


@pytest.fixture()
def box(sandbox: Sandbox) -> Sandbox:
    """The embedded sandbox, emptied (these limits are the sandbox's; a real Mailpit stores such messages)."""
    assert sandbox.store is not None
    sandbox.store.delete()
    return sandbox


def total(box: Sandbox) -> int:
    return int(httpx.get(box.api_url + "/api/v1/messages").json()["total"])


@pytest.mark.parametrize("depth", [MIME_MAX_DEPTH + 1, 2_000, 10_000])
def test_mime_nested_too_deep_is_refused_permanently(box: Sandbox, depth: int) -> None:
    w = Wire(box)
    try:
        w.send("EHLO client.example")
        reply = transaction(w, nested(depth))
        assert reply == f"554 5.6.0 Message refused: MIME parts nested deeper than {MIME_MAX_DEPTH} levels", reply
        assert w.send("NOOP") == "250 2.0.0 Ok"  # the session goes on, in step
        assert transaction(w, b"Subject: next\r\n\r\nok\r\n").startswith("250 2.0.0 Ok: queued as ")
    finally:
        w.close()
    assert total(box) == 1  # only the second message


def test_mime_nested_to_the_limit_is_stored_and_readable(box: Sandbox) -> None:
    w = Wire(box)
    try:
        w.send("EHLO client.example")
        reply = transaction(w, nested(MIME_MAX_DEPTH))
    finally:
        w.close()
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    message_id = reply.rsplit(" ", 1)[-1]
    shown = httpx.get(f"{box.api_url}/api/v1/message/{message_id}").json()
    assert shown["Text"].strip() == "the innermost words"


def test_too_many_header_fields_are_refused_permanently(box: Sandbox) -> None:
    w = Wire(box)
    try:
        w.send("EHLO client.example")
        reply = transaction(w, with_headers(HEADER_MAX_FIELDS + 1))
        assert reply == (f"552 5.3.4 Message header too large: the message has {HEADER_MAX_FIELDS + 1} header "
                         f"fields (at most {HEADER_MAX_FIELDS})"), reply
        assert transaction(w, with_headers(HEADER_MAX_FIELDS)).startswith("250 2.0.0 Ok: queued as ")
    finally:
        w.close()
    assert total(box) == 1


# --------------------------------------------------------------------------- SMTP timeouts


def test_the_default_timeouts_are_the_documented_ones() -> None:
    defaults = SessionTimeouts()
    assert (defaults.idle, defaults.line, defaults.session) == (SMTP_IDLE_SECONDS, LINE_SECONDS, SMTP_SESSION_SECONDS)
    assert SMTP_IDLE_SECONDS >= 300  # RFC 5321 §4.5.3.2.7
    assert LINE_SECONDS < SMTP_IDLE_SECONDS  # a drip-feeding client is cut long before the idle time
    assert POP3_IDLE_SECONDS >= 600 and POP3_SESSION_SECONDS > POP3_IDLE_SECONDS  # RFC 1939 §3


@pytest.fixture()
def quick_smtp() -> Iterator[tuple[SMTPServer, Store]]:
    with Store() as store:
        server = SMTPServer(store, starttls=False, hostname="mx.test",
                            timeouts=SessionTimeouts(idle=1.0, line=0.6, session=3.0))
        server.start()
        try:
            yield server, store
        finally:
            server.close()


def connect(server: SMTPServer) -> tuple[socket.socket, object]:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220 ")
    return sock, reader


def closed_after(reader: object, started: float) -> tuple[bytes, float]:
    """The server's last words and how long after `started` the connection closed."""
    last = b""
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        if not line:
            return last, time.monotonic() - started
        last = line


def test_a_client_dripping_bytes_is_cut_at_the_line_deadline(quick_smtp: tuple[SMTPServer, Store]) -> None:
    server, _ = quick_smtp
    sock, reader = connect(server)
    started = time.monotonic()
    try:
        for byte in b"EHLO slow.example.com":  # one byte every 0.1 s: never idle, never done
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        last, after = closed_after(reader, started)
    finally:
        sock.close()
    assert last == CLOSING + b"timeout exceeded\r\n"
    assert 0.5 <= after < 1.5  # the 0.6 s line deadline, not the 1.0 s idle time or later


def test_an_idle_client_is_told_and_closed(quick_smtp: tuple[SMTPServer, Store]) -> None:
    server, _ = quick_smtp
    sock, reader = connect(server)
    try:
        last, after = closed_after(reader, time.monotonic())
    finally:
        sock.close()
    assert last == CLOSING + b"timeout exceeded\r\n"
    assert 0.9 <= after < 2.0


@pytest.mark.slow
def test_a_busy_session_ends_at_its_budget_and_a_cut_data_stores_nothing(
    quick_smtp: tuple[SMTPServer, Store]
) -> None:
    server, store = quick_smtp
    sock, reader = connect(server)
    started = time.monotonic()
    try:
        sock.sendall(b"EHLO busy.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        sock.sendall(b"Subject: never finished\r\n\r\n")
        for _ in range(60):  # a line every 0.1 s: never idle, every line on time
            try:
                sock.sendall(b"more words\r\n")
            except OSError:
                break
            time.sleep(0.1)
        last, after = closed_after(reader, started)
    finally:
        sock.close()
    assert last == CLOSING + b"session time limit exceeded\r\n"
    assert 2.9 <= after < 4.5
    assert store.counts().total == 0  # DATA never ended: nothing half-stored


def test_a_slow_data_that_keeps_moving_is_stored(quick_smtp: tuple[SMTPServer, Store]) -> None:
    """Longer than the idle time in all, every line on time: the idle timer counts silence only."""
    server, store = quick_smtp
    sock, reader = connect(server)
    try:
        sock.sendall(b"EHLO steady.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in range(4):
            assert reader.readline().startswith((b"250", b"354"))  # type: ignore[attr-defined]
        sock.sendall(b"Subject: steady\r\n\r\n")
        for _ in range(8):  # 1.6 s of DATA
            sock.sendall(b"a line\r\n")
            time.sleep(0.2)
        sock.sendall(b".\r\n")
        reply = b""
        while not reply.startswith(b"250 2.0.0"):
            reply = reader.readline()  # type: ignore[attr-defined]
            assert reply, "closed before the message was accepted"
    finally:
        sock.close()
    assert store.counts().total == 1


# --------------------------------------------------------------------------- POP3 timeouts


@pytest.fixture()
def quick_pop3() -> Iterator[tuple[POP3Server, Store]]:
    with Store() as store:
        store.add(b"Subject: kept\r\n\r\nbody\r\n")
        server = POP3Server(store, credentials={"u": "p"}, idle_timeout=1.0, line_timeout=0.6, session_timeout=3.0)
        server.start()
        try:
            yield server, store
        finally:
            server.close()


def pop3_connect(server: POP3Server) -> tuple[socket.socket, object]:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    reader = sock.makefile("rb")
    assert reader.readline() == b"+OK Mailpit POP3 server\r\n"
    return sock, reader


def test_pop3_client_dripping_bytes_is_cut_at_the_line_deadline(quick_pop3: tuple[POP3Server, Store]) -> None:
    server, _ = quick_pop3
    sock, reader = pop3_connect(server)
    started = time.monotonic()
    try:
        for byte in b"USER someone-slow":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        last, after = closed_after(reader, started)
    finally:
        sock.close()
    assert last == b""  # RFC 1939 autologout: closed without a reply
    assert 0.5 <= after < 1.5


@pytest.mark.slow
def test_pop3_busy_session_ends_at_its_budget_and_keeps_marked_messages(
    quick_pop3: tuple[POP3Server, Store]
) -> None:
    server, store = quick_pop3
    sock, reader = pop3_connect(server)
    started = time.monotonic()
    try:
        sock.sendall(b"USER u\r\nPASS p\r\nDELE 1\r\n")
        for _ in range(3):
            assert reader.readline().startswith(b"+OK")  # type: ignore[attr-defined]
        for _ in range(60):
            try:
                sock.sendall(b"NOOP\r\n")
            except OSError:
                break
            time.sleep(0.1)
        closed_after(reader, started)
        after = time.monotonic() - started
    finally:
        sock.close()
    assert 2.9 <= after < 4.5
    assert store.counts().total == 1  # no QUIT, no UPDATE: the DELE mark was not carried out


def test_pop3_a_failing_store_is_an_err_and_the_session_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    store.add(b"Subject: one\r\n\r\nbody\r\n")
    server = POP3Server(store, credentials={"u": "p"})
    server.start()
    try:
        sock, reader = pop3_connect(server)
        with sock:
            sock.sendall(b"USER u\r\nPASS p\r\n")
            assert reader.readline().startswith(b"+OK") and reader.readline().startswith(b"+OK")  # type: ignore[attr-defined]
            store.close()  # the database goes away under the signed-in session: a real failure
            sock.sendall(b"RETR 1\r\n")
            assert reader.readline() == b"-ERR internal error, see the server log\r\n"  # type: ignore[attr-defined]
            sock.sendall(b"NOOP\r\n")
            assert reader.readline() == b"+OK\r\n"  # type: ignore[attr-defined]
    finally:
        server.close()
    assert any("POP3 RETR failed" in r.getMessage() for r in caplog.records)
