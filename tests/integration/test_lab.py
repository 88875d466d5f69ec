"""`lab.connect()`: which mailbox it finds or starts, in order, and what the lab gives a notebook.

Order: `MAILPIT_URL` (an external Mailpit), else a real Mailpit binary (`MAILPIT_BIN`, the project's
`.tools/bin/mailpit`, PATH) started on free ports, else the embedded sandbox; `EMAILKIT_MAILBOX`
forces one. "External" here is a real Mailpit process started by the test and reached only by URL.
"""

from __future__ import annotations

import json
import os
import poplib
import shutil
import smtplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import emailkit
from emailkit import mailboxes
from emailkit.errors import EmailkitError, InvalidInput, MailpitError
from emailkit.lab import connect
from emailkit.mailboxes import MailpitProcess, find_mailpit, free_port
from emailkit.message import compose
from tests.support import need_mailpit

NODE_DIR = Path(__file__).resolve().parents[1] / "differential" / "node"


@pytest.fixture()
def fresh_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MAILPIT_URL", "MAILPIT_SMTP", "MAILPIT_POP3", "MAILPIT_POP3_AUTH", "MAILPIT_BIN", "EMAILKIT_MAILBOX"):
        monkeypatch.delenv(name, raising=False)
    if emailkit.lab._lab is not None:
        emailkit.lab._lab.close()
    yield
    if emailkit.lab._lab is not None:
        emailkit.lab._lab.close()


