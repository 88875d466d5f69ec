"""One Mailpit for a room, each participant's mail their own (emailkit.participant).

A real shared server — a real Mailpit process, and the sandbox — with two participant scopes over
it, each opened as the lab opens one (`Stack("external", participant=...)`). Participant p1 sends over
SMTP (stdlib smtplib through p1's front), through the gateway's ``/api/v1/send`` and through p1's
provider; p2 sends one message of its own. Then every reader p2 has — REST (list, search, one message,
raw, headers, delete, read flags), POP3 (poplib), IMAP (imapclient) and p2's provider — is asked for
p1's mail, and p1's readers are checked to show exactly p1's.
"""

from __future__ import annotations

import email
import imaplib
import poplib
import smtplib
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from imapclient import IMAPClient

from emailkit.errors import InvalidInput
from emailkit.mailboxes import MailpitProcess, find_mailpit, open_mailbox
from emailkit.mailpit import Mailpit
from emailkit.stack import Stack
from tests.support import need_mailpit


@pytest.fixture(params=["mailpit", "sandbox"])
def shared(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """The room's one server: (its API URL, its SMTP port); MAILPIT_SMTP points at it."""
    if request.param == "mailpit":
        need_mailpit()
        server = MailpitProcess(find_mailpit(), chaos=True).start()
        url, port, close = server.api_url, server.smtp_port, server.close
    else:
        from emailkit.sandbox import Sandbox

        box = Sandbox(starttls=False).start()
        url, port, close = box.api_url, box.smtp_port, box.close
    monkeypatch.setenv("MAILPIT_SMTP", f"127.0.0.1:{port}")
    monkeypatch.delenv("EMAILKIT_PARTICIPANT", raising=False)
    try:
        yield url, port
    finally:
        close()


def _message(subject: str, sender: str = "ann@example.com", to: str = "bob@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    msg.set_content(f"the body of {subject}\n.a line that starts with a dot\n")
    return msg


def _subjects(api_url: str) -> list[str]:
    with Mailpit(api_url) as client:
        return sorted(m.subject for m in client.messages(limit=200).messages)


def _pop3_subjects(access) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    box = poplib.POP3(access.host, access.port, timeout=10)
    try:
        box.user(access.user)
        box.pass_(access.password)
        ids = [line.split()[1].decode() for line in box.uidl()[1]]
        subjects = []
        for n in range(1, len(ids) + 1):
            parsed = email.message_from_bytes(b"\r\n".join(box.retr(n)[1]))
            subjects.append(str(parsed["Subject"]))
        return ids, sorted(subjects)
    finally:
        box.quit()


def _imap_subjects(stack: Stack) -> list[str]:
    imap = stack.imap
    with IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10) as client:
        client.starttls(imap.client_tls_context())
        client.login(imap.user, imap.password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
        return sorted(email.message_from_bytes(v[b"BODY[HEADER.FIELDS (SUBJECT)]"])["Subject"]
                      for v in fetched.values())


def _provider_subjects(stack: Stack, address: str) -> list[str]:
    provider = stack.provider
    grant = provider.create_grant(address)
    answer = httpx.get(f"{provider.url}/v3/grants/{grant.id}/messages", params={"limit": 50}, timeout=20,
                       headers={"Authorization": f"Bearer {provider.api_key}"})
    assert answer.status_code == 200, answer.text
    return sorted(m["subject"] for m in answer.json()["data"])


def _wait(api_url: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_subjects(api_url)) < count:
        assert time.monotonic() < deadline, f"{api_url} holds {_subjects(api_url)}, expected {count} messages"
        time.sleep(0.1)


@pytest.mark.slow
def test_each_participant_reads_only_their_own_mail_over_rest_pop3_imap_and_the_provider(
        shared: tuple[str, int]) -> None:
    url, _ = shared
    with Stack("external", url=url, participant="p1") as one, Stack("external", url=url, participant="p2") as two:
        a, b = one.mailbox, two.mailbox
        assert a.participant == "p1" and a.web_ui is None and a.label.endswith("participant p1 (their own mail only)")
        assert a.api_url != url and a.smtp_port != b.smtp_port
        from emailkit.lab import Lab

        lab = Lab(one)   # what notebook 00's first cell prints
        try:
            assert "participant p1 (their own mail only)" in lab.summary()
            assert "no web UI for one participant (the shared Mailpit's shows everybody's mail)" in lab.summary()
            assert "everybody's mail" in lab.describe().loc["web UI", "value"]
        finally:
            lab.mailpit.close()

        # p1 sends: two messages over one SMTP session, one through the gateway's send API, one via its provider
        with smtplib.SMTP(a.smtp_host, a.smtp_port, timeout=10) as session:
            session.send_message(_message("p1 smtp one"))
            session.send_message(_message("p1 smtp two", to="carol@example.com"))
        sent = httpx.post(f"{a.api_url}/api/v1/send", timeout=10, json={
            "From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com"}], "Subject": "p1 api",
            "Text": "through the gateway", "Tags": ["mine", "Try it"]})
        assert sent.status_code == 200, sent.text
        grant = one.provider.create_grant("ann@example.com")
        answer = httpx.post(f"{one.provider.url}/v3/grants/{grant.id}/messages/send", timeout=20,
                            headers={"Authorization": f"Bearer {one.provider.api_key}"},
                            json={"to": [{"email": "bob@example.com"}], "subject": "p1 provider", "body": "hi"})
        assert answer.status_code == 200, answer.text
        # p2 sends one of its own, from the same fixed addresses the notebooks use
        with smtplib.SMTP(b.smtp_host, b.smtp_port, timeout=10) as session:
            session.send_message(_message("p2 smtp"))
        mine = ["p1 api", "p1 provider", "p1 smtp one", "p1 smtp two"]
        _wait(a.api_url, 4)

        # The shared server holds all five, each tagged with its sender's participant
        with Mailpit(url) as whole:
            everything = whole.messages(limit=50).messages
        assert sorted(m.subject for m in everything) == sorted([*mine, "p2 smtp"])
        assert all(("p1" in m.tags) != ("p2" in m.tags) for m in everything), [(m.subject, m.tags) for m in everything]
        p1_ids = {m.id for m in everything if "p1" in m.tags}

        # REST: p1 sees exactly its own (its tag hidden, others kept), with the scope's totals
        with Mailpit(a.api_url) as client:
            page = client.messages(limit=50)
            assert sorted(m.subject for m in page.messages) == mine
            assert page.total == 4 and page.messages_count == 4 and page.unread == 4
            assert all("p1" not in m.tags for m in page.messages) and page.tags == ["mine", "Try it"]
            assert client.info()["Messages"] == 4 and client.info()["Tags"] == {"mine": 1, "Try it": 1}
            assert client.search("subject:smtp").total == 4 and len(client.search("subject:smtp").messages) == 2
            assert client.message("latest").subject in mine           # (that one is read now)
            unread = client.messages().unread
            assert unread == 3
        # REST: p2 sees none of it
        with Mailpit(b.api_url) as client:
            page = client.messages(limit=50)
            assert [m.subject for m in page.messages] == ["p2 smtp"] and page.total == 1 and page.tags == []
            assert client.search("subject:p1").messages == [] and client.search("ann@example.com").total == 1
            assert client.info()["Messages"] == 1 and client.info()["Tags"] == {}
            assert client.message("latest").subject == "p2 smtp"
            for message_id in p1_ids:
                for suffix in ("", "/raw", "/headers", "/part/1", "/html-check"):
                    refused = httpx.get(f"{b.api_url}/api/v1/message/{message_id}{suffix}", timeout=10)
                    assert (refused.status_code, refused.text) == (404, "404 page not found"), (suffix, refused.text)
            listing = httpx.get(f"{b.api_url}/api/v1/messages", timeout=10).text + \
                httpx.get(f"{b.api_url}/api/v1/search", params={"query": "ann"}, timeout=10).text + \
                httpx.get(f"{b.api_url}/api/v1/tags", timeout=10).text + \
                httpx.get(f"{b.api_url}/api/v1/info", timeout=10).text
            assert not any(i in listing for i in p1_ids) and '"p1"' not in listing
            client.set_read(list(p1_ids))                          # read flags: only within the scope
            client.delete(list(p1_ids))                            # deleting another's IDs deletes nothing
            client.delete()                                        # "delete all" empties p2's scope only
            assert client.messages().total == 0
        with Mailpit(a.api_url) as client:
            page = client.messages(limit=50)
            assert sorted(m.subject for m in page.messages) == mine and page.unread == unread

        # POP3: each maildrop is the scope's, and UIDL gives the same IDs as the API
        ids, subjects = _pop3_subjects(a.pop3)
        assert set(ids) == p1_ids and subjects == mine
        assert _pop3_subjects(b.pop3) == ([], [])
        # IMAP (the lab's server, reading the gateway) and the provider, over the same scopes
        assert _imap_subjects(one) == mine and _imap_subjects(two) == []
        assert "p1 provider" in _provider_subjects(one, "ann@example.com")
        assert _provider_subjects(two, "ann@example.com") == []


