"""The one wiring: a mailbox server (external Mailpit, real Mailpit process, or sandbox) plus, on
demand, the provider in front of it. The lab, `emailkit up`, the benchmarks, the notebooks and the
tests all start their servers through `Stack`.

The provider relays over the mailbox's SMTP server and reads its REST API; on the sandbox, SMTP
also accepts the provider's OAuth tokens with AUTH XOAUTH2 (the sandbox gets the provider's token
check as a plain callable, so it never imports the provider). Real Mailpit has no XOAUTH2: then
`xoauth2_smtp` starts a small sandbox beside it for that one demonstration.

    with Stack("auto") as stack:
        stack.mailbox.api_url, stack.provider.url

    emailkit up [--backend auto|external|mailpit|sandbox] --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EmailkitError, InvalidInput
from .mailboxes import BACKENDS, Mailbox, open_mailbox

if TYPE_CHECKING:
    from .imap import IMAPServer
    from .provider.provider import Provider
    from .sandbox import Sandbox
    from .tls import LabCA

__all__ = ["IMAPAccess", "Stack", "add_arguments", "run"]


@dataclass(frozen=True)
class IMAPAccess:
    """Where the lab's IMAP server answers, its login (never shown in a repr) and its CA."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    ca: LabCA = field(repr=False)
    server: IMAPServer = field(repr=False, compare=False)

    def client_tls_context(self) -> ssl.SSLContext:
        """An SSL context that verifies the IMAP server's STARTTLS certificate."""
        return self.ca.client_context()


