"""docs/decide.md stays true to the code: its example, its thresholds, and the evidence keys."""

from __future__ import annotations

import re
from pathlib import Path

from emailkit import evidence
from emailkit.decide import load_criteria, score

DOC = (Path(__file__).resolve().parents[2] / "docs" / "decide.md").read_text(encoding="utf-8")


def test_the_documented_example_gives_the_documented_result() -> None:
    match = re.search(r"decide\.score\((\{.*?\})\)\nrec\.choice, rec\.smtp_score, rec\.api_score\s+# (\(.*?\))", DOC)
    assert match, "example not found in docs/decide.md"
    rec = score(eval(match.group(1)))  # a dict literal written in the doc
    assert repr((rec.choice, rec.smtp_score, rec.api_score)) == match.group(2)


def test_the_documented_thresholds_are_the_ones_in_the_data_file() -> None:
    rules = load_criteria().rules
    assert f"`rules.strong` ({rules.strong})" in DOC
    assert f"`rules.close` ({rules.close})" in DOC
    assert f"`rules.other_path_lead`, {rules.other_path_lead} point" in DOC
    assert len(load_criteria().questions) == 20 and "Twenty questions" in DOC


def test_every_evidence_key_is_documented_with_its_unit_and_claim() -> None:
    for key, known in evidence.KNOWN_KEYS.items():
        assert f"| `{key}` | {known.unit} | {known.claim} |" in DOC, key