def test_the_front_keeps_mailpits_conversation_tags_the_content_and_refuses_starttls(
        shared: tuple[str, int]) -> None:
    url, port = shared
    box, _ = open_mailbox("external", url=url, participant="p1")
    try:
        def conversation(host: str, port: int, lines: list[bytes]) -> list[bytes]:
            with socket.create_connection((host, port), timeout=10) as sock:
                stream = sock.makefile("rb")
                said = [stream.readline()]
                for line in lines:
                    sock.sendall(line)
                    reply = [stream.readline()]
                    while reply[-1][3:4] == b"-":
                        reply.append(stream.readline())
                    said.append(b"".join(reply))
                return said

        direct = conversation("127.0.0.1", port, [b"EHLO me\r\n", b"QUIT\r\n"])
        front = conversation(box.smtp_host, box.smtp_port, [b"EHLO me\r\n", b"STARTTLS\r\n", b"QUIT\r\n"])
        assert front[0] == direct[0]                                      # Mailpit's own greeting
        assert b"STARTTLS" not in front[1] and front[1].splitlines()[0] == direct[1].splitlines()[0]
        assert front[2].startswith(b"454 4.7.0 STARTTLS is not available")
        assert front[3].startswith(b"221")
        with socket.create_connection((box.smtp_host, box.smtp_port), timeout=10) as sock:  # no end of line
            stream = sock.makefile("rb")
            assert stream.readline().startswith(b"220")
            sock.sendall(b"NOOP " + b"x" * 5000)
            assert stream.readline().startswith(b"500 5.5.2 command line too long")
            assert stream.readline() == b""                                 # and the connection is closed
        body = (b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: stuffed\r\nX-Tags: own\r\n\r\n"
                b"..starts with a dot\r\n.\r\n")
        replies = conversation(box.smtp_host, box.smtp_port, [
            b"HELO me\r\n", b"MAIL FROM:<ann@example.com>\r\n", b"RCPT TO:<bob@example.com>\r\n", b"DATA\r\n",
            body, b"QUIT\r\n"])
        assert replies[4].startswith(b"354") and replies[5].startswith(b"250"), replies
        queued = replies[5].split()[-1].decode()
        with Mailpit(box.api_url) as client:
            raw = client.raw(queued)
        with Mailpit(url) as whole:  # Mailpit and the sandbox alike read the first X-Tags header: the front's
            assert [m.tags for m in whole.messages().messages if m.id == queued] == [["p1"]]
        # one header line added before the content, which reached the server as sent (dot-unstuffed there)
        assert raw.endswith(b"X-Tags: p1\r\n" + body[:-3].replace(b"\r\n..", b"\r\n.")) or \
            raw.split(b"X-Tags: p1\r\n", 1)[1] == body[:-3].replace(b"\r\n..", b"\r\n."), raw
    finally:
        box.close()


