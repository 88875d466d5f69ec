"""`connect()`: the one entry point every notebook starts with.

It uses a real Mailpit when `MAILPIT_URL` (and the SMTP port, `MAILPIT_SMTP` or the URL's
host on 1025) answers, and otherwise starts the embedded sandbox on free loopback ports.
It is idempotent: a second call returns the same `Lab`.

    lab = emailkit.lab.connect()
    lab.describe()
    result = await lab.send(msg, record=True)
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .errors import MailpitError
from .mailpit import Mailpit
from .smtp import SendResult, send
from .wiretap import Wiretap

if TYPE_CHECKING:
    import pandas as pd

    from .sandbox import Sandbox

__all__ = ["Lab", "connect"]


@dataclass
class Lab:
    """Where the workbook's mail goes: SMTP address, REST API URL and a ready client."""

    kind: Literal["mailpit", "sandbox"]
    smtp_host: str
    smtp_port: int
    api_url: str
    mailpit: Mailpit
    sandbox: Sandbox | None = None
    note: str = ""
    _taps: list[Wiretap] = field(default_factory=list, repr=False)

    def tap(self, protocol: Literal["smtp", "http"] = "smtp", *, rtt: float = 0.0,
            block: Literal["refuse", "stall"] | None = None) -> Wiretap:
        """A started `Wiretap` in front of the SMTP server (or the HTTP API); closed by `close()`."""
        if protocol == "smtp":
            host, port = self.smtp_host, self.smtp_port
        else:
            parts = urlsplit(self.api_url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
        tap = Wiretap(host, port, protocol=protocol, rtt=rtt, block=block).start()
        self._taps.append(tap)
        return tap

    async def send(self, message: EmailMessage, **options: Any) -> SendResult:
        """Send `message` to this lab's SMTP server (options as for `emailkit.smtp.Connection`)."""
        return await send(message, host=self.smtp_host, port=self.smtp_port, **options)

    def describe(self) -> pd.DataFrame:
        """A table of what is in use: which Mailpit, where SMTP and the API listen."""
        import pandas as pd

        info = self.mailpit.info()
        rows = [
            ("mailbox", "real Mailpit" if self.kind == "mailpit" else "embedded sandbox (Mailpit stand-in)"),
            ("version", info.get("Version", "")),
            ("SMTP", f"{self.smtp_host}:{self.smtp_port}"),
            ("REST API", self.api_url),
            ("messages stored", info.get("Messages", 0)),
        ]
        if self.note:
            rows.append(("note", self.note))
        return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")

    def close(self) -> None:
        """Stop what `connect()` started (taps, sandbox); a real Mailpit is left running."""
        global _lab
        for tap in self._taps:
            tap.close()
        self._taps.clear()
        self.mailpit.close()
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        if _lab is self:
            _lab = None


_lab: Lab | None = None


def _port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _real_mailpit(url: str) -> Lab | str:
    """A Lab on the Mailpit at `url`, or the reason it cannot be used."""
    parts = urlsplit(url)
    smtp = os.environ.get("MAILPIT_SMTP") or f"{parts.hostname or '127.0.0.1'}:1025"
    host, _, port = smtp.rpartition(":")
    client = Mailpit(url, timeout=2.0)
    try:
        client.info()
    except MailpitError as exc:
        client.close()
        return f"MAILPIT_URL={url} did not answer ({exc.message})"
    if not port.isdigit() or not _port_answers(host, int(port)):
        client.close()
        return f"Mailpit's API answers at {url}, but its SMTP port {smtp} does not (set MAILPIT_SMTP=host:port)"
    return Lab("mailpit", host, int(port), url.rstrip("/"), client)


def connect(*, fresh: bool = False) -> Lab:
    """Return the workbook's `Lab`, starting the embedded sandbox when no Mailpit answers."""
    global _lab
    if _lab is not None and not fresh:
        return _lab
    if _lab is not None:
        _lab.close()
    note = ""
    url = os.environ.get("MAILPIT_URL", "").strip()
    if url:
        found = _real_mailpit(url)
        if isinstance(found, Lab):
            _lab = found
            return _lab
        note = f"{found}; using the embedded sandbox instead"
        print(f"emailkit: {note}", file=sys.stderr)
    from .sandbox import Sandbox

    sandbox = Sandbox().start()
    _lab = Lab("sandbox", sandbox.smtp_host, sandbox.smtp_port, sandbox.api_url, Mailpit(sandbox.api_url),
               sandbox=sandbox, note=note)
    return _lab


@atexit.register
def _close_at_exit() -> None:
    if _lab is not None:
        _lab.close()
