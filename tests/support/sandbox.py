"""A bare SMTP client on a socket, for tests that must send exactly the bytes they mean."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from emailkit.mailboxes import Mailbox
from emailkit.sandbox import Sandbox


class Wire:
    """A bare SMTP client on a socket: send a line, read the (multi-line) reply as text."""

    def __init__(self, box: Mailbox | Sandbox) -> None:
        self.sock = socket.create_connection((box.smtp_host, box.smtp_port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode()
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return "\n".join(lines)

    def send(self, line: str | bytes) -> str:
        self.sock.sendall((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@contextmanager
def wire(box: Mailbox | Sandbox) -> Iterator[Wire]:
    w = Wire(box)
    try:
        yield w
    finally:
        w.close()

