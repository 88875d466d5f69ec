"""`Provider`: the local hosted-email API, running in-process (notebooks, tests) or as a service.

    with Provider(lab.api_url, lab.smtp_host, lab.smtp_port) as provider:
        grant = provider.create_grant("ann@example.com")
        httpx.post(f"{provider.url}/v3/grants/{grant.id}/messages/send",
                   headers={"Authorization": f"Bearer {provider.api_key}"}, json={...})

It serves the REST API with uvicorn on a `BackgroundLoop`, relays sends over one reused
SMTP session to Mailpit (or the sandbox), reads inbound mail from Mailpit's REST API,
and runs the OAuth authorization server whose tokens also work for SMTP XOAUTH2.
``emailkit provider --mailpit URL --smtp HOST:PORT --listen 127.0.0.1:8090`` runs one
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from emailkit.background import BackgroundLoop
from emailkit.errors import InvalidInput
from emailkit.mailpit import AsyncMailpit
from emailkit.provider.app import create_app
from emailkit.provider.faults import Faults
from emailkit.provider.mailbox import Mailbox
from emailkit.provider.oauth import OAuth
from emailkit.provider.outbound import Outbound
from emailkit.provider.ratelimit import TokenBucket
from emailkit.provider.service import Service
from emailkit.provider.store import Grant, Store
from emailkit.provider.webhooks import Dispatcher
from emailkit.serving import AsgiServer, parse_hostport, wait_for_signal
from emailkit.wiretap import Transcript

__all__ = ["Provider", "add_arguments", "announce_api_key", "api_key_from_file", "oauth_hint", "run", "run_clients"]


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
            _create_private(self.database)  # it holds webhook secrets and token hashes
        self.store = Store(self.database)
        self.oauth = OAuth(self.database, self.store, access_token_ttl=access_token_ttl,
                           api_key=self._is_api_key)
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
            self.app = create_app(self.service, oauth_router=self.oauth.router)
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


# --------------------------------------------------------------------------- CLI


def _create_private(path: str | os.PathLike[str]) -> bool:
    """Create `path` readable by its owner only (mode 0600), unless it exists; True when it was created.

    SQLite gives a database's -wal and -shm files the mode of the database file.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def api_key_from_file(key_file: str | os.PathLike[str]) -> str:
    """The API key kept in `key_file`, shared by every provider started in this folder.

    Read when the file exists (``emailkit up`` and ``emailkit provider`` then use the same key);
    else a new random key is written there, mode 0600, with O_EXCL so that two providers starting
    at once never overwrite each other's key (the second one reads the first one's).
    """
    path = Path(key_file)
    if _create_private(path):
        key = secrets.token_urlsafe(32)
        path.write_text(key + "\n", encoding="ascii")
        return key
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise InvalidInput("--api-key-file", f"{path} is empty", fix="delete it, and a new key is written there")
    return key


def announce_api_key(provider: Provider, *, given: bool, key_file: str) -> str:
    """The line to print about the API key (never the key: it stays out of scroll-back and logs).

    A key not given is the one `api_key_from_file(key_file)` returned; a file holding another key
    is never overwritten.
    """
    if given:
        return "API key   as given (--api-key / $EMAILKIT_PROVIDER_API_KEY)"
    path = Path(key_file)
    if _create_private(path):
        path.write_text(provider.api_key + "\n", encoding="ascii")
    elif path.read_text(encoding="ascii").strip() != provider.api_key:
        return (f"API key   not written: {path} holds another provider's key (kept); set "
                "$EMAILKIT_PROVIDER_API_KEY, or start with api_key_from_file()")
    return f"API key   in {path} (readable by you only; set $EMAILKIT_PROVIDER_API_KEY to choose one)"


def oauth_hint(provider: Provider) -> str:
    """The lines to print about OAuth: the application's client_id and how to allow a redirect URI."""
    client_id = provider.oauth.application().client_id
    by_file = (f"emailkit provider clients add-uri URI --database {provider.database}" if provider.database
               else "emailkit provider clients … --database FILE (when the provider keeps a database file)")
    return (f"OAuth     client_id {client_id} (the application; client_secret = the API key)\n"
            f"          allow a redirect URI: POST {provider.url}/v3/applications/redirect-uris "
            '{"url": "http://127.0.0.1:8765/callback"} with the API key (Nylas SDK: '
            f"applications.redirect_uris.create), or {by_file}")


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """`emailkit provider clients …`: OAuth clients in the provider's database file."""
    parser.add_argument("--database", required=True, metavar="FILE",
                        help="the provider's SQLite file (emailkit provider --database FILE)")
    actions = parser.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register an OAuth client (an app) with its redirect URIs")
    add.add_argument("--name", required=True, help="the app's name, shown on the consent page")
    add.add_argument("--redirect-uri", action="append", required=True, metavar="URI", dest="redirect_uris",
                     help="an allowed redirect URI, exactly as the app sends it (repeatable)")
    add.add_argument("--confidential", action="store_true",
                     help="a confidential client (a server that keeps a secret); default: public (PKCE only)")
    add.add_argument("--client-id", default=None, help="choose the client_id (default: a new UUID)")
    add.add_argument("--secret-file", default=None, metavar="FILE",
                     help="where a confidential client's new secret is written, mode 0600 "
                          "(default .emailkit/oauth-client-<client_id>.secret); it is never printed")
    actions.add_parser("list", help="list the registered clients (secrets are never shown)")
    remove = actions.add_parser("remove", help="unregister a client and revoke its tokens")
    remove.add_argument("client_id")
    add_uri = actions.add_parser("add-uri", help="allow a redirect URI for the application (the SDKs' client_id)")
    add_uri.add_argument("uri")
    remove_uri = actions.add_parser("remove-uri", help="withdraw one of the application's redirect URIs")
    remove_uri.add_argument("uri")


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.chmod(path, 0o600)


