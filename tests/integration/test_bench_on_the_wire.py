"""emailkit.bench on real sockets: every way of sending delivers what it counts, TLS is really negotiated
and verified against the run's lab CA, HTTP/2 is really spoken, and every server runs in its own process.

Behaviour, never speed: the machines are shared, so no test asserts a timing beyond what a simulated
delay forces.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator

import httpx
import pytest

from emailkit import bench
from emailkit.bench.runs import _smtp_connect
from emailkit.mailpit import Mailpit
from tests.support import BACKENDS, need_mailpit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def servers(request: pytest.FixtureRequest) -> Iterator[bench.BenchServers]:
    """The benchmark's own servers (mailbox + provider, each a process, one lab CA), per backend."""
    if request.param == "mailpit":
        need_mailpit()
    with bench.BenchServers(request.param) as started:
        yield started


def stored(servers: bench.BenchServers, security: str = "plain") -> int:
    with Mailpit(servers.mailbox_api(security)) as mp:
        return int(mp.info()["Messages"])


def test_every_server_runs_in_a_process_of_its_own(servers: bench.BenchServers) -> None:
    pids = servers.pids
    assert "provider" in pids and "mailbox" in pids
    assert os.getpid() not in pids.values() and len(set(pids.values())) == len(pids)
    for pid in pids.values():
        os.kill(pid, 0)  # alive


# Round trips a proxy at 0 ms counts for 3 messages; TLS modes only have lower bounds (TLS 1.3 session
# tickets and record boundaries add turns the server chooses).
EXACT = {
    "smtp_new_connection": 6.0,  # EHLO, MAIL, RCPT, DATA, content, QUIT
    "smtp_reused_connection": (3 * 4 + 2) / 3,  # MAIL, RCPT, DATA, content each; EHLO and QUIT once
    "rest_new_connection": 1.0,
    "rest_single": 1.0,
    "rest_batch": 1 / 3,
}
AT_LEAST = {
    "starttls_new_connection": 9.0,  # + STARTTLS, the TLS handshake, EHLO again, AUTH
    "smtps_new_connection": 7.0,  # + the TLS handshake and AUTH
    "https_new_connection": 2.0,  # the TLS handshake + the request
    "https_single": 1.0,
    "h2_single": 1.0,
}


@pytest.mark.parametrize("mode", list(bench.MODES))
def test_each_mode_delivers_every_message_and_the_wire_sees_it(servers: bench.BenchServers, mode: str) -> None:
    info = bench.MODE_INFO[mode]
    before = stored(servers, info.security)
    frame = bench.run_mode(mode, servers, 3, rtt=0.0, connections=2, concurrency=3)
    assert stored(servers, info.security) == before + 3  # every measured message was really delivered
    assert list(frame["mode"].unique()) == [mode] and len(frame) == 3
    assert (frame["latency_ms"] > 0).all()
    trips = frame["round_trips_per_msg"].iloc[0]
    if mode in EXACT:
        assert trips == pytest.approx(EXACT[mode])
    if mode in AT_LEAST:
        assert trips >= AT_LEAST[mode]
    if info.style == "new":
        assert frame["connections"].iloc[0] == 3 and frame["wire_round_trips"].notna().all()
    if info.http == "2":
        assert frame["connections"].iloc[0] == 1  # streams multiplexed on one connection, no pool
    # TLS where the mode says so, seen by the client and by the proxy (encrypted bytes on the wire)
    assert bool(frame["tls_seen_on_wire"].iloc[0]) is info.tls
    assert (frame["tls_version"].iloc[0] == "TLSv1.3") is info.tls
    if info.path == "rest":
        assert frame["http_version"].iloc[0] == ("HTTP/2" if info.http == "2" else "HTTP/1.1")


def test_https_speaks_http2_only_when_asked_and_verifies_the_lab_ca(servers: bench.BenchServers) -> None:
    target = servers.rest("https")
    body = {"to": [{"email": "a@example.com"}], "subject": "h2?", "body": "x", "is_plaintext": True}
    for http2, version in ((True, "HTTP/2"), (False, "HTTP/1.1")):
        with httpx.Client(base_url=target.url, headers=target.headers, verify=servers.client_context(),
                          http2=http2) as client:
            response = client.post(target.send_path, json=body)
        assert response.status_code == 200 and response.http_version == version
    # A client that trusts only the system's CAs refuses the lab's certificate: verification is real.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.post(target.url + target.send_path, headers=target.headers, json=body, timeout=10)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_smtp_tls_negotiates_and_verifies_the_lab_ca(servers: bench.BenchServers, security: str) -> None:
    import aiosmtplib

    host, port = servers.smtp_address(security)

    async def version(context: ssl.SSLContext) -> str:
        client = await _smtp_connect(host, port, security, context)
        try:
            return str(client.transport.get_extra_info("ssl_object").version())
        finally:
            await client.quit()

    assert asyncio.run(version(servers.client_context())) == "TLSv1.3"
    with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError)):
        asyncio.run(version(ssl.create_default_context()))  # trusts the system CAs only


def test_direct_runs_do_not_count_round_trips(servers: bench.BenchServers) -> None:
    frame = bench.run_mode("smtp_reused_connection", servers, 2)
    assert frame["rtt_ms"].isna().all() and frame["round_trips_per_msg"].isna().all()


def test_a_simulated_rtt_is_paid_per_round_trip(servers: bench.BenchServers) -> None:
    """Behaviour, not speed: at 50 ms RTT a 6-round-trip SMTP send (+ the TCP handshake) takes >= 7 x 50 ms."""
    frame = bench.run_mode("smtp_new_connection", servers, 1, rtt=0.05)
    assert frame["latency_ms"].iloc[0] >= 7 * 50
    h2 = bench.run_mode("h2_single", servers, 1, rtt=0.05)
    assert h2["latency_ms"].iloc[0] >= 50


def test_compare_and_the_verdict_table_on_real_runs(servers: bench.BenchServers) -> None:
    modes = ["starttls_new_connection", "https_new_connection", "h2_single", "h2_concurrent"]
    samples = bench.compare(servers, 4, rtts=[None, 0.0, 0.01], modes=modes, side_by_side=True, progress=False)
    assert len(samples) == 4 * len(modes) * 3
    assert list(dict.fromkeys(zip(samples["mode"], samples["rtt_ms"].fillna(-1)))) == [
        (m, r) for r in (-1, 0.0, 10.0) for m in modes]  # in plan order, whichever lane finished first
    table = bench.verdicts(samples)
    c09 = table[(table["claim"] == "C09") & (table["setting"] == "STARTTLS + AUTH vs HTTPS/1.1")]
    assert list(c09["condition"]) == ["loopback", "proxy, 0 ms", "10 ms RTT"]
    assert (c09["low"] <= c09["ratio"]).all() and (c09["ratio"] <= c09["high"]).all()
    assert set(table["verdict"]) <= {"holds", "reverses", "no clear difference"}
    c07 = table[table["claim"] == "C07"]
    assert list(c07["condition"]) == ["proxy, 0 ms", "10 ms RTT"]  # no round trips counted on loopback
    assert (c07["ratio"] > 2).all()  # SMTP: at least 9 turns; HTTPS: the handshake and the request (+ tickets)
