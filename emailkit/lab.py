"""`connect()`: the one entry point every notebook starts with.

It starts (or finds) the mailbox server through the one wiring, `emailkit.stack.Stack`: an external
Mailpit at `MAILPIT_URL`; else a real Mailpit binary (`MAILPIT_BIN`, the project's
`.tools/bin/mailpit` from ``make mailpit``, or `mailpit` on PATH), started on free loopback ports;
else the embedded sandbox. `EMAILKIT_MAILBOX=external|mailpit|sandbox` forces one. It is
idempotent: a second call returns the same `Lab`.

    lab = emailkit.lab.connect()
    lab.describe()
    result = await lab.send(msg, record=True)
"""

from __future__ import annotations

import atexit
import sys
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .errors import MailpitError
from .mailboxes import Mailbox, POP3Access
from .mailpit import Mailpit, shown_url
from .smtp import SendResult, send
from .stack import IMAPAccess, Stack
from .wiretap import Wiretap

if TYPE_CHECKING:
    import os
    import ssl

    import pandas as pd

    from .mailboxes import Backend
    from .provider.provider import Provider
    from .sandbox import Sandbox
    from .tls import LabCA

__all__ = ["IMAPAccess", "Lab", "POP3Access", "connect"]


class Lab:
    """Where the workbook's mail goes: the mailbox server, a ready REST client, the provider on demand."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.mailpit: Mailpit = stack.mailbox.client()
        self._taps: list[Wiretap] = []
        self._clients: list[Mailpit] = []

    # ------------------------------------------------------------------ where things are

    @property
    def mailbox(self) -> Mailbox:
        return self.stack.mailbox

    @property
    def kind(self) -> Literal["external", "mailpit", "sandbox"]:
        """``"external"`` (MAILPIT_URL), ``"mailpit"`` (a real Mailpit the lab started) or ``"sandbox"``."""
        return self.stack.mailbox.kind

    @property
    def is_mailpit(self) -> bool:
        """True on a real Mailpit (external or started here)."""
        return self.stack.mailbox.is_mailpit

    @property
    def smtp_host(self) -> str:
        return self.stack.mailbox.smtp_host

    @property
    def smtp_port(self) -> int:
        return self.stack.mailbox.smtp_port

    @property
    def api_url(self) -> str:
        return self.stack.mailbox.api_url

    @property
    def web_ui(self) -> str | None:
        """The URL of Mailpit's web inbox (None on the sandbox)."""
        return self.stack.mailbox.web_ui

    @property
    def pop3(self) -> POP3Access | None:
        return self.stack.mailbox.pop3

    @property
    def imap(self) -> IMAPAccess:
        """The lab's IMAP server over this mailbox, started on first use (`emailkit.stack.Stack.imap`)."""
        return self.stack.imap

    @property
    def sandbox(self) -> Sandbox | None:
        """The embedded sandbox object, when that is the mailbox (for its Python-side extensions)."""
        return self.stack.mailbox.sandbox

    @property
    def note(self) -> str:
        return "; ".join(self.stack.notes)

    def __repr__(self) -> str:
        return f"<Lab {self.kind}: SMTP {self.smtp_host}:{self.smtp_port}, API {shown_url(self.api_url)}>"

    @property
    def provider(self) -> Provider:
        """The local hosted-email API (REST + OAuth), started on first use.

        It delivers over this lab's SMTP server and reads the mailbox through its REST API,
        the way a hosted provider sits in front of real mail servers.
        """
        return self.stack.provider

    @property
    def xoauth2_smtp(self) -> tuple[str, int]:
        """An SMTP server that accepts the provider's OAuth tokens with AUTH XOAUTH2.

        The sandbox does; a real Mailpit does not (it knows PLAIN and LOGIN only), so in that
        case a small sandbox, wired to the provider, is started beside it for the XOAUTH2 demo.
        """
        return self.stack.xoauth2_smtp

    @property
    def xoauth2_mailpit(self) -> Mailpit:
        """A REST client on the mailbox behind `xoauth2_smtp` (closed by `close()`)."""
        url = self.stack.xoauth2_api_url
        if url == self.api_url:
            return self.mailpit
        client = Mailpit(url)
        self._clients.append(client)
        return client

    # ------------------------------------------------------------------ using it

    def tap(self, protocol: Literal["smtp", "http", "pop3", "imap"] = "smtp", *, rtt: float = 0.0,
            block: Literal["refuse", "stall"] | None = None) -> Wiretap:
        """A started `Wiretap` in front of the SMTP server (or the HTTP API, POP3 or IMAP); closed by `close()`."""
        if protocol == "smtp":
            host, port = self.smtp_host, self.smtp_port
        elif protocol == "imap":
            host, port = self.imap.host, self.imap.port
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

    async def send(self, message: EmailMessage, *, username: str | None = None, password: str | None = None,
                   oauth_token: str | None = None, starttls: bool = False, tls_context: ssl.SSLContext | None = None,
                   record: bool = False, rtt: float = 0.0, timeout: float = 10.0,
                   local_hostname: str | None = "emailkit.local") -> SendResult:
        """Send `message` to this lab's SMTP server in one session (`emailkit.smtp.send`).

        The keywords are `emailkit.smtp.Connection`'s: AUTH with `username` + `password` (or
        `oauth_token` for XOAUTH2), `starttls`, `record=True` for a `Transcript` on the result,
        `rtt` seconds of simulated round trip.
        """
        return await send(message, host=self.smtp_host, port=self.smtp_port, username=username, password=password,
                          oauth_token=oauth_token, starttls=starttls, tls_context=tls_context, record=record, rtt=rtt,
                          timeout=timeout, local_hostname=local_hostname)

    def summary(self) -> str:
        """One line: which mailbox is in use, its version, and where its web UI is."""
        box = self.stack.mailbox
        web = f"web UI {box.web_ui}" if box.web_ui else (
            "no web UI for one participant (the shared Mailpit's shows everybody's mail)" if box.participant
            else "no web UI (real Mailpit has one: 'make mailpit')")
        return f"Mailbox: {box.label} · version {box.version} · SMTP {box.smtp_host}:{box.smtp_port} · {web}"

    def describe(self) -> pd.DataFrame:
        """A table of what is in use: which mailbox and version, where SMTP, the API and the web UI are."""
        import pandas as pd

        rows = self.stack.describe_rows()
        rows.insert(5, ("messages stored", str(self.mailpit.info().get("Messages", 0))))
        return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")

    def close(self) -> None:
        """Stop what `connect()` started (taps, provider, a Mailpit process or sandbox); an external Mailpit is left running."""
        global _lab
        for tap in self._taps:
            tap.close()
        self._taps.clear()
        for client in self._clients:
            client.close()
        self._clients.clear()
        self.mailpit.close()
        self.stack.close()
        if _lab is self:
            _lab = None


