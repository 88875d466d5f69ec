"""Reports of a `Recommendation`: MADR 4 Markdown, a self-contained HTML page, and JSON.

The Markdown is an architecture decision record in MADR 4 shape (Context and Problem Statement,
Decision Drivers, Considered Options, Decision Outcome with ``Chosen option: "..."``, Consequences,
Pros and Cons of the Options, More Information). The HTML page carries its own CSS and bar chart:
no script, no font, no CDN, it opens offline. The JSON holds the answers and the whole
recommendation (`Recommendation.from_dict` reads it back).

Figures are never typed in: the report quotes what notebooks 01-06 recorded with
`emailkit.evidence.record`, with when and where each was measured, and says how to produce them
when none are recorded. Every report goes through `emailkit.redaction.redact` before it leaves.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

import emailkit
from emailkit import citations as citing
from emailkit import evidence as evidence_store
from emailkit.decide.model import CHOICES, Criteria, Point, Reason, Recommendation, load_criteria
from emailkit.display import quantity
from emailkit.errors import InvalidInput
from emailkit.redaction import redact

__all__ = [
    "REPORT_FORMATS",
    "RULE_WORDS",
    "TEMPLATES",
    "download_link",
    "headline",
    "margin_words",
    "measured",
    "render_report",
    "report_filename",
    "reports_dir",
    "save_report",
]

#: format -> (file extension, media type)
REPORT_FORMATS: dict[str, tuple[str, str]] = {
    "md": (".md", "text/markdown"),
    "html": (".html", "text/html"),
    "json": (".json", "application/json"),
}
SCHEMA = "emailkit.decide.report/1"

TEMPLATES = Environment(
    loader=PackageLoader("emailkit.decide", "templates"),
    autoescape=lambda name: bool(name and name.endswith(".html.j2")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cell(text: Any) -> str:
    """Text safe inside one Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


TEMPLATES.filters["sentence"] = _sentence
TEMPLATES.filters["cell"] = _cell
TEMPLATES.filters["capital"] = _capital
TEMPLATES.filters["period"] = lambda text: text if text.rstrip().endswith((".", "!", "?")) else text.rstrip() + "."