class Stack:
    """A started mailbox server and, on first use of `.provider`, the provider in front of it.

    * `backend` and `mailbox_options` go to `emailkit.mailboxes.open_mailbox` (``"auto"``: an
      external Mailpit, else a real Mailpit binary, else the sandbox; `EMAILKIT_MAILBOX` forces one).
    * `provider_options` go to `emailkit.provider.Provider` (``rate_limit``, ``poll_interval``,
      ``listen``, ``api_key``, ``database``, ...); `provider=True` starts it with the stack.
    """

    def __init__(self, backend: str = "auto", *, provider: bool = False,
                 provider_options: dict[str, Any] | None = None, **mailbox_options: Any) -> None:
        self.backend = backend
        self.mailbox_options = mailbox_options
        self.provider_options = dict(provider_options or {})
        self._start_provider = provider
        self._mailbox: Mailbox | None = None
        self._provider: Provider | None = None
        self._xoauth2_sandbox: Sandbox | None = None
        self._imap: IMAPAccess | None = None
        self.notes: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Stack:
        """Open the mailbox (and the provider when asked); returns once everything accepts connections."""
        if self._mailbox is not None:
            return self
        self._mailbox, self.notes = open_mailbox(self.backend, xoauth2=self.check_xoauth2, **self.mailbox_options)
        try:
            if self._start_provider:
                _ = self.provider
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the IMAP server, the provider, any XOAUTH2 helper sandbox and the mailbox (an external
        Mailpit is left running)."""
        if self._imap is not None:
            self._imap.server.close()
            self._imap = None
        if self._provider is not None:
            self._provider.close()
            self._provider = None
        if self._xoauth2_sandbox is not None:
            self._xoauth2_sandbox.close()
            self._xoauth2_sandbox = None
        if self._mailbox is not None:
            self._mailbox.close()
            self._mailbox = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ what is running

    @property
    def mailbox(self) -> Mailbox:
        """The started mailbox server."""
        if self._mailbox is None:
            raise RuntimeError("start() the stack first")
        return self._mailbox

    @property
    def provider(self) -> Provider:
        """The local hosted-email API in front of the mailbox, started on first use."""
        if self._provider is None:
            from .provider.provider import Provider

            box = self.mailbox
            self._provider = Provider(box.api_url, box.smtp_host, box.smtp_port, **self.provider_options).start()
        return self._provider

    @property
    def provider_started(self) -> bool:
        return self._provider is not None

    def check_xoauth2(self, username: str, token: str) -> bool:
        """The XOAUTH2 check the sandbox's SMTP server asks: the provider decides."""
        return self._provider is not None and self._provider.check_xoauth2(username, token)

    def check_xoauth2_read(self, username: str, token: str) -> bool:
        """The XOAUTH2 check the IMAP server asks: a live provider token with ``email.read``."""
        return self._provider is not None and self._provider.check_xoauth2(username, token, scope="email.read")

    @property
    def imap(self) -> IMAPAccess:
        """An IMAP4rev1 server over the mailbox (started on first use): a generated login for
        ``workbook``, AUTHENTICATE XOAUTH2 with the provider's ``email.read`` tokens, STARTTLS with a
        certificate from the lab CA. It reads and writes the mailbox through its REST API, so it
        works beside real Mailpit (which serves no IMAP) and the sandbox alike."""
        if self._imap is None:
            import secrets

            from .imap import IMAPServer
            from .tls import LabCA

            box = self.mailbox
            ca = box.ca or LabCA()
            password = secrets.token_urlsafe(12)
            server = IMAPServer(box.api_url, credentials={"workbook": password}, xoauth2=self.check_xoauth2_read,
                                tls_context=ca.issue("localhost", "127.0.0.1").server_context(),
                                sent_from=self._sent_by_a_grant).start()
            self._imap = IMAPAccess(server.host, server.port, "workbook", password, ca, server)
        return self._imap

    def _sent_by_a_grant(self, summary: Any) -> bool:
        """IMAP's Sent folder: messages from an address the provider holds a grant for."""
        if self._provider is None:
            return False
        sender = getattr(getattr(summary, "sender", None), "address", "") or ""
        return any(g.email.casefold() == sender.casefold() for g in self._provider.store.grants())

    @property
    def xoauth2_smtp(self) -> tuple[str, int]:
        """An SMTP server that accepts the provider's OAuth tokens with AUTH XOAUTH2.

        The sandbox does; real Mailpit does not (it knows PLAIN and LOGIN only), so then a small
        sandbox wired to the provider starts beside it, for that demonstration alone.
        """
        box = self.mailbox
        if box.xoauth2:
            return box.smtp_host, box.smtp_port
        if self._xoauth2_sandbox is None:
            from .sandbox import Sandbox

            self._xoauth2_sandbox = Sandbox(starttls=False, xoauth2=self.check_xoauth2).start()
        return self._xoauth2_sandbox.smtp_host, self._xoauth2_sandbox.smtp_port

    @property
    def xoauth2_api_url(self) -> str:
        """The REST API of the mailbox behind `xoauth2_smtp` (to read what XOAUTH2 sends delivered)."""
        host_port = self.xoauth2_smtp
        if self._xoauth2_sandbox is not None and host_port == (self._xoauth2_sandbox.smtp_host,
                                                                self._xoauth2_sandbox.smtp_port):
            return self._xoauth2_sandbox.api_url
        return self.mailbox.api_url

    def describe_rows(self) -> list[tuple[str, str]]:
        """(what, value) rows: which mailbox, its version, where everything listens."""
        box = self.mailbox
        rows = [("mailbox", box.label), ("version", box.version),
                ("SMTP", f"{box.smtp_host}:{box.smtp_port}" + (" (STARTTLS offered)" if box.starttls else "")),
                ("REST API", box.api_url + "/api/v1/"),
                ("web UI", box.web_ui or ("none for one participant (the shared Mailpit's web inbox shows "
                                          "everybody's mail)" if box.participant else
                                          "none (the sandbox has no web inbox; real Mailpit does)")),
                ("POP3", f"{box.pop3.host}:{box.pop3.port}" if box.pop3 else "not served")]
        if box.ca is not None and box.ca.file is not None:
            rows.append(("lab CA", f"{box.ca.file} (for clients: "
                                   + " ".join(f"{k}={v}" for k, v in box.ca.client_env().items()) + ")"))
        if self._imap is not None:
            rows.append(("IMAP", f"{self._imap.host}:{self._imap.port} (over the REST API; STARTTLS)"))
        if self._provider is not None:
            rows.append(("provider (REST API)", self._provider.url))
        rows += [("note", note) for note in self.notes]
        return rows


