"""The benchmark's "network": recording proxies (`emailkit.wiretap.Wiretap`) in a process of their own.

A simulated round-trip time is a proxy that holds every chunk of bytes for half the RTT in each
direction. When the proxy shared the client's Python process it also shared its GIL, so loopback
figures measured the proxy's competition with the client as much as the protocols. Here the proxies
live in one child process; the client asks it over a pipe for a proxy in front of a server and, after a
run, for what the proxy counted on the wire (round trips per connection, bytes, whether TLS was seen).
No transcript text crosses the pipe: only counts.

    with Network() as net:
        tap = net.tap("127.0.0.1", 1025, protocol="smtp", rtt=0.04)
        ...  # connect clients to (tap.host, tap.port)
        counts = tap.counts()       # one WireCount per connection, in order
        tap.close()
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..errors import EmailkitError

__all__ = ["Network", "RemoteTap", "WireCount"]


@dataclass(frozen=True)
class WireCount:
    """What the proxy saw on one connection: server turns after client turns, bytes, TLS."""

    round_trips: int
    bytes_from_client: int
    bytes_from_server: int
    tls: bool
    closed: bool


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the child process
    """The child: start, count and close wiretaps on request until told to stop."""
    import signal

    from ..wiretap import Wiretap

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C (or a notebook's interrupt) is the parent's to handle
    taps: dict[int, Wiretap] = {}
    while True:
        try:
            command, args = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if command == "open":
                host, port, protocol, rtt = args
                tap = Wiretap(host, port, protocol=protocol, rtt=rtt).start()
                taps[tap.port] = tap
                conn.send(("ok", tap.port))
            elif command == "counts":
                (port,) = args
                tap = taps[port]
                try:  # let the proxy record the last replies before counting
                    tap.wait_all_closed(timeout=1.0)
                except TimeoutError:
                    pass  # counted as they are: WireCount.closed says which were still open
                conn.send(("ok", [(t.round_trips, t.bytes_from_client, t.bytes_from_server, t.tls, t.closed)
                                  for t in tap.transcripts]))
            elif command == "close":
                (port,) = args
                taps.pop(port).close()
                conn.send(("ok", None))
            elif command == "stop":
                conn.send(("ok", None))
                break
            else:
                conn.send(("error", f"unknown command {command!r}"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    for tap in taps.values():
        tap.close()


class RemoteTap:
    """A proxy in the network process: connect clients to `(host, port)`."""

    def __init__(self, network: Network, host: str, port: int) -> None:
        self.network, self.host, self.port = network, host, port

    def counts(self) -> list[WireCount]:
        return [WireCount(*row) for row in self.network._ask("counts", self.port)]

    def close(self) -> None:
        self.network._ask("close", self.port)


class Network:
    """A child process holding the benchmark's wiretaps; `close()` stops it."""

    def __init__(self, listen_host: str = "127.0.0.1") -> None:
        self.listen_host = listen_host
        self._process: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def start(self) -> Network:
        if self._process is not None:
            return self
        context = multiprocessing.get_context("spawn")  # no forked copy of the client's threads and loops
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), name="emailkit-bench-network", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        return self

    def _ask(self, command: str, *args: Any) -> Any:
        if self._conn is None:
            raise EmailkitError("the benchmark network is not running", fix="call Network.start() first")
        with self._lock:
            self._conn.send((command, args))
            if not self._conn.poll(30):
                raise EmailkitError(f"the benchmark network did not answer {command!r} within 30 s",
                                    fix="is the machine overloaded? run again")
            status, value = self._conn.recv()
        if status != "ok":
            raise EmailkitError(f"the benchmark network failed: {value}", fix="see the message; run again")
        return value

    def tap(self, host: str, port: int, *, protocol: str = "raw", rtt: float = 0.0) -> RemoteTap:
        """A proxy in front of host:port with `rtt` seconds of simulated round-trip time."""
        return RemoteTap(self, self.listen_host, int(self._ask("open", host, port, protocol, rtt)))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._ask("stop")
            except (EmailkitError, OSError, EOFError):
                pass
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)
            self._process = None

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