def test_the_gateway_refuses_what_would_show_or_change_everyones_mail(shared: tuple[str, int]) -> None:
    url, _ = shared
    box, _ = open_mailbox("external", url=url, participant="p1")
    try:
        for method, path, why in (("GET", "/api/v1/chaos", "Chaos"), ("PUT", "/api/v1/chaos", "Chaos"),
                                  ("PUT", "/api/v1/tags/p2", "renaming"), ("DELETE", "/api/v1/tags/p2", "deleting"),
                                  ("GET", "/", "web inbox"), ("GET", "/view/latest", "web inbox"),
                                  ("GET", "/api/events", "events")):
            answer = httpx.request(method, f"{box.api_url}{path}", timeout=10)
            assert answer.status_code == 403 and "participant p1" in answer.text and why in answer.text, \
                (path, answer.text)
        with pytest.raises(Exception):  # the websocket is refused before it opens
            from websockets.sync.client import connect

            connect(box.api_url.replace("http", "ws") + "/api/events", open_timeout=5).close()
        assert httpx.get(f"{box.api_url}/readyz", timeout=10).status_code == 200
    finally:
        box.close()


def test_mail_the_shared_mailpit_stores_untagged_is_deleted_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Mailpit told not to read X-Tags: the front's check finds the message untagged, deletes it and
    says so with a 554, so nothing untagged stays behind."""
    need_mailpit()
    with MailpitProcess(find_mailpit(), extra_args=("--tags-disable", "x-tags")) as server:
        monkeypatch.setenv("MAILPIT_SMTP", f"127.0.0.1:{server.smtp_port}")
        box, _ = open_mailbox("external", url=server.api_url, participant="p1")
        try:
            with smtplib.SMTP(box.smtp_host, box.smtp_port, timeout=10) as session:
                with pytest.raises(smtplib.SMTPDataError) as caught:
                    session.send_message(_message("never kept"))
            assert caught.value.smtp_code == 554 and b"--tags-disable" in caught.value.smtp_error
            with Mailpit(server.api_url) as whole:
                assert whole.messages().total == 0
        finally:
            box.close()


def test_a_participant_tag_is_checked(shared: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = shared
    for bad in ("Ann", "ann smith", "a+b", "a,b", "", "-x"):
        monkeypatch.setenv("EMAILKIT_PARTICIPANT", bad)
        with pytest.raises(InvalidInput) as caught:
            open_mailbox("external", url=url)
        assert caught.value.field == "EMAILKIT_PARTICIPANT" and "participant-01" in caught.value.fix
    monkeypatch.setenv("EMAILKIT_PARTICIPANT", "participant-01")
    box, _ = open_mailbox("external", url=url)
    try:
        assert box.participant == "participant-01" and box.shared_url == url
    finally:
        box.close()
    # without a participant an external Mailpit is used as it is (one person's, not a room's)
    monkeypatch.delenv("EMAILKIT_PARTICIPANT")
    box, _ = open_mailbox("external", url=url)
    assert box.participant is None and box.api_url == url
    box.close()


def test_imaplib_sees_the_scope_too(shared: tuple[str, int]) -> None:
    """The stdlib IMAP client, for good measure: EXISTS counts the scope's messages only."""
    url, _ = shared
    with Stack("external", url=url, participant="p1") as one, Stack("external", url=url, participant="p2") as two:
        with smtplib.SMTP(one.mailbox.smtp_host, one.mailbox.smtp_port, timeout=10) as session:
            for n in range(3):
                session.send_message(_message(f"p1 #{n}"))
        _wait(one.mailbox.api_url, 3)
        for stack, expected in ((one, 3), (two, 0)):
            imap = stack.imap
            client = imaplib.IMAP4(imap.host, imap.port, timeout=10)
            try:
                client.starttls(imap.client_tls_context())
                client.login(imap.user, imap.password)
                status, data = client.select("INBOX", readonly=True)
                assert status == "OK" and int(data[0]) == expected
            finally:
                client.logout()


