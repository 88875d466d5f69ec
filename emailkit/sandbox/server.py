"""`Sandbox`: the embedded Mailpit stand-in (SMTP + HTTP API over one SQLite store), and its CLI.

>>> with Sandbox() as box:                                        # doctest: +SKIP
...     print(box.smtp_host, box.smtp_port, box.api_url)
127.0.0.1 40123 http://127.0.0.1:40125

The SMTP server runs on aiosmtpd's own thread loop; the HTTP API is uvicorn on a
`BackgroundLoop`, so both work from a notebook whose event loop is already running.
``emailkit sandbox --smtp HOST:PORT --listen HOST:PORT`` runs one until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import threading
import time
from types import FrameType
from typing import Any

from emailkit.background import BackgroundLoop
from emailkit.errors import InvalidInput
from emailkit.sandbox.smtp_server import SMTPServer, TokenChecker
from emailkit.sandbox.store import Store

__all__ = ["Sandbox", "add_arguments", "parse_hostport", "run"]


def _uvicorn_server(config: Any) -> Any:
    """A uvicorn `Server` that stops as soon as asked (uvicorn polls its exit flag every 0.1 s)."""
    import uvicorn

    class QuickServer(uvicorn.Server):
        async def main_loop(self) -> None:
            self.exit_event = asyncio.Event()
            ticks = 0
            while not await self.on_tick(ticks):
                ticks += 10  # uvicorn refreshes its Date header when ticks % 10 == 0
                try:
                    await asyncio.wait_for(self.exit_event.wait(), timeout=1.0)
                except TimeoutError:
                    pass

        def stop(self, loop: asyncio.AbstractEventLoop) -> None:
            self.should_exit = True
            event = getattr(self, "exit_event", None)
            if event is not None:
                loop.call_soon_threadsafe(event.set)

    return QuickServer(config)


class Sandbox:
    """SMTP server + Mailpit-shaped HTTP API over one store. `start()`/`close()` or ``with``."""

    def __init__(
        self,
        smtp: tuple[str, int] = ("127.0.0.1", 0),
        listen: tuple[str, int] = ("127.0.0.1", 0),
        database: str | os.PathLike[str] | None = None,
        max_messages: int = 500,
        max_message_size: int = 50 * 1024 * 1024,
        max_recipients: int = 100,
        starttls: bool = True,
        xoauth2: TokenChecker | None = None,
        *,
        hostname: str | None = None,
    ) -> None:
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
        self._loop: BackgroundLoop | None = None
        self._http: Any = None
        self._http_task: Any = None
        self._socket: socket.socket | None = None
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
            )
            self.smtp.start()
            self.smtp_port = self.smtp.port
            self._start_http()
        except BaseException:
            self.close()
            raise
        return self

    def _start_http(self) -> None:
        import uvicorn

        from emailkit.sandbox.api import create_app

        assert self.store is not None
        host, port = self._listen_addr
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.api_port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.store, max_message_size=self.max_message_size),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self._http = _uvicorn_server(config)
        self._loop = BackgroundLoop(name="emailkit-sandbox-http")
        self._http_task = asyncio.run_coroutine_threadsafe(self._http.serve(sockets=[sock]), self._loop.loop)
        deadline = time.monotonic() + 10
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # raises the start-up error
                raise RuntimeError("the sandbox HTTP server stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("the sandbox HTTP server did not start within 10 s")
            time.sleep(0.002)

    def close(self) -> None:
        """Stop both servers and close the store (a temporary database file is deleted)."""
        if self._http is not None:
            if self._loop is not None:
                self._http.stop(self._loop.loop)
            self._http.should_exit = True
            if self._http_task is not None:
                try:
                    self._http_task.result(timeout=5)
                except Exception:  # noqa: BLE001 - shutting down; nothing useful to report
                    pass
            self._http = None
            self._http_task = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
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
        return f"<Sandbox {state}>"


# --------------------------------------------------------------------------- CLI


def parse_hostport(value: str, field: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` → (host, port); raises `InvalidInput`."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(
            field, f"{value!r} is not HOST:PORT", fix="write it like 127.0.0.1:1025 (port 0 = any free port)"
        )
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emailkit sandbox`` (Mailpit's names where Mailpit has them)."""
    parser.add_argument(
        "--smtp", default="127.0.0.1:1025", metavar="HOST:PORT", help="SMTP listen address (default 127.0.0.1:1025)"
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8025",
        metavar="HOST:PORT",
        help="HTTP API listen address (default 127.0.0.1:8025)",
    )
    parser.add_argument(
        "--database", default=None, metavar="FILE", help="SQLite file to keep mail in (default: a temporary file)"
    )
    parser.add_argument(
        "--max", type=int, default=500, metavar="N", help="keep the newest N messages (0 = all; default 500)"
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=50,
        metavar="MB",
        help="largest message in MB (0 = no limit; default 50)",
    )
    parser.add_argument(
        "--smtp-max-recipients", type=int, default=100, metavar="N", help="recipients per message (default 100)"
    )
    parser.add_argument("--no-starttls", action="store_true", help="do not offer STARTTLS")


def run(args: argparse.Namespace) -> int:
    """Run a sandbox until Ctrl-C or SIGTERM; print where it listens. Returns the exit code."""
    try:
        smtp = parse_hostport(args.smtp, "--smtp")
        listen = parse_hostport(args.listen, "--listen")
        for name, value in (("--max", args.max), ("--max-message-size", args.max_message_size)):
            if value < 0:
                raise InvalidInput(name, f"{value} is negative", fix="use 0 (no limit) or a positive number")
        if args.smtp_max_recipients < 1:
            raise InvalidInput("--smtp-max-recipients", f"{args.smtp_max_recipients} is below 1", fix="use 1 or more")
    except InvalidInput as exc:
        print(f"error: {exc}", flush=True)
        return 2
    sandbox = Sandbox(
        smtp=smtp,
        listen=listen,
        database=args.database,
        max_messages=args.max,
        max_message_size=args.max_message_size * 1024 * 1024,
        max_recipients=args.smtp_max_recipients,
        starttls=not getattr(args, "no_starttls", False),
    )
    try:
        sandbox.start()
    except OSError as exc:
        print(f"error: cannot listen: {exc}", flush=True)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"SMTP     {sandbox.smtp_host}:{sandbox.smtp_port}", flush=True)
        print(f"HTTP API {sandbox.api_url}", flush=True)
        print(f"Database {sandbox.store.path if sandbox.store else '-'}", flush=True)
        print("Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.close()
        print("stopped", flush=True)
    return 0
