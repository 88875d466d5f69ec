"""Shared by the IMAP tests: both mailboxes the IMAP server reads (the sandbox and a real Mailpit
binary on free loopback ports), a message sender over real SMTP, and a real IMAPServer over each."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest

from emailkit.mailpit import Mailpit
from emailkit.message import compose
from emailkit.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
MAILPIT_BINARY = next((p for p in (ROOT / ".tools/bin/mailpit", Path("/tmp/mp/mailpit")) if p.exists()), None)
ANA = "ana@example.com"  # the provider's own address: her sends form Sent
BO = "bo@example.org"
USER, PASSWORD = "reader", "imap-test-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backend:
    """A mailbox the IMAP server can sit on: where its SMTP and REST API answer."""

    kind: str
    smtp_host: str
    smtp_port: int
    api_url: str
    _stop: Any = field(repr=False, default=None)

    def clear(self) -> None:
        with Mailpit(self.api_url) as mailpit:
            mailpit.delete()

    def send(self, *, sender: str = BO, to: str = ANA, subject: str = "hello", text: str = "Hi there.",
             message_id: str | None = None, **extra: Any) -> str:
        """Send one message over SMTP; return its Message-ID (with angle brackets)."""
        message_id = message_id or make_msgid(domain="example.org")
        message = compose(sender=sender, to=[to], subject=subject, text=text, message_id=message_id, **extra)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)
        return message_id

    def wait_count(self, count: int, timeout: float = 5.0) -> None:
        with Mailpit(self.api_url) as mailpit:
            deadline = time.monotonic() + timeout
            while mailpit.messages(limit=1).total != count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"Mailpit never held {count} messages")
                time.sleep(0.02)


def start_sandbox() -> Backend:
    box = Sandbox().start()
    return Backend("sandbox", box.smtp_host, box.smtp_port, box.api_url, box.close)


def start_mailpit(tmp: Path) -> Backend:
    if MAILPIT_BINARY is None:
        message = "the Mailpit binary is missing (.tools/bin/mailpit): run the Makefile's tools step"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    smtp_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [str(MAILPIT_BINARY), "--smtp", f"127.0.0.1:{smtp_port}", "--listen", f"127.0.0.1:{http_port}",
         "--database", str(tmp / "mailpit.db"), "--disable-version-check",
         "--smtp-auth-accept-any", "--smtp-auth-allow-insecure"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Mailpit did not start (exit code {process.poll()})")
        time.sleep(0.05)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    return Backend("mailpit", "127.0.0.1", smtp_port, url, stop)


def backends(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    backend = (start_sandbox() if request.param == "sandbox"
               else start_mailpit(tmp_path_factory.mktemp("mailpit")))
    try:
        yield backend
    finally:
        backend._stop()
