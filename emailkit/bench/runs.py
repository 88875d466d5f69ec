"""Sending the same ~1 KB message many ways, measured per message, as pandas DataFrames.

The ways (`MODES`, described by `MODE_INFO`): SMTP plain (the baseline), with STARTTLS + AUTH, and with
implicit TLS + AUTH — on a new connection per message, one reused connection, or a pool of parallel
connections; the provider's REST API over plain HTTP/1.1 (the baseline), HTTPS with HTTP/1.1, and
HTTPS with HTTP/2 — on a new connection per request, one keep-alive connection, concurrent requests
(several HTTP/1.1 connections, or streams multiplexed on one HTTP/2 connection), and the batch endpoint.

Every TLS client verifies the server's certificate against the run's lab CA (`BenchServers.ca`).
`rtt=None` connects directly (loopback, no proxy); a number of seconds puts a proxy with that much
simulated round-trip time in between — in its own process (`emailkit.bench.network`) — which also
counts round trips and bytes on the wire.

Each function returns one row per message: its latency (`latency_ms`), when it completed in the run
(`done_ms`), the run's wall time, and what the wire saw. Timings are measurements, never assertions.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..background import BackgroundLoop
from ..errors import InvalidInput
from ..message import compose
from .network import Network, WireCount
from .servers import RestTarget

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from .servers import BenchServers

__all__ = [
    "MODES",
    "MODE_INFO",
    "Mode",
    "compare",
    "rest_batch",
    "rest_concurrent",
    "rest_new_connection",
    "rest_single",
    "run_mode",
    "smtp_new_connection",
    "smtp_parallel",
    "smtp_reused_connection",
]


@dataclass(frozen=True)
class Mode:
    """One way of sending: which path, how it is secured, which HTTP version, how connections are used."""

    name: str
    label: str
    path: str  # "smtp" or "rest"
    security: str  # smtp: "plain", "starttls", "tls"; rest: "http", "https"
    http: str  # "1.1", "2" or "" (SMTP)
    style: str  # "new", "reused", "parallel", "concurrent", "batch"

    @property
    def tls(self) -> bool:
        return self.security in ("starttls", "tls", "https")


_MODES = [
    Mode("smtp_new_connection", "SMTP, a new connection per message", "smtp", "plain", "", "new"),
    Mode("smtp_reused_connection", "SMTP, one reused connection", "smtp", "plain", "", "reused"),
    Mode("smtp_parallel", "SMTP, parallel reused connections", "smtp", "plain", "", "parallel"),
    Mode("starttls_new_connection", "SMTP STARTTLS + AUTH, a new connection per message", "smtp", "starttls", "",
         "new"),
    Mode("starttls_reused_connection", "SMTP STARTTLS + AUTH, one reused connection", "smtp", "starttls", "",
         "reused"),
    Mode("starttls_parallel", "SMTP STARTTLS + AUTH, parallel reused connections", "smtp", "starttls", "",
         "parallel"),
    Mode("smtps_new_connection", "SMTP implicit TLS + AUTH, a new connection per message", "smtp", "tls", "", "new"),
    Mode("rest_new_connection", "REST HTTP/1.1, a new connection per request", "rest", "http", "1.1", "new"),
    Mode("rest_single", "REST HTTP/1.1, one keep-alive connection", "rest", "http", "1.1", "reused"),
    Mode("rest_concurrent", "REST HTTP/1.1, concurrent requests", "rest", "http", "1.1", "concurrent"),
    Mode("rest_batch", "REST HTTP/1.1, batch endpoint", "rest", "http", "1.1", "batch"),
    Mode("https_new_connection", "HTTPS HTTP/1.1, a new connection per request", "rest", "https", "1.1", "new"),
    Mode("https_single", "HTTPS HTTP/1.1, one keep-alive connection", "rest", "https", "1.1", "reused"),
    Mode("https_concurrent", "HTTPS HTTP/1.1, concurrent requests on a pool", "rest", "https", "1.1", "concurrent"),
    Mode("h2_single", "HTTPS HTTP/2, one request at a time on one connection", "rest", "https", "2", "reused"),
    Mode("h2_concurrent", "HTTPS HTTP/2, concurrent streams on one connection", "rest", "https", "2", "concurrent"),
]

#: Every way of sending, by name, in the order tables show them.
MODE_INFO: dict[str, Mode] = {m.name: m for m in _MODES}
#: name -> label (what tables print).
MODES: dict[str, str] = {m.name: m.label for m in _MODES}

_BODY = ("The quick brown fox jumps over the lazy dog. " * 20)[:760]
#: SMTP AUTH login for the lab's accept-any servers (a local test login, not a secret).
_LOGIN = ("bench@example.com", "bench-local")


def _messages(n: int, tag: str = "bench") -> list[Any]:
    return [compose(sender="bench@example.com", to=[f"inbox{i % 7}@example.com"], subject=f"{tag} {i}", text=_BODY)
            for i in range(n)]


def _payload(i: int, tag: str = "bench") -> dict[str, Any]:
    """The REST twin of `_messages`: same recipient pattern, subject and body."""
    return {"to": [{"email": f"inbox{i % 7}@example.com"}], "subject": f"{tag} {i}", "body": _BODY,
            "is_plaintext": True}


def _check_n(n: int, name: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput(name, f"{n!r} is not a whole number >= 1", fix="measure at least one message, e.g. n=30")


_runner: BackgroundLoop | None = None
_net: Network | None = None


def _run(coro: Awaitable[Any]) -> Any:
    """Run on a private loop: works from scripts and from a notebook whose loop is running."""
    global _runner
    if _runner is None or not _runner.running:
        _runner = BackgroundLoop(name="emailkit-bench")
    return _runner.run(coro)


def _network() -> Network:
    """The proxies' process, started on first use and stopped when Python exits."""
    global _net
    if _net is None:
        _net = Network().start()
        atexit.register(_net.close)
    return _net