# --------------------------------------------------------------------------- `emailkit up`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `emailkit up`: which mailbox, where everything listens, the provider's API key."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="the mailbox: auto (MAILPIT_URL, else a mailpit binary, else the sandbox), external, "
                             "mailpit or sandbox (default auto; env EMAILKIT_MAILBOX)")
    parser.add_argument("--smtp", default="127.0.0.1:1025", metavar="HOST:PORT",
                        help="SMTP listen address (default 127.0.0.1:1025)")
    parser.add_argument("--listen", default="127.0.0.1:8025", metavar="HOST:PORT",
                        help="REST API (and Mailpit's web UI) listen address (default 127.0.0.1:8025)")
    parser.add_argument("--pop3", default="127.0.0.1:1110", metavar="HOST:PORT",
                        help="POP3 listen address (default 127.0.0.1:1110; a login is generated)")
    parser.add_argument("--database", default=None, metavar="FILE",
                        help="SQLite file to keep mail in (default: a temporary file)")
    parser.add_argument("--max", type=int, default=500, metavar="N",
                        help="keep the newest N messages (0 = all; default 500)")
    parser.add_argument("--starttls", action="store_true",
                        help="offer STARTTLS with a certificate from a lab CA written to .emailkit/lab-ca/ca.pem")
    parser.add_argument("--provider", default="127.0.0.1:8090", metavar="HOST:PORT",
                        help="where the provider's REST API listens (default 127.0.0.1:8090)")
    parser.add_argument("--pop3-login-file", default=".emailkit/pop3-login", metavar="FILE",
                        help="where the POP3 login (user:password) is written, mode 0600 (default .emailkit/pop3-login)")
    parser.add_argument("--api-key", default=os.environ.get("EMAILKIT_PROVIDER_API_KEY"),
                        help="the provider's API key (default: $EMAILKIT_PROVIDER_API_KEY, else a random one)")
    parser.add_argument("--api-key-file", default=".emailkit/provider-api-key", metavar="FILE",
                        help="where a generated API key is written, mode 0600 (default .emailkit/provider-api-key)")


def run(args: argparse.Namespace) -> int:
    """Start the mailbox and the provider, print where they listen, serve until Ctrl-C or SIGTERM."""
    from .provider.cli import announce_api_key, api_key_from_file, oauth_hint, write_secret
    from .serving import parse_hostport, wait_for_signal

    try:
        host, smtp_port = parse_hostport(args.smtp, "--smtp")
        _, http_port = parse_hostport(args.listen, "--listen")
        _, pop3_port = parse_hostport(args.pop3, "--pop3")
        provider_listen = parse_hostport(args.provider, "--provider", example="127.0.0.1:8090")
        if args.max < 0:
            raise InvalidInput("--max", f"{args.max} is negative", fix="use 0 (keep all) or a positive number")
    except InvalidInput as exc:
        print(f"error: {exc}", flush=True)
        return 2
    ca: LabCA | None = None
    if args.starttls:
        from .tls import LabCA

        ca = LabCA()
        ca.export(Path(".emailkit") / "lab-ca")
    api_key = args.api_key or api_key_from_file(args.api_key_file)  # the same file `emailkit provider` reads
    stack = Stack(args.backend, provider=True, provider_options={"listen": provider_listen, "api_key": api_key},
                  host=host, smtp_port=smtp_port, http_port=http_port, pop3_port=pop3_port, database=args.database,
                  max_messages=args.max, starttls=args.starttls, ca=ca)
    try:
        stack.start()
    except (OSError, EmailkitError) as exc:
        print(f"error: {exc}", flush=True)
        stack.close()
        return 1
    try:
        box, provider = stack.mailbox, stack.provider
        auth = "AUTH PLAIN/LOGIN: any" + ("; XOAUTH2: provider tokens" if box.xoauth2 else "")
        print(f"Mailbox   {box.label}")
        print(f"SMTP      {box.smtp_host}:{box.smtp_port}  ({auth}{'; STARTTLS' if box.starttls else ''})")
        print(f"Mailpit   {box.api_url}/api/v1/")
        if box.web_ui:
            print(f"Web UI    {box.web_ui}")
        if box.pop3 is not None:
            login_file = Path(args.pop3_login_file)
            write_secret(login_file, f"{box.pop3.user}:{box.pop3.password}")
            print(f"POP3      {box.pop3.host}:{box.pop3.port}  (its login, user:password, is in {login_file}, mode 0600)")
        if ca is not None and ca.file is not None:
            print(f"Lab CA    {ca.file}")
            print("          for clients: " + " ".join(f"{k}={v}" for k, v in ca.client_env().items()))
        print(f"Provider  {provider.url}  (OpenAPI: {provider.url}/openapi.json, docs: {provider.url}/docs)")
        print(announce_api_key(provider, given=bool(args.api_key), key_file=args.api_key_file))
        print(oauth_hint(provider))
        for note in stack.notes:
            print(f"note      {note}")
        print("Ctrl-C to stop", flush=True)
        wait_for_signal()
    finally:
        stack.close()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":  # python -m emailkit.stack (the same as `emailkit up`)
    _parser = argparse.ArgumentParser(prog="emailkit up", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
