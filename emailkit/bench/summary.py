"""From per-message samples to tables with intervals, the round-trip table and the verdicts.

* `summarize()` — one row per (mode, RTT): messages, throughput with a 95 % bootstrap interval, and
  latency p10 / p50 / p90 (with a bootstrap interval on the median).
* `round_trips()` — round trips per message counted on the wire beside each protocol's minimum,
  TLS handshakes included.
* `verdicts()` — each claim (C07, C08, C09, C19) at each condition: the ratio that tests it, its
  95 % bootstrap interval and "holds", "reverses" or "no clear difference".

Intervals come from resampling the messages of one run (`bootstrap`, seeded, so a table does not change
when it is re-drawn). They show message-to-message spread within a run; run-to-run spread on a
shared machine can be larger, so a verdict is a statement about this run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .runs import MODE_INFO, MODES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CLAIM_TESTS",
    "ClaimTest",
    "EVIDENCE_FROM_VERDICTS",
    "MARGIN",
    "bootstrap",
    "bootstrap_ratio",
    "conclusions",
    "condition_label",
    "judge",
    "percentile",
    "record_evidence",
    "round_trips",
    "summarize",
    "throughput",
    "time_per_message",
    "verdicts",
]

#: A ratio counts as a difference only when its interval excludes 1 and it is at least this far from 1.
MARGIN = 1.10
_RESAMPLES = 2000
_SEED = 20261201


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _stat(name: str) -> Callable[..., Any]:
    import numpy as np

    return {"median": np.median, "mean": np.mean}[name]


def bootstrap(values: Sequence[float], stat: str = "median", *, level: float = 0.95,
              resamples: int = _RESAMPLES, seed: int = _SEED) -> tuple[float, float, float]:
    """(estimate, low, high): `stat` ("median" or "mean") of `values` and its percentile bootstrap interval."""
    import numpy as np

    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    f = _stat(stat)
    rng = np.random.default_rng(seed)
    draws = f(x[rng.integers(0, x.size, (resamples, x.size))], axis=1)
    tail = (1 - level) / 2 * 100
    return float(f(x)), float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def bootstrap_ratio(top: Sequence[float], bottom: Sequence[float], stat: str = "median", *, level: float = 0.95,
                    resamples: int = _RESAMPLES, seed: int = _SEED) -> tuple[float, float, float]:
    """(ratio, low, high): stat(top) / stat(bottom) with a percentile bootstrap interval (independent resamples)."""
    import numpy as np

    a = np.asarray([v for v in top if not math.isnan(v)], dtype=float)
    b = np.asarray([v for v in bottom if not math.isnan(v)], dtype=float)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan
    f = _stat(stat)
    if float(f(b)) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    da = f(a[rng.integers(0, a.size, (resamples, a.size))], axis=1)
    db = f(b[rng.integers(0, b.size, (resamples, b.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = da / db
    ratios = ratios[np.isfinite(ratios)]
    tail = (1 - level) / 2 * 100
    return float(f(a) / f(b)), float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))


def time_per_message(latency_ms: Sequence[float], in_flight: int | Sequence[int] = 1) -> np.ndarray:
    """Each message's share of the run's time: its latency ÷ the messages under way with it.

    By Little's law a run's throughput is (messages under way) ÷ (mean latency), so the mean of these
    shares is the time per message; resampling them gives the throughput's interval (a pool of 4
    connections with 40 ms per message costs 10 ms per message).
    """
    import numpy as np

    return np.asarray(latency_ms, dtype=float) / np.asarray(in_flight, dtype=float)


def throughput(done_ms: Sequence[float]) -> float:
    """Messages per second observed: messages ÷ time from the run's start to the last message accepted."""
    last = max(done_ms) if len(done_ms) else 0.0
    return 1000 * len(done_ms) / last if last > 0 else math.nan


def _shares(group: pd.DataFrame) -> list[float]:
    flight = group["in_flight"] if "in_flight" in group else 1
    return list(time_per_message(list(group["latency_ms"]), list(flight) if not isinstance(flight, int) else 1))


