"""Running the lab's servers: an ASGI app on a background loop, HOST:PORT flags, Ctrl-C.

The sandbox's REST API and the provider both serve an ASGI app with uvicorn from a
`BackgroundLoop`, on a socket bound before start-up so that port 0 (any free port) works
and the real port is known at once; their command-line forms both parse `HOST:PORT` and
run until SIGINT/SIGTERM. This module is that, once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

from .background import BackgroundLoop
from .errors import InvalidInput

__all__ = ["AsgiServer", "NeverDrop", "parse_hostport", "wait_for_signal"]

log = logging.getLogger("emailkit.serving")


class NeverDrop:
    """ASGI middleware: an unexpected exception becomes a logged 500 with a request id, and the
    client's keep-alive connection stays usable.

    Without it uvicorn closes the connection whenever the app raises — also after the app's own
    error handler has already sent a complete 500 (Starlette and FastAPI re-raise so the server
    can log), which resets the client's next request on that connection. Every answer carries a
    ``request-id`` header (the app's own, when it sets one); the log line names the same ID.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {}).setdefault("request_id", rid)
        progress = {"started": False, "done": False, "rid": rid}

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                given = [value for name, value in headers if name.lower() == b"request-id"]
                if given:
                    progress["rid"] = given[0].decode("latin-1")
                else:
                    headers.append((b"request-id", rid.encode("ascii")))
                    message = {**message, "headers": headers}
                progress["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                progress["done"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error in %s %s (request id %s)", scope.get("method"), scope.get("path"),
                          progress["rid"])
            if not progress["started"]:
                body = f"internal error (request id {rid}): the server log has details\n".encode()
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"request-id", rid.encode("ascii"))]})
                await send({"type": "http.response.body", "body": body})
            elif not progress["done"]:
                raise  # half an answer is on the wire: only closing the connection ends it cleanly


def _quick_server(config: Any) -> Any:
    """A uvicorn `Server` that stops as soon as asked (uvicorn itself polls its exit flag every 0.1 s)."""
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


class AsgiServer:
    """uvicorn serving `app` on `host:port` (0 = any free port) from a background loop.

    Pass `loop` to serve on a loop the app's own objects already live on.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
                 loop: BackgroundLoop | None = None, name: str = "emailkit-http") -> None:
        self.app = app
        self.host = host
        self.port = port
        self._own_loop = loop is None
        self.loop = loop or BackgroundLoop(name=name)
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._task: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> AsgiServer:
        """Bind, start uvicorn, and return once it accepts connections."""
        import uvicorn

        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
        # TCP; without it every response waits ~40 ms for the client's delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(NeverDrop(self.app), log_config=None, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=2, server_header=False)
        self._server = _quick_server(config)
        self._task = asyncio.run_coroutine_threadsafe(self._server.serve(sockets=[sock]), self.loop.loop)
        deadline = time.monotonic() + timeout
        try:
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the start-up error
                    raise RuntimeError(f"the HTTP server on {self.host}:{self.port} stopped during start-up")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the HTTP server on {self.host}:{self.port} did not start within {timeout:g} s")
                time.sleep(0.002)
        except BaseException:
            self.close(force=True)  # nothing half-started is left behind: task, socket, loop
            raise
        return self

    def close(self, *, force: bool = False) -> None:
        """Stop serving (`force`: do not wait for idle keep-alive connections)."""
        if self._server is not None:
            self._server.force_exit = force
            self._server.stop(self.loop.loop)
            try:
                self._task.result(timeout=5)
            except Exception as exc:  # noqa: BLE001 - shutting down: report it, do not raise it
                log.warning("the HTTP server on %s:%s did not stop cleanly: %r", self.host, self.port, exc)
            self._server = None
        if self._own_loop:
            self.loop.close()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_hostport(value: str, field: str, *, example: str = "127.0.0.1:1025") -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` → (host, port); raises `InvalidInput` naming `field`."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(field, f"{value!r} is not HOST:PORT", fix=f"write it like {example} (port 0 = any free port)")
    return host.strip("[]") or "127.0.0.1", int(port)


def wait_for_signal(poll: Callable[[], None] | None = None) -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM, then restore the previous handlers."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if poll is not None:
                poll()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
