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
import secrets
import socket
import sys
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .errors import MailpitError
from .mailpit import Mailpit, shown_url
from .smtp import SendResult, send
from .wiretap import Wiretap

if TYPE_CHECKING:
    import pandas as pd

    from .provider.server import Provider
    from .sandbox import Sandbox

__all__ = ["Lab", "POP3Access", "connect"]


@dataclass(frozen=True)
class POP3Access:
    """Where the lab's mailbox answers POP3, and the credentials it wants (never shown in a repr)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)


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
    pop3: POP3Access | None = None
    _taps: list[Wiretap] = field(default_factory=list, repr=False)
    _provider: Provider | None = field(default=None, repr=False)
    _xoauth2_sandbox: Sandbox | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"<Lab {self.kind}: SMTP {self.smtp_host}:{self.smtp_port}, API {shown_url(self.api_url)}>"

    @property
    def provider(self) -> Provider:
        """The local hosted-email API (REST + OAuth), started on first use.

        It delivers over this lab's SMTP server and reads the mailbox through its REST API,
        the way a hosted provider sits in front of real mail servers.
        """
        if self._provider is None:
            from .provider.server import Provider

            self._provider = Provider(self.api_url, self.smtp_host, self.smtp_port).start()
        return self._provider

    @property
    def xoauth2_smtp(self) -> tuple[str, int]:
        """An SMTP server that accepts the provider's OAuth tokens with AUTH XOAUTH2.

        The sandbox does; a real Mailpit does not (it knows PLAIN and LOGIN only), so in that
        case a second sandbox, wired to the provider, is started beside it for the XOAUTH2 demo.
        """
        if self.kind == "sandbox":
            return self.smtp_host, self.smtp_port
        if self._xoauth2_sandbox is None:
            from .sandbox import Sandbox

            self._xoauth2_sandbox = Sandbox(xoauth2=_check_xoauth2).start()
        return self._xoauth2_sandbox.smtp_host, self._xoauth2_sandbox.smtp_port

    def tap(self, protocol: Literal["smtp", "http", "pop3"] = "smtp", *, rtt: float = 0.0,
            block: Literal["refuse", "stall"] | None = None) -> Wiretap:
        """A started `Wiretap` in front of the SMTP server (or the HTTP API, or POP3); closed by `close()`."""
        if protocol == "smtp":
            host, port = self.smtp_host, self.smtp_port
        elif protocol == "pop3":
            if self.pop3 is None:
                raise MailpitError("this Mailpit does not serve POP3",
                                   fix="start it with MP_POP3_AUTH set and port 1110 published (docker-compose.yml does)")
            host, port = self.pop3.host, self.pop3.port
        else:
            parts = urlsplit(self.api_url)
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (443 if parts.scheme == "https" else 80)
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
            ("REST API", shown_url(self.api_url)),
            ("POP3", f"{self.pop3.host}:{self.pop3.port}" if self.pop3 else "not served"),
            ("messages stored", info.get("Messages", 0)),
        ]
        if self._provider is not None:
            rows.append(("provider (REST API)", self._provider.url))
        if self.note:
            rows.append(("note", self.note))
        return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")

    def close(self) -> None:
        """Stop what `connect()` started (taps, sandbox); a real Mailpit is left running."""
        global _lab
        for tap in self._taps:
            tap.close()
        self._taps.clear()
        if self._provider is not None:
            self._provider.close()
            self._provider = None
        self.mailpit.close()
        for sandbox in (self._xoauth2_sandbox, self.sandbox):
            if sandbox is not None:
                sandbox.close()
        self._xoauth2_sandbox = self.sandbox = None
        if _lab is self:
            _lab = None


_lab: Lab | None = None

# The POP3 login docker-compose.yml gives Mailpit (MP_POP3_AUTH); a local test mailbox, not a secret.
_MAILPIT_POP3_AUTH = "workbook:workbook-local"


def _check_xoauth2(username: str, token: str) -> bool:
    """The sandbox's XOAUTH2 check: the lab's provider decides (the sandbox never imports it)."""
    provider = _lab._provider if _lab is not None else None
    return provider is not None and provider.check_xoauth2(username, token)


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
        return f"MAILPIT_URL={shown_url(url)} did not answer ({exc.message})"
    if not port.isdigit() or not _port_answers(host, int(port)):
        client.close()
        return (f"Mailpit's API answers at {shown_url(url)}, but its SMTP port {smtp} does not "
                "(set MAILPIT_SMTP=host:port)")
    pop3 = None
    pop3_host, _, pop3_port = (os.environ.get("MAILPIT_POP3") or f"{host}:1110").rpartition(":")
    user, _, password = os.environ.get("MAILPIT_POP3_AUTH", _MAILPIT_POP3_AUTH).partition(":")
    if pop3_port.isdigit() and _port_answers(pop3_host, int(pop3_port)):
        pop3 = POP3Access(pop3_host, int(pop3_port), user, password)
    return Lab("mailpit", host, int(port), url.rstrip("/"), client, pop3=pop3)


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

    pop3_password = secrets.token_urlsafe(12)
    sandbox = Sandbox(xoauth2=_check_xoauth2, pop3_auth={"workbook": pop3_password}).start()
    assert sandbox.pop3_host is not None and sandbox.pop3_port is not None
    _lab = Lab("sandbox", sandbox.smtp_host, sandbox.smtp_port, sandbox.api_url, Mailpit(sandbox.api_url),
               sandbox=sandbox, note=note,
               pop3=POP3Access(sandbox.pop3_host, sandbox.pop3_port, "workbook", pop3_password))
    return _lab


@atexit.register
def _close_at_exit() -> None:
    if _lab is not None:
        _lab.close()
