"""The sandbox's POP3 read path over real loopback sockets (stdlib `poplib`), checked against the REST API."""

from __future__ import annotations

import poplib
import smtplib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from emailkit.errors import InvalidInput
from emailkit.sandbox import Sandbox, Store
from emailkit.sandbox.pop3_server import POP3Server
from emailkit.wiretap import Wiretap

USER, PASSWORD = "alice", "correct horse battery"  # a password with spaces: PASS takes the rest of the line


@pytest.fixture(scope="module")
def pop3_sandbox() -> Iterator[Sandbox]:
    with Sandbox(pop3=("127.0.0.1", 0), pop3_auth={USER: PASSWORD, "bob": "b0b"}, starttls=False) as box:
        yield box


@pytest.fixture()
def box(pop3_sandbox: Sandbox) -> Sandbox:
    assert pop3_sandbox.store is not None
    pop3_sandbox.store.delete()
    return pop3_sandbox


def deliver(box: Sandbox, *bodies: bytes) -> None:
    """Each of `bodies` as one message over one SMTP connection."""
    with smtplib.SMTP(box.smtp_host, box.smtp_port, timeout=10) as smtp:
        for body in bodies:
            smtp.sendmail("ann@example.com", ["bob@example.com"], body)


def message(subject: str, body: str = "hello") -> bytes:
    return f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def login(box: Sandbox, user: str = USER, password: str = PASSWORD) -> poplib.POP3:
    assert box.pop3_host is not None and box.pop3_port is not None
    client = poplib.POP3(box.pop3_host, box.pop3_port, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


def rest(box: Sandbox) -> list[dict]:
    return httpx.get(box.api_url + "/api/v1/messages").json()["messages"]


class Wire:
    """A bare POP3 client: send a line, read one line back."""

    def __init__(self, box: Sandbox) -> None:
        assert box.pop3_host is not None and box.pop3_port is not None
        self.sock = socket.create_connection((box.pop3_host, box.pop3_port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def send(self, line: str | bytes) -> str:
        self.sock.sendall((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.line()

    def until_dot(self) -> list[bytes]:
        lines = []
        while (raw := self.file.readline()) != b".\r\n":
            assert raw, "connection closed before the terminating dot"
            lines.append(raw)
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture()
def wire(box: Sandbox) -> Iterator[Wire]:
    w = Wire(box)
    yield w
    w.close()


# --------------------------------------------------------------------------- the read path


def test_greeting_capabilities_and_login(box: Sandbox) -> None:
    assert box.pop3_host == "127.0.0.1" and box.pop3_port and box.pop3_port > 0
    client = poplib.POP3(box.pop3_host, box.pop3_port, timeout=10)
    assert client.getwelcome() == b"+OK Mailpit POP3 server"
    assert client.capa() == {"TOP": [], "USER": [], "UIDL": [], "IMPLEMENTATION": ["Mailpit"]}
    assert client.user(USER) == b"+OK"
    assert client.pass_(PASSWORD) == b"+OK signed in"
    assert client.quit() == b"+OK goodbye"


def test_stat_list_and_uidl_agree_with_the_rest_api(box: Sandbox) -> None:
    deliver(box, message("one"), message("two", "a longer body " * 10), message("three"))
    summaries = rest(box)  # newest first
    client = login(box)
    count, octets = client.stat()
    assert count == len(summaries) == 3
    assert octets == sum(s["Size"] for s in summaries)
    _, listing, _ = client.list()
    assert [line.decode() for line in listing] == [f"{n} {s['Size']}" for n, s in enumerate(summaries, 1)]
    _, uids, _ = client.uidl()
    assert [line.decode() for line in uids] == [f"{n} {s['ID']}" for n, s in enumerate(summaries, 1)]
    assert client.uidl(2) == f"+OK 2 {summaries[1]['ID']}".encode()
    assert client.list(3) == f"+OK 3 {summaries[2]['Size']}".encode()
    client.quit()


def test_retr_returns_the_stored_bytes_and_does_not_mark_read(box: Sandbox) -> None:
    # A line starting with "." is dot-stuffed on the wire and must come back intact.
    deliver(box, message("dots", "first\r\n.leading dot\r\n..two dots\r\nlast"))
    (summary,) = rest(box)
    raw = httpx.get(f"{box.api_url}/api/v1/message/{summary['ID']}/raw").content
    client = login(box)
    reply, lines, octets = client.retr(1)
    assert reply == f"+OK {len(raw)} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == raw
    client.quit()
    assert rest(box)[0]["Read"] is False  # like Mailpit: RETR reads the raw message, as /raw does


def test_retr_dot_stuffs_on_the_wire(box: Sandbox, wire: Wire) -> None:
    deliver(box, message("stuffing", ".hidden\r\n.\r\nend"))
    wire.send(f"USER {USER}")
    wire.send(f"PASS {PASSWORD}")
    assert wire.send("RETR 1").endswith(" octets")
    body = wire.until_dot()
    assert body[-3:] == [b"..hidden\r\n", b"..\r\n", b"end\r\n"]


def test_top_sends_headers_and_the_first_lines(box: Sandbox) -> None:
    deliver(box, message("top", "line 1\r\nline 2\r\nline 3"))
    (summary,) = rest(box)
    raw = httpx.get(f"{box.api_url}/api/v1/message/{summary['ID']}/raw").content
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    client = login(box)
    reply, lines, _ = client.top(1, 2)
    assert reply == b"+OK top of message follows"
    assert lines == [*head, b"", b"line 1", b"line 2"]
    assert client.top(1, 0)[1] == [*head, b""]
    client.quit()


def test_message_one_is_the_newest_and_the_maildrop_is_a_snapshot(box: Sandbox) -> None:
    deliver(box, message("older"), message("newer"))
    client = login(box)
    assert b"Subject: newer" in client.retr(1)[1]
    deliver(box, message("after login"))
    assert client.stat()[0] == 2  # arrived after login: not in this session's maildrop
    client.quit()
    fresh = login(box)
    assert fresh.stat()[0] == 3 and b"Subject: after login" in fresh.retr(1)[1]
    fresh.quit()


def test_the_maildrop_holds_the_newest_100_messages(box: Sandbox) -> None:
    deliver(box, *(message(f"bulk {i}") for i in range(101)))
    client = login(box)
    count, _ = client.stat()
    assert count == 100
    assert b"Subject: bulk 100" in client.top(1, 0)[1]
    assert b"Subject: bulk 1" in client.top(100, 0)[1]
    client.quit()


# --------------------------------------------------------------------------- deleting


def test_dele_then_quit_deletes_through_the_store(box: Sandbox) -> None:
    deliver(box, message("keep"), message("drop"))
    drop_id = rest(box)[0]["ID"]
    client = login(box)
    assert client.dele(1) == b"+OK message marked for deletion"
    assert client.stat()[0] == 1  # a marked message leaves STAT/LIST (RFC 1939)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.dele(1)
    assert len(rest(box)) == 2  # nothing happens before QUIT
    assert client.quit() == b"+OK goodbye"
    assert [s["Subject"] for s in rest(box)] == ["keep"]
    assert httpx.get(f"{box.api_url}/api/v1/message/{drop_id}").status_code == 404


def test_dele_then_rset_keeps_everything(box: Sandbox) -> None:
    deliver(box, message("one"), message("two"))
    client = login(box)
    client.dele(1)
    client.dele(2)
    assert client.stat()[0] == 0
    assert client.rset() == b"+OK"
    assert client.stat()[0] == 2
    client.quit()
    assert len(rest(box)) == 2


def test_a_dropped_connection_deletes_nothing(box: Sandbox, wire: Wire) -> None:
    deliver(box, message("survivor"))
    wire.send(f"USER {USER}")
    wire.send(f"PASS {PASSWORD}")
    assert wire.send("DELE 1") == "+OK message marked for deletion"
    assert box.pop3 is not None and box.pop3.sessions == 1
    wire.close()  # no QUIT: no UPDATE state
    deadline = time.monotonic() + 5
    while box.pop3.sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    assert box.pop3.sessions == 0  # the server has finished with that session
    assert len(rest(box)) == 1


def test_a_message_deleted_through_the_api_after_login(box: Sandbox) -> None:
    deliver(box, message("gone"))
    client = login(box)
    httpx.delete(box.api_url + "/api/v1/messages")
    with pytest.raises(poplib.error_proto, match="no such message"):
        client.retr(1)
    client.quit()


# --------------------------------------------------------------------------- refusals


def test_wrong_password_gives_no_access(box: Sandbox, wire: Wire) -> None:
    deliver(box, message("secret"))
    assert wire.send(f"USER {USER}") == "+OK"
    assert wire.send("PASS wrong") == "-ERR invalid password"
    assert wire.send("STAT") == "-ERR user not authenticated"
    assert wire.send("RETR 1") == "-ERR user not authenticated"
    assert wire.send("USER nobody") == "+OK"
    assert wire.send(f"PASS {PASSWORD}") == "-ERR invalid password"  # alice's password is not nobody's
    assert wire.send(f"USER {USER}") == "+OK"
    assert wire.send(f"PASS {PASSWORD}") == "+OK signed in"  # the session survives failed attempts
    assert wire.send("STAT").startswith("+OK 1 ")


def test_every_mailbox_command_is_refused_before_login(box: Sandbox, wire: Wire) -> None:
    for command in ("STAT", "LIST", "UIDL", "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP"):
        assert wire.send(command) == "-ERR user not authenticated", command


def test_poplib_raises_on_a_bad_password(box: Sandbox) -> None:
    with pytest.raises(poplib.error_proto, match="invalid password"):
        login(box, password="nope")


def test_any_valid_login_sees_the_whole_mailbox(box: Sandbox) -> None:
    deliver(box, message("shared"))
    for user, password in ((USER, PASSWORD), ("bob", "b0b")):
        client = login(box, user, password)
        assert client.stat()[0] == 1
        client.quit()


def test_unknown_commands_and_bad_arguments(box: Sandbox, wire: Wire) -> None:
    assert wire.send("HELO there") == "-ERR unknown command"
    assert wire.send("APOP alice 0123456789abcdef") == "-ERR unknown command"
    assert wire.send("PASS early") == "-ERR must supply a user"
    assert wire.line() == ""  # like Mailpit, that closes the session


def test_bad_message_numbers(box: Sandbox, wire: Wire) -> None:
    deliver(box, message("only"))
    wire.send(f"USER {USER}")
    wire.send(f"PASS {PASSWORD}")
    assert wire.send("RETR 2") == "-ERR no such message"
    assert wire.send("RETR 0") == "-ERR no such message"
    assert wire.send("RETR one") == "-ERR no such message"
    assert wire.send("LIST 9") == "-ERR no such message"
    assert wire.send("DELE -1") == "-ERR no such message"
    assert wire.send("TOP 1") == "-ERR TOP requires two arguments"
    assert wire.send("TOP 1 -2") == "-ERR TOP needs a line count of 0 or more"
    assert wire.send("UIDL 1 2") == "-ERR UIDL takes at most one argument"
    assert wire.send("USER bob") == "-ERR user already specified"
    assert wire.send("PASS b0b") == "-ERR already signed in"
    assert wire.send("noop") == "+OK"  # commands are case-insensitive


def test_a_very_long_line_is_refused_and_the_session_goes_on(box: Sandbox, wire: Wire) -> None:
    assert wire.send(b"USER " + b"x" * 100_000) == "-ERR line too long"
    assert wire.send(f"USER {USER}") == "+OK"
    assert wire.send(f"PASS {PASSWORD}") == "+OK signed in"
    assert wire.send("NOOP") == "+OK"
    assert wire.send("QUIT") == "+OK goodbye"


# --------------------------------------------------------------------------- set-up and the wire


def test_an_idle_session_is_closed() -> None:
    with Store() as store:
        server = POP3Server(store, credentials={USER: PASSWORD}, idle_timeout=0.2)
        server.start()
        try:
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                reader = sock.makefile("rb")
                assert reader.readline() == b"+OK Mailpit POP3 server\r\n"
                assert reader.readline() == b""  # closed by the server after 0.2 s of silence
        finally:
            server.close()


def test_pop3_needs_credentials() -> None:
    with pytest.raises(InvalidInput) as caught:
        Sandbox(pop3=("127.0.0.1", 0))
    assert caught.value.field == "pop3"
    with pytest.raises(InvalidInput) as caught:
        Sandbox(pop3_auth="alice:pw-of-alice bob")  # Mailpit's "user:pass" form; bob has no password
    assert caught.value.field == "pop3_auth"
    assert "entry 2" in str(caught.value) and "pw-of-alice" not in str(caught.value)
    with pytest.raises(InvalidInput, match="password of 'carol' is empty"):
        Sandbox(pop3_auth={"carol": ""})


def test_credentials_as_mailpit_writes_them() -> None:
    with Sandbox(pop3_auth="ann:one bea:two:with:colons", starttls=False) as box:
        for user, password in (("ann", "one"), ("bea", "two:with:colons")):
            client = login(box, user, password)
            client.quit()


def test_a_sandbox_without_credentials_has_no_pop3(sandbox: Sandbox) -> None:
    assert sandbox.pop3 is None and sandbox.pop3_port is None


def test_the_wiretap_shows_the_conversation_with_the_password_masked(box: Sandbox) -> None:
    deliver(box, message("tapped"))
    assert box.pop3_host is not None and box.pop3_port is not None
    with Wiretap(box.pop3_host, box.pop3_port, protocol="pop3") as tap:
        client = poplib.POP3(tap.host, tap.port, timeout=10)
        client.user(USER)
        client.pass_(PASSWORD)
        client.stat()
        client.retr(1)
        client.quit()
    transcript = tap.last
    assert transcript is not None
    text = str(transcript)
    assert "C: USER alice" in text and "C: PASS ********" in text
    assert PASSWORD not in text and "horse" not in text
    assert "S: +OK signed in" in text and "Subject: tapped" in text
    assert [line.text for line in transcript.lines if line.direction == "C"] == [
        "USER alice", "PASS ********", "STAT", "RETR 1", "QUIT",
    ]
