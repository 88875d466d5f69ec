"""The sandbox's SMTP side over real loopback sockets: Mailpit's replies, additions, AUTH, TLS, XOAUTH2."""

from __future__ import annotations

import base64
import json
import re
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from emailkit.mailboxes import Mailbox
from emailkit.sandbox import Sandbox
from tests.support.sandbox import wire

ID = re.compile(r"^[0-9A-Za-z]{22}$")


def smtp_send(
    box: Sandbox, data: bytes, *, sender: str = "ann@example.com", rcpts: tuple[str, ...] = ("bob@example.com",)
) -> tuple[int, str]:
    with smtplib.SMTP(box.smtp_host, box.smtp_port, local_hostname="client.example", timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.mail(sender)[0] == 250
        for rcpt in rcpts:
            assert smtp.rcpt(rcpt)[0] == 250
        code, text = smtp.data(data)
        return code, text.decode()


def queued_id(reply: str) -> str:
    match = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", reply)
    assert match, reply
    return match.group(1)


def messages(box: Sandbox, query: str | None = None) -> list[dict]:
    path = "/api/v1/messages" if query is None else "/api/v1/search"
    params = {} if query is None else {"query": query}
    return httpx.get(box.api_url + path, params=params).json()["messages"]


SIMPLE = b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: hello\r\n\r\nHi Bob\r\n"


# --------------------------------------------------------------------------- conversation


def test_greeting_ehlo_and_closing_lines_are_mailpits(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(hostname="localhost", starttls=True)
    with wire(box) as w:
        assert w.greeting == "220 localhost Mailpit ESMTP Service ready"
        assert w.send("EHLO client.example").split("\n") == [
            "250-localhost greets client.example",
            "250-SIZE 52428800",
            "250-STARTTLS",
            "250-AUTH PLAIN LOGIN",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250 SMTPUTF8",
        ]
        assert w.send("NOOP") == "250 2.0.0 Ok"
        assert w.send("MAIL FROM:<ann@example.com>") == "250 2.1.0 Ok"
        assert w.send("RCPT TO:<bob@example.com>") == "250 2.1.5 Ok"
        assert w.send("RSET") == "250 2.0.0 Ok"
        assert w.send("DATA") == "503 5.5.1 Bad sequence of commands (MAIL & RCPT required before DATA)"
        assert w.send("BOGUS") == "500 5.5.2 Syntax error, command unrecognized"
        assert w.send("QUIT") == "221 2.0.0 localhost Mailpit ESMTP Service closing transmission channel"


def test_data_reply_carries_the_database_id_and_the_message_is_already_stored(mailbox: Mailbox) -> None:
    code, reply = smtp_send(mailbox, SIMPLE)
    assert code == 250
    message_id = queued_id(reply)
    assert ID.match(message_id)
    # No waiting: the 250 came after the commit, so the API must already have it.
    response = httpx.get(f"{mailbox.api_url}/api/v1/message/{message_id}")
    assert response.status_code == 200
    assert response.json()["Subject"] == "hello"


def test_mailpit_additions_received_return_path_message_id_bcc(mailbox: Mailbox) -> None:
    data = b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nCc: cat@example.com\r\nSubject: adds\r\n\r\nbody\r\n"
    _code, reply = smtp_send(
        mailbox,
        data,
        sender="bounces@example.com",
        rcpts=("bob@example.com", "cat@example.com", "hidden@example.com", "Also@Example.com"),
    )
    message_id = queued_id(reply)
    raw = httpx.get(f"{mailbox.api_url}/api/v1/message/{message_id}/raw").content
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert re.search(
        r"^Received: from client\.example \(localhost \[127\.0\.0\.1\]\)\r\n"
        r" {8}by \S+ \(Mailpit\) with SMTP\r\n"
        r" {8}for <bob@example\.com>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+\)\r$",
        head,
        re.M,
    ), head
    assert "Return-Path: <bounces@example.com>" in head
    generated = re.search(r"^Message-ID: <([0-9A-Za-z]{22})@mailpit>\r$", head, re.M)
    assert generated, head
    assert "Bcc: hidden@example.com, Also@Example.com" in head
    assert raw.endswith(b"\r\n\r\nbody\r\n")
    summary = messages(mailbox)[0]
    assert summary["MessageID"] == f"{generated.group(1)}@mailpit"
    assert summary["Bcc"] == [
        {"Name": "", "Address": "hidden@example.com"},
        {"Name": "", "Address": "Also@Example.com"},
    ]
    message = httpx.get(f"{mailbox.api_url}/api/v1/message/{message_id}").json()
    assert message["ReturnPath"] == "bounces@example.com"


def test_existing_message_id_and_bcc_are_kept(mailbox: Mailbox) -> None:
    data = (
        b"Message-ID: <own@example.com>\r\nFrom: ann@example.com\r\nTo: bob@example.com\r\n"
        b"Bcc: first@example.com\r\nSubject: keep\r\n\r\nx\r\n"
    )
    _, reply = smtp_send(mailbox, data, rcpts=("bob@example.com", "first@example.com", "second@example.com"))
    raw = httpx.get(f"{mailbox.api_url}/api/v1/message/{queued_id(reply)}/raw").text
    assert raw.count("Message-ID:") == 1 and "Message-ID: <own@example.com>" in raw
    assert "Bcc: first@example.com, second@example.com" in raw
    assert messages(mailbox)[0]["MessageID"] == "own@example.com"


def test_null_sender_is_accepted_for_bounces(mailbox: Mailbox) -> None:
    with wire(mailbox) as w:
        w.send("EHLO client.example")
        assert w.send("MAIL FROM:<>") == "250 2.1.0 Ok"
        assert w.send("RCPT TO:<bob@example.com>") == "250 2.1.5 Ok"
        assert w.send("DATA").startswith("354 Start mail input")
        reply = w.send(b"Subject: bounce\r\n\r\nreturned\r\n.")
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    raw = httpx.get(f"{mailbox.api_url}/api/v1/message/{reply.split()[-1]}/raw").text
    assert "Subject: bounce" in raw
    assert "Return-Path" not in raw  # as in Mailpit: an empty sender equals the (absent) header


def test_tags_come_from_x_tags_and_plus_addresses(mailbox: Mailbox) -> None:
    data = (
        b"From: ann+Sales@example.com\r\nTo: bob+alpha+beta@example.com\r\nX-Tags: Urgent, q3 report, bad/tag!\r\n"
        b"Subject: tagged\r\n\r\nx\r\n"
    )
    smtp_send(mailbox, data, rcpts=("bob+alpha+beta@example.com",))
    # sorted case-insensitively: Mailpit's tag names are NOCASE (measured by tests/differential)
    assert messages(mailbox)[0]["Tags"] == ["alpha", "bad tag", "beta", "q3 report", "Sales", "Urgent"]
    assert httpx.get(mailbox.api_url + "/api/v1/tags").json() == [
        "alpha",
        "bad tag",
        "beta",
        "q3 report",
        "Sales",
        "Urgent",
    ]


def test_one_reused_connection_carries_many_messages(mailbox: Mailbox) -> None:
    async def run() -> list[str]:
        replies = []
        async with aiosmtplib.SMTP(hostname=mailbox.smtp_host, port=mailbox.smtp_port, start_tls=False) as smtp:
            for i in range(40):
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "ann@example.com", "bob@example.com", f"n{i}"
                msg.set_content(f"message {i}")
                _, reply = await smtp.send_message(msg)
                replies.append(reply)
        return replies

    import asyncio

    replies = asyncio.run(run())
    ids = [queued_id(r) for r in replies]
    assert len(set(ids)) == 40
    listed = httpx.get(mailbox.api_url + "/api/v1/messages", params={"limit": 0}).json()
    assert [m["ID"] for m in listed["messages"]] == ids[::-1]  # newest first
    assert listed["total"] == 40


# --------------------------------------------------------------------------- AUTH


def test_auth_plain_accepts_any_credentials_without_tls_and_stores_the_user(mailbox: Mailbox) -> None:
    with smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=10) as smtp:
        code, text = smtp.login("alice@example.com", "anything at all")
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        smtp.sendmail("ann@example.com", ["bob@example.com"], SIMPLE)
    assert messages(mailbox)[0]["Username"] == "alice@example.com"


def test_auth_login_uses_mailpits_prompts(mailbox: Mailbox) -> None:
    with wire(mailbox) as w:
        w.send("EHLO client.example")
        assert w.send("AUTH LOGIN") == "334 " + base64.b64encode(b"Username:").decode()
        assert w.send(base64.b64encode(b"bob")) == "334 " + base64.b64encode(b"Password:").decode()
        assert w.send(base64.b64encode(b"secret")) == "235 2.7.0 Authentication successful"
        assert w.send("AUTH PLAIN " + base64.b64encode(b"\0bob\0x").decode()).startswith("503 5.5.1")
        w.send("MAIL FROM:<ann@example.com>")
        w.send("RCPT TO:<bob@example.com>")
        w.send("DATA")
        assert w.send(SIMPLE + b".").startswith("250 2.0.0 Ok: queued as ")
    assert messages(mailbox)[0]["Username"] == "bob"


def test_auth_is_optional(mailbox: Mailbox) -> None:
    code, _ = smtp_send(mailbox, SIMPLE)
    assert code == 250
    assert messages(mailbox)[0]["Username"] == ""


# --------------------------------------------------------------------------- STARTTLS


async def test_starttls_with_the_generated_certificate(mailbox: Mailbox) -> None:
    assert mailbox.ca is not None and mailbox.ca.pem.startswith(b"-----BEGIN CERTIFICATE-----")
    async with aiosmtplib.SMTP(
        hostname=mailbox.smtp_host, port=mailbox.smtp_port, start_tls=True, tls_context=mailbox.ca.client_context()
    ) as smtp:
        await smtp.ehlo()
        assert smtp.get_transport_info("sslcontext") is not None
        assert not smtp.supports_extension("starttls")  # not offered again once on TLS
        assert smtp.supports_extension("auth")
        await smtp.login("tls-user", "pw")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "ann@example.com", "bob@example.com", "over tls"
        msg.set_content("secret")
        await smtp.send_message(msg)
    assert messages(mailbox)[0]["Username"] == "tls-user"


def test_starttls_is_off_unless_asked_as_in_mailpit(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory()
    assert box.ca_pem is None
    with wire(box) as w:
        assert "STARTTLS" not in w.send("EHLO client.example")
        assert w.send("STARTTLS") == "502 5.5.1 Command not implemented"


# --------------------------------------------------------------------------- XOAUTH2


class Checker:
    def __init__(self, good: str) -> None:
        self.good = good
        self.calls: list[tuple[str, str]] = []

    def __call__(self, username: str, token: str) -> bool:
        self.calls.append((username, token))
        return token == self.good


async def test_xoauth2_success_with_aiosmtplib(sandbox_factory: Callable[..., Sandbox]) -> None:
    checker = Checker("ya29.good-token")
    box = sandbox_factory(xoauth2=checker)
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        await smtp.ehlo()
        assert "XOAUTH2" in smtp.esmtp_extensions["auth"].split()
        response = await smtp.auth_xoauth2("carol@example.com", "ya29.good-token")
        assert (response.code, response.message) == (235, "2.7.0 Authentication successful")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "carol@example.com", "bob@example.com", "oauth"
        msg.set_content("sent with a token")
        await smtp.send_message(msg)
    assert checker.calls == [("carol@example.com", "ya29.good-token")]
    assert messages(box)[0]["Username"] == "carol@example.com"


async def test_xoauth2_failure_behaves_like_gmail(sandbox_factory: Callable[..., Sandbox]) -> None:
    checker = Checker("good")
    box = sandbox_factory(xoauth2=checker)
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await smtp.auth_xoauth2("carol@example.com", "expired")
        assert (info.value.code, info.value.message) == (535, "5.7.8 Authentication credentials invalid")
        # the session is still usable: a good token works afterwards
        assert (await smtp.auth_xoauth2("carol@example.com", "good")).code == 235
    assert checker.calls == [("carol@example.com", "expired"), ("carol@example.com", "good")]


def test_xoauth2_failure_on_the_wire(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(xoauth2=Checker("good"))
    initial = base64.b64encode(b"user=carol@example.com\x01auth=Bearer bad\x01\x01").decode()
    with wire(box) as w:
        w.send("EHLO client.example")
        challenge = w.send(f"AUTH XOAUTH2 {initial}")
        assert challenge.startswith("334 ")
        assert json.loads(base64.b64decode(challenge[4:])) == {
            "status": "401",
            "schemes": "bearer",
            "scope": "email.send",
        }
        assert w.send("") == "535 5.7.8 Authentication credentials invalid"


def test_xoauth2_accepts_a_jwt_sized_token(sandbox_factory: Callable[..., Sandbox]) -> None:
    token = "eyJ" + "a" * 2500  # base64 AUTH line far beyond aiosmtpd's default 512/1001-byte limits
    checker = Checker(token)
    box = sandbox_factory(xoauth2=checker)
    initial = base64.b64encode(f"user=dan@example.com\x01auth=Bearer {token}\x01\x01".encode()).decode()
    with wire(box) as w:
        w.send("EHLO client.example")
        assert w.send(f"AUTH XOAUTH2 {initial}") == "235 2.7.0 Authentication successful"
    assert checker.calls == [("dan@example.com", token)]


def test_xoauth2_is_not_offered_without_a_checker(mailbox: Mailbox) -> None:
    initial = base64.b64encode(b"user=u@example.com\x01auth=Bearer t\x01\x01").decode()
    with wire(mailbox) as w:
        assert "XOAUTH2" not in w.send("EHLO client.example")
        assert w.send(f"AUTH XOAUTH2 {initial}") == "504 5.5.4 Unrecognized authentication type"


def test_a_failing_token_checker_refuses_instead_of_crashing(sandbox_factory: Callable[..., Sandbox]) -> None:
    def broken(username: str, token: str) -> bool:
        raise RuntimeError("provider down")

    box = sandbox_factory(xoauth2=broken)
    initial = base64.b64encode(b"user=u@example.com\x01auth=Bearer t\x01\x01").decode()
    with wire(box) as w:
        w.send("EHLO client.example")
        assert w.send(f"AUTH XOAUTH2 {initial}").startswith("334 ")
        assert w.send("") == "535 5.7.8 Authentication credentials invalid"
        assert w.send("NOOP") == "250 2.0.0 Ok"


# --------------------------------------------------------------------------- limits and storage


def test_recipient_limit(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(max_recipients=3)
    with wire(box) as w:
        w.send("EHLO client.example")
        w.send("MAIL FROM:<ann@example.com>")
        assert [w.send(f"RCPT TO:<r{i}@example.com>") for i in range(4)] == ["250 2.1.5 Ok"] * 3 + [
            "452 4.5.3 Too many recipients"
        ]
        w.send("DATA")
        assert w.send(SIMPLE + b".").startswith("250 2.0.0 Ok: queued as")
    bcc = messages(box)[0]["Bcc"]
    assert [a["Address"] for a in bcc] == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_mailbox_keeps_the_newest_max_messages(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory(max_messages=3)
    for i in range(5):
        smtp_send(box, SIMPLE.replace(b"hello", f"n{i}".encode()))
    page = httpx.get(box.api_url + "/api/v1/messages").json()
    assert [m["Subject"] for m in page["messages"]] == ["n4", "n3", "n2"]
    assert page["total"] == 3


def test_restart_on_the_same_database_keeps_everything(tmp_path: Path) -> None:
    database = tmp_path / "mail.db"
    with Sandbox(database=database) as box:
        _, reply = smtp_send(box, SIMPLE.replace(b"Subject: hello", b"Subject: persisted\r\nX-Tags: kept"))
        message_id = queued_id(reply)
        httpx.get(f"{box.api_url}/api/v1/message/{message_id}")  # marks it read
    with Sandbox(database=database) as box:
        page = httpx.get(box.api_url + "/api/v1/messages").json()
        assert [(m["ID"], m["Subject"], m["Read"], m["Tags"]) for m in page["messages"]] == [
            (message_id, "persisted", True, ["kept"])
        ]


def test_temporary_database_is_removed_on_close() -> None:
    box = Sandbox().start()
    assert box.store is not None
    path = Path(box.store.path)
    smtp_send(box, SIMPLE)
    assert path.exists()
    box.close()
    assert not path.exists() and not Path(f"{path}-wal").exists()
