"""emailkit.ingest: each server really runs in its own process and really stores what it was sent."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from emailkit import ingest
from emailkit.errors import InvalidInput
from tests.support import need_mailpit

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`


@pytest.mark.parametrize("kind", ["sandbox", "mailpit"])
def test_a_server_process_stores_every_message_it_acknowledged(kind: str, tmp_path: Path) -> None:
    if kind == "mailpit":
        need_mailpit()
    with ingest.ServerProcess(kind, tmp_path) as server:
        rate = ingest.ingest_rate(server.host, server.smtp_port, 30, connections=3, progress=False)
        assert rate["messages"] == 30 and rate["messages_per_s"] > 0 and 900 < rate["avg_message_bytes"] < 1300
        assert httpx.get(f"{server.api_url}/api/v1/info").json()["Messages"] == 30
    assert (tmp_path / f"{kind}.db").exists()  # a durable database file, as the comparison promises


def test_the_sink_acknowledges_and_keeps_nothing(tmp_path: Path) -> None:
    with ingest.ServerProcess("sink", tmp_path) as sink:
        assert ingest.ingest_rate(sink.host, sink.smtp_port, 5, progress=False)["messages"] == 5
        assert sink.api_url == ""
    assert list(tmp_path.iterdir()) == []


def test_the_table_has_a_row_per_server_and_ratios_against_mailpit_and_the_sink() -> None:
    need_mailpit()
    table = ingest.ingest_table(20, parallel=2, progress=False)
    assert list(table.index) == ["sink", "sandbox", "mailpit"]
    for column in ("msgs_per_s_1_connection", "msgs_per_s_2_connections"):
        assert (table[column] > 0).all()
        ratio = table.loc["sandbox", f"{column} vs mailpit"]
        assert ratio == pytest.approx(table.loc["sandbox", column] / table.loc["mailpit", column])
        assert not math.isnan(table.loc["sandbox", f"{column} vs sink"])


def test_the_table_shows_each_server_processs_cpu_per_message_with_ratios() -> None:
    need_mailpit()
    table = ingest.ingest_table(150, parallel=2, progress=False)
    for column in ("cpu_ms_per_msg_1_connection", "cpu_ms_per_msg_2_connections"):
        assert (table[column] > 0).all() and table[column].map(math.isfinite).all()
        for base in ("mailpit", "sink"):
            assert table.loc["sandbox", f"{column} vs {base}"] == pytest.approx(
                table.loc["sandbox", column] / table.loc[base, column])
    assert "msgs_per_s_1_connection" in table.columns  # the wall-clock rate stays beside it


@pytest.mark.parametrize("kind", ["sink", "sandbox"])
def test_the_cpu_figure_is_the_server_processs_own_time_divided_by_the_messages(kind: str, tmp_path: Path) -> None:
    n = 100
    with ingest.ServerProcess(kind, tmp_path) as server:
        before = ingest.cpu_seconds(server.pid)
        rate = ingest.ingest_rate(server.host, server.smtp_port, n, progress=False, server_pid=server.pid)
        spent = ingest.cpu_seconds(server.pid) - before
        without = ingest.ingest_rate(server.host, server.smtp_port, 2, progress=False)
    # the run's window lies inside [before, after]: per message times n fits in what the process spent
    assert 0 < rate["cpu_ms_per_msg"] * n <= spent * 1000 + 1e-6
    assert "cpu_ms_per_msg" not in without  # no process named, no CPU figure


def test_read_latency_on_a_filled_mailbox() -> None:
    table = ingest.read_latency_table(40, calls=5, servers=["sandbox"], progress=False)
    row = table.loc["sandbox"]
    assert row["messages"] == 40
    assert 0 < row["list_p50_ms"] <= row["list_p95_ms"] and 0 < row["search_p50_ms"] <= row["search_p95_ms"]


def test_bad_arguments_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="server"):
        ingest.ServerProcess("exim", tmp_path)
    with pytest.raises(InvalidInput, match="connections"):
        ingest.ingest_rate("127.0.0.1", 1, 5, connections=0)
