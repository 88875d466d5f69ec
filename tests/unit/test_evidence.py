"""emailkit.evidence: figures recorded by notebooks, read back by the decision report."""

from __future__ import annotations

import json
import multiprocessing
import re

import pytest

from emailkit import evidence
from emailkit.decide import load_criteria
from emailkit.errors import InvalidInput


@pytest.fixture(autouse=True)
def _evidence_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path / "ev"))
    return tmp_path / "ev"


def test_a_recorded_figure_is_read_back_with_when_and_where(_evidence_dir) -> None:
    item = evidence.record("smtp.round_trips_per_message", 7, "round trips", source="01_smtp_on_the_wire",
                           detail="fresh connection")
    assert evidence.location() == _evidence_dir / "evidence.json"
    loaded = evidence.load()
    assert loaded == {"smtp.round_trips_per_message": item}
    assert item.value == 7.0 and item.claim == "C07"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", item.measured_at)
    quote = item.quote()
    assert "7 round trips" in quote and "01_smtp_on_the_wire" in quote and item.host in quote
    assert item.measured_at in quote and "fresh connection" in quote


def test_the_latest_figure_for_a_key_wins_and_history_is_kept(_evidence_dir) -> None:
    evidence.record("c08.throughput_batch_vs_single_at_40ms", 3.5, "x", source="06_cost_and_speed")
    evidence.record("c08.throughput_batch_vs_single_at_40ms", 2.25, "x", source="06_cost_and_speed")
    assert evidence.load()["c08.throughput_batch_vs_single_at_40ms"].value == 2.25
    records = json.loads((_evidence_dir / "evidence.json").read_text())["records"]
    assert [r["value"] for r in records] == [3.5, 2.25]


def test_an_explicit_folder_overrides_the_environment(tmp_path) -> None:
    evidence.record("rest.bytes_per_message", 900, "bytes", source="02", folder=tmp_path / "other")
    assert "rest.bytes_per_message" in evidence.load(tmp_path / "other")
    assert evidence.load() == {}


def test_without_the_variable_figures_go_to_build_evidence_at_the_project_root(monkeypatch) -> None:
    monkeypatch.delenv("EMAILKIT_EVIDENCE_DIR")
    path = evidence.location()
    assert path.parts[-3:] == ("build", "evidence", "evidence.json")
    assert (path.parent.parent.parent / "pyproject.toml").is_file()


@pytest.mark.parametrize(("key", "value", "unit", "source", "field", "hint"), [
    ("smtp.round_trip_per_message", 6, "round trips", "01", "key", "smtp.round_trips_per_message"),
    ("smtp.round_trips_per_message", 6, "trips", "01", "unit", "round trips"),
    ("c09.time_smtp_starttls_vs_https_at_40ms", float("nan"), "x", "06", "value", "finite"),
    ("c09.time_smtp_starttls_vs_https_at_40ms", True, "x", "06", "value", "finite"),
    ("c09.time_smtp_starttls_vs_https_at_40ms", "12", "x", "06", "value", "finite"),
    ("c09.time_smtp_starttls_vs_https_at_40ms", 12, "x", "  ", "source", "source="),
])
def test_bad_records_are_refused_and_nothing_is_written(_evidence_dir, key, value, unit, source, field, hint) -> None:
    with pytest.raises(InvalidInput) as info:
        evidence.record(key, value, unit, source=source)
    assert info.value.field == field
    assert hint in f"{info.value.problem} {info.value.fix}"
    assert not (_evidence_dir / "evidence.json").exists()


def test_a_damaged_file_is_reported_with_the_fix(_evidence_dir) -> None:
    _evidence_dir.mkdir(parents=True)
    (_evidence_dir / "evidence.json").write_text("{not json")
    with pytest.raises(InvalidInput) as info:
        evidence.load()
    assert "delete the file" in info.value.fix


