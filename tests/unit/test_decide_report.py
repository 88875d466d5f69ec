"""Reports: MADR 4 Markdown, self-contained HTML, JSON; measured figures quoted, never typed in."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import pytest

from emailkit import evidence
from emailkit.decide import Recommendation, download_link, render_report, save_report, score
from emailkit.decide.cli import read_answers

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "answers").glob("*.yaml"))

MADR_HEADINGS = [
    "## Context and Problem Statement",
    "## Decision Drivers",
    "## Considered Options",
    "## Decision Outcome",
    "### Consequences",
    "## Pros and Cons of the Options",
    "## More Information",
]
PROFILES = [
    {"codebase": "modern_app", "legacy_smtp": "yes"},  # hybrid
    {"codebase": "packaged", "hosting": "vm"},  # smtp
    {"hosting": "serverless", "delivery_events": "yes"},  # api
]


@pytest.fixture(autouse=True)
def _no_evidence(tmp_path, monkeypatch):
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path / "evidence"))
    monkeypatch.setenv("EMAILKIT_REPORTS_DIR", str(tmp_path / "reports"))


@pytest.mark.parametrize("answers", PROFILES)
def test_markdown_is_an_madr_4_record_of_the_choice(answers) -> None:
    rec = score(answers)
    text = render_report(rec, "md", title="Billing")
    positions = [text.index(h + "\n") for h in MADR_HEADINGS]
    assert positions == sorted(positions), "MADR sections out of order"
    assert text.startswith('---\nstatus: "proposed"\ndate: ')
    assert re.search(rf'^Chosen option: "{re.escape(rec.title)}", because ', text, re.MULTILINE)
    options = text.split("## Considered Options\n")[1].split("## Decision Outcome")[0]
    assert [line[2:] for line in options.strip().splitlines()] == ["SMTP", "REST email API", "Hybrid (SMTP and REST API)"]
    for title in ("SMTP", "REST email API", "Hybrid (SMTP and REST API)"):
        assert f"\n### {title}\n" in text
    for reason in rec.reasons:  # every driver is in, with its sources
        assert reason.text[1:40] in text
    assert "* Good, because" in text and "* Bad, because" in text


def test_markdown_lists_what_would_flip_the_decision() -> None:
    rec = score({"codebase": "modern_app", "legacy_smtp": "yes"})
    text = render_report(rec, "md")
    flips = text.split("### What would change this decision")[1].split("###")[0]
    assert len([line for line in flips.splitlines() if line.startswith("| ") and "---" not in line]) == \
        len(rec.sensitivity) + 1  # header row + one per flip


@pytest.mark.parametrize("answers", PROFILES)
def test_html_is_self_contained(answers) -> None:
    page = render_report(score(answers), "html", title="Billing")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    for heading in ("Context and Problem Statement", "Decision Drivers", "Considered Options", "Decision Outcome",
                    "Consequences", "Pros and Cons of the Options", "More Information"):
        assert f">{heading}</h" in page


def test_html_escapes_what_the_user_typed() -> None:
    page = render_report(score({}), "html", title="<img src=x onerror=alert(1)>")
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_json_round_trips_to_the_same_recommendation() -> None:
    rec = score({"codebase": "modern_app", "legacy_smtp": "yes", "direction": "read_replies"})
    data = json.loads(render_report(rec, "json", title="Portal", context="beside the ERP"))
    assert data["schema"] == "emailkit.decide.report/1"
    assert data["title"] == "Portal" and data["context"] == "beside the ERP"
    assert Recommendation.from_dict(data["recommendation"]) == rec
    # The saved answers (all of them, defaults filled in) reproduce the decision.
    assert dataclasses.replace(score(data["answers"]), defaulted=rec.defaulted) == rec


def test_without_evidence_the_report_says_so_and_how_to_measure() -> None:
    for fmt in ("md", "html"):
        text = render_report(score({}), fmt)
        assert "No measured evidence has been recorded yet" in text
        assert "notebooks 01–06" in text and "make run" in text
    assert json.loads(render_report(score({}), "json"))["evidence"] == []


def test_measured_figures_are_quoted_with_when_and_where() -> None:
    item = evidence.record("smtp.round_trips_per_message", 6, "round trips", source="01_smtp_on_the_wire",
                           detail="fresh connection, sandbox")
    rec = score({"latency": "urgent"})  # cites C07, which this figure supports
    text = render_report(rec, "md")
    assert "No measured evidence" not in text
    assert "6 round trips (fresh connection, sandbox; measured by 01_smtp_on_the_wire on " in text
    assert item.measured_at.split("T")[0] in text and item.host in text
    assert text.count("6 round trips") == 1  # quoted once, under the driver it bears on
    data = json.loads(render_report(rec, "json"))
    expected = {"key": item.key, "value": 6.0, "unit": "round trips", "source": item.source,
                "detail": item.detail, "measured_at": item.measured_at, "host": item.host}
    assert [{k: e[k] for k in expected} for e in data["evidence"]] == [expected]


def test_figures_for_claims_the_report_does_not_rest_on_are_not_quoted() -> None:
    evidence.record("webhooks.delivery_events_received", 3, "events", source="05")
    evidence.record("smtp.round_trips_per_message", 6, "round trips", source="01")
    text = render_report(score({"codebase": "packaged", "latency": "urgent"}), "md")  # a driver on C07, none on C11
    assert "webhooks.delivery_events_received" not in text
    assert "smtp.round_trips_per_message" in text or "6 round trips" in text  # C07 is quoted: the control


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_secrets_typed_into_free_text_never_reach_a_report(fmt) -> None:
    secret = "sk_live_9f8e7d6c5b4a"
    text = render_report(score({}), fmt, title=f"svc token={secret}",
                         context=f"Authorization: Bearer {secret}\npassword={secret}")
    assert secret not in text
    assert "svc" in text and "********" in text  # the free text is there, masked, not dropped
    if fmt == "json":
        json.loads(text)  # still valid JSON after redaction


def test_save_report_writes_under_the_reports_folder(tmp_path) -> None:
    path = save_report(score({}), "md", title="My Service")
    assert path == tmp_path / "reports" / "email-decision-my-service.md"
    assert path.read_text().startswith("---\nstatus:")


def test_save_report_follows_the_configured_folder_and_returns_an_absolute_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMAILKIT_REPORTS_DIR", "relative-reports")
    monkeypatch.chdir(tmp_path)
    path = save_report(score({}), "json")
    assert path == tmp_path.resolve() / "relative-reports" / "email-decision-our-service.json"
    assert path.is_absolute() and path.is_file()


def test_download_link_carries_the_report_as_a_data_uri() -> None:
    text = render_report(score({}), "md")
    link = download_link(text, "md", "x.md", css_class="ek-download-md")
    match = re.search(r'href="data:text/markdown;charset=utf-8;base64,([^"]+)"', link)
    assert match and base64.b64decode(match.group(1)).decode() == text
    assert 'download="x.md"' in link and 'class="ek-download-md"' in link


def test_unknown_format_names_the_choices() -> None:
    from emailkit.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        render_report(score({}), "pdf")
    assert info.value.field == "format" and "md, html, json" in info.value.fix


# ------------------------------------------------------------------ wording, on the shipped examples


def _bullets(text: str, kind: str) -> list[str]:
    return [line.split(f"* {kind}, because ", 1)[1] for line in text.splitlines() if f"* {kind}, because " in line]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_shipped_examples_read_as_plain_english(path: Path) -> None:
    # One figure of exactly 1 in a plural unit, and one of 6, so plurals are exercised in every report.
    evidence.record("rest.requests_to_read_replies", 1, "requests", source="02_rest_send_and_read", detail="GET")
    evidence.record("rest.round_trips_per_message", 1, "round trips", source="02_rest_send_and_read", detail="POST")
    evidence.record("smtp.round_trips_per_message", 6, "round trips", source="01_smtp_on_the_wire", detail="EHLO")
    answers, title, context = read_answers(path)
    rec = score(answers)
    text = render_report(rec, "md", title=title, context=context)
    heading = text.split("\n# ", 1)[1].splitlines()[0]
    # A plain title: no "email over Hybrid (SMTP and REST API)".
    assert "Hybrid" not in heading and "email over REST" not in heading
    assert heading.startswith(title[:1].upper() + title[1:] + ": send")
    # Mirrored reasons: a pro of one option is never pasted as a con of another (or vice versa).
    goods, bads = set(_bullets(text, "Good")), set(_bullets(text, "Bad"))
    assert not goods & bads, goods & bads
    for bad in bads:
        assert not bad.startswith(("with one provider", "a send-only app", "on premises")), bad
    # Plurals: "1 request", never "1 requests"; no "1 round trips".
    assert not re.search(r"\b1 (requests|round trips|connections|messages|events|bytes)\b", text)
    # Figures are quoted only under drivers they bear on; whichever are quoted read "1 request (", ...
    quoted = [p for p in ("1 request (", "1 round trip (", "6 round trips (") if p in text]
    assert quoted or "None of the figures the workbook has measured bears on" in text
    assert all(text.count(p) == 1 for p in quoted)  # each once
    # The margin in words, no rule ids.
    assert not re.search(r"margin [+-]?\d|[+-]\d+ toward the API", text) and "rule `" not in text
    if rec.margin:
        leader = "the REST email API" if rec.margin > 0 else "SMTP"
        points = f"{abs(rec.margin)} point{'s' if abs(rec.margin) != 1 else ''}"
        assert f"{leader} leads by {points}." in text
    else:
        assert "the two scores are level" in text
    # Sources a reader has: docs/sources.md and articles by title, no workspace files.
    assert "design/CLAIMS" not in text and "seed " not in text and ".txt" not in text
    assert "docs/sources.md" in text and '"SMTP vs Email API: Which Should You Use?", tinysend' in text
    # The same wording in the HTML page.
    page = render_report(rec, "html", title=title, context=context)
    assert not re.search(r"[Mm]argin [+-]?\d|[+-]\d+ toward the API", page) and "rule <code>" not in page
    assert f"<h1>{heading.replace('&', '&amp;')}</h1>" in page


def test_a_hybrid_report_has_no_filler_route_and_says_both_paths_share_one_service() -> None:
    rec = score({"codebase": "modern_app", "legacy_smtp": "yes"})
    text = render_report(rec, "md", title="portal")
    routes = text.split("Suggested architecture:")[1].split("### Consequences")[0]
    assert "Both paths →" not in routes and "→ Hybrid" not in routes
    assert "Both paths: route them through the same email service" in routes
