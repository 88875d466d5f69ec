"""What the REST hop costs: provider send latency and throughput beside a direct SMTP send, same run.

    from emailkit.provider.bench import measure_provider_send
    measure_provider_send(n=200)   # starts its own sandbox + provider when given none

Both paths end in the same SMTP server over one reused session, so the difference is the
HTTP request, the JSON checks, building the MIME message, indexing and the webhook queue.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from emailkit.background import BackgroundLoop
from emailkit.message import compose
from emailkit.smtp import Connection

__all__ = ["measure_provider_send"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1] if len(ordered) > 1 else ordered[0]


def _summary(prefix: str, seconds: list[float], wall: float) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        f"{prefix}_p50_ms": round(_percentile(ms, 50), 3),
        f"{prefix}_p95_ms": round(_percentile(ms, 95), 3),
        f"{prefix}_msgs_per_s": round(len(seconds) / wall, 1),
    }


def measure_provider_send(n: int = 200, *, provider: Any = None, warmup: int = 10) -> dict[str, float]:
    """Send `n` messages through the provider's REST API and `n` straight over SMTP; return the figures.

    Keys: ``provider_send_p50_ms``, ``provider_send_p95_ms``, ``provider_send_msgs_per_s``,
    ``smtp_send_p50_ms``, ``smtp_send_p95_ms``, ``smtp_send_msgs_per_s`` (one reused SMTP
    session, as the provider uses), ``overhead_p50_ms`` (provider p50 − SMTP p50) and ``n``.
    `provider` is a started `Provider`; without one, a sandbox and a provider are started
    (and stopped) for the measurement.
    """
    if n < 2:
        raise ValueError("n must be at least 2 to give percentiles")
    owned: list[Any] = []
    if provider is None:
        from emailkit.provider.server import Provider
        from emailkit.sandbox import Sandbox

        box = Sandbox().start()
        owned.append(box)
        provider = Provider(box.api_url, box.smtp_host, box.smtp_port, rate_limit=1e6).start()
        owned.append(provider)
    loop = BackgroundLoop(name="bench-provider-send")
    try:
        grant = provider.create_grant("bench-sender@example.com")
        url = f"{provider.url}/v3/grants/{grant.id}/messages/send"
        headers = {"Authorization": f"Bearer {provider.api_key}"}

        def payload(i: int) -> dict[str, Any]:
            return {"to": [{"email": "bench-rcpt@example.com"}], "subject": f"bench {i}", "body": "<p>bench</p>"}

        rest: list[float] = []
        with httpx.Client(headers=headers, timeout=30) as http:
            for i in range(warmup):
                http.post(url, json=payload(i)).raise_for_status()
            start = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                http.post(url, json=payload(i)).raise_for_status()
                rest.append(time.perf_counter() - t)
            rest_wall = time.perf_counter() - start

        async def direct() -> tuple[list[float], float]:
            times: list[float] = []
            async with Connection(provider.smtp_host, provider.smtp_port) as smtp:
                for i in range(warmup):
                    await smtp.send(compose(sender=grant.email, to=["bench-rcpt@example.com"], subject=f"w {i}",
                                            html="<p>bench</p>"))
                begin = time.perf_counter()
                for i in range(n):
                    t = time.perf_counter()
                    await smtp.send(compose(sender=grant.email, to=["bench-rcpt@example.com"], subject=f"bench {i}",
                                            html="<p>bench</p>"))
                    times.append(time.perf_counter() - t)
                return times, time.perf_counter() - begin

        smtp_times, smtp_wall = loop.run(direct(), timeout=600)
    finally:
        loop.close()
        for thing in reversed(owned):
            thing.close()
    out: dict[str, float] = {"n": n}
    out.update(_summary("provider_send", rest, rest_wall))
    out.update(_summary("smtp_send", smtp_times, smtp_wall))
    out["overhead_p50_ms"] = round(out["provider_send_p50_ms"] - out["smtp_send_p50_ms"], 3)
    return out
