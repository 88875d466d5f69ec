"""`lab.connect()`: a real Mailpit when MAILPIT_URL answers, the embedded sandbox otherwise.

"A real Mailpit" is played by a second sandbox reached only through its URL and ports, exactly
as a Mailpit in Docker would be (the sandbox answers with Mailpit's JSON).
"""

from __future__ import annotations

import poplib
import socket
from collections.abc import Iterator

import pytest

import emailkit
from emailkit.lab import connect
from emailkit.message import compose
from emailkit.sandbox import Sandbox


@pytest.fixture()
def fresh_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MAILPIT_URL", "MAILPIT_SMTP", "MAILPIT_POP3", "MAILPIT_POP3_AUTH"):
        monkeypatch.delenv(name, raising=False)
    if emailkit.lab._lab is not None:
        emailkit.lab._lab.close()
    yield
    if emailkit.lab._lab is not None:
        emailkit.lab._lab.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_without_mailpit_url_it_starts_the_sandbox_once(fresh_env: None) -> None:
    lab = connect()
    assert lab.kind == "sandbox" and lab is connect()
    result = await lab.send(compose(sender="a@example.com", to=["b@example.com"], subject="first", text="x"))
    assert lab.mailpit.wait_for("subject:first")[0].id == result.queued_as
    assert lab.describe().loc["mailbox", "value"].startswith("embedded sandbox")
    # POP3 is served with per-lab credentials, and the same mailbox answers.
    pop = poplib.POP3(lab.pop3.host, lab.pop3.port, timeout=5)
    pop.user(lab.pop3.user)
    pop.pass_(lab.pop3.password)
    assert pop.stat()[0] == 1
    pop.quit()
    assert lab.pop3.password not in repr(lab.pop3)
    smtp_port = lab.smtp_port
    lab.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", smtp_port), timeout=1).close()


async def test_a_mailpit_that_answers_is_used(fresh_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(pop3_auth={"workbook": "workbook-local"}) as mailpit:
        monkeypatch.setenv("MAILPIT_URL", mailpit.api_url)
        monkeypatch.setenv("MAILPIT_SMTP", f"{mailpit.smtp_host}:{mailpit.smtp_port}")
        monkeypatch.setenv("MAILPIT_POP3", f"{mailpit.pop3_host}:{mailpit.pop3_port}")
        lab = connect()
        assert lab.kind == "mailpit" and lab.sandbox is None
        assert (lab.smtp_host, lab.smtp_port) == (mailpit.smtp_host, mailpit.smtp_port)
        assert lab.pop3 is not None and lab.pop3.user == "workbook"
        await lab.send(compose(sender="a@example.com", to=["b@example.com"], subject="to mailpit", text="x"))
        assert lab.mailpit.wait_for("subject:mailpit")
        # Mailpit has no XOAUTH2: the OAuth demo gets a second sandbox, wired to the provider.
        host, port = lab.xoauth2_smtp
        assert (host, port) != (mailpit.smtp_host, mailpit.smtp_port)
        lab.close()
        # Closing the lab leaves a real Mailpit running.
        assert socket.create_connection((mailpit.smtp_host, mailpit.smtp_port), timeout=1)


def test_a_mailpit_url_that_does_not_answer_falls_back_with_a_note(
    fresh_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAILPIT_URL", f"http://127.0.0.1:{_free_port()}")
    lab = connect()
    assert lab.kind == "sandbox"
    assert "did not answer" in lab.note and "embedded sandbox" in lab.note
    assert "did not answer" in capsys.readouterr().err


def test_a_mailpit_api_without_its_smtp_port_is_not_used(fresh_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox() as mailpit:
        monkeypatch.setenv("MAILPIT_URL", mailpit.api_url)
        monkeypatch.setenv("MAILPIT_SMTP", f"127.0.0.1:{_free_port()}")
        lab = connect()
        assert lab.kind == "sandbox" and "MAILPIT_SMTP" in lab.note


async def test_the_provider_starts_on_first_use_and_its_tokens_work_on_smtp(fresh_env: None) -> None:
    lab = connect()
    provider = lab.provider
    assert provider is lab.provider and "provider (REST API)" in lab.describe().index
    grant = provider.create_grant("ann@example.com")
    assert grant.email == "ann@example.com"
    # No token: the sandbox's XOAUTH2 refuses; this is the provider deciding, not the sandbox.
    with pytest.raises(emailkit.SMTPSendError) as info:
        await emailkit.smtp.send(compose(sender="ann@example.com", to=["b@example.com"], subject="x", text="x"),
                                 host=lab.smtp_host, port=lab.smtp_port, username="ann@example.com",
                                 oauth_token="not-a-token")
    assert info.value.code == 535