def _record_many(folder: str, worker: int) -> None:
    for i in range(25):
        evidence.record("smtp.bytes_per_message", worker * 1000 + i, "bytes",
                        source=f"worker-{worker}", folder=folder)


@pytest.mark.slow
def test_parallel_notebooks_lose_no_record(tmp_path) -> None:
    # nbmake runs notebooks in parallel processes; each append must survive.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), n)) for n in (1, 2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = json.loads((tmp_path / "evidence.json").read_text())["records"]
    assert sorted(r["value"] for r in records) == sorted(float(w * 1000 + i) for w in (1, 2, 3) for i in range(25))


def test_known_keys_cite_claims_of_the_decision_model_and_have_units() -> None:
    claims = load_criteria().claims
    for key, known in evidence.KNOWN_KEYS.items():
        assert re.fullmatch(r"(smtp|rest|retry|webhooks|imap|c07|c08|c09|c19)\.[a-z0-9_]+", key), key
        if known.unit == "x" and key.startswith("c"):  # a ratio says what it compares, for the report's sentence
            assert known.metric in ("time", "throughput", "round trips") and known.top and known.bottom, key
        assert known.claim in claims, key
        assert known.unit and known.meaning and known.notebook


def test_for_claims_picks_the_figures_supporting_those_claims() -> None:
    evidence.record("smtp.round_trips_per_message", 6, "round trips", source="01")
    evidence.record("c09.time_smtp_starttls_vs_https_loopback", 2, "x", source="06")
    recorded = evidence.load()
    assert [e.key for e in evidence.for_claims(("C07",), recorded)] == ["smtp.round_trips_per_message"]
    assert evidence.for_claims(("C13",), recorded) == []


def test_to_frame_lists_every_key_and_says_what_is_not_measured() -> None:
    evidence.record("c09.time_smtp_starttls_vs_https_loopback", 2, "x", source="06")
    frame = evidence.to_frame()
    assert list(frame.index) == list(evidence.KNOWN_KEYS)
    assert frame.loc["c09.time_smtp_starttls_vs_https_loopback", "value"] == 2
    assert frame.loc["c19.throughput_h2_streams_vs_one_at_40ms", "measured"] == "not measured yet"


def test_a_ratio_keeps_its_interval_and_a_bad_interval_is_refused(_evidence_dir) -> None:
    item = evidence.record("c09.time_smtp_starttls_vs_https_at_40ms", 3.1, "x", source="06", low=2.8, high=3.4,
                           detail="simulated 40 ms round-trip time")
    assert evidence.load()["c09.time_smtp_starttls_vs_https_at_40ms"] == item and (item.low, item.high) == (2.8, 3.4)
    for low, high in ((3.2, 3.4), (2.0, float("inf"))):
        with pytest.raises(InvalidInput) as info:
            evidence.record("c09.time_smtp_starttls_vs_https_at_40ms", 3.1, "x", source="06", low=low, high=high)
        assert info.value.field in ("low", "high")
    assert len(json.loads((_evidence_dir / "evidence.json").read_text())["records"]) == 1


def test_records_written_before_intervals_existed_still_load(_evidence_dir) -> None:
    _evidence_dir.mkdir(parents=True)
    old = {"key": "smtp.bytes_per_message", "value": 900.0, "unit": "bytes", "source": "01", "detail": "",
           "measured_at": "2026-11-21T10:00:00+00:00", "host": "vm"}
    (_evidence_dir / "evidence.json").write_text(json.dumps({"version": 1, "records": [old]}))
    item = evidence.load()["smtp.bytes_per_message"]
    assert item.value == 900 and item.low is None and item.high is None


def test_a_figure_that_repeats_a_setting_is_marked_so() -> None:
    assert evidence.KNOWN_KEYS["smtp.blocked_port_connect_s"].setting
    assert not any(k.setting for key, k in evidence.KNOWN_KEYS.items() if key != "smtp.blocked_port_connect_s")
