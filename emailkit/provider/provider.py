"""`Provider`: the local hosted-email API, running in-process (notebooks, tests) or as a service.

    with Provider(lab.api_url, lab.smtp_host, lab.smtp_port) as provider:
        grant = provider.create_grant("ann@example.com")
        httpx.post(f"{provider.url}/v3/grants/{grant.id}/messages/send",
                   headers={"Authorization": f"Bearer {provider.api_key}"}, json={...})

It serves the REST API with uvicorn on a `BackgroundLoop`, relays sends over one reused
SMTP session to Mailpit (or the sandbox), reads inbound mail from Mailpit's REST API,
and runs the OAuth authorization server whose tokens also work for SMTP XOAUTH2.
``emailkit provider --mailpit URL --smtp HOST:PORT --listen 127.0.0.1:8090`` runs one
until Ctrl-C (`emailkit.provider.cli`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from emailkit.background import BackgroundLoop
from emailkit.errors import InvalidInput
from emailkit.mailpit import AsyncMailpit
from emailkit.provider.app import create_app
from emailkit.provider.fault_injection import Faults
from emailkit.provider.mailbox import Mailbox
from emailkit.provider.oauth import OAuth
from emailkit.provider.outbound import Outbound
from emailkit.provider.ratelimit import TokenBucket
from emailkit.provider.routes import oauth as oauth_routes
from emailkit.provider.service import Service
from emailkit.provider.store import Grant, Store
from emailkit.provider.webhooks import Dispatcher
from emailkit.serving import AsgiServer
from emailkit.wiretap import Transcript

__all__ = ["Provider", "create_private_file"]


class Provider:
    """The hosted-API stand-in: `start()`/`close()` or ``with``; `.url`, `.api_key`, `.create_grant()`.

    `rate_limit` is requests per second per grant (burst the same); `poll_interval` the
    seconds between looks for inbound mail while a webhook subscribes to message.created
    (None: only on reads); `record_smtp=True` keeps the outbound SMTP transcript.
    """

    def __init__(
        self,
        mailpit_url: str,
        smtp_host: str,
        smtp_port: int,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        database: str | os.PathLike[str] | None = None,
        api_key: str | None = None,
        record_smtp: bool = False,
        rate_limit: float = 200.0,
        rate_burst: int | None = None,
        poll_interval: float | None = 1.0,
        max_recipients: int = 100,
        webhook_attempts: int = 5,
        webhook_wait_initial: float = 0.2,
        access_token_ttl: int = 3600,
    ) -> None:
        self.mailpit_url = mailpit_url.rstrip("/")
        self.smtp_host, self.smtp_port = smtp_host, int(smtp_port)
        self.listen = listen
        self.database = str(database) if database is not None else None
        self.api_key = api_key or secrets.token_urlsafe(32)
        self._record_smtp = record_smtp
        self.rate_limit, self.rate_burst, self.poll_interval = rate_limit, rate_burst, poll_interval
        self.max_recipients = max_recipients
        self.webhook_attempts, self.webhook_wait_initial = webhook_attempts, webhook_wait_initial
        self._faults = Faults()
        if self.database is not None and self.database != ":memory:":
            create_private_file(self.database)  # it holds webhook secrets and token hashes
        self.store = Store(self.database)
        self.oauth = OAuth(self.store, access_token_ttl=access_token_ttl, api_key=self._is_api_key)
        self.service: Service | None = None
        self.app: Any = None
        self.host, self.port = listen
        self._loop: BackgroundLoop | None = None
        self._http: AsgiServer | None = None

    def _is_api_key(self, value: str) -> bool:
        return secrets.compare_digest(value.encode("utf-8"), self.api_key.encode("utf-8"))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Provider:
        """Start serving; returns once the API accepts connections."""
        if self._loop is not None:
            return self
        try:
            self._loop = BackgroundLoop(name="emailkit-provider")
            self.service = self._loop.run(self._build())
            self.app = create_app(self.service, oauth_router=oauth_routes.router(self.oauth))
            self._serve()
        except BaseException:
            self.close()
            raise
        return self

    async def _build(self) -> Service:
        mailpit = AsyncMailpit(self.mailpit_url, timeout=10.0)
        service = Service(
            store=self.store,
            mailbox=Mailbox(self.store, mailpit),
            outbound=Outbound(self.smtp_host, self.smtp_port, mailpit=mailpit, record=self._record_smtp),
            dispatcher=Dispatcher(self.store, attempts=self.webhook_attempts, wait_initial=self.webhook_wait_initial),
            limiter=TokenBucket(self.rate_limit, self.rate_burst),
            oauth=self.oauth,
            api_key=self.api_key,
            max_recipients=self.max_recipients,
            poll_interval=self.poll_interval,
            faults=self._faults,
        )
        service.start_polling()
        return service

    def _serve(self) -> None:
        assert self._loop is not None
        self._http = AsgiServer(self.app, *self.listen, loop=self._loop).start()
        self.host, self.port = self._http.host, self._http.port

    def close(self) -> None:
        """Stop serving, finish the SMTP session politely, close the store."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._loop is not None:
            if self.service is not None:
                try:
                    self._loop.run(self.service.aclose(), timeout=10)
                except Exception:  # noqa: BLE001 - shutting down
                    pass
            self._loop.close()
            self._loop = None
        self.oauth.close()
        self.store.close()

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ use

    @property
    def background_loop(self) -> BackgroundLoop | None:
        """The loop the provider's objects live on (None before `start()`): serve `app` on it with another ASGI server."""
        return self._loop

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def create_grant(self, email: str) -> Grant:
        """The grant for mailbox `email` (created once; the same grant for the same address)."""
        return self.store.create_grant(email)

    def check_xoauth2(self, username: str, token: str, *, scope: str = "email.send") -> bool:
        """For the lab's SMTP (``email.send``) and IMAP (``email.read``) servers: is `token` a live token
        with `scope` for mailbox `username`?"""
        return self.oauth.check_xoauth2(username, token, scope=scope)

    @property
    def record_smtp(self) -> bool:
        """Whether the outbound SMTP session is recorded (settable: the next send opens a new session)."""
        return self._record_smtp

    @record_smtp.setter
    def record_smtp(self, value: bool) -> None:
        self._record_smtp = bool(value)
        if self.service is not None and self._loop is not None:
            self._loop.run(self.service.outbound.set_record(self._record_smtp), timeout=30)

    @property
    def faults(self) -> Faults:
        """Injected faults for sends (``PUT /v3/admin/faults``); settable, None turns them off."""
        return self.service.faults if self.service is not None else self._faults

    @faults.setter
    def faults(self, value: Faults | None) -> None:
        if value is not None and not isinstance(value, Faults):
            raise InvalidInput("faults", f"{value!r} is not a Faults",
                               fix="write provider.faults = Faults(status=429, probability=30, retry_after=1)")
        self._faults = value or Faults()
        if self.service is not None:
            self.service.faults = self._faults  # one reference swap: safe while the loop thread reads it

    def set_faults(self, status: int = 503, probability: float = 0, retry_after: float = 1) -> Faults:
        """Answer `probability` % of sends with `status` (429 or 503) and Retry-After; returns the setting."""
        self.faults = Faults(status=status, probability=probability, retry_after=retry_after)
        return self.faults

    @property
    def faults_injected(self) -> int:
        """Sends answered with an injected fault so far."""
        return self.service.faults_injected if self.service is not None else 0

    @property
    def smtp_transcript(self) -> Transcript | None:
        """The outbound SMTP session's transcript so far (with record_smtp=True)."""
        return self.service.outbound.transcript if self.service else None

    @property
    def last_smtp_exchange(self) -> Transcript | None:
        """The SMTP conversation behind the most recent send (with record_smtp=True)."""
        return self.service.outbound.last_exchange if self.service else None

    @property
    def smtp_connections(self) -> int:
        """SMTP sessions opened so far (stays 1 while the reused session lives)."""
        return self.service.outbound.connections if self.service else 0

    @property
    def mailpit_requests(self) -> int:
        """Requests the provider made to Mailpit's API so far (the read path's hidden cost)."""
        return self.service.mailbox.mailpit_requests if self.service else 0

    def drain_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until queued webhook deliveries finished (delivered or given up)."""
        if self.service is None or self._loop is None:
            return True
        return bool(self._loop.run(self.service.dispatcher.drain(timeout), timeout=timeout + 5))

    def webhook_deliveries(self) -> Any:
        """Every delivery attempt so far as a DataFrame (webhook, event, attempt, status, error)."""
        import pandas as pd

        rows = self.store.deliveries()
        return pd.DataFrame(rows, columns=["seq", "webhook_id", "event_id", "type", "attempt", "status_code",
                                           "error", "at"])

    def __repr__(self) -> str:
        state = self.url if self._http is not None else "not started"
        return f"<Provider {state} smtp={self.smtp_host}:{self.smtp_port} mailpit={self.mailpit_url}>"


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create `path` readable by its owner only (mode 0600), unless it exists; True when it was created.

    SQLite gives a database's -wal and -shm files the mode of the database file.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True
