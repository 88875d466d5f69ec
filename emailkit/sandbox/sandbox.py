"""`Sandbox`: the embedded Mailpit stand-in's servers started together (SMTP + HTTP API + optional POP3, one store).

>>> with Sandbox() as box:                                        # doctest: +SKIP
...     print(box.smtp_host, box.smtp_port, box.api_url)
127.0.0.1 40123 http://127.0.0.1:40125
>>> with Sandbox(pop3_auth={"alice": "s3cret"}, chaos=True) as box:   # doctest: +SKIP
...     box.chaos.recipient = Trigger(550, 30)
...     print(box.pop3_host, box.pop3_port)
127.0.0.1 40127

The SMTP server runs on aiosmtpd's own thread loop; the HTTP API is uvicorn on a
`BackgroundLoop`, POP3 on another, so all work from a notebook whose event loop is already running.
``emailkit sandbox ...`` (`emailkit.sandbox.cli`) runs one until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from emailkit.errors import InvalidInput
from emailkit.sandbox.chaos import Chaos, parse_triggers
from emailkit.sandbox.pop3_server import POP3Server, parse_credentials
from emailkit.sandbox.smtp_server import SMTPServer, TokenChecker
from emailkit.sandbox.store import Store
from emailkit.serving import AsgiServer
from emailkit.tls import ServerCertificate

__all__ = ["Sandbox"]


class Sandbox:
    """SMTP server + Mailpit-shaped HTTP API (+ POP3) over one store. `start()`/`close()` or ``with``.

    * `pop3_auth` — ``{"user": "password"}`` or Mailpit's ``"user:pass user2:pass2"``: turns POP3
      on (Mailpit serves POP3 only with credentials), on `pop3` (default ``("127.0.0.1", 0)``).
      After start: `.pop3_host`, `.pop3_port`. `pop3` without `pop3_auth` is an `InvalidInput`.
    * `chaos` — ``True`` enables Mailpit's Chaos API (``GET/PUT /api/v1/chaos``) with every
      trigger at 0 %; a string sets triggers as ``--chaos-triggers`` does
      (``"Sender:451:50,Recipient:550:100"``). `.chaos` (a `Chaos`) is settable from Python.
    """

    def __init__(
        self,
        smtp: tuple[str, int] = ("127.0.0.1", 0),
        listen: tuple[str, int] = ("127.0.0.1", 0),
        database: str | os.PathLike[str] | None = None,
        max_messages: int = 500,
        max_message_size: int = 50 * 1024 * 1024,
        max_recipients: int = 100,
        starttls: bool | ServerCertificate = False,
        xoauth2: TokenChecker | None = None,
        *,
        hostname: str | None = None,
        pop3: tuple[str, int] | None = None,
        pop3_auth: Mapping[str, str] | str | None = None,
        chaos: bool | str = False,
    ) -> None:
        if pop3 is not None and pop3_auth is None:
            raise InvalidInput(
                "pop3", "POP3 needs credentials (Mailpit serves POP3 only with them)",
                fix="also pass pop3_auth={'user': 'password'}",
            )
        self._pop3_credentials = parse_credentials(pop3_auth) if pop3_auth is not None else None
        self._pop3_addr = pop3 if pop3 is not None else ("127.0.0.1", 0)
        self.chaos = Chaos(enabled=bool(chaos))
        if isinstance(chaos, str) and chaos:
            for name, code, probability in parse_triggers(chaos, "chaos"):
                self.chaos.set(name, code, probability)
        self.pop3: POP3Server | None = None
        self.pop3_host: str | None = self._pop3_addr[0] if self._pop3_credentials else None
        self.pop3_port: int | None = self._pop3_addr[1] if self._pop3_credentials else None
        self._smtp_addr = smtp
        self._listen_addr = listen
        self._database = database
        self.max_messages = max_messages
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.starttls = starttls
        self.xoauth2 = xoauth2
        self.hostname = hostname
        self.store: Store | None = None
        self.smtp: SMTPServer | None = None
        self._http: AsgiServer | None = None
        self.smtp_host = smtp[0]
        self.smtp_port = smtp[1]
        self.api_host = listen[0]
        self.api_port = listen[1]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        """Open the store, then start SMTP and HTTP; returns once both accept connections."""
        if self.store is not None:
            raise RuntimeError("this Sandbox is already started")
        try:
            self.store = Store(self._database, max_messages=self.max_messages)
            self.smtp = SMTPServer(
                self.store,
                host=self._smtp_addr[0],
                port=self._smtp_addr[1],
                hostname=self.hostname,
                max_message_size=self.max_message_size,
                max_recipients=self.max_recipients,
                starttls=self.starttls,
                xoauth2=self.xoauth2,
                chaos=self.chaos,
            )
            self.smtp.start()
            self.smtp_port = self.smtp.port
            if self._pop3_credentials is not None:
                self.pop3 = POP3Server(
                    self.store,
                    credentials=self._pop3_credentials,
                    host=self._pop3_addr[0],
                    port=self._pop3_addr[1],
                )
                self.pop3.start()
                self.pop3_port = self.pop3.port
            self._start_http()
        except BaseException:
            self.close()
            raise
        return self

    def _start_http(self) -> None:
        from emailkit.sandbox.app import create_app  # Starlette: imported when the HTTP API starts

        assert self.store is not None
        app = create_app(self.store, max_message_size=self.max_message_size, chaos=self.chaos)
        self._http = AsgiServer(app, *self._listen_addr, name="emailkit-sandbox-http").start()
        self.api_host, self.api_port = self._http.host, self._http.port

    def close(self) -> None:
        """Stop both servers and close the store (a temporary database file is deleted)."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.pop3 is not None:
            self.pop3.close()
            self.pop3 = None
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ where it is

    @property
    def api_url(self) -> str:
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.api_port}"

    @property
    def ca_pem(self) -> bytes | None:
        """PEM of the CA that signed the STARTTLS certificate (None without STARTTLS)."""
        return self.smtp.tls.ca_pem if self.smtp is not None and self.smtp.tls is not None else None

    def client_tls_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this sandbox's STARTTLS certificate."""
        if self.smtp is None or self.smtp.tls is None:
            raise RuntimeError("STARTTLS is off or the sandbox is not started")
        return self.smtp.tls.client_context()

    def __repr__(self) -> str:
        state = f"smtp={self.smtp_host}:{self.smtp_port} api={self.api_url}" if self.store else "not started"
        if self.store and self.pop3 is not None:
            state += f" pop3={self.pop3_host}:{self.pop3_port}"
        return f"<Sandbox {state}>"