# --------------------------------------------------------------------------- the measuring frame


class _Route:
    """A proxy with `rtt` in the network process in front of (host, port); direct when `rtt` is None."""

    def __init__(self, host: str, port: int, rtt: float | None, protocol: str) -> None:
        if rtt is not None and (not isinstance(rtt, (int, float)) or rtt < 0 or math.isnan(rtt)):
            raise InvalidInput("rtt", f"{rtt!r} is not a round-trip time", fix="give seconds >= 0, or None for direct")
        self.tap = _network().tap(host, port, protocol=protocol, rtt=float(rtt)) if rtt is not None else None
        self.host, self.port = (self.tap.host, self.tap.port) if self.tap else (host, port)

    def counts(self) -> list[WireCount]:
        return self.tap.counts() if self.tap is not None else []

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


@dataclass
class _Result:
    latencies: list[float]
    done: list[float]
    run_s: float
    connections: int
    tls_version: str = ""
    http_version: str = ""
    in_flight: int = 1  # messages under way at once: 1, the pool's connections, the concurrency, a batch


def _frame(mode: Mode, rtt: float | None, result: _Result, route: _Route, n: int) -> pd.DataFrame:
    import pandas as pd

    counts = route.counts()
    trips = float(sum(c.round_trips for c in counts)) if route.tap else math.nan
    nbytes = sum(c.bytes_from_client + c.bytes_from_server for c in counts)
    per_connection: list[float] = [math.nan] * n
    if mode.style == "new" and len(counts) == n:  # one connection per message: a per-message wire count
        per_connection = [float(c.round_trips) for c in counts]
    return pd.DataFrame({
        "mode": mode.name, "path": mode.path, "security": mode.security, "http": mode.http,
        "rtt_ms": math.nan if rtt is None else round(rtt * 1000, 3),
        "message": range(len(result.latencies)),
        "latency_ms": [x * 1000 for x in result.latencies],
        "done_ms": [x * 1000 for x in result.done],
        "run_s": result.run_s, "messages": n, "in_flight": result.in_flight,
        "round_trips_per_msg": trips / n,
        "wire_round_trips": per_connection,
        "bytes_per_msg": (nbytes / n) if route.tap else math.nan,
        "connections": len(counts) if route.tap else result.connections,
        "tls_seen_on_wire": bool(counts) and all(c.tls for c in counts) if route.tap else False,
        "tls_version": result.tls_version, "http_version": result.http_version,
    })


def _bar(progress: bool, total: int, desc: str, unit: str = "msg") -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)


def _tick(bar: Any, k: int = 1) -> None:
    if bar is not None:
        bar.update(k)


# --------------------------------------------------------------------------- SMTP


async def _smtp_connect(host: str, port: int, security: str, context: ssl.SSLContext | None) -> Any:
    import aiosmtplib

    tls = security != "plain"
    client = aiosmtplib.SMTP(hostname=host, port=port, use_tls=security == "tls", start_tls=security == "starttls",
                             tls_context=context if tls else None, validate_certs=tls, timeout=30,
                             local_hostname="emailkit.local")
    await client.connect()
    if tls:
        await client.login(*_LOGIN)
    return client


def _tls_version(transport: Any) -> str:
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return str(ssl_object.version()) if ssl_object is not None else ""


