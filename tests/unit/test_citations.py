"""emailkit.citations: a report quotes each measured figure once, under the driver it bears on, with its
conditions — checked on the shipped example answers with every known figure recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emailkit import citations, evidence
from emailkit.decide import render_report, score
from emailkit.decide.cli import read_answers

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "answers").glob("*.yaml"))
BENCH_DETAIL = ("simulated 40 ms round-trip time (a proxy in its own process); real Mailpit v1.33.1; "
                "TLS verified against a local CA; 30 and 30 messages; verdict: holds")


@pytest.fixture()
def everything(tmp_path, monkeypatch) -> dict[str, evidence.Evidence]:
    """Every known key recorded once, ratios with an interval and the conditions the bench writes."""
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path / "evidence"))
    for i, (key, known) in enumerate(evidence.KNOWN_KEYS.items()):
        if known.unit == "x":
            loopback = key.endswith("_loopback")
            value = 0.43 if loopback else 3.0 + i / 100
            evidence.record(key, value, "x", source="06_cost_and_speed", low=value * 0.9, high=value * 1.1,
                            detail=("loopback, no proxy; the sandbox; TLS verified against a local CA; 30 and 30 "
                                    "messages; verdict: reverses") if loopback else BENCH_DETAIL)
        else:
            evidence.record(key, 100 + i, known.unit, source=f"{known.notebook}_notebook", detail="loopback")
    return evidence.load()


def drivers(text: str) -> list[tuple[str, list[str]]]:
    """(driver line, its "Measured:" lines) from a Markdown report's Decision Drivers section."""
    section = text.split("## Decision Drivers", 1)[1].split("\n## ", 1)[0]
    out: list[tuple[str, list[str]]] = []
    for line in section.splitlines():
        if line.startswith("* **"):
            out.append((line, []))
        elif line.strip().startswith("* Measured:") and out:
            out[-1][1].append(line.strip()[len("* Measured: "):])
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_examples_cite_only_relevant_figures_each_once_with_conditions(path: Path, everything) -> None:
    answers, title, context = read_answers(path)
    rec = score(answers)
    text = render_report(rec, "md", title=title, context=context)
    found = drivers(text)
    assert len(found) == len(rec.reasons)
    chosen = citations.cite([(str(i), r.claims) for i, r in enumerate(rec.reasons)], everything)
    all_quotes = [q for _, quotes in found for q in quotes]
    assert all_quotes, "every example rests on some measured claim"
    assert len(all_quotes) == len(set(all_quotes))  # no figure twice
    for (line, quotes), reason, picked in zip(found, rec.reasons, chosen.values(), strict=True):
        assert len(quotes) <= citations.PER_DRIVER
        assert all(evidence.KNOWN_KEYS[c.key].claim in reason.claims for c in picked)  # it bears on this driver
        assert [c.text for c in picked] == quotes
        for quote in quotes:
            assert re.search(r"measured by \S+ on \S+, \d{4}-\d\d-\d\d\)\.$", quote), quote  # machine and date
            assert "loopback" in quote or "round-trip time" in quote  # the network it was measured on
    # quoted nowhere else in the report: not under the options, not in consequences, not in a list at the end
    for quote in all_quotes:
        assert text.count(quote.split(" (")[0]) == 1, quote
    # a setting is never quoted as a measurement; no local path; the caveat once
    assert "blocked" not in " ".join(all_quotes).lower()
    assert not re.search(r"(/tmp/|/home/|/work/|/root/|evidence\.json|[A-Z]:\\)", text)
    assert text.count("they are not a production benchmark") == 1


def test_a_ratio_reads_as_one_interpreted_sentence(everything) -> None:
    item = everything["c09.time_smtp_starttls_vs_https_at_40ms"]
    sentence, conditions = citations.describe(item)
    assert sentence.startswith("At a simulated 40 ms round-trip time, one message over SMTP with STARTTLS + AUTH "
                               "on a new connection took ")
    assert "× as long as one HTTPS request on a new connection" in sentence
    assert conditions.startswith("95% interval ") and "real Mailpit v1.33.1" in conditions
    faster, _ = citations.describe(everything["c09.time_smtp_starttls_vs_https_loopback"])
    assert faster.startswith("On loopback") and "only 0.43× as long" in faster and "faster" in faster


def test_a_driver_gets_the_most_relevant_figures_first_and_an_earlier_driver_keeps_them(everything) -> None:
    chosen = citations.cite([("speed", ("C09", "C07")), ("again", ("C09",)), ("retries", ("C03", "C10"))],
                            everything)
    assert [c.key for c in chosen["speed"]] == ["c09.time_smtp_starttls_vs_https_at_40ms",
                                                "c09.time_smtp_starttls_vs_https_loopback"]
    assert chosen["again"] == []  # both already quoted
    assert [c.key for c in chosen["retries"]] == ["retry.messages_lost", "retry.messages_duplicated"]  # not C03's setting


def test_nothing_recorded_means_nothing_cited_and_the_report_says_how_to_measure(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path))
    assert citations.cite([("x", ("C09",))], {}) == {"x": []}
    text = render_report(score({"latency": "urgent"}), "md")
    assert "No measured evidence has been recorded yet" in text and "Measured:" not in text
    assert str(tmp_path) not in text
