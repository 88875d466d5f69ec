"""Measured comparisons of sending over SMTP and over a REST API, as pandas DataFrames.

`python -m emailkit.bench` (or `make bench`) measures, on this machine, in one run: SMTP ingest into
the sandbox, real Mailpit and a bare sink (`emailkit.ingest`); then the same ~1 KB message sent every
way in `MODES` — SMTP plain (the baseline), with STARTTLS + AUTH and with implicit TLS + AUTH; the
provider's REST API over plain HTTP/1.1 (the baseline), HTTPS/1.1 and HTTPS/2 — at loopback and at
simulated round-trip times, with the round trips counted on the wire, TLS handshakes included.

Every server runs in its own process (`BenchServers`: the mailbox server, the provider under hypercorn),
so do the proxies that simulate the network (`emailkit.bench.network`); every TLS client verifies one
local CA. `summarize()` gives throughput with a 95 % bootstrap interval and latency p10/p50/p90,
`round_trips()` the wire counts beside each protocol's minimum, `verdicts()` each claim at each condition
with its ratio and interval. Timings are measurements, never assertions: compare them as ratios
within one run.

Modules: `runs` (the ways of sending), `servers` (the processes), `network` (the proxies' process),
`summary` (tables, intervals, verdicts), `published` (figures from elsewhere, not measured here), `cli`.
"""

from __future__ import annotations

from .cli import main
from .published import PUBLISHED, published
from .runs import (
    MODE_INFO,
    MODES,
    Mode,
    compare,
    rest_batch,
    rest_concurrent,
    rest_new_connection,
    rest_single,
    run_mode,
    smtp_new_connection,
    smtp_parallel,
    smtp_reused_connection,
)
from .servers import PROVIDER_OPTIONS, BenchServers, RestTarget
from .summary import (
    CLAIM_TESTS,
    ClaimTest,
    bootstrap,
    bootstrap_ratio,
    conclusions,
    judge,
    percentile,
    record_evidence,
    round_trips,
    summarize,
    throughput,
    time_per_message,
    verdicts,
)

__all__ = [
    "CLAIM_TESTS",
    "MODES",
    "MODE_INFO",
    "PROVIDER_OPTIONS",
    "PUBLISHED",
    "BenchServers",
    "ClaimTest",
    "Mode",
    "RestTarget",
    "bootstrap",
    "bootstrap_ratio",
    "compare",
    "conclusions",
    "judge",
    "main",
    "percentile",
    "published",
    "record_evidence",
    "rest_batch",
    "rest_concurrent",
    "rest_new_connection",
    "rest_single",
    "rest_target",
    "round_trips",
    "run_mode",
    "smtp_new_connection",
    "smtp_parallel",
    "smtp_reused_connection",
    "summarize",
    "throughput",
    "time_per_message",
    "verdicts",
]


def rest_target(provider: object, email: str = "bench@example.com") -> RestTarget:
    """Where REST sends go on an in-process `Provider`: its URL, API key and a grant for `email` (made once)."""
    grant = provider.create_grant(email)  # type: ignore[attr-defined]
    return RestTarget(provider.url, provider.api_key, grant.id)  # type: ignore[attr-defined]
