"""Portfolio: many services scored at once from a CSV or a DataFrame."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from emailkit.decide import CHOICES, render_portfolio, score, score_portfolio
from emailkit.decide.portfolio import PORTFOLIO_COLUMNS
from emailkit.errors import InvalidInput

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "portfolio.csv"


def test_the_sample_portfolio_scores_each_service_as_score_would() -> None:
    frame = score_portfolio(SAMPLE)
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    assert list(frame.index) == list(raw["service"])
    assert tuple(frame.columns) == PORTFOLIO_COLUMNS
    for record in raw.to_dict(orient="records"):
        name = record.pop("service")
        rec = score({k: v for k, v in record.items() if v})
        row = frame.loc[name]
        assert (row.choice, row.smtp_score, row.api_score, row.margin, row.rule) == (
            rec.choice, rec.smtp_score, rec.api_score, rec.margin, rec.rule)
        assert row.flips == len(rec.sensitivity)
    assert set(frame["choice"]) == set(CHOICES)  # the sample shows all three outcomes


def test_a_dataframe_with_gaps_takes_the_defaults() -> None:
    frame = score_portfolio(pd.DataFrame({"service": ["a", "b"], "hosting": ["serverless", None],
                                          "codebase": [float("nan"), "packaged"]}))
    assert frame.loc["a", "recommendation"] == score({"hosting": "serverless"}).title
    assert frame.loc["b", "choice"] == score({"codebase": "packaged"}).choice
    assert frame.loc["a", "defaulted"] == 19


def test_a_bad_answer_names_the_row_service_and_question(tmp_path) -> None:
    path = tmp_path / "services.csv"
    path.write_text("service,hosting\nbilling,vm\nsearch,cloud\n")
    with pytest.raises(InvalidInput) as info:
        score_portfolio(path)
    assert info.value.field == "row 3 (search).hosting"
    assert "serverless" in info.value.fix


@pytest.mark.parametrize(("csv", "field", "hint"), [
    ("name,hosting\na,vm\n", "portfolio.service", "'service' column"),
    ("service,hostin\na,vm\n", "portfolio.hostin", "hosting"),
    ("service,hosting\na,vm\na,vm\n", "row 3 (a).service", "one row"),
    ("service,hosting\n,vm\n", "row 2 (no service name).service", "service name"),
])
def test_malformed_portfolios_are_refused_with_the_fix(tmp_path, csv, field, hint) -> None:
    path = tmp_path / "services.csv"
    path.write_text(csv)
    with pytest.raises(InvalidInput) as info:
        score_portfolio(path)
    assert info.value.field == field and hint in info.value.fix


def test_a_missing_file_says_so(tmp_path) -> None:
    with pytest.raises(InvalidInput) as info:
        score_portfolio(tmp_path / "nope.csv")
    assert "does not exist" in info.value.problem


def test_portfolio_renders_in_every_format() -> None:
    frame = score_portfolio(SAMPLE)
    md = render_portfolio(frame, "md", title="Acme")
    assert md.startswith("# Acme") and md.count("\n| ") == len(frame) + 1
    page = render_portfolio(frame, "html")
    assert "https://" not in page and "http://" not in page and "<script" not in page
    assert json.loads(render_portfolio(frame, "json"))["services"][0]["service"] == frame.index[0]
    assert render_portfolio(frame, "csv").splitlines()[0].startswith("service,choice")
    with pytest.raises(InvalidInput):
        render_portfolio(frame, "pdf")
