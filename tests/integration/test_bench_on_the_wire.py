"""emailkit.bench on real sockets: every mode delivers what it counts, and the wire counts are right."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emailkit import bench
from emailkit.mailpit import Mailpit
from emailkit.stack import Stack
from support import BACKENDS, need_mailpit


@dataclass
class Servers:
    smtp_host: str
    smtp_port: int
    api_url: str
    rest: bench.RestTarget


@pytest.fixture(scope="module", params=BACKENDS)
def servers(request: pytest.FixtureRequest) -> Iterator[Servers]:
    """The bench's wiring (a mailbox keeping every message + a provider that never throttles), per backend."""
    if request.param == "mailpit":
        need_mailpit()
    with Stack(request.param, provider=True, provider_options=bench.PROVIDER_OPTIONS, max_messages=0, pop3=False,
               chaos=False) as stack:
        box = stack.mailbox
        yield Servers(box.smtp_host, box.smtp_port, box.api_url, bench.rest_target(stack.provider))


def stored(servers: Servers) -> int:
    with Mailpit(servers.api_url) as mp:
        return int(mp.info()["Messages"])


@pytest.mark.parametrize(("mode", "run"), [
    ("smtp_new_connection", lambda s, r: bench.smtp_new_connection(s.smtp_host, s.smtp_port, 3, rtt=r)),
    ("smtp_reused_connection", lambda s, r: bench.smtp_reused_connection(s.smtp_host, s.smtp_port, 3, rtt=r)),
    ("smtp_parallel", lambda s, r: bench.smtp_parallel(s.smtp_host, s.smtp_port, 3, connections=2, rtt=r)),
    ("rest_new_connection", lambda s, r: bench.rest_new_connection(s.rest, 3, rtt=r)),
    ("rest_single", lambda s, r: bench.rest_single(s.rest, 3, rtt=r)),
    ("rest_concurrent", lambda s, r: bench.rest_concurrent(s.rest, 3, concurrency=3, rtt=r)),
    ("rest_batch", lambda s, r: bench.rest_batch(s.rest, 3, rtt=r)),
])
def test_each_mode_delivers_its_messages_and_counts_round_trips(servers: Servers, mode: str, run: object) -> None:
    before = stored(servers)
    frame = run(servers, 0.0)  # type: ignore[operator]
    assert stored(servers) == before + 3  # every measured message was really delivered
    assert list(frame["mode"].unique()) == [mode] and len(frame) == 3
    assert (frame["latency_ms"] > 0).all()
    expected = {
        "smtp_new_connection": 6.0,  # EHLO, MAIL, RCPT, DATA, content, QUIT
        "smtp_reused_connection": (3 * 4 + 2) / 3,  # MAIL, RCPT, DATA, content each; EHLO and QUIT once
        "smtp_parallel": (3 * 4 + 2 * 2) / 3,
        "rest_new_connection": 1.0,
        "rest_single": 1.0,
        "rest_concurrent": 1.0,
        "rest_batch": 1 / 3,
    }[mode]
    assert frame["round_trips_per_msg"].iloc[0] == pytest.approx(expected)
    connections = {"smtp_new_connection": 3, "smtp_parallel": 2, "rest_new_connection": 3}.get(mode)
    if connections is not None:
        assert frame["connections"].iloc[0] == connections


def test_direct_runs_do_not_count_round_trips(servers: Servers) -> None:
    frame = bench.smtp_reused_connection(servers.smtp_host, servers.smtp_port, 2)
    assert frame["rtt_ms"].isna().all() and frame["round_trips_per_msg"].isna().all()


def test_a_simulated_rtt_is_paid_per_round_trip(servers: Servers) -> None:
    """Behaviour, not speed: at 50 ms RTT a 6-round-trip SMTP send cannot finish in under 6 × 50 ms."""
    frame = bench.smtp_new_connection(servers.smtp_host, servers.smtp_port, 1, rtt=0.05)
    assert frame["latency_ms"].iloc[0] >= 6 * 50
    rest = bench.rest_single(servers.rest, 1, rtt=0.05)
    assert rest["latency_ms"].iloc[0] >= 50
