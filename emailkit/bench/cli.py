"""``python -m emailkit.bench`` (= ``make bench``): the whole benchmark, printed as tables.

1. SMTP ingest into the sandbox, real Mailpit and a bare aiosmtpd sink, each in its own process
   (`emailkit.ingest`), and list/search latency on a filled mailbox;
2. the same ~1 KB message sent every way in `MODES` — SMTP plain, STARTTLS + AUTH and implicit TLS +
   AUTH; REST over HTTP/1.1, HTTPS/1.1 and HTTPS/2 — on loopback and at simulated round-trip times,
   with the mailbox server, the provider and the proxies each in a process of their own;
3. the verdict table: each claim at each condition, with its ratio and 95 % interval.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from .published import published
from .runs import MODES, compare
from .servers import BenchServers
from .summary import conclusions, record_evidence, round_trips, summarize, verdicts

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emailkit.bench", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=500, help="messages to ingest per server (default 500)")
    parser.add_argument("--mailbox", type=int, default=1000, help="mailbox size for the read timings (default 1000)")
    parser.add_argument("--calls", type=int, default=50, help="list and search calls to time (default 50)")
    parser.add_argument("--skip-servers", action="store_true", help="skip the sandbox/Mailpit/sink comparison")
    parser.add_argument("--backend", default="auto", choices=("auto", "mailpit", "sandbox"),
                        help="the mailbox behind SMTP-vs-REST (default auto: EMAILKIT_MAILBOX, a mailpit binary, "
                             "else the sandbox)")
    parser.add_argument("--sends", type=int, default=60, help="messages per mode on direct loopback (default 60)")
    parser.add_argument("--rtt-sends", type=int, default=30,
                        help="messages per mode at each simulated RTT, 0 ms included (default 30)")
    parser.add_argument("--rtts", default="0,10,40,100", help="simulated RTTs in ms, comma-separated (default 0,10,40,100)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"ways of sending (default all: {','.join(MODES)})")
    parser.add_argument("--one-level-at-a-time", action="store_true",
                        help="run the delayed RTT levels one after another instead of side by side (slower)")
    parser.add_argument("--record", action="store_true", help="save the report's ratios with emailkit.evidence")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    try:
        rtts = [float(x) / 1000 for x in args.rtts.split(",") if x.strip()]
    except ValueError:
        parser.error("--rtts: write milliseconds separated by commas, e.g. 0,10,40,100")
    for name in ("messages", "mailbox", "calls", "sends", "rtt_sends"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: give a whole number >= 1")

    import pandas as pd

    from .. import ingest as servers_ingest

    started = time.monotonic()

    def wide() -> pd.option_context:
        return pd.option_context("display.width", 220, "display.max_columns", 30, "display.max_colwidth", 60)

    if not args.skip_servers:
        print(f"SMTP ingest of {args.messages} ~1 KB messages, each server in its own process with a database "
              f"file (Mailpit's README claims 200-300 messages/s for real Mailpit):")
        with wide():
            table = servers_ingest.ingest_table(args.messages, parallel=4)
            print(table.drop(columns=["what"]).round(2).to_string())
            reads = servers_ingest.read_latency_table(args.mailbox, calls=args.calls)
            print(f"\nReads on a {args.mailbox:,}-message mailbox (GET /api/v1/messages, 50 newest; "
                  f"GET /api/v1/search?query=to:inbox3@example.com), {args.calls} calls each, in ms:")
            print(reads.drop(columns=["what"]).round(2).to_string())
        print()

    with BenchServers(args.backend) as servers:
        print(f"SMTP against REST, on {servers.label}; the provider (hypercorn: HTTP/1.1, HTTPS with HTTP/1.1 "
              f"and HTTP/2) and the proxies each in their own process; every TLS client verifies a local CA.")
        samples = compare(servers, args.rtt_sends, rtts=[None, *rtts], modes=modes, n_at={None: args.sends},
                          side_by_side=not args.one_level_at_a_time)
        mailbox = servers.label.split(" (")[0]
    summary = summarize(samples)
    table = verdicts(samples)
    with wide():
        print(f"\nSending ~1 KB messages ({args.sends} per way on loopback, {args.rtt_sends} per way and delay); "
              f"latency p10/p50/p90 in ms, throughput with its 95% bootstrap interval:")
        shown = summary.assign(network=summary["rtt_ms"].map(lambda r: "loopback" if pd.isna(r) else f"{r:g} ms"))
        print(shown[["network", "mode", "messages", "msgs_per_s", "msgs_per_s_lo", "msgs_per_s_hi", "p10_ms",
                     "p50_ms", "p90_ms", "round_trips_per_msg", "tls_version", "http_version"]]
              .round(2).to_string(index=False))
        print("\nRound trips per message, counted on the wire (TLS handshakes included) vs the protocol minimum:")
        print(round_trips(summary).drop(columns=["how"]).to_string())
        print(f"\nVerdicts (ratio > 1 supports the claim; 'holds' needs the 95% interval above 1 and the ratio "
              f">= 1.1):")
        print(table[["claim", "setting", "condition", "ratio", "low", "high", "verdict"]].round(2)
              .to_string(index=False))
    print()
    for line in conclusions(table):
        print(f"* {line}")
    print("\nPublished figures from elsewhere, for scale (NOT measured here):")
    with wide():
        print(published().to_string(index=False))
    if args.record:
        saved = record_evidence(table, source="emailkit.bench", mailbox=mailbox)
        print(f"\nSaved {len(saved)} figures for the decision report.")
    print(f"\nTook {time.monotonic() - started:.0f} s.")
    return 0