def run_clients(args: argparse.Namespace) -> int:
    """`emailkit provider clients add|list|remove|add-uri|remove-uri` on the provider's database file.

    It works while the provider runs: the OAuth tables are read on every request.
    """
    if not Path(args.database).exists():
        print(f"emailkit provider clients: no database {args.database!r}; start the provider with "
              "--database FILE (a provider kept in memory is reached over REST: POST "
              "/v3/applications/redirect-uris with the API key)", file=sys.stderr)
        return 2
    store = Store(args.database)
    oauth = OAuth(args.database, store)
    try:
        command = args.clients_command
        if command == "add":
            secret = secrets.token_urlsafe(32) if args.confidential else None
            client = oauth.register_client(args.client_id, redirect_uris=args.redirect_uris, name=args.name,
                                           public=not args.confidential, client_secret=secret)
            print(f"client_id {client.client_id}  ({'confidential' if secret else 'public: PKCE, no secret'})")
            if secret is not None:
                path = Path(args.secret_file or f".emailkit/oauth-client-{client.client_id}.secret")
                _write_secret(path, secret)
                print(f"secret    in {path} (readable by you only)")
        elif command == "list":
            app_id = oauth.application().client_id
            for client in oauth.clients():
                kind = "application" if client.client_id == app_id else \
                    ("public" if client.public else "confidential")
                uris = ", ".join(client.redirect_uris) or "(no redirect URI yet)"
                print(f"{client.client_id}  {kind:<12}  {client.name}  {uris}")
        elif command == "remove":
            if not oauth.remove_client(args.client_id):
                print(f"emailkit provider clients: no client {args.client_id!r} (see: clients list)",
                      file=sys.stderr)
                return 1
            print(f"removed {args.client_id} (its tokens are revoked)")
        elif command == "add-uri":
            oauth.add_redirect_uri(args.uri)
            print(f"allowed {args.uri} for the application {oauth.application().client_id}")
        elif command == "remove-uri":
            if not oauth.remove_redirect_uri(args.uri):
                print(f"emailkit provider clients: the application has no redirect URI {args.uri!r}",
                      file=sys.stderr)
                return 1
            print(f"removed {args.uri}")
    except InvalidInput as exc:
        print(f"emailkit provider clients: {exc}", file=sys.stderr)
        return 2
    finally:
        oauth.close()
        store.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `emailkit provider` (and of `emailkit provider clients …`)."""
    sub = parser.add_subparsers(dest="provider_command", metavar="[clients]")
    _add_client_arguments(sub.add_parser("clients", help="OAuth clients and redirect URIs in the provider's "
                                         "database file", description=_add_client_arguments.__doc__))
    parser.add_argument("--mailpit", default=os.environ.get("MAILPIT_URL", "http://127.0.0.1:8025"),
                        help="Mailpit (or sandbox) API URL (default: $MAILPIT_URL or http://127.0.0.1:8025)")
    parser.add_argument("--smtp", default=os.environ.get("MAILPIT_SMTP", "127.0.0.1:1025"),
                        help="SMTP server HOST:PORT the provider relays to (default: $MAILPIT_SMTP or 127.0.0.1:1025)")
    parser.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT to serve the API on")
    parser.add_argument("--database", default=None, help="SQLite file (default: in memory, lost on exit)")
    parser.add_argument("--api-key", default=os.environ.get("EMAILKIT_PROVIDER_API_KEY"),
                        help="API key (default: $EMAILKIT_PROVIDER_API_KEY, else a new random one)")
    parser.add_argument("--api-key-file", default=".emailkit/provider-api-key", metavar="FILE",
                        help="where a generated API key is written, mode 0600 (default .emailkit/provider-api-key)")
    parser.add_argument("--grant", action="append", default=[], metavar="EMAIL",
                        help="create a grant for this address at start (repeatable)")


def run(args: argparse.Namespace) -> int:
    """`emailkit provider`: serve until Ctrl-C or SIGTERM (or, with `clients`, manage OAuth clients)."""
    if getattr(args, "provider_command", None) == "clients":
        return run_clients(args)
    try:
        smtp_host, smtp_port = parse_hostport(args.smtp, "--smtp")
        listen = parse_hostport(args.listen, "--listen", example="127.0.0.1:8090")
    except InvalidInput as exc:
        print(f"emailkit provider: {exc}", file=sys.stderr)
        return 2
    provider = Provider(args.mailpit, smtp_host, smtp_port, listen=listen, database=args.database,
                        api_key=args.api_key or api_key_from_file(args.api_key_file))
    try:
        provider.start()
    except OSError as exc:
        print(f"emailkit provider: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        provider.close()
        return 1
    try:
        for email in args.grant:
            grant = provider.create_grant(email)
            print(f"grant {grant.id} for {grant.email}")
        print(f"emailkit provider listening on {provider.url} (docs: {provider.url}/docs)")
        print(f"relaying to SMTP {smtp_host}:{smtp_port}, reading from {provider.mailpit_url}")
        print(announce_api_key(provider, given=bool(args.api_key), key_file=args.api_key_file))
        print(oauth_hint(provider))
        print("Ctrl-C stops it.", flush=True)
        wait_for_signal()
    finally:
        provider.close()
        print("emailkit provider stopped.")
    return 0


if __name__ == "__main__":  # python -m emailkit.provider.server (the same as `emailkit provider`)
    _parser = argparse.ArgumentParser(prog="emailkit provider", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