def test_the_front_tags_every_message_of_a_session_even_when_the_content_arrives_byte_by_byte(
        shared: tuple[str, int]) -> None:
    """The end-of-data line split over TCP segments (".", then "\\r", then "\\n"), a line that only
    starts with a dot, and a second message on the same connection: each stored once, tagged."""
    url, _ = shared
    box, _ = open_mailbox("external", url=url, participant="p1")
    try:
        with socket.create_connection((box.smtp_host, box.smtp_port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = sock.makefile("rb")

            def reply() -> bytes:
                lines = [stream.readline()]
                while lines[-1][3:4] == b"-":
                    lines.append(stream.readline())
                return lines[-1]

            assert reply().startswith(b"220")
            sock.sendall(b"EHLO me\r\n")
            assert reply().startswith(b"250")
            queued = []
            for n in range(2):
                for command, code in ((b"MAIL FROM:<ann@example.com>\r\n", b"250"),
                                      (b"RCPT TO:<bob@example.com>\r\n", b"250"), (b"DATA\r\n", b"354")):
                    sock.sendall(command)
                    assert reply().startswith(code)
                content = (f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: drip {n}\r\n\r\n"
                           "..dot\r\n.\r\n").encode()
                for i in range(len(content)):
                    sock.sendall(content[i : i + 1])
                    time.sleep(0.002)
                answer = reply()
                assert answer.startswith(b"250"), answer
                queued.append(answer.split()[-1].decode())
            sock.sendall(b"QUIT\r\n")
            assert reply().startswith(b"221")
        with Mailpit(url) as whole:
            for n, message_id in enumerate(queued):
                raw = whole.raw(message_id)
                assert b"X-Tags: p1\r\n" in raw and raw.endswith(f"Subject: drip {n}\r\n\r\n.dot\r\n".encode()), raw
        assert sorted(_subjects(box.api_url)) == ["drip 0", "drip 1"]
    finally:
        box.close()


def test_mail_addressed_to_a_participants_tag_reaches_their_scope_as_docs_workshop_says(
        shared: tuple[str, int]) -> None:
    """The documented limit: a plus-address naming another participant's tag puts the message in their
    scope too (as mail sent to them would), and in the sender's."""
    url, _ = shared
    one, _ = open_mailbox("external", url=url, participant="p1")
    two, _ = open_mailbox("external", url=url, participant="p2")
    try:
        with smtplib.SMTP(one.smtp_host, one.smtp_port, timeout=10) as session:
            session.send_message(_message("to p2's tag", to="bob+p2@example.com"))
            session.send_message(_message("to bob"))
        _wait(one.api_url, 2)
        assert _subjects(two.api_url) == ["to p2's tag"]
    finally:
        one.close()
        two.close()


def test_bad_json_to_the_gateway_is_a_400_and_nothing_is_sent_or_deleted(shared: tuple[str, int]) -> None:
    url, _ = shared
    box, _ = open_mailbox("external", url=url, participant="p1")
    try:
        good = {"From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com"}], "Subject": "kept"}
        assert httpx.post(f"{box.api_url}/api/v1/send", json=good, timeout=10).status_code == 200
        deep = b'{"From": {"Email": "ann@example.com"}, "Subject": "deep", "X": ' + b"[" * 200 + b"]" * 200 + b"}"
        for body in (b"{not json", b'{"Subject": "twice"} {"Subject": "again"}', deep, b'"just a string"'):
            answer = httpx.post(f"{box.api_url}/api/v1/send", content=body, timeout=10)
            assert answer.status_code == 400 and "invalid JSON" in answer.text, (body[:40], answer.text)
            refused = httpx.request("DELETE", f"{box.api_url}/api/v1/messages", content=body, timeout=10)
            assert refused.status_code == 400, (body[:40], refused.text)
        assert _subjects(box.api_url) == ["kept"]  # neither stored nor deleted by the refused requests
    finally:
        box.close()