def reports_dir() -> Path:
    """Where reports go, as an absolute path: `$EMAILKIT_REPORTS_DIR`, else `reports/` at the project
    root (the folder holding emailkit's pyproject.toml), else `reports/` in the current folder.

    The widget (in a notebook, whose folder is ``notebooks/``), the Voila page and ``emailkit decide``
    all write to this one folder.
    """
    configured = os.environ.get("EMAILKIT_REPORTS_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    root = evidence_store.project_root()  # the same root the evidence file uses (one rule, in evidence.py)
    return (root if root is not None else Path.cwd()).resolve() / "reports"


def _check_format(fmt: str) -> str:
    if fmt not in REPORT_FORMATS:
        raise InvalidInput("format", f"{fmt!r} is not a report format", fix=f"use one of: {', '.join(REPORT_FORMATS)}")
    return fmt


def report_filename(title: str, fmt: str) -> str:
    """`email-decision-<title as a slug>.<ext>`."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "project"
    return f"email-decision-{slug}{REPORT_FORMATS[_check_format(fmt)][0]}"


def _sources(claims: tuple[str, ...], seeds: tuple[str, ...], criteria: Criteria) -> str:
    """Claim ids and article labels (A0-A4), as docs/sources.md lists them."""
    return ", ".join(list(claims) + [str(criteria.seeds[s].get("label", s)) for s in seeds])


def measured(e: evidence_store.Evidence) -> str:
    """One recorded figure as a sentence quotes it: ``1 request (GET …, notebook 02 on vm, 2026-…)``."""
    detail = f"; {e.detail}" if e.detail else ""
    return f"{quantity(e.value, e.unit)} ({e.source} on {e.host}, {e.measured_at}{detail})"


def _item(text: str, claims: tuple[str, ...], seeds: tuple[str, ...],
          recorded: Mapping[str, evidence_store.Evidence], criteria: Criteria) -> dict[str, Any]:
    return {
        "text": text,
        "sources": _sources(claims, seeds, criteria),
        "evidence": [],  # figures are quoted once, under the decision driver they bear on (emailkit.citations)
    }


def _reason_item(reason: Reason, recorded: Mapping[str, evidence_store.Evidence],
                 criteria: Criteria) -> dict[str, Any]:
    item = _item(reason.text, reason.claims, reason.seeds, recorded, criteria)
    item.update(question=reason.question_text, answer=reason.answer_label, smtp=reason.smtp, api=reason.api,
                favours=reason.favours)
    return item


def _against(item: dict[str, Any], path_title: str) -> dict[str, Any]:
    """A reason for the other path, worded as a con of this one (not the other's pro copied over)."""
    text = item["text"].rstrip(".")
    if text[:1].isupper() and not text[1:2].isupper():  # "SMTP ..." keeps its capitals
        text = text[:1].lower() + text[1:]
    path = path_title if path_title == "SMTP" else f"the {path_title}"
    return {**item, "text": f"your answer \u201c{item['answer']}\u201d favours {path} instead: {text}"}


def headline(title: str, choice: str, *, reads: bool = False) -> str:
    """The report's title in plain words: "Shop: send email through a REST email API"."""
    verb = "send and read" if reads else "send"
    how = {"smtp": "over SMTP", "api": "through a REST email API",
           "hybrid": "over SMTP and through a REST email API, each for its own traffic"}[choice]
    return f"{_capital(title)}: {verb} email {how}"


def margin_words(rec: Recommendation) -> str:
    """The scores said in words: "the API leads by 2 points", "SMTP leads by 1 point", "level"."""
    lead = abs(rec.margin)
    points = f"{lead} point{'s' if lead != 1 else ''}"
    if rec.margin > 0:
        return f"the REST email API leads by {points}"
    if rec.margin < 0:
        return f"SMTP leads by {points}"
    return "the two scores are level"


RULE_WORDS = {
    "needs-both": "some mail can only take SMTP and some only the API, whatever the points",
    "needs-all": "all of the mail can only take one path, whatever the points",
    "needs-one-rest-other": "part of the mail can only take one path; the rest follows the points",
    "needs-one": "part of the mail can only take one path, and the points do not justify a second one",
    "strong-and-close": "both sides score strongly and close together",
    "tie": "the scores tie, and a tie goes to the API",
    "score": "the higher score wins",
}


def _point(point: Point, recorded: Mapping[str, evidence_store.Evidence], criteria: Criteria) -> dict[str, Any]:
    return _item(point.text, point.claims, point.seeds, recorded, criteria)


def _context(rec: Recommendation, *, title: str, context: str, recorded: Mapping[str, evidence_store.Evidence],
             generated_at: datetime, criteria: Criteria, evidence_path: str) -> dict[str, Any]:
    reasons = {path: [_reason_item(r, recorded, criteria) for r in rec.reasons_for(path)] for path in ("smtp", "api")}
    balanced = [_reason_item(r, recorded, criteria) for r in rec.reasons_for("both")]
    options = []
    for cid in CHOICES:
        candidate = criteria.candidates[cid]
        if cid == "hybrid":
            good = [_point(p, recorded, criteria) for p in candidate.good]
            good += [{"text": f"{n.traffic} takes {criteria.title(n.path)}, the only path it can take",
                      "sources": f"your answer to \u201c{criteria.questions[n.question].text}\u201d",
                      "evidence": []} for n in rec.needs]
            bad = [_point(p, recorded, criteria) for p in candidate.bad]
            neutral: list[dict[str, Any]] = []
        else:
            other = "api" if cid == "smtp" else "smtp"
            good = reasons[cid] + [_point(p, recorded, criteria) for p in candidate.good]
            bad = [_against(r, criteria.title(other)) for r in reasons[other]]
            bad += [_point(p, recorded, criteria) for p in candidate.bad]
            neutral = balanced
        options.append({"id": cid, "title": candidate.title, "summary": candidate.summary,
                        "good": good, "bad": bad, "neutral": neutral, "chosen": cid == rec.choice})
    chosen = next(o for o in options if o["chosen"])
    if rec.choice == "hybrid":
        consequences_good = chosen["good"]
        consequences_bad = chosen["bad"]
    else:
        consequences_good = reasons[rec.choice][:4] or chosen["good"][:2]
        other = "api" if rec.choice == "smtp" else "smtp"
        consequences_bad = [_against(r, criteria.title(other)) for r in reasons[other][:4]] + [
            _point(p, recorded, criteria) for p in criteria.candidates[rec.choice].bad][:2]
    consequences_bad = consequences_bad + [{"text": c, "sources": "", "evidence": []} for c in rec.conflicts]

    cited_claims: list[str] = []
    cited_seeds: list[str] = []
    for r in rec.reasons:
        cited_claims += [c for c in r.claims if c not in cited_claims]
        cited_seeds += [s for s in r.seeds if s not in cited_seeds]
    for cid in CHOICES:
        for p in criteria.candidates[cid].good + criteria.candidates[cid].bad:
            cited_claims += [c for c in p.claims if c not in cited_claims]
            cited_seeds += [s for s in p.seeds if s not in cited_seeds]
    # Evidence by relevance: each driver gets the one or two figures that bear on it, each figure once.
    citations = citing.cite([(str(i), r.claims) for i, r in enumerate(rec.reasons)], recorded)
    quoted = [recorded[key] for key in citing.cited(citations)]
    drivers = [{**_reason_item(r, recorded, criteria), "evidence": [c.text for c in citations[str(i)]]}
               for i, r in enumerate(rec.reasons)]
    hosts = sorted({e.host for e in quoted})
    dates = sorted({e.measured_at.split("T")[0] for e in quoted})
    top = max(rec.smtp_score, rec.api_score, 1)
    return {
        "title": title,
        "context": context,
        "rec": rec,
        "chosen_title": criteria.title(rec.choice),
        "headline": headline(title, rec.choice, reads=rec.answers.get("direction") == "read_replies"),
        "margin_words": margin_words(rec),
        "rule_words": RULE_WORDS.get(rec.rule, rec.rule),
        "hybrid_how": criteria.architecture.get("hybrid", "") if rec.choice == "hybrid" else "",
        "date": generated_at.date().isoformat(),
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "version": emailkit.__version__,
        "options": options,
        "drivers": drivers,
        "consequences_good": consequences_good,
        "consequences_bad": consequences_bad,
        "routes": [{"traffic": r.traffic, "path": r.path, "path_title": criteria.title(r.path) if r.path in CHOICES
                    else r.path, "how": r.how} for r in rec.architecture],
        "flips": [{"question": f.question_text, "answer": criteria.questions[f.question].option(f.answer).label,
                   "new_answer": f.new_answer_label, "choice": criteria.title(f.choice),
                   "smtp": f.smtp_score, "api": f.api_score} for f in rec.sensitivity],
        "answers": [{"id": qid, "question": criteria.questions[qid].text,
                     "answer": criteria.questions[qid].option(value).label, "value": value,
                     "defaulted": qid in rec.defaulted} for qid, value in rec.answers.items()],
        "bars": [{"path": "smtp", "title": criteria.title("smtp"), "score": rec.smtp_score,
                  "pct": round(100 * rec.smtp_score / top)},
                 {"path": "api", "title": criteria.title("api"), "score": rec.api_score,
                  "pct": round(100 * rec.api_score / top)}],
        "evidence": [{"key": e.key, "claim": e.claim} for e in quoted],
        "evidence_recorded": bool(recorded),
        "evidence_caveat": citing.CAVEAT,
        "evidence_where": (f"on {', '.join(hosts)}, " if hosts else "")
        + (f"{dates[0]}" if len(dates) == 1 else f"between {dates[0]} and {dates[-1]}" if dates else ""),
        "claims": [{"id": c, "text": criteria.claims[c]} for c in sorted(cited_claims)],
        "seeds": [{"id": s, **criteria.seeds[s]} for s in sorted(cited_seeds)],
    }


def render_report(rec: Recommendation, fmt: str = "md", *, title: str = "our service", context: str = "",
                  evidence: Mapping[str, evidence_store.Evidence] | None = None,
                  generated_at: datetime | None = None, criteria: Criteria | None = None) -> str:
    """The report of `rec` as text in `fmt` ("md", "html" or "json"), secrets redacted.

    `evidence` defaults to what `emailkit.evidence.load()` finds; pass ``{}`` for none.
    """
    _check_format(fmt)
    criteria = criteria or load_criteria()
    recorded = evidence_store.load() if evidence is None else evidence
    # Free text (typed by a user or a notebook) is redacted before it is placed, so no encoding
    # (JSON escapes, HTML entities) can hide a secret from the final pass below.
    recorded = {key: replace(e, source=redact(e.source), detail=redact(e.detail)) for key, e in recorded.items()}
    generated_at = generated_at or datetime.now(timezone.utc).replace(microsecond=0)
    title = redact(title.strip()) or "our service"
    context = "\n".join(redact(line) for line in context.strip().splitlines())
    ctx = _context(rec, title=title, context=context, recorded=recorded, generated_at=generated_at,
                   criteria=criteria, evidence_path=str(evidence_store.location()))
    if fmt == "json":
        document = {
            "schema": SCHEMA,
            "title": title,
            "context": ctx["context"],
            "generated_at": ctx["generated_at"],
            "emailkit_version": ctx["version"],
            "criteria_version": rec.criteria_version,
            "answers": dict(rec.answers),
            "recommendation": rec.to_dict(),
            "evidence": [asdict(recorded[e["key"]]) for e in ctx["evidence"]],
        }
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        text = TEMPLATES.get_template(f"report.{fmt}.j2").render(**ctx)
    return redact(text)


def save_report(rec: Recommendation, fmt: str = "md", *, folder: str | Path | None = None,
                name: str | None = None, title: str = "our service", **kwargs: Any) -> Path:
    """Render and write the report; returns its path (folder default: `reports_dir()`, created)."""
    text = render_report(rec, fmt, title=title, **kwargs)
    target = Path(folder) if folder is not None else reports_dir()
    target.mkdir(parents=True, exist_ok=True)
    path = target / (name or report_filename(title, fmt))
    path.write_text(text, encoding="utf-8")
    return path


def download_link(text: str, fmt: str, filename: str, *, css_class: str = "") -> str:
    """An `<a download>` link carrying `text` as a `data:` URI (Voila serves no other files)."""
    _, media_type = REPORT_FORMATS[_check_format(fmt)]
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    cls = f' class="{html.escape(css_class)}"' if css_class else ""
    return (f'<a{cls} download="{html.escape(filename)}" href="data:{media_type};charset=utf-8;base64,{payload}">'
            f"Download {html.escape(filename)}</a>")
