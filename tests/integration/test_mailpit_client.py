"""The one Mailpit client against a real (sandbox) Mailpit API: results, waits and errors that say what to do."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from emailkit.mailboxes import Mailbox
from emailkit.errors import MailpitError, MailpitNotFound, MailpitTimeout, MailpitUnreachable
from emailkit.mailpit import AsyncMailpit, Mailpit
from emailkit.message import compose
from emailkit.sandbox import Sandbox
from emailkit.smtp import send_sync


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deliver(box: Sandbox, subject: str, to: str = "bob@example.com") -> str:
    result = send_sync(compose(sender="Ann <ann@example.com>", to=[to], subject=subject, text="hello"),
                       host=box.smtp_host, port=box.smtp_port)
    assert result.queued_as
    return result.queued_as


def test_typed_results_and_read_state(mailbox: Mailbox) -> None:
    first = _deliver(mailbox, "one")
    _deliver(mailbox, "two")
    with Mailpit(mailbox.api_url) as mp:
        page = mp.messages()
        assert (page.total, page.unread, len(page)) == (2, 2, 2)
        assert page.messages[0].subject == "two"  # newest first
        summary = page.messages[1]
        assert (summary.id, str(summary.sender), summary.to[0].address) == (first, "Ann <ann@example.com>", "bob@example.com")
        message = mp.message(first)
        assert message.text.strip() == "hello" and message.return_path == "ann@example.com"
        assert mp.messages().unread == 1  # GET message marks it read, as Mailpit does
        assert mp.headers(first)["Message-Id"][0].startswith("<")
        assert b"Subject: one" in mp.raw(first)
        assert list(mp.messages().to_dataframe().columns)[:3] == ["id", "created", "from"]


def test_wait_for_search_send_set_read_and_delete(mailbox: Mailbox) -> None:
    with Mailpit(mailbox.api_url) as mp:
        new_id = mp.send({"From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com"}],
                          "Subject": "via api", "Text": "x"})
        assert mp.wait_for("subject:via", timeout=2)[0].id == new_id
        mp.set_read([new_id])
        assert mp.search("is:read").messages_count == 1
        mp.delete([])  # an empty selection deletes nothing (Mailpit would read it as "all")
        assert mp.messages().total == 1
        mp.set_read([], read=False)  # likewise for read state
        assert mp.search("is:read").messages_count == 1
        mp.delete([new_id])
        assert mp.messages().total == 0


def test_errors_say_what_to_do(mailbox: Mailbox) -> None:
    with Mailpit(mailbox.api_url) as mp:
        with pytest.raises(MailpitNotFound) as missing:
            mp.message("nope")
        assert "latest" in missing.value.fix
        with pytest.raises(MailpitTimeout) as slow:
            mp.wait_for("subject:never", timeout=0.2)
        assert "found 0" in str(slow.value) and "query" in slow.value.fix
        with pytest.raises(MailpitError) as bad:
            mp.search("")
        assert bad.value.status == 400
    closed = Mailpit(f"http://127.0.0.1:{_free_port()}", timeout=1)
    assert closed.ready() is False
    with pytest.raises(MailpitUnreachable) as gone:
        closed.info()
    assert "docker compose up -d mailpit" in gone.value.fix and isinstance(gone.value, ConnectionError)


def test_credentials_in_the_url_are_never_shown() -> None:
    url = f"http://user:s3cret-pass@127.0.0.1:{_free_port()}"
    client = Mailpit(url, timeout=1)
    assert "s3cret" not in repr(client)
    with pytest.raises(MailpitUnreachable) as gone:
        client.info()
    assert "s3cret" not in str(gone.value)


def test_another_web_server_is_told_apart_from_mailpit() -> None:
    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not mailpit</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(MailpitError) as wrong:
            Mailpit(f"http://127.0.0.1:{server.server_port}").info()
        assert "not JSON" in wrong.value.message and "MAILPIT_URL" in wrong.value.fix
    finally:
        server.shutdown()


async def test_the_async_twin_answers_the_same(mailbox: Mailbox) -> None:
    _deliver(mailbox, "async one")
    async with AsyncMailpit(mailbox.api_url) as mp:
        assert (await mp.messages()).total == 1
        assert (await mp.wait_for("subject:async", timeout=2))[0].subject == "async one"
        assert await mp.ready() is True


def test_stored_ids_finds_exactly_one_message_id_even_quoted(mailbox: Mailbox) -> None:
    """The retry policy's "was it stored although its 250 was lost?" check, on both backends."""
    import smtplib

    with smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=10) as smtp:
        for mid in ('<"a,b"@x.example>', "<plain-1@x.example>", "<plain-10@x.example>"):
            smtp.sendmail("a@x.example", ["b@x.example"], f"Message-ID: {mid}\r\nSubject: s\r\n\r\nhi\r\n".encode())
    with Mailpit(mailbox.api_url) as client:
        client.wait_for("subject:s", count=3)
        assert len(client.stored_ids('<"a,b"@x.example>')) == 1
        assert len(client.stored_ids("plain-1@x.example")) == 1  # not plain-10: exact, not a substring
        assert client.stored_ids("<plain@x.example>") == [] and client.stored_ids("<>") == []
