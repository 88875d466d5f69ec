"""`ParticipantScope`: the SMTP front, the REST gateway and POP3 of one participant, started together."""

from __future__ import annotations

import secrets
from typing import Any

from emailkit.background import BackgroundLoop
from emailkit.errors import EmailkitError
from emailkit.mailpit import shown_url
from emailkit.participant.gateway import gateway_app
from emailkit.participant.maildrop import ScopedMaildrop
from emailkit.participant.scoped_mailpit import ScopedMailpit
from emailkit.participant.smtp_front import SMTPFront
from emailkit.participant.tags import participant_tag
from emailkit.serving import AsgiServer

__all__ = ["ParticipantScope"]


class ParticipantScope:
    """The SMTP front, REST gateway and POP3 server of one participant `tag` on the shared Mailpit at
    `url` (SMTP at `smtp_host:smtp_port`), all on loopback ports of their own (0 = any free one)."""

    def __init__(self, url: str, smtp_host: str, smtp_port: int, tag: str, *, host: str = "127.0.0.1",
                 smtp_listen_port: int = 0, http_port: int = 0, pop3: bool = True, pop3_port: int = 0) -> None:
        self.url = url.rstrip("/")
        self.tag = participant_tag(tag)
        self.upstream_smtp = (smtp_host, smtp_port)
        self.host = host
        self._ports = (smtp_listen_port, http_port, pop3_port)
        self._want_pop3 = pop3
        self.loop: BackgroundLoop | None = None
        self.scope: ScopedMailpit | None = None
        self.gateway: AsgiServer | None = None
        self.front: SMTPFront | None = None
        self.pop3_server: Any = None
        self.pop3_user = "workbook"
        self.pop3_password = secrets.token_urlsafe(12)
        self._maildrop: ScopedMaildrop | None = None

    def start(self) -> ParticipantScope:
        try:
            self.loop = BackgroundLoop(name=f"emailkit-participant-{self.tag}")
            self.scope = ScopedMailpit(self.url, self.tag)
            self.gateway = AsgiServer(gateway_app(self.scope), self.host, self._ports[1], loop=self.loop).start()
            self.front = SMTPFront(*self.upstream_smtp, self.tag, loop=self.loop, check=self.scope.contains,
                                   discard=self.scope.delete_unscoped, counters=self.scope.counters,
                                   host=self.host, port=self._ports[0]).start()
            if self._want_pop3:
                from emailkit.sandbox.pop3_server import POP3Server

                self._maildrop = ScopedMaildrop(self.gateway.url)
                self.pop3_server = POP3Server(self._maildrop, credentials={self.pop3_user: self.pop3_password},
                                              host=self.host, port=self._ports[2])
                self.pop3_server.start()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def api_url(self) -> str:
        if self.gateway is None:
            raise EmailkitError("the participant scope is not started", fix="call start() first")
        return self.gateway.url

    @property
    def smtp_host(self) -> str:
        return self.host

    @property
    def smtp_port(self) -> int:
        if self.front is None:
            raise EmailkitError("the participant scope is not started", fix="call start() first")
        return self.front.port

    @property
    def pop3_port(self) -> int:
        return int(self.pop3_server.port) if self.pop3_server is not None else 0

    def describe(self) -> str:
        return f"shared Mailpit at {shown_url(self.url)}, participant {self.tag}"

    def close(self) -> None:
        if self.pop3_server is not None:
            self.pop3_server.close()
            self.pop3_server = None
        if self._maildrop is not None:
            self._maildrop.close()
            self._maildrop = None
        if self.front is not None:
            self.front.close()
            self.front = None
        if self.gateway is not None:
            self.gateway.close(force=True)
            self.gateway = None
        if self.loop is not None:
            if self.scope is not None and self.loop.running:
                self.loop.run(self.scope.aclose(), timeout=5)
            self.loop.close()
            self.loop = None

    def __enter__(self) -> ParticipantScope:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
