"""Measured comparisons, printed as figures and returned as pandas DataFrames.

`python -m emailkit.bench` (or `make bench`) measures, on this machine, in one run:

* SMTP ingest of ~1 KB messages into the sandbox, real Mailpit and a bare aiosmtpd sink, each in
  its own process with a database file (`emailkit.ingest`), over one and over four connections,
  and list/search latency on a 5,000-message mailbox — Mailpit's README claims 200–300/s;
* sending the same ~1 KB message seven ways — SMTP with a new connection per message, over
  one reused connection, over several parallel connections; the provider's REST API on a new
  connection per request, on one keep-alive connection, with concurrent requests, and
  through its batch endpoint — at loopback and at simulated round-trip times (a `Wiretap`
  with ``rtt=`` in front of the SMTP server or of the provider's HTTP port), with the round
  trips per message counted on the wire beside the protocol's minimum.

Every function takes the sample size `n` and returns a DataFrame (one row per message, or a
summary); timings are measurements, never assertions: the machines are shared and noisy, so
compare figures as ratios within one run. In the SMTP-vs-REST part the client, wiretap and provider
share this Python process (and the mailbox too when it is the sandbox), so loopback figures include
their competition for the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .background import BackgroundLoop
from .errors import InvalidInput
from .message import compose
from .smtp import Connection
from .wiretap import Wiretap

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from .provider.server import Provider

__all__ = [
    "MODES",
    "PROVIDER_OPTIONS",
    "RestTarget",
    "compare",
    "conclusions",
    "main",
    "percentile",
    "record_evidence",
    "rest_batch",
    "rest_target",
    "rest_concurrent",
    "rest_new_connection",
    "rest_single",
    "round_trips",
    "smtp_new_connection",
    "smtp_parallel",
    "smtp_reused_connection",
    "summarize",
]

#: The ways of sending that `compare()` measures, in the order tables show them.
MODES: dict[str, str] = {
    "smtp_new_connection": "SMTP, a new connection per message",
    "smtp_reused_connection": "SMTP, one reused connection",
    "smtp_parallel": "SMTP, parallel reused connections",
    "rest_new_connection": "REST, a new connection per request",
    "rest_single": "REST, one keep-alive connection",
    "rest_concurrent": "REST, concurrent requests",
    "rest_batch": "REST, batch endpoint",
}

_BODY = ("The quick brown fox jumps over the lazy dog. " * 20)[:760]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _one_kb_messages(n: int, tag: str = "bench") -> list[Any]:
    return [
        compose(sender="bench@example.com", to=[f"inbox{i % 7}@example.com"], subject=f"{tag} {i}", text=_BODY)
        for i in range(n)
    ]


def _payload(i: int, tag: str = "bench") -> dict[str, Any]:
    """The REST twin of `_one_kb_messages`: same recipient pattern, subject and body."""
    return {"to": [{"email": f"inbox{i % 7}@example.com"}], "subject": f"{tag} {i}", "body": _BODY,
            "is_plaintext": True}


def _check_n(n: int, name: str = "n") -> None:
    if not isinstance(n, int) or n < 1:
        raise InvalidInput(name, f"{n!r} is not a whole number >= 1", fix="measure at least one message, e.g. n=20")


_runner: BackgroundLoop | None = None


def _run(coro: Awaitable[Any]) -> Any:
    """Run on a private loop: works from scripts and from a notebook whose loop is running."""
    global _runner
    if _runner is None or not _runner.running:
        _runner = BackgroundLoop(name="emailkit-bench")
    return _runner.run(coro)


# --------------------------------------------------------------------------- the measuring frame


@dataclass(frozen=True)
class RestTarget:
    """Where REST sends go: the provider's base URL, its API key and the sending grant."""

    url: str
    api_key: str
    grant_id: str

    def via(self, url: str) -> RestTarget:
        return RestTarget(url, self.api_key, self.grant_id)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def send_path(self) -> str:
        return f"/v3/grants/{self.grant_id}/messages/send"

    @property
    def batch_path(self) -> str:
        return f"/v3/grants/{self.grant_id}/messages/send-batch"


