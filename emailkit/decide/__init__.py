"""Decide: SMTP, a REST email API, or both? Score a project's answers and explain the result.

`score(answers)` is the model (criteria in `criteria.yaml`, rule in `emailkit.decide.model`);
`score_portfolio` scores many services; `render_report` / `save_report` write MADR Markdown,
self-contained HTML and JSON; `build_app()` is the ipywidgets app of notebook 07 and `make app`.
"""

from __future__ import annotations

from emailkit.decide.model import (
    CHOICES,
    Criteria,
    Flip,
    Need,
    Reason,
    Recommendation,
    Route,
    criteria_frame,
    load_criteria,
    normalise_answers,
    score,
)
from emailkit.decide.portfolio import render_portfolio, score_portfolio
from emailkit.decide.report import download_link, render_report, report_filename, reports_dir, save_report
from emailkit.decide.widget import App, build_app

__all__ = [
    "App",
    "CHOICES",
    "Criteria",
    "Flip",
    "Need",
    "Reason",
    "Recommendation",
    "Route",
    "build_app",
    "criteria_frame",
    "download_link",
    "load_criteria",
    "normalise_answers",
    "render_portfolio",
    "render_report",
    "report_filename",
    "reports_dir",
    "save_report",
    "score",
    "score_portfolio",
]