def _closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def test_forced_sandbox_starts_once_and_serves_smtp_rest_and_pop3(fresh_env: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAILKIT_MAILBOX", "sandbox")
    lab = connect()
    assert lab.kind == "sandbox" and lab is connect() and lab.web_ui is None
    result = await lab.send(compose(sender="a@example.com", to=["b@example.com"], subject="first", text="x"))
    assert lab.mailpit.wait_for("subject:first")[0].id == result.queued_as
    assert lab.describe().loc["mailbox", "value"].startswith("embedded sandbox")
    assert "no web UI" in lab.summary()
    assert lab.pop3 is not None
    pop = poplib.POP3(lab.pop3.host, lab.pop3.port, timeout=5)
    pop.user(lab.pop3.user)
    pop.pass_(lab.pop3.password)
    assert pop.stat()[0] == 1
    pop.quit()
    assert lab.pop3.password not in repr(lab.pop3) and lab.pop3.password not in lab.describe().to_string()
    smtp_port = lab.smtp_port
    lab.close()
    assert _closed(smtp_port)


async def test_with_a_binary_at_hand_it_starts_real_mailpit_with_its_web_ui(fresh_env: None) -> None:
    need_mailpit()
    lab = connect()
    assert lab.kind == "mailpit" and lab.is_mailpit and lab.sandbox is None
    info = lab.mailpit.info()
    assert info["Version"] == mailboxes.MAILPIT_VERSION
    described = lab.describe()["value"]
    assert described["version"] == mailboxes.MAILPIT_VERSION and described["web UI"] == lab.web_ui
    assert lab.web_ui in lab.summary()
    # The web inbox works: the page and its bundle (built by `make mailpit` from the module's sources).
    page = httpx.get(lab.web_ui)
    assert page.status_code == 200 and "<html" in page.text.lower()
    bundle = httpx.get(lab.web_ui + "dist/app.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    # What the notebooks need: Chaos, POP3 with the lab's login, AUTH accepted.
    assert set(lab.mailpit.chaos()) == {"Sender", "Recipient", "Authentication"}
    await lab.send(compose(sender="a@example.com", to=["b@example.com"], subject="authed", text="x"),
                   username="anyone", password="anything")
    assert lab.mailpit.wait_for("subject:authed")
    assert lab.pop3 is not None
    pop = poplib.POP3(lab.pop3.host, lab.pop3.port, timeout=5)
    pop.user(lab.pop3.user)
    pop.pass_(lab.pop3.password)
    assert pop.stat()[0] == 1
    pop.quit()
    api_port, smtp_port = int(lab.api_url.rsplit(":", 1)[1]), lab.smtp_port
    lab.close()
    assert _closed(api_port) and _closed(smtp_port)  # the lab's Mailpit process is stopped with it


def test_mailpit_on_path_is_found_without_setting_anything(fresh_env: None, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    need_mailpit()
    binary = find_mailpit()
    assert binary is not None
    (tmp_path / "bin").mkdir()
    os.symlink(binary.resolve(), tmp_path / "bin" / "mailpit")
    monkeypatch.setattr(mailboxes, "PROJECT_ROOT", tmp_path / "elsewhere")  # no .tools/ here
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert find_mailpit() == tmp_path / "bin" / "mailpit"
    lab = connect()
    assert lab.kind == "mailpit"
    lab.close()


def test_without_any_mailpit_it_falls_back_to_the_sandbox_and_says_why(
    fresh_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mailboxes, "PROJECT_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("MAILPIT_URL", f"http://127.0.0.1:{free_port()}")
    lab = connect()
    assert lab.kind == "sandbox"
    assert "did not answer" in lab.note and "no Mailpit binary" in lab.note
    assert "did not answer" in capsys.readouterr().err


def test_forced_choices_that_cannot_be_had_are_errors_naming_the_setting(
    fresh_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMAILKIT_MAILBOX", "postfix")
    with pytest.raises(InvalidInput, match="EMAILKIT_MAILBOX") as bad:
        connect()
    assert "sandbox" in bad.value.fix
    monkeypatch.setenv("EMAILKIT_MAILBOX", "external")
    with pytest.raises(InvalidInput, match="MAILPIT_URL"):
        connect()
    monkeypatch.setenv("MAILPIT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MailpitError, match="did not answer"):
        connect()
    monkeypatch.setenv("EMAILKIT_MAILBOX", "mailpit")
    monkeypatch.setenv("MAILPIT_BIN", str(tmp_path / "nothing-here"))
    with pytest.raises(InvalidInput, match="MAILPIT_BIN"):
        connect()
    monkeypatch.delenv("MAILPIT_BIN")
    monkeypatch.setattr(mailboxes, "PROJECT_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmailkitError, match="no Mailpit binary") as missing:
        connect()
    assert "make mailpit" in missing.value.fix


async def test_an_external_mailpit_is_used_and_left_running(fresh_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    need_mailpit()
    binary = find_mailpit()
    assert binary is not None
    with MailpitProcess(binary, pop3_auth=("workbook", "workbook-local")) as outside:
        monkeypatch.setenv("MAILPIT_URL", outside.api_url)
        monkeypatch.setenv("MAILPIT_SMTP", f"127.0.0.1:{outside.smtp_port}")
        monkeypatch.setenv("MAILPIT_POP3", f"127.0.0.1:{outside.pop3_port}")
        lab = connect()
        assert lab.kind == "external" and lab.sandbox is None
        assert lab.smtp_port == outside.smtp_port and lab.web_ui == outside.api_url + "/"
        assert lab.pop3 is not None and lab.pop3.user == "workbook"
        await lab.send(compose(sender="a@example.com", to=["b@example.com"], subject="to mailpit", text="x"))
        assert lab.mailpit.wait_for("subject:mailpit")
        # Mailpit has no XOAUTH2: the OAuth demo gets a small sandbox beside it, wired to the provider.
        host, port = lab.xoauth2_smtp
        assert (host, port) != ("127.0.0.1", outside.smtp_port)
        lab.close()
        assert not _closed(outside.smtp_port)  # closing the lab leaves an external Mailpit running


def test_a_mailpit_api_without_its_smtp_port_is_not_used(fresh_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    need_mailpit()
    binary = find_mailpit()
    assert binary is not None
    with MailpitProcess(binary) as outside:
        monkeypatch.setenv("MAILPIT_URL", outside.api_url)
        monkeypatch.setenv("MAILPIT_SMTP", f"127.0.0.1:{free_port()}")
        monkeypatch.setenv("EMAILKIT_MAILBOX", "auto")
        lab = connect()
        assert lab.kind != "external" and "MAILPIT_SMTP" in lab.note


async def test_the_provider_starts_on_first_use_and_its_tokens_work_on_smtp(fresh_env: None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAILKIT_MAILBOX", "sandbox")
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


# --------------------------------------------------------------------------- default client options


def _nodemailer(host: str, port: int, env: dict[str, str] | None = None) -> dict[str, object]:
    """Send one message with Nodemailer's default options (host and port only); its result as JSON."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js and npm are needed to try Nodemailer's defaults against the lab")
    if not (NODE_DIR / "node_modules" / "nodemailer").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True,
                       timeout=300)
    message = {"from": "app@example.com", "to": "user@example.com", "subject": "from nodemailer", "text": "hi"}
    out = subprocess.run([node, "send.mjs"], cwd=NODE_DIR, input=json.dumps(
        {"message": message, "targets": [{"host": host, "port": port}]}), capture_output=True, text=True,
        timeout=60, env={**os.environ, **(env or {})}, check=True)
    return dict(json.loads(out.stdout)[0])


@pytest.mark.parametrize("backend", ["sandbox", "mailpit"])
def test_mail_libraries_with_default_options_get_mail_through(fresh_env: None, backend: str) -> None:
    if backend == "mailpit":
        need_mailpit()
    lab = connect(backend=backend)
    assert _nodemailer(lab.smtp_host, lab.smtp_port)["ok"]
    with smtplib.SMTP(lab.smtp_host, lab.smtp_port, timeout=10) as smtp:
        smtp.sendmail("app@example.com", ["user@example.com"], b"Subject: from smtplib\r\n\r\nhi\r\n")
    assert len(lab.mailpit.wait_for("subject:from", count=2)) == 2


@pytest.mark.parametrize("backend", ["sandbox", "mailpit"])
def test_starttls_when_asked_uses_a_lab_ca_that_clients_can_be_pointed_at(fresh_env: None, backend: str) -> None:
    if backend == "mailpit":
        need_mailpit()
    lab = connect(backend=backend, starttls=True)
    ca = lab.mailbox.ca
    assert ca is not None and ca.file is not None and ca.file.read_bytes() == ca.pem
    assert str(ca.file) in lab.describe().loc["lab CA", "value"]
    # Nodemailer upgrades to TLS whenever STARTTLS is offered: without the CA it refuses the certificate
    # (a socket error during the TLS hand-over)...
    refused = _nodemailer(lab.smtp_host, lab.smtp_port)
    assert not refused["ok"] and refused["code"] == "ESOCKET"
    # ...and with the variables the lab prints, it verifies it and sends.
    assert _nodemailer(lab.smtp_host, lab.smtp_port, env=ca.client_env())["ok"]
    with smtplib.SMTP(lab.smtp_host, lab.smtp_port, timeout=10) as smtp:
        smtp.starttls(context=ca.client_context())  # Python, verifying against the exported CA
        smtp.sendmail("app@example.com", ["user@example.com"], b"Subject: over tls\r\n\r\nhi\r\n")
    assert lab.mailpit.wait_for("subject:tls")


@pytest.mark.parametrize("backend", ["sandbox", "mailpit"])
async def test_the_lab_serves_imap_over_its_mailbox_with_the_providers_read_tokens(fresh_env: None,
                                                                                  backend: str) -> None:
    import imaplib

    if backend == "mailpit":
        need_mailpit()
    lab = connect(backend=backend)
    provider = lab.provider
    grant = provider.create_grant("ann@example.com")
    await lab.send(compose(sender="bob@example.com", to=["ann@example.com"], subject="reply", text="x"))
    provider_sent = await lab.send(compose(sender="ann@example.com", to=["bob@example.com"], subject="mine", text="y"))
    lab.mailpit.wait_for("subject:mine")
    imap = lab.imap
    assert imap is lab.imap and imap.password not in repr(imap) and "IMAP" in lab.describe().index
    with imaplib.IMAP4(imap.host, imap.port, timeout=10) as client:
        client.starttls(ssl_context=imap.client_tls_context())  # verified against the lab CA
        client.login(imap.user, imap.password)
        client.select("INBOX")
        assert client.uid("SEARCH", "SUBJECT", "reply")[1][0]
        client.select("Sent")
        _, found = client.uid("SEARCH", "ALL")
        assert len(found[0].split()) == 1  # the grant's own message; Bob's reply is not "sent"
    assert provider_sent.queued_as
    # XOAUTH2 on IMAP takes the provider's tokens with email.read, for that mailbox only.
    assert not lab.stack.check_xoauth2_read("ann@example.com", "not-a-token")
    assert grant.email == "ann@example.com"
    tap = lab.tap("imap")
    with imaplib.IMAP4(tap.host, tap.port, timeout=10) as client:
        client.login(imap.user, imap.password)
        client.logout()
    imap_port = imap.port
    lab.close()
    assert _closed(imap_port)


def test_a_killed_kernel_does_not_leave_its_mailpit_running() -> None:
    """The lab's Mailpit is asked to stop when the process that started it dies without closing it."""
    import sys
    import time

    need_mailpit()
    code = ("import os\nfrom emailkit.mailboxes import open_mailbox\nbox, _ = open_mailbox('mailpit')\n"
            "print(box.process.proc.pid, flush=True)\nos._exit(0)\n")
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             check=True).stdout.strip())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    raise AssertionError(f"Mailpit {pid} outlived the process that started it")