class _Route:
    """A started `Wiretap` with `rtt` in front of (host, port) when `rtt` is not None; else direct."""

    def __init__(self, host: str, port: int, rtt: float | None, protocol: str) -> None:
        self.tap = Wiretap(host, port, protocol=protocol, rtt=rtt).start() if rtt is not None else None  # type: ignore[arg-type]
        self.host, self.port = (self.tap.host, self.tap.port) if self.tap else (host, port)

    def trips(self) -> tuple[float, int, int]:
        """(round trips, connections, bytes) seen so far (NaN/0 when direct)."""
        if self.tap is None:
            return math.nan, 0, 0
        for _ in range(100):  # let the proxy record the last replies before reading
            if all(t.closed for t in self.tap.transcripts):
                break
            time.sleep(0.005)
        ts = self.tap.transcripts
        return (float(sum(t.round_trips for t in ts)), len(ts),
                sum(t.bytes_from_client + t.bytes_from_server for t in ts))

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


def _frame(mode: str, rtt: float | None, latencies: list[float], run_s: float, route: _Route,
           connections: int, n: int, *, trips_closed: bool = True) -> pd.DataFrame:
    import pandas as pd

    trips, seen, nbytes = route.trips()
    return pd.DataFrame({
        "mode": mode,
        "path": mode.split("_", 1)[0],
        "rtt_ms": math.nan if rtt is None else round(rtt * 1000, 3),
        "message": range(len(latencies)),
        "latency_ms": [x * 1000 for x in latencies],
        "run_s": run_s,
        "messages": n,
        "round_trips_per_msg": trips / n,
        "bytes_per_msg": (nbytes / n) if route.tap else math.nan,
        "connections": seen if route.tap else connections,
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


async def _smtp_new(host: str, port: int, n: int, bar: Any) -> tuple[list[float], float]:
    lat = []
    started = time.perf_counter()
    for message in _one_kb_messages(n):
        t0 = time.perf_counter()
        async with Connection(host, port, timeout=30) as smtp:
            await smtp.send(message)
        lat.append(time.perf_counter() - t0)
        _tick(bar)
    return lat, time.perf_counter() - started


async def _smtp_reused(host: str, port: int, messages: list[Any], bar: Any) -> list[float]:
    lat = []
    async with Connection(host, port, timeout=30) as smtp:
        for message in messages:
            t0 = time.perf_counter()
            await smtp.send(message)
            lat.append(time.perf_counter() - t0)
            _tick(bar)
    return lat


async def _smtp_parallel(host: str, port: int, n: int, connections: int, bar: Any) -> tuple[list[float], float]:
    messages = _one_kb_messages(n)
    shares = [messages[i::connections] for i in range(connections)]
    started = time.perf_counter()
    parts = await asyncio.gather(*(_smtp_reused(host, port, share, bar) for share in shares if share))
    return [x for part in parts for x in part], time.perf_counter() - started


def smtp_new_connection(host: str, port: int, n: int = 50, *, rtt: float | None = None,
                        progress: bool = False) -> pd.DataFrame:
    """Open a connection, send one message, QUIT — `n` times. One row per message."""
    _check_n(n)
    route = _Route(host, port, rtt, "smtp")
    bar = _bar(progress, n, "SMTP new connection")
    try:
        lat, run_s = _run(_smtp_new(route.host, route.port, n, bar))
        return _frame("smtp_new_connection", rtt, lat, run_s, route, n, n)
    finally:
        route.close()
        if bar is not None:
            bar.close()


def _smtp_run(mode: str, host: str, port: int, n: int, connections: int, rtt: float | None,
              progress: bool) -> pd.DataFrame:
    _check_n(n)
    _check_n(connections, "connections")
    route = _Route(host, port, rtt, "smtp")
    bar = _bar(progress, n, MODES[mode])
    try:
        lat, run_s = _run(_smtp_parallel(route.host, route.port, n, connections, bar))
        return _frame(mode, rtt, lat, run_s, route, min(connections, n), n)
    finally:
        route.close()
        if bar is not None:
            bar.close()


def smtp_reused_connection(host: str, port: int, n: int = 50, *, rtt: float | None = None,
                           progress: bool = False) -> pd.DataFrame:
    """One connection (EHLO once, QUIT once) for all `n` messages. One row per message."""
    return _smtp_run("smtp_reused_connection", host, port, n, 1, rtt, progress)


def smtp_parallel(host: str, port: int, n: int = 50, *, connections: int = 4, rtt: float | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """`connections` reused connections sending `n` messages between them at the same time."""
    return _smtp_run("smtp_parallel", host, port, n, connections, rtt, progress)


# --------------------------------------------------------------------------- REST


def _client(base_url: str, target: RestTarget, *, keepalive: bool = True, connections: int = 1) -> httpx.AsyncClient:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections if keepalive else 0)
    return httpx.AsyncClient(base_url=base_url, headers=target.headers, limits=limits, timeout=30)


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        hint = ("the provider rate-limits per grant: start it with a higher rate_limit for benchmarks"
                if response.status_code == 429 else "see the provider's error message")
        raise InvalidInput(what, f"the provider answered HTTP {response.status_code}: {response.text.strip()[:300]}",
                           fix=hint)


async def _rest(base_url: str, target: RestTarget, n: int, concurrency: int, keepalive: bool,
                bar: Any) -> tuple[list[float], float]:
    lat: list[float] = [0.0] * n
    gate = asyncio.Semaphore(concurrency)
    async with _client(base_url, target, keepalive=keepalive, connections=concurrency) as client:

        async def one(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                response = await client.post(target.send_path, json=_payload(i))
                lat[i] = time.perf_counter() - t0
                _raise_for(response, "send")
                _tick(bar)

        started = time.perf_counter()
        if concurrency == 1:
            for i in range(n):
                await one(i)
        else:
            await asyncio.gather(*(one(i) for i in range(n)))
        return lat, time.perf_counter() - started


def _rest_run(mode: str, target: RestTarget, n: int, concurrency: int, keepalive: bool, rtt: float | None,
              progress: bool) -> pd.DataFrame:
    from urllib.parse import urlsplit

    _check_n(n)
    _check_n(concurrency, "concurrency")
    parts = urlsplit(target.url)
    route = _Route(parts.hostname or "127.0.0.1", parts.port or 80, rtt, "http")
    bar = _bar(progress, n, MODES[mode])
    try:
        lat, run_s = _run(_rest(f"http://{route.host}:{route.port}", target, n, concurrency, keepalive, bar))
        return _frame(mode, rtt, lat, run_s, route, n if not keepalive else min(concurrency, n), n)
    finally:
        route.close()
        if bar is not None:
            bar.close()


def rest_single(target: RestTarget, n: int = 50, *, rtt: float | None = None, progress: bool = False) -> pd.DataFrame:
    """`n` sends, one after another, on one keep-alive HTTP connection."""
    return _rest_run("rest_single", target, n, 1, True, rtt, progress)


def rest_new_connection(target: RestTarget, n: int = 50, *, rtt: float | None = None,
                        progress: bool = False) -> pd.DataFrame:
    """`n` sends, one after another, each on a new TCP connection (no keep-alive)."""
    return _rest_run("rest_new_connection", target, n, 1, False, rtt, progress)


def rest_concurrent(target: RestTarget, n: int = 50, *, concurrency: int = 8, rtt: float | None = None,
                    progress: bool = False) -> pd.DataFrame:
    """`n` sends with up to `concurrency` requests in flight (as many keep-alive connections)."""
    return _rest_run("rest_concurrent", target, n, concurrency, True, rtt, progress)


async def _rest_batch(base_url: str, target: RestTarget, n: int, batch_size: int,
                      bar: Any) -> tuple[list[float], float]:
    lat: list[float] = []
    async with _client(base_url, target) as client:
        started = time.perf_counter()
        for first in range(0, n, batch_size):
            chunk = [_payload(i) for i in range(first, min(first + batch_size, n))]
            t0 = time.perf_counter()
            response = await client.post(target.batch_path, json={"messages": chunk})
            took = time.perf_counter() - t0
            if response.status_code in (404, 405):
                raise InvalidInput("rest_batch", f"the provider has no POST {target.batch_path} endpoint "
                                   f"(HTTP {response.status_code})",
                                   fix="use a provider with the batch endpoint, or leave rest_batch out of modes")
            _raise_for(response, "send-batch")
            results = response.json().get("data") or []
            failed = [r for r in results if not isinstance(r, dict) or "error" in r]
            if len(results) != len(chunk) or failed:
                raise InvalidInput("send-batch", f"{len(failed)} of {len(chunk)} messages failed: {failed[:1]}",
                                   fix="read the per-message errors in the batch response")
            lat.extend([took] * len(chunk))  # each message waited for the whole batch
            _tick(bar, len(chunk))
        return lat, time.perf_counter() - started


def rest_batch(target: RestTarget, n: int = 50, *, batch_size: int = 100, rtt: float | None = None,
               progress: bool = False) -> pd.DataFrame:
    """`n` messages through ``POST …/messages/send-batch``, up to `batch_size` per request."""
    from urllib.parse import urlsplit

    _check_n(n)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 100:
        raise InvalidInput("batch_size", f"{batch_size!r} is not between 1 and 100",
                           fix="the batch endpoint takes at most 100 messages per request")
    parts = urlsplit(target.url)
    route = _Route(parts.hostname or "127.0.0.1", parts.port or 80, rtt, "http")
    bar = _bar(progress, n, MODES["rest_batch"])
    try:
        lat, run_s = _run(_rest_batch(f"http://{route.host}:{route.port}", target, n, batch_size, bar))
        return _frame("rest_batch", rtt, lat, run_s, route, 1, n)
    finally:
        route.close()
        if bar is not None:
            bar.close()


# --------------------------------------------------------------------------- servers for a run


#: Provider settings for measuring: no rate limit worth the name, no background polling.
PROVIDER_OPTIONS: dict[str, Any] = {"rate_limit": 1_000_000.0, "poll_interval": None}


def rest_target(provider: Provider, email: str = "bench@example.com") -> RestTarget:
    """Where REST sends go on `provider`: its URL, API key and a grant for `email` (made once)."""
    grant = provider.create_grant(email)
    return RestTarget(provider.url, provider.api_key, grant.id)


# --------------------------------------------------------------------------- summaries


def summarize(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, rtt_ms): messages, msgs_per_s, p50/p95 latency, round trips and bytes per message."""
    import pandas as pd

    rows = []
    for (mode, rtt), group in samples.groupby(["mode", "rtt_ms"], dropna=False, sort=False):
        n = int(group["messages"].iloc[0])
        run_s = float(group["run_s"].iloc[0])
        rows.append({
            "mode": mode, "how": MODES.get(str(mode), str(mode)), "rtt_ms": rtt, "messages": n,
            "msgs_per_s": n / run_s if run_s > 0 else math.nan,
            "p50_ms": float(group["latency_ms"].median()), "p95_ms": percentile(list(group["latency_ms"]), 95),
            "round_trips_per_msg": float(group["round_trips_per_msg"].iloc[0]),
            "bytes_per_msg": float(group["bytes_per_msg"].iloc[0]),
            "connections": int(group["connections"].iloc[0]),
        })
    order = {m: i for i, m in enumerate(MODES)}
    out = pd.DataFrame(rows)
    out["_o"] = out["mode"].map(lambda m: order.get(m, 99))
    return out.sort_values(["rtt_ms", "_o"], na_position="first").drop(columns="_o").reset_index(drop=True)


def round_trips(summary: pd.DataFrame, *, recipients: int = 1, batch_size: int = 100) -> pd.DataFrame:
    """Round trips per message counted on the wire beside each protocol's minimum.

    Minimums count application round trips from the server's greeting (SMTP) or the first
    request (HTTP); the TCP handshake (one more round trip per new connection, plus one or
    two for TLS) is listed apart (the wiretap charges it in the timings: one RTT per connection).
    SMTP without PIPELINING: EHLO, MAIL, one RCPT per recipient, DATA, the content, QUIT =
    N + 5 on a new connection, N + 3 per message on a reused one. With PIPELINING (RFC 2920)
    MAIL, the RCPTs and DATA go as one group: 2 per message, plus EHLO and QUIT, which stay
    serial (4 on a new connection) — but neither aiosmtplib nor Mailpit pipeline.
    """
    import pandas as pd

    n = recipients
    minimum = {  # (without pipelining, with pipelining, TCP handshakes) per message
        "smtp_new_connection": (n + 5, 4, 1.0),
        "smtp_reused_connection": (n + 3, 2, 0.0),
        "smtp_parallel": (n + 3, 2, 0.0),
        "rest_new_connection": (1, 1, 1.0),
        "rest_single": (1, 1, 0.0),
        "rest_concurrent": (1, 1, 0.0),
    }
    counted = summary.dropna(subset=["round_trips_per_msg"])
    rows = []
    for mode, group in counted.groupby("mode", sort=False):
        if mode == "rest_batch":  # one request per batch: what that is per message depends on the run's size
            per_run = [math.ceil(m / batch_size) / m for m in group["messages"]]
            lo = piped = float(statistics.median(per_run))
            handshake = 0.0
        else:
            lo, piped, handshake = minimum.get(str(mode), (math.nan, math.nan, math.nan))
        rows.append({"mode": mode, "how": MODES.get(str(mode), str(mode)),
                     "counted_per_msg": round(float(group["round_trips_per_msg"].median()), 3),
                     "protocol_minimum": lo, "minimum_with_pipelining": piped if str(mode).startswith("smtp") else lo,
                     "tcp_handshakes_per_msg": handshake})
    return pd.DataFrame(rows).set_index("mode")


def compare(smtp: tuple[str, int], rest: RestTarget, n: int = 20, *,
            rtts: Iterable[float | None] = (None, 0.01, 0.04, 0.1), connections: int = 4, concurrency: int = 8,
            batch_size: int = 100, modes: Iterable[str] | None = None, progress: bool = True) -> pd.DataFrame:
    """Measure every mode in `modes` (default all of `MODES`) at every RTT; the per-message samples.

    `rtts` are seconds of simulated round-trip time; None means a direct loopback connection
    (no wiretap: the fastest path, round trips not counted); 0.0 means through the wiretap
    with no delay (round trips counted).
    """
    import pandas as pd

    chosen = list(modes) if modes is not None else list(MODES)
    unknown = [m for m in chosen if m not in MODES]
    if unknown:
        raise InvalidInput("modes", f"{unknown[0]!r} is not a mode", fix=f"use some of {', '.join(MODES)}")
    host, port = smtp
    runners: dict[str, Callable[[float | None], pd.DataFrame]] = {
        "smtp_new_connection": lambda r: smtp_new_connection(host, port, n, rtt=r),
        "smtp_reused_connection": lambda r: smtp_reused_connection(host, port, n, rtt=r),
        "smtp_parallel": lambda r: smtp_parallel(host, port, n, connections=connections, rtt=r),
        "rest_new_connection": lambda r: rest_new_connection(rest, n, rtt=r),
        "rest_single": lambda r: rest_single(rest, n, rtt=r),
        "rest_concurrent": lambda r: rest_concurrent(rest, n, concurrency=concurrency, rtt=r),
        "rest_batch": lambda r: rest_batch(rest, n, batch_size=batch_size, rtt=r),
    }
    plan = [(m, r) for r in rtts for m in chosen]
    bar = _bar(progress, len(plan), "compare", unit="run")
    frames = []
    try:
        for mode, rtt in plan:
            if bar is not None:
                bar.set_postfix_str(f"{mode} @ {'direct' if rtt is None else f'{rtt * 1000:g} ms'}")
            frames.append(runners[mode](rtt))
            _tick(bar)
    finally:
        if bar is not None:
            bar.close()
    return pd.concat(frames, ignore_index=True)


def _pick(summary: pd.DataFrame, mode: str, rtt_ms: float | None, column: str) -> float:
    rows = summary[(summary["mode"] == mode)
                   & (summary["rtt_ms"].isna() if rtt_ms is None else summary["rtt_ms"] == rtt_ms)]
    return float(rows[column].iloc[0]) if len(rows) else math.nan


def _rate(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def conclusions(summary: pd.DataFrame) -> list[str]:
    """Sentences that follow from the measured `summary` (they change when the numbers do).

    One group per simulated RTT; the 0 ms proxy runs are left out when direct loopback runs exist.
    """
    out: list[str] = []
    rtts = [None if math.isnan(r) else float(r) for r in summary["rtt_ms"].astype(float).drop_duplicates()]
    if None in rtts and 0.0 in rtts:  # the proxy at 0 ms only repeats the direct loopback story
        rtts.remove(0.0)

    def label(r: float | None) -> str:
        return "on direct loopback" if r is None else (f"at {r:g} ms RTT" if r else "through the proxy at 0 ms")

    # C09: one message — a new SMTP connection vs one API call (a new HTTP connection).
    for r in rtts:
        smtp = _pick(summary, "smtp_new_connection", r, "p50_ms")
        rest = _pick(summary, "rest_new_connection", r, "p50_ms")
        if math.isnan(rest):
            rest = _pick(summary, "rest_single", r, "p50_ms")
        if math.isnan(smtp) or math.isnan(rest):
            continue
        if smtp > rest:
            out.append(f"C09 holds {label(r)}: one message over a new SMTP connection took {smtp:.1f} ms (median), "
                       f"one REST call {rest:.1f} ms — SMTP {smtp / rest:.1f}× slower.")
        else:
            out.append(f"C09 does not hold {label(r)}: one message over a new SMTP connection took {smtp:.1f} ms "
                       f"(median), one REST call {rest:.1f} ms — SMTP was {'as fast' if smtp == rest else 'faster'}.")
    # C08 / C19: bulk — reuse, pools, concurrency and batching.
    for r in rtts:
        new = _pick(summary, "smtp_new_connection", r, "msgs_per_s")
        reused = _pick(summary, "smtp_reused_connection", r, "msgs_per_s")
        pooled = _pick(summary, "smtp_parallel", r, "msgs_per_s")
        pool = _pick(summary, "smtp_parallel", r, "connections")
        single = _pick(summary, "rest_single", r, "msgs_per_s")
        concurrent = _pick(summary, "rest_concurrent", r, "msgs_per_s")
        batch = _pick(summary, "rest_batch", r, "msgs_per_s")
        if not math.isnan(new) and not math.isnan(reused):
            line = (f"C19 {label(r)}: reusing one SMTP connection sent {_rate(reused)} msg/s against {_rate(new)} "
                    f"msg/s with a new connection per message ({reused / new:.1f}×)")
            if not math.isnan(pooled):
                line += f"; {pool:.0f} parallel connections sent {_rate(pooled)} msg/s ({pooled / new:.1f}×)"
            out.append(line + ".")
        if not math.isnan(reused) and not math.isnan(single):
            verdict = "holds" if reused > single else "does not hold"
            out.append(f"C08 {verdict} {label(r)}: a reused SMTP connection sent {_rate(reused)} msg/s, "
                       f"one-at-a-time REST requests {_rate(single)} msg/s.")
        if not math.isnan(pooled) and not math.isnan(concurrent):
            word = "more" if concurrent > pooled else "fewer"
            out.append(f"C08 {label(r)}, both sides concurrent: REST requests in parallel sent {_rate(concurrent)} "
                       f"msg/s, {word} than parallel SMTP connections ({_rate(pooled)} msg/s).")
        if not math.isnan(batch) and not math.isnan(reused):
            word = "faster than" if batch > reused else "slower than"
            out.append(f"C08 {label(r)}: the REST batch endpoint sent {_rate(batch)} msg/s, {word} the reused SMTP "
                       f"connection ({_rate(reused)} msg/s).")
    return out


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emailkit.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=2000, help="messages to ingest per server (default 2000)")
    parser.add_argument("--mailbox", type=int, default=5000, help="mailbox size for the read timings (default 5000)")
    parser.add_argument("--calls", type=int, default=100, help="list and search calls to time (default 100)")
    parser.add_argument("--skip-servers", action="store_true", help="skip the sandbox/Mailpit/sink comparison")
    parser.add_argument("--backend", default="auto", choices=("auto", "external", "mailpit", "sandbox"),
                        help="the mailbox behind SMTP-vs-REST (default auto: MAILPIT_URL, a mailpit binary, sandbox)")
    parser.add_argument("--sends", type=int, default=200,
                        help="messages per mode on direct loopback (default 200)")
    parser.add_argument("--rtt-sends", type=int, default=20,
                        help="messages per mode at each simulated RTT (default 20)")
    parser.add_argument("--rtts", default="0,10,40,100",
                        help="simulated RTTs in ms, comma-separated (default 0,10,40,100)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"ways of sending to measure (default all: "
                        f"{','.join(MODES)})")
    parser.add_argument("--record", action="store_true", help="save the headline figures with emailkit.evidence")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    try:
        rtts = [float(x) / 1000 for x in args.rtts.split(",") if x.strip()]
    except ValueError:
        parser.error("--rtts: write milliseconds separated by commas, e.g. 0,10,40,100")

    import pandas as pd

    from . import ingest as servers_ingest
    from .stack import Stack

    if not args.skip_servers:
        print(f"SMTP ingest of {args.messages} ~1 KB messages, each server in its own process with a database "
              f"file (Mailpit's README claims 200-300 messages/s for real Mailpit):")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            table = servers_ingest.ingest_table(args.messages, parallel=4)
            print(table.drop(columns=["what"]).round(2).to_string())
            reads = servers_ingest.read_latency_table(args.mailbox, calls=args.calls)
            print(f"\nReads on a {args.mailbox:,}-message mailbox (GET /api/v1/messages, 50 newest; "
                  f"GET /api/v1/search?query=to:inbox3@example.com), {args.calls} calls each, in ms:")
            print(reads.drop(columns=["what"]).round(2).to_string())
        print()

    with Stack(args.backend, provider=True, provider_options=PROVIDER_OPTIONS, max_messages=0, pop3=False,
               chaos=False) as stack:
        box = stack.mailbox
        print(f"SMTP against REST, on the {box.label}:")
        rest = rest_target(stack.provider)
        smtp = (box.smtp_host, box.smtp_port)
        loopback = compare(smtp, rest, args.sends, rtts=[None], modes=modes)
        delayed = compare(smtp, rest, args.rtt_sends, rtts=rtts, modes=modes)
    summary = summarize(pd.concat([loopback, delayed], ignore_index=True))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("\nSending ~1 KB messages, seven ways (rtt_ms NaN = direct loopback, no proxy):")
        print(summary.drop(columns=["how"]).round(2).to_string(index=False))
        print("\nRound trips per message, counted on the wire vs the protocol minimum:")
        print(round_trips(summary).drop(columns=["how"]).to_string())
    print()
    for line in conclusions(summary):
        print(f"* {line}")
    if args.record:
        record_evidence(summary, source="emailkit.bench")
    return 0


def record_evidence(summary: pd.DataFrame, *, source: str) -> list[str]:
    """Save the headline figures of `summary` with `emailkit.evidence`; returns the keys saved.

    Loopback figures come from the direct runs (rtt_ms NaN), the 40 ms ones from rtt_ms 40.
    """
    from . import evidence

    saved: list[str] = []

    def put(key: str, mode: str, rtt: float | None, column: str, unit: str, detail: str) -> None:
        value = _pick(summary, mode, rtt, column)
        if not math.isnan(value):
            evidence.record(key, value, unit, source=source, detail=detail)
            saved.append(key)

    put("smtp.new_connection_msgs_per_s", "smtp_new_connection", None, "msgs_per_s", "msg/s", "direct loopback")
    put("smtp.reused_connection_msgs_per_s", "smtp_reused_connection", None, "msgs_per_s", "msg/s", "direct loopback")
    put("rest.single_msgs_per_s", "rest_single", None, "msgs_per_s", "msg/s", "keep-alive, direct loopback")
    put("rest.batch_msgs_per_s", "rest_batch", None, "msgs_per_s", "msg/s", "direct loopback")
    put("smtp.parallel_msgs_per_s", "smtp_parallel", None, "msgs_per_s", "msg/s", "direct loopback")
    put("smtp.reused_connection_msgs_per_s_at_40ms_rtt", "smtp_reused_connection", 40.0, "msgs_per_s", "msg/s",
        "wiretap rtt=40 ms")
    put("rest.single_msgs_per_s_at_40ms_rtt", "rest_single", 40.0, "msgs_per_s", "msg/s", "keep-alive, wiretap rtt=40 ms")
    put("rest.batch_msgs_per_s_at_40ms_rtt", "rest_batch", 40.0, "msgs_per_s", "msg/s", "wiretap rtt=40 ms")
    put("smtp.send_p50_ms", "smtp_new_connection", None, "p50_ms", "ms", "direct loopback")
    put("rest.send_p50_ms", "rest_new_connection", None, "p50_ms", "ms", "new connection, direct loopback")
    put("smtp.send_p50_ms_at_40ms_rtt", "smtp_new_connection", 40.0, "p50_ms", "ms", "wiretap rtt=40 ms")
    put("rest.send_p50_ms_at_40ms_rtt", "rest_new_connection", 40.0, "p50_ms", "ms", "wiretap rtt=40 ms")
    new = _pick(summary, "smtp_new_connection", None, "msgs_per_s")
    reused = _pick(summary, "smtp_reused_connection", None, "msgs_per_s")
    if new > 0 and not math.isnan(reused):
        evidence.record("smtp.pooled_speedup", reused / new, "x", source=source, detail="direct loopback")
        saved.append("smtp.pooled_speedup")
    return saved


if __name__ == "__main__":
    sys.exit(main())