_lab: Lab | None = None


def connect(*, fresh: bool = False, backend: Backend | str = "auto", provider_options: dict[str, Any] | None = None,
            url: str | None = None, binary: str | None = None, database: str | os.PathLike[str] | None = None,
            max_messages: int = 500, max_message_size_mb: int = 50, max_recipients: int = 100, chaos: bool = True,
            pop3: bool = True, starttls: bool = False, ca: LabCA | None = None, host: str = "127.0.0.1",
            smtp_port: int = 0, http_port: int = 0, pop3_port: int = 0, participant: str | None = None) -> Lab:
    """Return the workbook's `Lab`, starting its mailbox server (and noting any fall-back on stderr).

    `backend` (or `EMAILKIT_MAILBOX`) forces ``"external"``, ``"mailpit"`` or ``"sandbox"``; the
    keywords after `provider_options` are `emailkit.mailboxes.open_mailbox`'s (``starttls=True``,
    ``max_messages``, ``max_recipients``, ``max_message_size_mb``, ...; an external Mailpit keeps its
    own settings; `participant` reads a shared one through that participant's scope), `provider_options`
    go to the provider (``rate_limit``, ``poll_interval``, ...).
    The options of the first call win: a different choice than the running lab's needs ``fresh=True``.
    """
    global _lab
    if _lab is not None and not fresh:
        return _lab
    if _lab is not None:
        _lab.close()
    stack = Stack(backend, provider_options=provider_options, url=url, binary=binary, database=database,
                  max_messages=max_messages, max_message_size_mb=max_message_size_mb, max_recipients=max_recipients,
                  chaos=chaos, pop3=pop3, starttls=starttls, ca=ca, host=host, smtp_port=smtp_port,
                  http_port=http_port, pop3_port=pop3_port, participant=participant).start()
    for note in stack.notes:
        print(f"emailkit: {note}; using the {stack.mailbox.label}", file=sys.stderr)
    _lab = Lab(stack)
    return _lab


@atexit.register
def _close_at_exit() -> None:
    if _lab is not None:
        _lab.close()
