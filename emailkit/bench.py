"""Measured comparisons, printed as figures and returned as pandas DataFrames.

`python -m emailkit.bench` (or `make bench`) measures, on this machine, in one run:

* sandbox SMTP ingest over ONE reused connection (default 2,000 messages of about 1 KB),
  in messages per second — Mailpit's README claims 200–300/s for the real thing;
* REST list latency of the sandbox's `GET /api/v1/messages` (p50/p95 over repeated calls).

Timings are measurements, never assertions: the machines are shared and noisy, so compare
figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from .message import compose
from .smtp import Connection

__all__ = ["api_list_latency", "ingest", "main", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _one_kb_messages(n: int) -> list[Any]:
    body = ("The quick brown fox jumps over the lazy dog. " * 20)[:760]
    return [
        compose(sender="bench@example.com", to=[f"inbox{i % 7}@example.com"], subject=f"bench {i}", text=body)
        for i in range(n)
    ]


async def _ingest(host: str, port: int, n: int, progress: bool) -> dict[str, float]:
    messages = _one_kb_messages(n)
    size = sum(len(m.as_bytes()) for m in messages) / n
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="SMTP ingest", unit="msg", leave=False)
    started = time.perf_counter()
    async with Connection(host, port, timeout=30) as smtp:
        for message in messages:
            await smtp.send(message)
            if bar is not None:
                bar.update()
    elapsed = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return {"messages": n, "avg_message_bytes": round(size), "seconds": elapsed, "messages_per_s": n / elapsed}


def ingest(host: str, port: int, n: int = 2000, *, progress: bool = True) -> dict[str, float]:
    """Send `n` ~1 KB messages over one reused SMTP connection; return the rate."""
    return asyncio.run(_ingest(host, port, n, progress))


def api_list_latency(api_url: str, *, calls: int = 200, limit: int = 50) -> dict[str, float]:
    """Time `GET /api/v1/messages?limit=…` `calls` times on one keep-alive connection."""
    from .mailpit import Mailpit

    samples = []
    with Mailpit(api_url) as client:
        client.messages(limit=limit)  # warm up the connection
        for _ in range(calls):
            started = time.perf_counter()
            client.messages(limit=limit)
            samples.append((time.perf_counter() - started) * 1000)
    return {
        "calls": calls,
        "limit": limit,
        "p50_ms": statistics.median(samples),
        "p95_ms": percentile(samples, 95),
        "max_ms": max(samples),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emailkit.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=2000, help="messages to ingest (default 2000)")
    parser.add_argument("--calls", type=int, default=200, help="API list calls to time (default 200)")
    args = parser.parse_args(argv)

    from .sandbox import Sandbox

    with Sandbox(max_messages=0) as sandbox:
        rate = ingest(sandbox.smtp_host, sandbox.smtp_port, args.messages)
        from .mailpit import Mailpit

        with Mailpit(sandbox.api_url) as client:
            stored = int(client.info()["Messages"])
        latency = api_list_latency(sandbox.api_url, calls=args.calls)
    print(f"Sandbox SMTP ingest, one reused connection: {rate['messages']} messages of ~{rate['avg_message_bytes']} B "
          f"in {rate['seconds']:.2f} s = {rate['messages_per_s']:.0f} messages/s (stored: {stored})")
    print(f"  (Mailpit's README claims 200-300 messages/s for the real Mailpit)")
    print(f"Sandbox API GET /api/v1/messages?limit={latency['limit']} over {latency['calls']} calls: "
          f"p50 {latency['p50_ms']:.2f} ms, p95 {latency['p95_ms']:.2f} ms, max {latency['max_ms']:.2f} ms")
    return 0 if stored == rate["messages"] else 1


if __name__ == "__main__":
    sys.exit(main())
