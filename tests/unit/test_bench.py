"""emailkit.bench's arithmetic and its written conclusions, on hand-made samples (no sockets)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from emailkit import bench
from emailkit.errors import InvalidInput


def samples(mode: str, rtt_ms: float | None, latencies_ms: list[float], run_s: float,
            trips: float = math.nan) -> pd.DataFrame:
    n = len(latencies_ms)
    return pd.DataFrame({
        "mode": mode, "path": mode.split("_", 1)[0], "rtt_ms": math.nan if rtt_ms is None else rtt_ms,
        "message": range(n), "latency_ms": latencies_ms, "run_s": run_s, "messages": n,
        "round_trips_per_msg": trips, "bytes_per_msg": math.nan, "connections": 1,
    })


def test_percentile_interpolates() -> None:
    assert bench.percentile([1, 2, 3, 4], 50) == 2.5
    assert bench.percentile([5], 95) == 5
    assert bench.percentile([1, 2, 3, 4, 5], 100) == 5
    with pytest.raises(ValueError):
        bench.percentile([], 50)


def test_summarize_gives_throughput_and_latency_per_mode_and_rtt() -> None:
    frame = pd.concat([
        samples("smtp_new_connection", None, [2, 2, 4, 2], 0.01),
        samples("smtp_new_connection", 40.0, [250, 260, 270], 0.78, trips=6.0),
        samples("rest_single", None, [1, 3], 0.004),
    ])
    summary = bench.summarize(frame)
    direct = summary[summary["rtt_ms"].isna()].set_index("mode")
    assert direct.loc["smtp_new_connection", "msgs_per_s"] == pytest.approx(400)
    assert direct.loc["smtp_new_connection", "p50_ms"] == 2
    assert direct.loc["rest_single", "msgs_per_s"] == pytest.approx(500)
    delayed = summary[summary["rtt_ms"] == 40.0].set_index("mode")
    assert delayed.loc["smtp_new_connection", "p50_ms"] == 260
    assert delayed.loc["smtp_new_connection", "round_trips_per_msg"] == 6.0
    # Loopback rows first, then by RTT; within one RTT in the order of MODES.
    assert list(summary["mode"]) == ["smtp_new_connection", "rest_single", "smtp_new_connection"]


def test_round_trip_minimums_follow_the_protocols() -> None:
    summary = bench.summarize(pd.concat([
        samples("smtp_new_connection", 0.0, [1], 1, trips=6.0),
        samples("smtp_reused_connection", 0.0, [1], 1, trips=4.4),
        samples("rest_single", 0.0, [1], 1, trips=1.0),
        samples("rest_batch", 0.0, [1] * 5, 1, trips=0.2),
    ]))
    table = bench.round_trips(summary, recipients=3)
    assert table.loc["smtp_new_connection", "protocol_minimum"] == 3 + 5
    assert table.loc["smtp_new_connection", "minimum_with_pipelining"] == 4
    assert table.loc["smtp_reused_connection", "protocol_minimum"] == 3 + 3
    assert table.loc["smtp_reused_connection", "minimum_with_pipelining"] == 2
    assert table.loc["rest_single", "protocol_minimum"] == 1
    assert table.loc["rest_batch", "protocol_minimum"] == pytest.approx(1 / 5)  # 5 messages in one batch
    assert table.loc["smtp_new_connection", "tcp_handshakes_per_msg"] == 1
    assert table.loc["rest_single", "tcp_handshakes_per_msg"] == 0
    assert table.loc["smtp_reused_connection", "counted_per_msg"] == 4.4


def test_conclusions_say_whether_each_claim_held_from_the_numbers() -> None:
    summary = bench.summarize(pd.concat([
        # On loopback SMTP is quicker and reuse beats single REST requests ...
        samples("smtp_new_connection", None, [1.0, 1.0], 0.002),
        samples("smtp_reused_connection", None, [0.5, 0.5], 0.001),
        samples("rest_new_connection", None, [3.0, 3.0], 0.006),
        samples("rest_single", None, [3.0, 3.0], 0.006),
        samples("smtp_new_connection", 0.0, [2.0, 2.0], 0.004),  # the proxy without delay: left out
        samples("rest_single", 0.0, [4.0, 4.0], 0.008),
        # ... at 40 ms it is the other way round.
        samples("smtp_new_connection", 40.0, [260.0, 260.0], 0.52),
        samples("smtp_reused_connection", 40.0, [160.0, 160.0], 0.32),
        samples("rest_new_connection", 40.0, [45.0, 45.0], 0.09),
        samples("rest_single", 40.0, [44.0, 44.0], 0.088),
        samples("rest_batch", 40.0, [45.0, 45.0], 0.045),
    ]))
    lines = bench.conclusions(summary)
    c09 = [line for line in lines if line.startswith("C09")]
    assert c09[0].startswith("C09 does not hold on direct loopback") and "1.0 ms" in c09[0]
    assert c09[1].startswith("C09 holds at 40 ms RTT") and "5.8× slower" in c09[1]
    c08 = [line for line in lines if line.startswith("C08")]
    assert any(line.startswith("C08 holds on direct loopback") for line in c08)
    assert any(line.startswith("C08 does not hold at 40 ms RTT") for line in c08)
    assert any("batch endpoint sent 44 msg/s, faster than the reused SMTP connection (6.2 msg/s)" in line
               for line in c08)
    assert any(line.startswith("C19 on direct loopback") and "(2.0×)" in line for line in lines)
    assert not any("proxy at 0 ms" in line for line in lines)


@pytest.mark.parametrize(("call", "field"), [
    (lambda: bench.smtp_new_connection("127.0.0.1", 1, 0), "n"),
    (lambda: bench.smtp_parallel("127.0.0.1", 1, 5, connections=0), "connections"),
    (lambda: bench.rest_batch(bench.RestTarget("http://127.0.0.1:1", "k", "g"), 5, batch_size=101), "batch_size"),
    (lambda: bench.compare(("127.0.0.1", 1), bench.RestTarget("http://127.0.0.1:1", "k", "g"), modes=["smtp_fast"]),
     "modes"),
])
def test_bad_arguments_name_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field and caught.value.fix