async def _smtp_new(host: str, port: int, security: str, context: ssl.SSLContext | None, n: int,
                    bar: Any) -> _Result:
    result = _Result([], [], 0.0, n)
    started = time.perf_counter()
    for message in _messages(n):
        t0 = time.perf_counter()
        client = await _smtp_connect(host, port, security, context)
        result.tls_version = result.tls_version or _tls_version(client.transport)
        await client.send_message(message)
        await client.quit()
        now = time.perf_counter()
        result.latencies.append(now - t0)
        result.done.append(now - started)
        _tick(bar)
    result.run_s = time.perf_counter() - started
    return result


async def _smtp_pool(host: str, port: int, security: str, context: ssl.SSLContext | None, n: int,
                     connections: int, bar: Any) -> _Result:
    messages = _messages(n)
    shares = [messages[i::connections] for i in range(connections)]
    result = _Result([], [], 0.0, min(connections, n), in_flight=min(connections, n))
    started = time.perf_counter()

    async def one(share: list[Any]) -> None:
        client = await _smtp_connect(host, port, security, context)
        result.tls_version = result.tls_version or _tls_version(client.transport)
        for message in share:
            t0 = time.perf_counter()
            await client.send_message(message)
            now = time.perf_counter()
            result.latencies.append(now - t0)
            result.done.append(now - started)
            _tick(bar)
        await client.quit()

    await asyncio.gather(*(one(share) for share in shares if share))
    result.run_s = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- REST


def _client(target: RestTarget, base_url: str, *, http2: bool, keepalive: bool, connections: int,
            context: ssl.SSLContext | None) -> httpx.AsyncClient:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections if keepalive else 0)
    return httpx.AsyncClient(base_url=base_url, headers=target.headers, limits=limits, timeout=30,
                             verify=context if context is not None else True, http2=http2, http1=not http2)


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        hint = ("the provider rate-limits per grant: start it with a higher rate_limit for benchmarks"
                if response.status_code == 429 else "see the provider's error message")
        raise InvalidInput(what, f"the provider answered HTTP {response.status_code}: {response.text.strip()[:300]}",
                           fix=hint)


def _versions(result: _Result, response: httpx.Response) -> None:
    if not result.http_version:
        result.http_version = response.http_version
        stream = response.extensions.get("network_stream")
        result.tls_version = _tls_version(stream) if stream is not None else ""


