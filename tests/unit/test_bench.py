"""emailkit.bench's arithmetic, intervals and verdicts, on hand-made samples (no sockets, no timings)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from emailkit import bench, evidence
from emailkit.errors import InvalidInput


def samples(mode: str, rtt_ms: float | None, latencies_ms: list[float], *, in_flight: int = 1,
            trips: float = math.nan, wire: list[float] | None = None) -> pd.DataFrame:
    """A run of `mode` as `bench.run_mode` reports it: sequential completions unless `in_flight` > 1."""
    info = bench.MODE_INFO[mode]
    n = len(latencies_ms)
    done, clock = [], 0.0
    for i, latency in enumerate(latencies_ms):
        clock = clock + latency if i % in_flight == 0 else clock
        done.append(clock)
    return pd.DataFrame({
        "mode": mode, "path": info.path, "security": info.security, "http": info.http,
        "rtt_ms": math.nan if rtt_ms is None else rtt_ms, "message": range(n), "latency_ms": latencies_ms,
        "done_ms": done, "run_s": max(done) / 1000, "messages": n, "in_flight": in_flight,
        "round_trips_per_msg": trips, "wire_round_trips": wire if wire is not None else [math.nan] * n,
        "bytes_per_msg": math.nan, "connections": in_flight, "tls_seen_on_wire": info.tls,
        "tls_version": "TLSv1.3" if info.tls else "", "http_version": "HTTP/2" if info.http == "2" else "",
    })


def noisy(center: float, n: int = 40, spread: float = 0.05) -> list[float]:
    """`n` values within ±spread of `center`, deterministic."""
    return [center * (1 + spread * math.sin(i * 1.7)) for i in range(n)]


def test_percentile_interpolates() -> None:
    assert bench.percentile([1, 2, 3, 4], 50) == 2.5
    assert bench.percentile([5], 95) == 5
    assert bench.percentile([1, 2, 3, 4, 5], 100) == 5
    with pytest.raises(ValueError):
        bench.percentile([], 50)


def test_bootstrap_brackets_the_estimate_and_is_repeatable() -> None:
    values = list(range(1, 42))
    estimate, low, high = bench.bootstrap(values, "median")
    assert estimate == 21 and low < 21 < high
    assert bench.bootstrap(values, "median") == (estimate, low, high)  # seeded: a redraw is the same table
    assert bench.bootstrap([7.0] * 30, "mean") == (7.0, 7.0, 7.0)
    assert all(math.isnan(x) for x in bench.bootstrap([], "median"))


def test_bootstrap_ratio_of_exact_multiples_has_no_spread_and_noise_widens_it() -> None:
    assert bench.bootstrap_ratio([6.0] * 30, [3.0] * 30) == (2.0, 2.0, 2.0)
    ratio, low, high = bench.bootstrap_ratio(noisy(300, spread=0.2), noisy(100, spread=0.2))
    assert low < ratio < high and low > 2 and high < 4.5
    assert all(math.isnan(x) for x in bench.bootstrap_ratio([1.0], [0.0]))


def test_time_per_message_shares_a_latency_among_the_messages_under_way() -> None:
    assert list(bench.time_per_message([40.0, 40.0], 4)) == [10.0, 10.0]
    assert list(bench.time_per_message([5.0, 7.0], [1, 1])) == [5.0, 7.0]
    assert bench.throughput([10.0, 20.0, 30.0, 40.0]) == pytest.approx(100)  # 4 messages in 40 ms


def test_summarize_gives_throughput_with_an_interval_and_latency_percentiles() -> None:
    frame = pd.concat([
        samples("smtp_new_connection", None, [2.0, 2.0, 4.0, 2.0]),
        samples("starttls_parallel", 40.0, [160.0] * 8, in_flight=4),
        samples("h2_single", None, noisy(5.0)),
    ])
    summary = bench.summarize(frame)
    direct = summary[summary["rtt_ms"].isna()].set_index("mode")
    row = direct.loc["smtp_new_connection"]
    assert row["msgs_per_s"] == pytest.approx(4 / 0.010)
    assert row["p50_ms"] == 2 and row["p10_ms"] == 2 and row["p90_ms"] == pytest.approx(3.4)
    assert row["msgs_per_s_lo"] <= row["msgs_per_s"] <= row["msgs_per_s_hi"]
    pool = summary[summary["rtt_ms"] == 40.0].set_index("mode").loc["starttls_parallel"]
    assert pool["msgs_per_s"] == pytest.approx(8 / 0.320)  # 4 at a time, 160 ms each: 25 msg/s
    assert pool["msgs_per_s_lo"] == pytest.approx(pool["msgs_per_s_hi"])  # identical latencies: no spread
    h2 = direct.loc["h2_single"]
    assert h2["p10_ms"] < h2["p50_ms"] < h2["p90_ms"] and h2["tls_version"] == "TLSv1.3"
    # Loopback rows first, then by RTT; within one RTT in the order of MODES.
    assert list(summary["mode"]) == ["smtp_new_connection", "h2_single", "starttls_parallel"]


def test_round_trip_minimums_follow_the_protocols_tls_included() -> None:
    summary = bench.summarize(pd.concat([
        samples("smtp_new_connection", 0.0, [1], trips=6.0),
        samples("smtp_reused_connection", 0.0, [1], trips=4.4),
        samples("starttls_new_connection", 0.0, [1], trips=10.0),
        samples("https_new_connection", 0.0, [1], trips=2.5),
        samples("rest_single", 0.0, [1], trips=1.0),
        samples("rest_batch", 0.0, [1] * 5, trips=0.2),
    ]))
    table = bench.round_trips(summary, recipients=3)
    assert table.loc["smtp_new_connection", "protocol_minimum"] == 3 + 5
    assert table.loc["smtp_new_connection", "minimum_with_pipelining"] == 4
    assert table.loc["smtp_reused_connection", "protocol_minimum"] == 3 + 3
    assert table.loc["starttls_new_connection", "protocol_minimum"] == 3 + 8
    assert table.loc["starttls_new_connection", "tls_handshake_round_trips"] == 1
    assert table.loc["https_new_connection", "protocol_minimum"] == 1
    assert table.loc["https_new_connection", "tls_handshake_round_trips"] == 1
    assert table.loc["rest_batch", "protocol_minimum"] == pytest.approx(1 / 5)  # 5 messages in one batch
    assert table.loc["smtp_new_connection", "tcp_handshakes_per_msg"] == 1
    assert table.loc["rest_single", "tcp_handshakes_per_msg"] == 0
    assert table.loc["smtp_reused_connection", "counted_per_msg"] == 4.4


@pytest.mark.parametrize(("ratio", "low", "high", "verdict"), [
    (3.1, 2.8, 3.4, "holds"),
    (0.4, 0.35, 0.45, "reverses"),
    (1.05, 1.01, 1.09, "no clear difference"),  # the interval excludes 1, but 5 % is within the margin
    (1.6, 0.8, 2.5, "no clear difference"),  # a big ratio whose interval straddles 1
    (math.nan, math.nan, math.nan, "not measured"),
])
def test_judge_needs_the_interval_clear_of_one_and_the_margin(ratio, low, high, verdict) -> None:
    assert bench.judge(ratio, low, high) == verdict


def c09_runs() -> pd.DataFrame:
    return pd.concat([
        # On loopback SMTP is quicker than one REST call ...
        samples("starttls_new_connection", None, noisy(4.0)),
        samples("https_new_connection", None, noisy(9.0)),
        # ... at 40 ms the other way round; at 10 ms about the same.
        samples("starttls_new_connection", 40.0, noisy(520.0), wire=[10.0] * 40),
        samples("https_new_connection", 40.0, noisy(130.0), wire=[2.0] * 40),
        samples("starttls_new_connection", 10.0, noisy(100.0, spread=0.3)),
        samples("https_new_connection", 10.0, noisy(98.0, spread=0.3)),
    ], ignore_index=True)


def test_verdicts_give_each_claim_at_each_condition_with_its_interval() -> None:
    table = bench.verdicts(c09_runs())
    c09 = table[table["claim"] == "C09"].set_index("condition")
    assert list(c09.index) == ["loopback", "10 ms RTT", "40 ms RTT"]
    assert c09.loc["loopback", "verdict"] == "reverses" and c09.loc["loopback", "ratio"] == pytest.approx(4 / 9)
    assert c09.loc["10 ms RTT", "verdict"] == "no clear difference"
    assert c09.loc["40 ms RTT", "verdict"] == "holds" and c09.loc["40 ms RTT", "ratio"] == pytest.approx(4.0)
    assert (c09["low"] <= c09["ratio"]).all() and (c09["ratio"] <= c09["high"]).all()
    c07 = table[table["claim"] == "C07"]
    assert list(c07["condition"]) == ["40 ms RTT"] and c07["ratio"].iloc[0] == 5.0  # counted per connection


def test_throughput_verdicts_use_messages_per_second() -> None:
    runs = pd.concat([
        samples("starttls_parallel", 40.0, [160.0] * 40, in_flight=4),
        samples("starttls_reused_connection", 40.0, [160.0] * 40),
        samples("h2_concurrent", 40.0, [45.0] * 40, in_flight=8),
        samples("h2_single", 40.0, [45.0] * 40),
    ], ignore_index=True)
    table = bench.verdicts(runs).set_index("setting")
    assert table.loc["STARTTLS + AUTH", "ratio"] == pytest.approx(4.0)  # a pool of 4 sends 4x as fast
    assert table.loc["STARTTLS + AUTH", "verdict"] == "holds"
    assert table.loc["HTTPS/2", "ratio"] == pytest.approx(8.0)
    assert table.loc["HTTPS/2 vs STARTTLS + AUTH", "ratio"] == pytest.approx((8 / 45) / (4 / 160))


def test_conclusions_come_from_the_table_and_cannot_contradict_it() -> None:
    table = bench.verdicts(c09_runs())
    lines = bench.conclusions(table)
    c09 = next(line for line in lines if line.startswith("C09"))
    assert "depends on the network" in c09
    assert "reverses at loopback" in c09 and "holds at 40 ms RTT" in c09 and "no clear difference at 10 ms RTT" in c09
    c07 = next(line for line in lines if line.startswith("C07"))
    assert "holds at every condition measured" in c07 and "5×" in c07
    # each verdict a line names is the table's verdict for that condition
    for _, row in table.iterrows():
        line = next(x for x in lines if x.startswith(row["claim"]) and row["setting"] in x)
        assert f"{row['verdict']} at" in line and str(row["condition"]) in line or "every condition" in line


@pytest.mark.parametrize(("call", "field"), [
    (lambda: bench.smtp_new_connection("127.0.0.1", 1, 0), "n"),
    (lambda: bench.smtp_parallel("127.0.0.1", 1, 5, connections=0), "connections"),
    (lambda: bench.rest_batch(bench.RestTarget("http://127.0.0.1:1", "k", "g"), 5, batch_size=101), "batch_size"),
    (lambda: bench.run_mode("smtp_fast", None, 5), "mode"),  # type: ignore[arg-type]
    (lambda: bench.smtp_new_connection("127.0.0.1", 1, 1, rtt=-0.01), "rtt"),
    (lambda: bench.BenchServers("external"), "backend"),
])
def test_bad_arguments_name_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field and caught.value.fix


def test_a_rest_target_never_shows_its_api_key() -> None:
    target = bench.RestTarget("https://127.0.0.1:1", "sk-very-secret", "g1")
    assert "sk-very-secret" not in repr(target) and target.headers["Authorization"].endswith("sk-very-secret")


def test_record_evidence_saves_the_ratios_with_interval_and_conditions(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path))
    saved = bench.record_evidence(bench.verdicts(c09_runs()), source="06_cost_and_speed", mailbox="real Mailpit v1")
    assert saved == ["c07.round_trips_smtp_starttls_vs_https", "c09.time_smtp_starttls_vs_https_loopback",
                     "c09.time_smtp_starttls_vs_https_at_40ms"]
    item = evidence.load()["c09.time_smtp_starttls_vs_https_at_40ms"]
    assert item.value == pytest.approx(4.0) and item.low is not None and item.low <= 4.0 <= (item.high or 0)
    assert item.detail.startswith("simulated 40 ms round-trip time") and "real Mailpit v1" in item.detail
    assert "TLS verified against a local CA" in item.detail and "40 and 40 messages" in item.detail


def test_published_figures_are_sourced_dated_and_never_marked_as_ours() -> None:
    table = bench.published()
    assert len(table) >= 4 and not table["measured_here"].any()
    assert table["source"].str.len().min() > 10 and table["as of"].str.match(r"\d{4}-\d\d").all()
