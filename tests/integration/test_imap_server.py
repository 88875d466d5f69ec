"""The IMAP server over both mailboxes (the sandbox and a real Mailpit), driven by clients nobody
here wrote: the standard library's imaplib and IMAPClient (PyPI). Real SMTP puts the mail in,
real sockets carry IMAP, and Mailpit's REST API is the truth the replies are checked against."""

from __future__ import annotations

import base64
import imaplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from emailkit.errors import InvalidInput, MailpitUnreachable
from emailkit.imap import LINE_LIMIT, LITERAL_LIMIT, XOAUTH2_ERROR, IMAPServer
from emailkit.mailpit import Mailpit
from tests.support.imap import ANA, BO, PASSWORD, USER, Backend, backends, free_port
from tests.support.oauth import Provider, post_form

from emailkit import oauth_client


@pytest.fixture(scope="module", params=["sandbox", "mailpit"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    yield from backends(request, tmp_path_factory)


@pytest.fixture()
def mailbox(backend: Backend) -> Backend:
    backend.clear()
    return backend


@pytest.fixture()
def server(mailbox: Backend) -> Iterator[IMAPServer]:
    with IMAPServer(mailbox.api_url, credentials={USER: PASSWORD}, sent_from=[ANA], poll_interval=0.1) as imap:
        yield imap


def login(server: IMAPServer, *, tls: bool = True) -> imaplib.IMAP4:
    client = imaplib.IMAP4(server.host, server.port, timeout=10)
    if tls:
        client.starttls(server.client_tls_context())
    client.login(USER, PASSWORD)
    return client


def uids(client: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = client.uid("SEARCH", *criteria)
    assert typ == "OK", data
    return [int(n) for n in data[0].split()]


def raw_ids(backend: Backend) -> list[str]:
    """Mailpit's IDs, oldest first (the order UIDs are given in)."""
    with Mailpit(backend.api_url) as mailpit:
        return [m.id for m in reversed(mailpit.messages(limit=0).messages)]


# --------------------------------------------------------------------------- the session


def test_capability_starttls_login_list(server: IMAPServer) -> None:
    client = imaplib.IMAP4(server.host, server.port, timeout=10)
    assert "STARTTLS" in client.capabilities and "IMAP4REV1" in client.capabilities
    typ, _ = client.starttls(server.client_tls_context())  # verifies the certificate for 127.0.0.1
    assert typ == "OK"
    assert isinstance(client.sock, ssl.SSLSocket)
    assert "STARTTLS" not in client.capabilities and "AUTH=PLAIN" in client.capabilities
    typ, data = client.login(USER, PASSWORD)
    assert typ == "OK" and b"IDLE" in data[0]
    typ, listed = client.list()
    assert typ == "OK"
    assert listed == [b'(\\HasNoChildren) "/" INBOX', b'(\\HasNoChildren \\Sent) "/" Sent']
    assert client.logout()[0] == "BYE"


def test_select_examine_and_uids_that_stay(mailbox: Backend, server: IMAPServer) -> None:
    for n in range(3):
        mailbox.send(subject=f"m{n}")
    mailbox.wait_count(3)
    client = login(server)
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"3"])
    validity = client.response("UIDVALIDITY")[1][0]
    assert client.response("UIDNEXT")[1] == [b"4"]
    assert uids(client, "ALL") == [1, 2, 3]
    first = raw_ids(mailbox)
    # A new message gets the next UID; one deleted through the API leaves as an EXPUNGE; the rest keep theirs.
    with Mailpit(mailbox.api_url) as mailpit:
        mailpit.delete([first[0]])
    mailbox.send(subject="m3")
    mailbox.wait_count(3)
    time.sleep(0.1)
    typ, _ = client.noop()
    assert typ == "OK"
    assert uids(client, "ALL") == [2, 3, 4]
    typ, data = client.uid("FETCH", "4", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert [part[1] for part in data if isinstance(part, tuple)] == [b"Subject: m3\r\n\r\n"]
    typ, data = client.select("INBOX", readonly=True)  # EXAMINE
    assert typ == "OK" and client.response("UIDVALIDITY")[1][0] == validity
    assert client.response("READ-ONLY")[1]
    typ, data = client.uid("STORE", "2", "+FLAGS", r"(\Seen)")
    assert typ == "NO"  # read-only
    client.logout()


def test_uid_search_keys(mailbox: Backend, server: IMAPServer) -> None:
    wanted = mailbox.send(sender=BO, to=ANA, subject="Quarterly report")
    mailbox.send(sender="cy@example.net", to=BO, subject="Lunch?")
    mailbox.send(sender=ANA, to="cy@example.net", subject="Re: Lunch?")
    mailbox.wait_count(3)
    client = login(server)
    client.select("INBOX")
    assert uids(client, "FROM", BO) == [1]
    assert uids(client, "TO", "cy@example.net") == [3]
    assert uids(client, "SUBJECT", "lunch") == [2, 3]  # case-insensitive substring (RFC 3501)
    assert uids(client, "HEADER", "Message-ID", wanted) == [1]
    assert uids(client, "SINCE", "1-Jan-2020") == [1, 2, 3]
    assert uids(client, "SINCE", "1-Jan-2099") == []
    assert uids(client, "UNSEEN") == [1, 2, 3]
    with Mailpit(mailbox.api_url) as mailpit:
        mailpit.set_read([raw_ids(mailbox)[1]])  # read in Mailpit's UI or API
    time.sleep(0.1)
    assert uids(client, "UNSEEN") == [1, 3]
    assert uids(client, "UNSEEN", "FROM", "cy@example.net") == []
    client.logout()


def test_uid_fetch_items_match_mailpit(mailbox: Backend, server: IMAPServer) -> None:
    message_id = mailbox.send(sender=f"Bo Example <{BO}>", to=ANA, subject="With an attachment", text="See the file.",
                              attachments=[("notes.txt", "text/plain", b"line one\nline two\n")])
    mailbox.wait_count(1)
    client = login(server)
    client.select("INBOX")
    typ, data = client.uid("FETCH", "1", "(FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    head, body = data[0]
    with Mailpit(mailbox.api_url) as mailpit:
        summary = mailpit.messages().messages[0]
        raw = mailpit.raw(summary.id)
    assert body == raw  # BODY[] is exactly what GET /api/v1/message/{ID}/raw returns
    assert f"RFC822.SIZE {len(raw)}".encode() in head
    assert b"FLAGS (\\Recent)" in head  # arrived after the server first listed the mailbox; not \Seen
    assert b'"With an attachment"' in head and message_id.encode() in head
    assert b'(("Bo Example" NIL "bo" "example.org"))' in head
    assert b'BODYSTRUCTURE (("text" "plain"' in head and b'"mixed"' in head
    assert b'("attachment" ("filename" "notes.txt"))' in head  # RFC 3501 body-fld-dsp
    assert b"UID 1" in data[1]
    with Mailpit(mailbox.api_url) as mailpit:
        assert not mailpit.messages().messages[0].read  # PEEK leaves it unread, in Mailpit too
    typ, data = client.uid("FETCH", "1", "(BODY[TEXT])")  # not a peek: sets \Seen, and Mailpit's read
    assert typ == "OK"
    with Mailpit(mailbox.api_url) as mailpit:
        assert mailpit.messages().messages[0].read
    client.logout()


def test_store_seen_follows_mailpit_both_ways(mailbox: Backend, server: IMAPServer) -> None:
    mailbox.send(subject="one")
    mailbox.send(subject="two")
    mailbox.wait_count(2)
    client = login(server)
    client.select("INBOX")
    typ, data = client.uid("STORE", "1", "+FLAGS", r"(\Seen \Flagged)")
    assert typ == "OK" and rb"\Seen" in data[0] and rb"\Flagged" in data[0]
    with Mailpit(mailbox.api_url) as mailpit:
        read = {m.subject: m.read for m in mailpit.messages().messages}
        assert read == {"one": True, "two": False}
        client.uid("STORE", "1", "-FLAGS", r"(\Seen)")
        assert {m.subject: m.read for m in mailpit.messages().messages} == {"one": False, "two": False}
        mailpit.set_read(None, True)  # everything read through the API ...
    time.sleep(0.1)
    typ, data = client.noop()  # ... shows as unsolicited FETCH FLAGS
    assert typ == "OK"
    flags = client.uid("FETCH", "1:*", "(FLAGS)")[1]
    assert all(rb"\Seen" in item for item in flags)
    assert rb"\Flagged" in flags[0] and rb"\Flagged" not in flags[1]  # kept by the server, not by Mailpit
    client.logout()


def test_sent_holds_the_providers_own_sends(mailbox: Backend, server: IMAPServer) -> None:
    mailbox.send(sender=BO, to=ANA, subject="to Ana")
    mailbox.send(sender=ANA, to=BO, subject="from Ana")
    mailbox.wait_count(2)
    client = login(server)
    assert client.select("Sent") == ("OK", [b"1"])
    typ, data = client.uid("FETCH", "1", "(ENVELOPE)")
    assert b'"from Ana"' in data[0]
    assert client.select("INBOX") == ("OK", [b"2"])
    typ, data = client.status("Sent", "(MESSAGES UNSEEN UIDNEXT)")
    assert typ == "OK" and b"MESSAGES 1" in data[0]
    client.logout()


def test_expunge_deletes_in_mailpit(mailbox: Backend, server: IMAPServer) -> None:
    mailbox.send(subject="keep")
    mailbox.send(subject="drop")
    mailbox.wait_count(2)
    client = login(server)
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
    typ, data = client.expunge()
    assert typ == "OK" and data == [b"2"]
    with Mailpit(mailbox.api_url) as mailpit:
        assert [m.subject for m in mailpit.messages().messages] == ["keep"]
    client.logout()


def test_idle_pushes_exists_when_mail_arrives(mailbox: Backend, server: IMAPServer) -> None:
    mailbox.send(subject="before")
    mailbox.wait_count(1)
    with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as client:
        client.starttls(server.client_tls_context())
        client.login(USER, PASSWORD)
        client.select_folder("INBOX")
        client.idle()
        threading.Timer(0.3, lambda: mailbox.send(subject="during IDLE")).start()
        started = time.monotonic()
        responses = client.idle_check(timeout=5)
        waited = time.monotonic() - started
        client.idle_done()
        assert (2, b"EXISTS") in responses, responses
        assert waited < 3
        assert client.search(["SUBJECT", "during IDLE"]) == [2]


def test_idle_pushes_flag_changes_and_expunges_made_in_mailpit(mailbox: Backend, server: IMAPServer) -> None:
    mailbox.send(subject="one")
    mailbox.send(subject="two")
    mailbox.wait_count(2)
    first, second = raw_ids(mailbox)
    with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as client:
        client.login(USER, PASSWORD)
        client.select_folder("INBOX")
        client.idle()
        with Mailpit(mailbox.api_url) as mailpit:
            mailpit.set_read([first])  # read in Mailpit's UI or API
            flags = client.idle_check(timeout=5)
            assert any(item[1] == b"FETCH" and b"\\Seen" in item[2][1] for item in flags if len(item) > 2), flags
            mailpit.delete([second])
            gone = client.idle_check(timeout=5)
        client.idle_done()
        assert (2, b"EXPUNGE") in gone, gone
        assert client.search(["ALL"]) == [1]


# --------------------------------------------------------------------------- IMAPClient, end to end


def test_imapclient_reads_a_reply(mailbox: Backend, server: IMAPServer) -> None:
    asked = mailbox.send(sender=ANA, to=BO, subject="Question")
    mailbox.send(sender=BO, to=ANA, subject="Re: Question", headers={"In-Reply-To": asked, "References": asked})
    mailbox.wait_count(2)
    with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as client:
        client.starttls(server.client_tls_context())
        client.login(USER, PASSWORD)
        assert {name for _, _, name in client.list_folders()} == {"INBOX", "Sent"}
        assert client.find_special_folder(b"\\Sent") == "Sent"
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 2
        found = client.search(["HEADER", "In-Reply-To", asked])
        assert found == [2]
        data = client.fetch(found, ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODYSTRUCTURE", "BODY.PEEK[]"])
        envelope = data[2][b"ENVELOPE"]
        assert envelope.subject == b"Re: Question"
        assert envelope.from_[0].mailbox == b"bo" and envelope.from_[0].host == b"example.org"
        assert b"In-Reply-To: " + asked.encode() in data[2][b"BODY[]"]
        assert data[2][b"RFC822.SIZE"] == len(data[2][b"BODY[]"])
        client.add_flags(found, [b"\\Seen"])
        assert b"\\Seen" in client.get_flags(found)[2]
        assert client.select_folder("Sent", readonly=True)[b"EXISTS"] == 1
    with Mailpit(mailbox.api_url) as mailpit:
        assert [m.read for m in mailpit.search('subject:"Re: Question"').messages] == [True]


# --------------------------------------------------------------------------- XOAUTH2


@pytest.fixture()
def oauth() -> Iterator[Provider]:
    provider = Provider()
    yield provider
    provider.close()


def read_check(provider: Provider):  # noqa: ANN201
    """What lab.connect() hands the IMAP server: a token good for reading exactly this mailbox."""

    def check(user: str, token: str) -> bool:
        info = provider.oauth.verify_access_token(token)
        return info is not None and "email.read" in info.scopes and info.email.casefold() == user.casefold()

    return check


async def test_xoauth2_valid_then_revoked(mailbox: Backend, oauth: Provider) -> None:
    mailbox.send(subject="for Ana")
    mailbox.wait_count(1)
    token = await oauth.token(ANA)
    with IMAPServer(mailbox.api_url, xoauth2=read_check(oauth)) as server:
        with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as client:
            client.starttls(server.client_tls_context())
            assert b"AUTH=XOAUTH2" in client.capabilities()
            client.oauth2_login(ANA, token["access_token"])
            assert client.select_folder("INBOX")[b"EXISTS"] == 1
        response = await post_form(oauth.url + oauth_client.REVOKE_PATH,
                                   {"token": token["refresh_token"], "token_type_hint": "refresh_token",
                                    "client_id": oauth.client.client_id})
        assert response.status_code == 200
        # Gmail's refusal, on the wire: a "+" challenge carrying JSON, an empty line, then NO.
        blob = base64.b64encode(f"user={ANA}\x01auth=Bearer {token['access_token']}\x01\x01".encode())
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            stream = sock.makefile("rwb")
            assert stream.readline().startswith(b"* OK")
            stream.write(b"a1 AUTHENTICATE XOAUTH2\r\n")
            stream.flush()
            assert stream.readline() == b"+ \r\n"
            stream.write(blob + b"\r\n")
            stream.flush()
            challenge = stream.readline()
            assert challenge.startswith(b"+ ")
            assert base64.b64decode(challenge[2:].strip()) == XOAUTH2_ERROR
            stream.write(b"\r\n")
            stream.flush()
            final = stream.readline()
            assert final.startswith(b"a1 NO [AUTHENTICATIONFAILED]"), final
            stream.write(b"a2 SELECT INBOX\r\n")
            stream.flush()
            assert stream.readline().startswith(b"a2 BAD")  # still not logged in
        with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as client:
            with pytest.raises(Exception, match="AUTHENTICATIONFAILED|Invalid credentials"):
                client.oauth2_login(ANA, token["access_token"])


async def test_xoauth2_refuses_another_mailbox_and_send_only_tokens(mailbox: Backend, oauth: Provider) -> None:
    token = (await oauth.token(ANA))["access_token"]
    send_only = (await oauth.token(ANA, scope="email.send"))["access_token"]
    with IMAPServer(mailbox.api_url, xoauth2=read_check(oauth)) as server:
        for user, bearer in ((BO, token), (ANA, send_only)):
            client = imaplib.IMAP4(server.host, server.port, timeout=10)
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED|Invalid credentials"):
                client.authenticate("XOAUTH2", lambda _: f"user={user}\x01auth=Bearer {bearer}\x01\x01".encode())
            client.shutdown()


# --------------------------------------------------------------------------- bad input


def exchange(sock_file, line: bytes) -> list[bytes]:  # noqa: ANN001
    """Send one raw command; return every reply line up to its tagged one (or a BYE, or a "+")."""
    sock_file.write(line)
    sock_file.flush()
    tag = line.split(b" ", 1)[0]
    replies = []
    while True:
        reply = sock_file.readline()
        assert reply, f"the server closed the connection after {line[:60]!r}"
        replies.append(reply)
        if reply.startswith((tag + b" ", b"* BYE", b"+")):
            return replies


def test_bad_input_gets_no_or_bad_never_a_crash(mailbox: Backend, server: IMAPServer) -> None:
    mailbox.send(subject="x")
    mailbox.wait_count(1)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        assert exchange(f, b"a1 SELECT INBOX\r\n")[-1].startswith(b"a1 BAD")  # not logged in yet
        assert exchange(f, b"a2 LOGIN reader wrong\r\n")[-1].startswith(b"a2 NO [AUTHENTICATIONFAILED]")
        assert exchange(f, b"a3 LOGIN nobody wrong\r\n")[-1].startswith(b"a3 NO [AUTHENTICATIONFAILED]")
        assert exchange(f, f"a4 LOGIN {USER} {PASSWORD}\r\n".encode())[-1].startswith(b"a4 OK")
        assert exchange(f, b"a5 FETCH 1 (FLAGS)\r\n")[-1].startswith(b"a5 BAD")  # nothing selected
        assert exchange(f, b"a6 SELECT Nowhere\r\n")[-1].startswith(b"a6 NO [NONEXISTENT]")
        assert exchange(f, b"a7 SELECT INBOX\r\n")[-1].startswith(b"a7 OK")
        assert exchange(f, b"a8 UID FETCH 999 (FLAGS)\r\n") == [b"a8 OK UID FETCH completed.\r\n"]
        assert exchange(f, b"a9 UID FETCH x:y (FLAGS)\r\n")[-1].startswith(b"a9 BAD")
        assert exchange(f, b"b1 FROBNICATE\r\n")[-1].startswith(b"b1 BAD")
        assert exchange(f, b'b2 UID SEARCH HEADER "Message-ID\r\n')[-1].startswith(b"b2 BAD")  # unclosed quote
        assert exchange(f, b"b3 CREATE Archive\r\n")[-1].startswith(b"b3 NO [CANNOT]")
        # APPEND's literal, and any literal over the limit, are refused before a "+" asks for the octets.
        replies = exchange(f, b"b4 APPEND INBOX {12}\r\n")
        assert len(replies) == 1 and replies[0].startswith(b"b4 BAD")
        replies = exchange(f, b"b5 UID SEARCH SUBJECT {%d}\r\n" % (LITERAL_LIMIT + 1))
        assert len(replies) == 1 and replies[0].startswith(b"b5 BAD")
        assert exchange(f, b"b5a UID SEARCH SUBJECT {3}\r\n") == [b"+ Literal string\r\n"]  # within the limit
        f.write(b"abc\r\n")
        f.flush()
        assert f.readline() == b"* SEARCH\r\n" and f.readline().startswith(b"b5a OK")
        # An over-long line is skipped and refused; the session goes on.
        long_line = b"b6 UID SEARCH SUBJECT " + b"x" * (LINE_LIMIT + 100) + b"\r\n"
        assert exchange(f, long_line)[-1].startswith(b"b6 BAD [TOOBIG]")
        assert exchange(f, b"b7 NOOP\r\n")[-1].startswith(b"b7 OK")
        assert exchange(f, b"b8 UID SEARCH ALL\r\n")[0] == b"* SEARCH 1\r\n"
        assert exchange(f, b"b9 LOGOUT\r\n")[0].startswith(b"* BYE")
    # A LITERAL+ over the limit: its octets are already coming, so BAD and BYE, then the server hangs up.
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        f.write(b"c1 LOGIN {100000+}\r\n" + b"y" * 100000 + b" pw\r\n")
        f.flush()
        replies = [f.readline(), f.readline()]
        assert replies[0].startswith(b"c1 BAD [TOOBIG]") or replies[1].startswith(b"c1 BAD [TOOBIG]"), replies
        assert any(r.startswith(b"* BYE") for r in replies)
    # Five BAD commands in a row end the session with BYE (pymap's limit).
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        for n in range(4):
            assert exchange(f, f"d{n} NONSENSE\r\n".encode())[-1].startswith(f"d{n} BAD".encode())
        assert any(r.startswith(b"* BYE") for r in exchange(f, b"d5 NONSENSE\r\n"))
    # After all that the server still answers.
    client = login(server, tls=False)
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_mailpit_going_away_is_a_no_not_a_crash(tmp_path) -> None:  # noqa: ANN001
    from tests.support.imap import start_sandbox

    backend = start_sandbox()
    backend.send(subject="x")
    backend.wait_count(1)
    with IMAPServer(backend.api_url, credentials={USER: PASSWORD}) as server:
        client = login(server, tls=False)
        client.select("INBOX")
        backend._stop()  # Mailpit is gone
        time.sleep(0.1)
        typ, data = client.uid("FETCH", "1", "(BODY.PEEK[])")
        assert typ == "NO" and b"UNAVAILABLE" in data[0]
        assert client.noop()[0] == "NO"
        assert client.logout()[0] == "BYE"


def test_constructor_refuses_bad_settings_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        IMAPServer("http://127.0.0.1:1")
    assert caught.value.field == "credentials"
    with pytest.raises(InvalidInput) as caught:
        IMAPServer("127.0.0.1:8025", credentials={USER: PASSWORD})
    assert caught.value.field == "mailpit_url"
    with pytest.raises(InvalidInput) as caught:
        IMAPServer("http://127.0.0.1:1", credentials={"two words": "x"})
    assert caught.value.field == "credentials"
    with pytest.raises(InvalidInput) as caught:
        IMAPServer("http://127.0.0.1:1", credentials={USER: PASSWORD}, sent_from=["not an address"])
    assert caught.value.field == "sent_from"
    with pytest.raises(MailpitUnreachable):
        IMAPServer(f"http://127.0.0.1:{free_port()}", credentials={USER: PASSWORD}).start()


async def test_starts_from_a_running_event_loop(mailbox: Backend) -> None:
    # A notebook's loop is already running: start() must not need it.
    server = IMAPServer(mailbox.api_url, credentials={USER: PASSWORD}).start()
    try:
        assert server.port > 0
        client = login(server)
        assert client.select("INBOX")[0] == "OK"
        client.logout()
    finally:
        server.close()
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()


# --------------------------------------------------------------------------- on the wire


def test_wiretap_records_imap_with_credentials_masked(mailbox: Backend, server: IMAPServer) -> None:
    from emailkit.wiretap import Wiretap

    mailbox.send(subject="tapped")
    mailbox.wait_count(1)
    with Wiretap(server.host, server.port, protocol="imap") as tap:
        client = imaplib.IMAP4(tap.host, tap.port, timeout=10)
        client.login(USER, PASSWORD)  # in the clear on loopback, so the transcript shows the masking
        client.select("INBOX")
        uid = client.uid("SEARCH", "SUBJECT", "tapped")[1][0].split()[-1]  # UIDs stay put: ask, never assume 1
        client.uid("FETCH", uid, "(BODY.PEEK[])")
        client.logout()
        plain = tap.wait_closed()
        client = imaplib.IMAP4(tap.host, tap.port, timeout=10)
        client.starttls(server.client_tls_context())
        client.login(USER, PASSWORD)
        client.logout()
        encrypted = tap.wait_closed()
    assert plain is not None and encrypted is not None
    text = str(plain)
    assert PASSWORD not in text and f"LOGIN {USER} ********" in text
    assert "Subject: tapped" in text  # the message itself crossed the wire
    assert plain.round_trips >= 4
    assert any("TLS hand-over" in line.text for line in encrypted.lines)
    assert PASSWORD not in str(encrypted) and f"LOGIN {USER}" not in str(encrypted)  # inside TLS now


@pytest.mark.slow
def test_random_command_lines_never_crash_the_server(backend: Backend) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    backend.clear()
    backend.send(subject="fuzz")
    backend.wait_count(1)
    words = st.sampled_from(["UID", "FETCH", "SEARCH", "STORE", "SELECT", "EXAMINE", "LOGIN", "IDLE", "1:*",
                             "(FLAGS)", "BODY[]", "+FLAGS", "(\\Seen)", "INBOX", "Sent", '"', "(", ")", "{3}",
                             "{5+}", "*", "HEADER", "NOT", "OR", "CHARSET", "APPEND", "AUTHENTICATE", "PLAIN"])
    noise = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF, blacklist_characters="\r\n"), max_size=40)
    lines = st.lists(st.one_of(words, noise), min_size=1, max_size=8).map(" ".join)
    with IMAPServer(backend.api_url, credentials={USER: PASSWORD}, poll_interval=0.1) as server:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(lines)
        def check(line: str) -> None:
            with socket.create_connection((server.host, server.port), timeout=10) as sock:
                f = sock.makefile("rwb")
                f.readline()
                assert exchange(f, f"a1 LOGIN {USER} {PASSWORD}\r\n".encode())[-1].startswith(b"a1 OK")
                assert exchange(f, b"a2 SELECT INBOX\r\n")[-1].startswith(b"a2 OK")
                f.write(b"z1 " + line.encode("utf-8") + b"\r\n")
                f.write(b"z2 NOOP\r\n")  # also ends an IDLE (as a bad DONE) or fills a literal
                f.flush()
                sock.settimeout(2)
                replies: list[bytes] = []
                try:
                    while True:
                        reply = f.readline()
                        replies.append(reply)
                        if not reply or reply.startswith((b"z2 ", b"* BYE")):
                            break
                except TimeoutError:  # e.g. "{3}" swallowed "z2 NOOP" as its literal: the server waits
                    pass
                assert not any(b"SERVERBUG" in r for r in replies), replies
                assert any(r.startswith((b"z1 ", b"z2 ", b"+", b"* BYE")) for r in replies), replies  # it answered

        check()
        client = login(server, tls=False)  # the server still answers
        assert client.select("INBOX")[0] == "OK"
        assert uids(client, "ALL") == [1]
        client.logout()


def test_select_counts_mail_stored_just_before_it_even_when_the_shared_listing_is_fresh(
        mailbox: Backend, server: IMAPServer) -> None:
    # The listing shared by all sessions is reused between commands; stretch its age so the test does
    # not depend on timing: a SELECT must still list afresh and count the message stored before it.
    server.mailbox.sync_interval = 30.0
    with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as first:
        first.login(USER, PASSWORD)
        assert first.select_folder("INBOX")[b"EXISTS"] == 0      # the shared listing is now fresh and empty
        mailbox.send(subject="just stored")
        mailbox.wait_count(1)
        with IMAPClient(server.host, port=server.port, ssl=False, timeout=10) as second:
            second.login(USER, PASSWORD)
            assert second.select_folder("INBOX")[b"EXISTS"] == 1
            assert second.search(["SUBJECT", "just stored"])
