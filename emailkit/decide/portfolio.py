"""Score many services at once: a CSV (or DataFrame) in, one row per service out.

The input has a ``service`` column and one column per question id (see ``criteria.yaml``); an empty
cell takes the question's default. An unknown column or answer raises `InvalidInput` naming the
row, the service and the question, with the allowed values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from emailkit.decide.model import Criteria, load_criteria, normalise_answers, score
from emailkit.decide.report import TEMPLATES
from emailkit.errors import InvalidInput
from emailkit.redaction import redact

__all__ = ["PORTFOLIO_COLUMNS", "PORTFOLIO_FORMATS", "render_portfolio", "score_portfolio"]

#: Columns of the DataFrame `score_portfolio` returns (besides the ``service`` index).
PORTFOLIO_COLUMNS = ("choice", "recommendation", "smtp_score", "api_score", "margin", "rule", "needs",
                     "top_reasons", "flips", "closest_flip", "defaulted")
PORTFOLIO_FORMATS = ("csv", "md", "html", "json")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _read(services: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(services, pd.DataFrame):
        return services
    path = Path(services)
    if not path.is_file():
        raise InvalidInput("portfolio", f"{path} does not exist", fix="pass the path of a CSV file with a 'service' column")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput("portfolio", f"{path} is not a readable CSV ({exc})",
                           fix="save it as UTF-8 CSV with a header row") from exc


def score_portfolio(services: str | Path | pd.DataFrame, criteria: Criteria | None = None) -> pd.DataFrame:
    """One row per service: the choice, scores, margin, what forced it, top reasons, what would flip it."""
    criteria = criteria or load_criteria()
    frame = _read(services)
    columns = [str(c).strip() for c in frame.columns]
    if "service" not in columns:
        raise InvalidInput("portfolio.service", "column is missing",
                           fix="add a 'service' column naming each service (one row per service)")
    for column in columns:
        if column != "service" and column not in criteria.questions:
            raise InvalidInput(f"portfolio.{column}", "is not a question of the decision model",
                               fix=f"rename or remove the column; questions are: {', '.join(criteria.questions)}")
    frame = frame.set_axis(columns, axis=1)
    rows = []
    seen: set[str] = set()
    for number, record in enumerate(frame.to_dict(orient="records"), start=2):  # line 1 is the header
        name = "" if _missing(record["service"]) else str(record["service"]).strip()
        where = f"row {number} ({name or 'no service name'})"
        if not name:
            raise InvalidInput(f"{where}.service", "is empty", fix="give every row a service name")
        if name in seen:
            raise InvalidInput(f"{where}.service", f"{name!r} appears twice", fix="give each service one row")
        seen.add(name)
        answers = {k: v for k, v in record.items() if k != "service" and not _missing(v)}
        rec = score(normalise_answers(answers, criteria, where=where), criteria)
        flip = rec.sensitivity[0] if rec.sensitivity else None
        rows.append({
            "service": name,
            "choice": rec.choice,
            "recommendation": rec.title,
            "smtp_score": rec.smtp_score,
            "api_score": rec.api_score,
            "margin": rec.margin,
            "rule": rec.rule,
            "needs": "; ".join(f"{n.traffic} -> {n.path}" for n in rec.needs),
            "top_reasons": " | ".join(f"{r.favours}: {r.text}" for r in rec.reasons[:2]),
            "flips": len(rec.sensitivity),
            "closest_flip": f"{flip.question}={flip.new_answer} -> {flip.choice}" if flip else "",
            "defaulted": len(rec.defaulted),
        })
    result = pd.DataFrame(rows, columns=["service", *PORTFOLIO_COLUMNS])
    return result.set_index("service")


def render_portfolio(frame: pd.DataFrame, fmt: str = "md", *, title: str = "Service portfolio") -> str:
    """The scored portfolio as CSV, a Markdown table, a self-contained HTML page, or JSON."""
    if fmt not in PORTFOLIO_FORMATS:
        raise InvalidInput("format", f"{fmt!r} is not a portfolio format", fix=f"use one of: {', '.join(PORTFOLIO_FORMATS)}")
    if fmt == "csv":
        text = frame.to_csv()
    elif fmt == "json":
        text = json.dumps({"title": title, "services": frame.reset_index().to_dict(orient="records")}, indent=2) + "\n"
    else:
        rows = frame.reset_index().to_dict(orient="records")
        counts = frame["choice"].value_counts().to_dict() if len(frame) else {}
        text = TEMPLATES.get_template(f"portfolio.{fmt}.j2").render(title=title, rows=rows, counts=counts)
    return redact(text)