async def _rest(target: RestTarget, base_url: str, n: int, *, concurrency: int, keepalive: bool, http2: bool,
                connections: int, context: ssl.SSLContext | None, bar: Any) -> _Result:
    result = _Result([0.0] * n, [0.0] * n, 0.0, connections if keepalive else n, in_flight=min(concurrency, n))
    gate = asyncio.Semaphore(concurrency)
    async with _client(target, base_url, http2=http2, keepalive=keepalive, connections=connections,
                       context=context) as client:
        started = time.perf_counter()

        async def one(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                response = await client.post(target.send_path, json=_payload(i))
                now = time.perf_counter()
                result.latencies[i], result.done[i] = now - t0, now - started
                _raise_for(response, "send")
                _versions(result, response)
                _tick(bar)

        if concurrency == 1:
            for i in range(n):
                await one(i)
        else:
            await asyncio.gather(*(one(i) for i in range(n)))
        result.run_s = time.perf_counter() - started
    return result


async def _rest_batch(target: RestTarget, base_url: str, n: int, batch_size: int, context: ssl.SSLContext | None,
                      bar: Any) -> _Result:
    result = _Result([], [], 0.0, 1, in_flight=min(batch_size, n))
    async with _client(target, base_url, http2=False, keepalive=True, connections=1, context=context) as client:
        started = time.perf_counter()
        for first in range(0, n, batch_size):
            chunk = [_payload(i) for i in range(first, min(first + batch_size, n))]
            t0 = time.perf_counter()
            response = await client.post(target.batch_path, json={"messages": chunk})
            now = time.perf_counter()
            if response.status_code in (404, 405):
                raise InvalidInput("rest_batch", f"the provider has no POST {target.batch_path} endpoint "
                                   f"(HTTP {response.status_code})",
                                   fix="use a provider with the batch endpoint, or leave rest_batch out of modes")
            _raise_for(response, "send-batch")
            _versions(result, response)
            results = response.json().get("data") or []
            failed = [r for r in results if not isinstance(r, dict) or "error" in r]
            if len(results) != len(chunk) or failed:
                raise InvalidInput("send-batch", f"{len(failed)} of {len(chunk)} messages failed: {failed[:1]}",
                                   fix="read the per-message errors in the batch response")
            result.latencies.extend([now - t0] * len(chunk))  # each message waited for the whole batch
            result.done.extend([now - started] * len(chunk))
            _tick(bar, len(chunk))
        result.run_s = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- one mode, many modes


@dataclass(frozen=True)
class _Endpoints:
    """Where each way of sending connects, and the SSL context that verifies the lab CA."""

    smtp: Callable[[str], tuple[str, int]]
    rest: Callable[[str], RestTarget]
    context: ssl.SSLContext | None


def _endpoints(servers: Any) -> _Endpoints:
    return _Endpoints(servers.smtp_address, servers.rest, servers.client_context())


def run_mode(mode: str, servers: BenchServers | _Endpoints, n: int = 30, *, rtt: float | None = None,
             connections: int = 4, concurrency: int = 8, batch_size: int = 100,
             progress: bool = False) -> pd.DataFrame:
    """Send `n` messages the way `mode` names (a key of `MODES`) to `servers`; one row per message."""
    if mode not in MODE_INFO:
        raise InvalidInput("mode", f"{mode!r} is not a mode", fix=f"use one of {', '.join(MODES)}")
    _check_n(n)
    _check_n(connections, "connections")
    _check_n(concurrency, "concurrency")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100:
        raise InvalidInput("batch_size", f"{batch_size!r} is not between 1 and 100",
                           fix="the batch endpoint takes at most 100 messages per request")
    info = MODE_INFO[mode]
    ends = servers if isinstance(servers, _Endpoints) else _endpoints(servers)
    context = ends.context if info.tls else None
    if info.path == "smtp":
        host, port = ends.smtp(info.security)
        route = _Route(host, port, rtt, "smtp" if info.security != "tls" else "raw")
    else:
        from urllib.parse import urlsplit

        target = ends.rest(info.security)
        parts = urlsplit(target.url)
        route = _Route(parts.hostname or "127.0.0.1", parts.port or 80, rtt, "http" if info.security == "http" else "raw")
        base_url = f"{parts.scheme}://{route.host}:{route.port}"
    bar = _bar(progress, n, info.label)
    try:
        if info.path == "smtp":
            if info.style == "new":
                work = _smtp_new(route.host, route.port, info.security, context, n, bar)
            else:
                width = 1 if info.style == "reused" else connections
                work = _smtp_pool(route.host, route.port, info.security, context, n, width, bar)
        elif info.style == "batch":
            work = _rest_batch(target, base_url, n, batch_size, context, bar)
        else:
            http2 = info.http == "2"
            parallel = concurrency if info.style == "concurrent" else 1
            pool = 1 if http2 else parallel  # HTTP/2 multiplexes streams on one connection
            work = _rest(target, base_url, n, concurrency=parallel, keepalive=info.style != "new", http2=http2,
                         connections=pool, context=context, bar=bar)
        result = _run(work)
        return _frame(info, rtt, result, route, n)
    finally:
        route.close()
        if bar is not None:
            bar.close()


def _plain(host: str, port: int) -> _Endpoints:
    def smtp(security: str) -> tuple[str, int]:
        return host, port

    def rest(security: str) -> RestTarget:
        raise InvalidInput("mode", "these endpoints have SMTP only", fix="use a REST function with a RestTarget")

    return _Endpoints(smtp, rest, None)


def _rest_only(target: RestTarget, context: ssl.SSLContext | None = None) -> _Endpoints:
    def smtp(security: str) -> tuple[str, int]:
        raise InvalidInput("mode", "these endpoints have REST only", fix="use an SMTP function with host and port")

    return _Endpoints(smtp, lambda security: target, context)


def smtp_new_connection(host: str, port: int, n: int = 30, *, rtt: float | None = None,
                        progress: bool = False) -> pd.DataFrame:
    """Plain SMTP: open a connection, send one message, QUIT — `n` times. One row per message."""
    return run_mode("smtp_new_connection", _plain(host, port), n, rtt=rtt, progress=progress)


def smtp_reused_connection(host: str, port: int, n: int = 30, *, rtt: float | None = None,
                           progress: bool = False) -> pd.DataFrame:
    """Plain SMTP: one connection (EHLO once, QUIT once) for all `n` messages."""
    return run_mode("smtp_reused_connection", _plain(host, port), n, rtt=rtt, progress=progress)


def smtp_parallel(host: str, port: int, n: int = 30, *, connections: int = 4, rtt: float | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """Plain SMTP: `connections` reused connections sending `n` messages between them at once."""
    return run_mode("smtp_parallel", _plain(host, port), n, rtt=rtt, connections=connections, progress=progress)


def rest_single(target: RestTarget, n: int = 30, *, rtt: float | None = None, progress: bool = False) -> pd.DataFrame:
    """`n` sends, one after another, on one keep-alive HTTP/1.1 connection to `target` (http:// here)."""
    return run_mode("rest_single", _rest_only(target), n, rtt=rtt, progress=progress)


def rest_new_connection(target: RestTarget, n: int = 30, *, rtt: float | None = None,
                        progress: bool = False) -> pd.DataFrame:
    """`n` sends, one after another, each on a new TCP connection (no keep-alive)."""
    return run_mode("rest_new_connection", _rest_only(target), n, rtt=rtt, progress=progress)


def rest_concurrent(target: RestTarget, n: int = 30, *, concurrency: int = 8, rtt: float | None = None,
                    progress: bool = False) -> pd.DataFrame:
    """`n` sends with up to `concurrency` requests in flight (as many keep-alive connections)."""
    return run_mode("rest_concurrent", _rest_only(target), n, rtt=rtt, concurrency=concurrency, progress=progress)


def rest_batch(target: RestTarget, n: int = 30, *, batch_size: int = 100, rtt: float | None = None,
               progress: bool = False) -> pd.DataFrame:
    """`n` messages through ``POST …/messages/send-batch``, up to `batch_size` per request."""
    return run_mode("rest_batch", _rest_only(target), n, rtt=rtt, batch_size=batch_size, progress=progress)


def compare(servers: BenchServers, n: int = 30, *, rtts: Iterable[float | None] = (None, 0.0, 0.01, 0.04, 0.1),
            modes: Iterable[str] | None = None, connections: int = 4, concurrency: int = 8, batch_size: int = 100,
            n_at: dict[float | None, int] | None = None, side_by_side: bool = False,
            progress: bool = True) -> pd.DataFrame:
    """Measure every mode in `modes` (default all of `MODES`) at every RTT; the per-message samples.

    `rtts` are seconds of simulated round-trip time; None means a direct loopback connection (no
    proxy: the fastest path, round trips not counted); 0.0 means through the proxy with no delay.
    `n_at` overrides `n` for some RTTs (e.g. more samples on loopback, where they are cheap).
    `side_by_side=True` runs the delayed levels (RTT > 0) at the same time, one thread for each level's
    SMTP modes and one for its REST modes, each lane's modes one after another: a run then takes as long
    as its slowest lane. Their clients then share
    this process's CPU, which at these delays is mostly idle (waiting out the delay); loopback and 0 ms
    still run alone, where CPU is all there is to measure.
    """
    import pandas as pd

    chosen = list(modes) if modes is not None else list(MODES)
    unknown = [m for m in chosen if m not in MODES]
    if unknown:
        raise InvalidInput("modes", f"{unknown[0]!r} is not a mode", fix=f"use some of {', '.join(MODES)}")
    ends = _endpoints(servers)
    plan = [(m, r) for r in rtts for m in chosen]
    sizes = {r: (n_at or {}).get(r, n) for r in rtts}
    bar = _bar(progress, sum(sizes[r] for _, r in plan), "compare", unit="msg")
    frames: dict[tuple[str, float | None], pd.DataFrame] = {}

    def level(rtt: float | None, lane: Iterable[str] = chosen) -> None:
        for mode in lane:
            if bar is not None:
                bar.set_postfix_str(f"{mode} @ {'direct' if rtt is None else f'{rtt * 1000:g} ms'}")
            frames[(mode, rtt)] = run_mode(mode, ends, sizes[rtt], rtt=rtt, connections=connections,
                                           concurrency=concurrency, batch_size=batch_size)
            _tick(bar, sizes[rtt])

    levels = list(dict.fromkeys(rtts))
    alone = [r for r in levels if not side_by_side or r is None or r == 0]
    together = [r for r in levels if r not in alone]
    try:
        for rtt in alone:
            level(rtt)
        if together:
            from concurrent.futures import ThreadPoolExecutor

            # one lane per (RTT, path): SMTP modes and REST modes of a level go to different servers
            lanes = [(rtt, [m for m in chosen if MODE_INFO[m].path == path]) for rtt in together
                     for path in ("smtp", "rest")]
            lanes = [(rtt, lane) for rtt, lane in lanes if lane]
            with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="bench-rtt") as pool:
                for future in [pool.submit(level, rtt, lane) for rtt, lane in lanes]:
                    future.result()
    finally:
        if bar is not None:
            bar.close()
    return pd.concat([frames[key] for key in plan], ignore_index=True)