def summarize(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, rtt_ms): throughput with its 95 % interval, latency p10/p50/p90, the wire counts."""
    import pandas as pd

    rows = []
    for (mode, rtt), group in samples.groupby(["mode", "rtt_ms"], dropna=False, sort=False):
        n = len(group)
        rate = throughput(list(group["done_ms"]))
        mean_share, share_lo, share_hi = bootstrap(_shares(group), "mean")
        latency = list(group["latency_ms"])
        p50, p50_lo, p50_hi = bootstrap(latency, "median")
        info = MODE_INFO.get(str(mode))
        rows.append({
            "mode": mode, "how": MODES.get(str(mode), str(mode)), "path": group["path"].iloc[0],
            "security": group["security"].iloc[0] if "security" in group else "",
            "http": group["http"].iloc[0] if "http" in group else "",
            "rtt_ms": rtt, "messages": n,
            "msgs_per_s": rate,
            # the observed rate, spread as the mean time per message spreads when messages are resampled
            "msgs_per_s_lo": rate * mean_share / share_hi if share_hi > 0 else math.nan,
            "msgs_per_s_hi": rate * mean_share / share_lo if share_lo > 0 else math.inf,
            "p10_ms": percentile(latency, 10), "p50_ms": p50, "p90_ms": percentile(latency, 90),
            "p50_lo_ms": p50_lo, "p50_hi_ms": p50_hi,
            "round_trips_per_msg": float(group["round_trips_per_msg"].iloc[0]),
            "bytes_per_msg": float(group["bytes_per_msg"].iloc[0]),
            "connections": int(group["connections"].iloc[0]),
            "tls_version": group["tls_version"].iloc[0] if "tls_version" in group else "",
            "http_version": group["http_version"].iloc[0] if "http_version" in group else "",
            "_o": list(MODES).index(str(mode)) if info else 99,
        })
    out = pd.DataFrame(rows)
    return out.sort_values(["rtt_ms", "_o"], na_position="first").drop(columns="_o").reset_index(drop=True)


# --------------------------------------------------------------------------- round trips


def _minimums(mode: str, recipients: int) -> tuple[float, float, float, float]:
    """(application minimum without pipelining, with pipelining, TLS handshake round trips, TCP handshakes)."""
    n = recipients
    table = {
        "smtp_new_connection": (n + 5, 4, 0, 1),
        "smtp_reused_connection": (n + 3, 2, 0, 0),
        "smtp_parallel": (n + 3, 2, 0, 0),
        # EHLO, STARTTLS, the TLS 1.3 handshake, EHLO again, AUTH, then as plain SMTP
        "starttls_new_connection": (n + 8, 7, 1, 1),
        "starttls_reused_connection": (n + 3, 2, 0, 0),
        "starttls_parallel": (n + 3, 2, 0, 0),
        # the TLS 1.3 handshake, EHLO, AUTH, then as plain SMTP (the greeting may ride the handshake)
        "smtps_new_connection": (n + 6, 5, 1, 1),
        "rest_new_connection": (1, 1, 0, 1),
        "rest_single": (1, 1, 0, 0),
        "rest_concurrent": (1, 1, 0, 0),
        "https_new_connection": (1, 1, 1, 1),
        "https_single": (1, 1, 0, 0),
        "https_concurrent": (1, 1, 0, 0),
        "h2_single": (1, 1, 0, 0),
        "h2_concurrent": (1, 1, 0, 0),
    }
    return table.get(mode, (math.nan, math.nan, math.nan, math.nan))


def round_trips(summary: pd.DataFrame, *, recipients: int = 1, batch_size: int = 100) -> pd.DataFrame:
    """Round trips per message counted on the wire beside each protocol's minimum, TLS included.

    The proxy counts a round trip each time the server speaks after the client: application turns and
    TLS handshake flights alike (the bytes are encrypted, the turns are not). The minimums count from
    the server's greeting (SMTP) or the first request (HTTP): SMTP without PIPELINING is EHLO, MAIL,
    one RCPT per recipient, DATA, the content, QUIT = N + 5 on a new connection and N + 3 per message
    on a reused one; STARTTLS adds STARTTLS, the TLS 1.3 handshake (1), a second EHLO and AUTH; implicit
    TLS adds the handshake and AUTH. With PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go as one group.
    HTTP is 1 per request; HTTPS on a new connection adds the TLS 1.3 handshake. The TCP handshake (one
    more per new connection, either protocol) is charged by the proxy's delay and listed apart. Counted
    figures on concurrent modes fall below 1: requests overlap, so one turn carries several.
    """
    import pandas as pd

    counted = summary.dropna(subset=["round_trips_per_msg"])
    rows = []
    for mode, group in counted.groupby("mode", sort=False):
        if mode == "rest_batch":  # one request per batch: per message it depends on the run's size
            per_run = [math.ceil(m / batch_size) / m for m in group["messages"]]
            app = piped = float(sum(per_run) / len(per_run))
            tls = tcp = 0.0
        else:
            app, piped, tls, tcp = _minimums(str(mode), recipients)
        rows.append({"mode": mode, "how": MODES.get(str(mode), str(mode)),
                     "counted_per_msg": round(float(group["round_trips_per_msg"].median()), 3),
                     "counted_min": round(float(group["round_trips_per_msg"].min()), 3),
                     "counted_max": round(float(group["round_trips_per_msg"].max()), 3),
                     "protocol_minimum": app, "minimum_with_pipelining": piped,
                     "tls_handshake_round_trips": tls, "tcp_handshakes_per_msg": tcp})
    return pd.DataFrame(rows).set_index("mode")


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class ClaimTest:
    """One ratio that tests a claim: `top` ÷ `bottom` on `metric`; above 1 means the claim holds."""

    claim: str
    comparison: str
    top: str
    bottom: str
    metric: str  # "latency" (median ms), "throughput" (msg/s) or "round_trips" (per connection, median)
    setting: str  # the security / HTTP version this row is about

    def describe(self) -> str:
        return f"{MODES[self.top]} vs {MODES[self.bottom]}"


#: The ratios the verdict table is built from, in the order it shows them.
CLAIM_TESTS: list[ClaimTest] = [
    ClaimTest("C07", "round trips for one message: SMTP on a new connection ÷ one REST call on a new connection",
              "smtp_new_connection", "rest_new_connection", "round_trips", "plain, HTTP/1.1"),
    ClaimTest("C07", "round trips for one message: SMTP on a new connection ÷ one REST call on a new connection",
              "starttls_new_connection", "https_new_connection", "round_trips", "STARTTLS + AUTH vs HTTPS/1.1"),
    ClaimTest("C07", "round trips for one message: SMTP on a new connection ÷ one REST call on a new connection",
              "smtps_new_connection", "https_new_connection", "round_trips", "implicit TLS + AUTH vs HTTPS/1.1"),
    ClaimTest("C09", "time for one message: SMTP on a new connection ÷ one REST call on a new connection",
              "smtp_new_connection", "rest_new_connection", "latency", "plain, HTTP/1.1"),
    ClaimTest("C09", "time for one message: SMTP on a new connection ÷ one REST call on a new connection",
              "starttls_new_connection", "https_new_connection", "latency", "STARTTLS + AUTH vs HTTPS/1.1"),
    ClaimTest("C09", "time for one message: SMTP on a new connection ÷ one REST call on a new connection",
              "smtps_new_connection", "https_new_connection", "latency", "implicit TLS + AUTH vs HTTPS/1.1"),
    ClaimTest("C08", "bulk throughput: one reused SMTP connection ÷ one request at a time on a kept connection",
              "smtp_reused_connection", "rest_single", "throughput", "plain, HTTP/1.1"),
    ClaimTest("C08", "bulk throughput: one reused SMTP connection ÷ one request at a time on a kept connection",
              "starttls_reused_connection", "https_single", "throughput", "STARTTLS + AUTH vs HTTPS/1.1"),
    ClaimTest("C08", "bulk throughput: one reused SMTP connection ÷ one request at a time on a kept connection",
              "starttls_reused_connection", "h2_single", "throughput", "STARTTLS + AUTH vs HTTPS/2"),
    ClaimTest("C08", "batches narrow it: the batch endpoint ÷ one request at a time (REST throughput)",
              "rest_batch", "rest_single", "throughput", "plain, HTTP/1.1"),
    ClaimTest("C19", "pools: parallel SMTP connections ÷ one SMTP connection (throughput)",
              "smtp_parallel", "smtp_reused_connection", "throughput", "plain"),
    ClaimTest("C19", "pools: parallel SMTP connections ÷ one SMTP connection (throughput)",
              "starttls_parallel", "starttls_reused_connection", "throughput", "STARTTLS + AUTH"),
    ClaimTest("C19", "multiplexing: concurrent HTTP/2 streams ÷ one request at a time, both on one connection",
              "h2_concurrent", "h2_single", "throughput", "HTTPS/2"),
    ClaimTest("C19", "one HTTP/2 connection ÷ a pool of SMTP connections (throughput)",
              "h2_concurrent", "starttls_parallel", "throughput", "HTTPS/2 vs STARTTLS + AUTH"),
]


def condition_label(rtt_ms: float) -> str:
    """'loopback' (no proxy), 'proxy, 0 ms' or '40 ms RTT'."""
    if rtt_ms is None or (isinstance(rtt_ms, float) and math.isnan(rtt_ms)):
        return "loopback"
    return "proxy, 0 ms" if rtt_ms == 0 else f"{rtt_ms:g} ms RTT"


def judge(ratio: float, low: float, high: float, *, margin: float = MARGIN) -> str:
    """'holds' when the interval is above 1 and the ratio at least `margin`; 'reverses' the mirror; else none."""
    if any(math.isnan(x) for x in (ratio, low, high)):
        return "not measured"
    if low > 1 and ratio >= margin:
        return "holds"
    if high < 1 and ratio <= 1 / margin:
        return "reverses"
    return "no clear difference"


def _values(group: pd.DataFrame, metric: str) -> tuple[list[float], str]:
    if metric == "latency":
        return list(group["latency_ms"]), "median"
    if metric == "round_trips":
        return list(group["wire_round_trips"]), "median"
    return _shares(group), "mean"


def verdicts(samples: pd.DataFrame, tests: Sequence[ClaimTest] = tuple(CLAIM_TESTS)) -> pd.DataFrame:
    """Claim × condition: the ratio (top ÷ bottom, oriented so > 1 supports the claim), its interval, the verdict.

    Latency compares medians; throughput compares messages per second (the inverse ratio of mean time
    per message); round trips compare the per-connection counts of the proxy (no figure on loopback).
    """
    import pandas as pd

    rows = []
    seen = [float(r) for r in samples["rtt_ms"].tolist()]
    conditions = ([math.nan] if any(math.isnan(r) for r in seen) else []) + sorted(
        {r for r in seen if not math.isnan(r)})
    for test in tests:
        for rtt in conditions:
            at = samples[samples["rtt_ms"].isna()] if math.isnan(rtt) else samples[samples["rtt_ms"] == rtt]
            top, bottom = at[at["mode"] == test.top], at[at["mode"] == test.bottom]
            if top.empty or bottom.empty:
                continue
            a, stat = _values(top, test.metric)
            b, _ = _values(bottom, test.metric)
            if test.metric == "throughput":
                # the observed msg/s ratio, spread as the ratio of mean time per message (bottom ÷ top) spreads
                share, low, high = bootstrap_ratio(b, a, stat)
                ratio = throughput(list(top["done_ms"])) / throughput(list(bottom["done_ms"]))
                low, high = ratio * low / share, ratio * high / share
            else:
                ratio, low, high = bootstrap_ratio(a, b, stat)
            if math.isnan(ratio):
                continue
            rows.append({"claim": test.claim, "comparison": test.comparison, "setting": test.setting,
                         "condition": condition_label(rtt), "rtt_ms": rtt, "top": test.top, "bottom": test.bottom,
                         "ratio": ratio, "low": low, "high": high, "verdict": judge(ratio, low, high),
                         "n_top": len(top), "n_bottom": len(bottom)})
    columns = ["claim", "comparison", "setting", "condition", "rtt_ms", "top", "bottom", "ratio", "low", "high",
               "verdict", "n_top", "n_bottom"]
    return pd.DataFrame(rows, columns=columns)


def conclusions(table: pd.DataFrame) -> list[str]:
    """What the verdict table says that a glance at it might miss: where a verdict changes with the condition.

    One sentence per claim and setting whose verdict is not the same at every condition; a claim whose
    verdict is the same everywhere gets one sentence saying so. Built from `verdicts()` only, so a
    sentence can never contradict the table.
    """
    out: list[str] = []
    for (claim, _, setting), group in table.groupby(["claim", "comparison", "setting"], sort=False):
        by_verdict: dict[str, list[str]] = {}
        for _, row in group.iterrows():
            by_verdict.setdefault(str(row["verdict"]), []).append(str(row["condition"]))
        comparison = str(group["comparison"].iloc[0]).split(":")[0].split(" (")[0]
        low, high = group["ratio"].min(), group["ratio"].max()
        ratios = f"{low:.2g}×" if f"{low:.2g}" == f"{high:.2g}" else f"{low:.2g}–{high:.2g}×"
        if len(by_verdict) == 1:
            verdict = next(iter(by_verdict))
            out.append(f"{claim} ({comparison}, {setting}): {verdict} at every condition measured "
                       f"(ratio {ratios}).")
        else:
            parts = [f"{verdict} at {', '.join(conds)}" for verdict, conds in by_verdict.items()]
            out.append(f"{claim} ({comparison}, {setting}) depends on the network: " + "; ".join(parts) + ".")
    return out


# --------------------------------------------------------------------------- saved for the report

#: evidence key -> (claim test: top, bottom, metric), the condition it is taken at (rtt_ms; None = loopback).
EVIDENCE_FROM_VERDICTS: dict[str, tuple[str, str, float | None]] = {
    "c07.round_trips_smtp_starttls_vs_https": ("starttls_new_connection", "https_new_connection", 40.0),
    "c09.time_smtp_starttls_vs_https_loopback": ("starttls_new_connection", "https_new_connection", None),
    "c09.time_smtp_starttls_vs_https_at_40ms": ("starttls_new_connection", "https_new_connection", 40.0),
    "c08.throughput_smtp_reused_vs_https_at_40ms": ("starttls_reused_connection", "https_single", 40.0),
    "c08.throughput_batch_vs_single_at_40ms": ("rest_batch", "rest_single", 40.0),
    "c19.throughput_smtp_pool_vs_one_at_40ms": ("starttls_parallel", "starttls_reused_connection", 40.0),
    "c19.throughput_h2_streams_vs_one_at_40ms": ("h2_concurrent", "h2_single", 40.0),
}


def record_evidence(table: pd.DataFrame, *, source: str, mailbox: str) -> list[str]:
    """Save the ratios the decision report quotes (from a `verdicts()` table); returns the keys saved.

    Each carries its interval and its conditions: the network (loopback or the simulated RTT), the
    mailbox server (`mailbox`, e.g. "real Mailpit v1.33.1"), and how many messages each side sent.
    """
    from .. import evidence

    saved: list[str] = []
    for key, (top, bottom, rtt) in EVIDENCE_FROM_VERDICTS.items():
        rows = table[(table["claim"] == evidence.KNOWN_KEYS[key].claim) & (table["top"] == top)
                     & (table["bottom"] == bottom)
                     & (table["rtt_ms"].isna() if rtt is None else table["rtt_ms"] == rtt)]
        if rows.empty:
            continue
        row = rows.iloc[0]
        network = ("loopback, no proxy" if rtt is None
                   else f"simulated {rtt:g} ms round-trip time (a proxy in its own process)")
        tls = "TLS verified against a local CA" if MODE_INFO[top].tls or MODE_INFO[bottom].tls else "plain text"
        detail = (f"{network}; {mailbox}; {tls}; {int(row['n_top'])} and {int(row['n_bottom'])} messages; "
                  f"verdict: {row['verdict']}")
        evidence.record(key, float(row["ratio"]), "x", source=source, detail=detail,
                        low=float(row["low"]), high=float(row["high"]))
        saved.append(key)
    return saved
