"""The decision app: questions in groups, presets, a live recommendation, and report exports.

`build_app()` returns an `App` whose child widgets are attributes, so a test (or a notebook cell)
drives it headlessly: set ``app.questions["hosting"].value = "serverless"``, call
``app.export_md.click()``, read ``app.result.value``. The same object displays in JupyterLab and in
Voila. Every widget carries a stable ``ek-*`` CSS class for browser tests. The chart is plain
HTML/CSS (no script, no CDN), and downloads are ``data:`` links (Voila serves no other files).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as w

from emailkit.decide.model import Criteria, Recommendation, load_criteria, normalise_answers, score
from emailkit.decide.report import (
    REPORT_FORMATS,
    RULE_WORDS,
    TEMPLATES,
    download_link,
    margin_words,
    render_report,
    report_filename,
    reports_dir,
)
from emailkit.errors import EmailkitError

__all__ = ["App", "build_app"]

DEFAULTS = "defaults"
CUSTOM = "custom"


class App:
    """The decision widget. `ui` is the top-level box; displaying the `App` displays it."""

    def __init__(self, criteria: Criteria | None = None, *, reports_folder: str | Path | None = None,
                 title: str = "our service") -> None:
        self.criteria = criteria or load_criteria()
        self._reports_folder = Path(reports_folder) if reports_folder is not None else None
        self._bulk = False
        self.saved: dict[str, Path] = {}
        self._links: dict[str, str] = {}
        self._sizes: dict[str, int] = {}

        presets = [("Defaults (a typical new web app)", DEFAULTS)]
        presets += [(p.label, p.id) for p in self.criteria.presets.values()]
        presets.append(("Custom answers", CUSTOM))
        self.preset = w.Dropdown(options=presets, value=DEFAULTS, description="Start from",
                                 layout=w.Layout(width="100%"), style={"description_width": "6rem"})
        self.preset.add_class("ek-preset")
        self.preset_help = w.HTML()
        self.preset_help.add_class("ek-preset-help")
        self.title = w.Text(value=title, description="Project", layout=w.Layout(width="100%"),
                            style={"description_width": "6rem"}, continuous_update=False)
        self.title.add_class("ek-title")

        self.questions: dict[str, w.Dropdown] = {}
        group_boxes = []
        for group in self.criteria.groups:
            rows: list[w.Widget] = [w.HTML(
                f'<div class="ek-group-title">{html.escape(group.title)}</div>'
                f'<div class="ek-muted">{html.escape(group.help)}</div>')]
            for question in self.criteria.questions.values():
                if question.group != group.id:
                    continue
                dropdown = w.Dropdown(options=[(o.label, o.value) for o in question.options],
                                      value=question.default, layout=w.Layout(width="100%"))
                dropdown.add_class(f"ek-q-{question.id}")
                dropdown.add_class("ek-question")
                self.questions[question.id] = dropdown
                rows.append(w.HTML(f'<div class="ek-q-text">{html.escape(question.text)}</div>'
                                   f'<div class="ek-muted">{html.escape(question.help)}</div>'))
                rows.append(dropdown)
            box = w.VBox(rows, layout=w.Layout(margin="0 0 .8rem 0"))
            box.add_class(f"ek-group-{group.id}")
            group_boxes.append(box)

        self.result = w.HTML()
        self.result.add_class("ek-result")
        self.chart = w.HTML()
        self.chart.add_class("ek-chart")
        self.architecture = w.HTML()
        self.architecture.add_class("ek-architecture")
        self.reasons = w.HTML()
        self.reasons.add_class("ek-reasons")
        self.flips = w.HTML()
        self.flips.add_class("ek-flips")
        # No icons: Font Awesome comes from a CDN in Voila's template, and the app must work offline.
        auto = w.Layout(width="auto")
        self.export_md = w.Button(description="Export Markdown (ADR)", button_style="primary", layout=auto)
        self.export_md.add_class("ek-export-md")
        self.export_html = w.Button(description="Export HTML page", layout=auto)
        self.export_html.add_class("ek-export-html")
        self.export_json = w.Button(description="Export JSON", layout=auto)
        self.export_json.add_class("ek-export-json")
        self.downloads = w.HTML()
        self.downloads.add_class("ek-downloads")
        self.status = w.HTML()
        self.status.add_class("ek-status")
        self.recommendation: Recommendation = score({}, self.criteria)

        style = TEMPLATES.get_template("style.css.j2").render()
        header = w.HTML(
            f"<style>{style}{_WIDGET_CSS}</style>"
            '<div class="ek-app-title">SMTP, a REST email API, or both?</div>'
            '<div class="ek-muted">Answer for your project; the recommendation, its reasons and what would '
            "change it update as you go. Each reason cites the claims (C01-C23) and articles (A0-A4) it rests on; "
            "docs/sources.md states each claim and names each article.</div>")
        questions_col = w.VBox([self.preset, self.preset_help, self.title, *group_boxes],
                               layout=w.Layout(flex="1 1 24rem", min_width="18rem", padding="0 1rem 0 0"))
        questions_col.add_class("ek-questions")
        buttons = w.HBox([self.export_md, self.export_html, self.export_json], layout=w.Layout(flex_flow="row wrap"))
        result_col = w.VBox([self.result, self.chart, self.architecture, buttons, self.downloads, self.status,
                             self.reasons, self.flips],
                            layout=w.Layout(flex="1 1 28rem", min_width="20rem"))
        result_col.add_class("ek-panel")
        result_col.add_class("ek-sticky")
        body = w.HBox([questions_col, result_col], layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
        body.add_class("ek-body")
        self.ui = w.VBox([header, body])
        self.ui.add_class("ek-app")

        self.preset.observe(self._on_preset, names="value")
        for dropdown in self.questions.values():
            dropdown.observe(self._on_answer, names="value")
        self.title.observe(lambda _change: self._forget_exports(), names="value")
        self.export_md.on_click(lambda _b: self.export("md"))
        self.export_html.on_click(lambda _b: self.export("html"))
        self.export_json.on_click(lambda _b: self.export("json"))
        self._show_preset_help()
        self.update()

    # -------------------------------------------------------------- answers

    @property
    def answers(self) -> dict[str, str]:
        """The current answer to every question."""
        return {qid: dropdown.value for qid, dropdown in self.questions.items()}

    def set_answers(self, answers: Mapping[str, Any], *, reset: bool = True) -> None:
        """Set several answers at once (others back to defaults if `reset`); one update at the end."""
        clean = normalise_answers(answers, self.criteria)
        base = self.criteria.defaults() if reset else self.answers
        self._bulk = True
        try:
            for qid, value in {**base, **clean}.items():
                self.questions[qid].value = value
        finally:
            self._bulk = False
        self.update()

    def _on_preset(self, change: dict[str, Any]) -> None:
        self._show_preset_help()
        if self._bulk or change["new"] == CUSTOM:
            return
        preset = self.criteria.presets.get(change["new"])
        self.set_answers(preset.answers if preset else {})

    def _on_answer(self, _change: dict[str, Any]) -> None:
        if self._bulk:
            return
        self._bulk = True
        try:
            self.preset.value = CUSTOM  # the answers no longer match a preset
        finally:
            self._bulk = False
        self._show_preset_help()
        self.update()

    def _show_preset_help(self) -> None:
        preset = self.criteria.presets.get(self.preset.value)
        text = preset.description if preset else (
            "Your own answers." if self.preset.value == CUSTOM else "Every question at its default.")
        self.preset_help.value = f'<div class="ek-muted">{html.escape(text)}</div>'

    # -------------------------------------------------------------- display

    def update(self) -> Recommendation:
        """Score the current answers and redraw the result panel."""
        rec = score(self.answers, self.criteria)
        self.recommendation = rec
        ctx = {"rec": rec, "criteria": self.criteria, "title": self.criteria.title,
               "margin_words": margin_words(rec), "rule_words": RULE_WORDS.get(rec.rule, rec.rule),
               "hybrid_how": self.criteria.architecture.get("hybrid", "") if rec.choice == "hybrid" else ""}
        top = max(rec.smtp_score, rec.api_score, 1)
        ctx["bars"] = [
            {"path": "smtp", "title": self.criteria.title("smtp"), "score": rec.smtp_score,
             "pct": round(100 * rec.smtp_score / top)},
            {"path": "api", "title": self.criteria.title("api"), "score": rec.api_score,
             "pct": round(100 * rec.api_score / top)},
        ]
        ctx["routes"] = [(r.traffic, self.criteria.title(r.path), r.how) for r in rec.architecture]
        panel = TEMPLATES.get_template("panel.html.j2")
        self.result.value = panel.render(part="result", **ctx)
        self.chart.value = panel.render(part="chart", **ctx)
        self.architecture.value = panel.render(part="architecture", **ctx)
        self.reasons.value = panel.render(part="reasons", **ctx)
        self.flips.value = panel.render(part="flips", **ctx)
        self._forget_exports()
        return rec

    def _forget_exports(self) -> None:
        # Links to reports of earlier answers would be stale: drop them.
        if self._links:
            self._links.clear()
            self.downloads.value = ""
            self.status.value = '<span class="ek-muted">Answers changed: export again for an up-to-date report.</span>'

    # -------------------------------------------------------------- export

    def export(self, fmt: str) -> Path | None:
        """Write the report in `fmt` under the reports folder and offer it as a download link."""
        folder = self._reports_folder or reports_dir()
        filename = report_filename(self.title.value or "our service", fmt)
        try:
            text = render_report(self.recommendation, fmt, title=self.title.value, criteria=self.criteria)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / filename
            path.write_text(text, encoding="utf-8")
        except (OSError, EmailkitError) as exc:
            self.status.value = f'<span class="ek-error">Could not export: {html.escape(str(exc))}</span>'
            return None
        path = path.resolve()
        self.saved[fmt] = path
        self._sizes[fmt] = len(text.encode("utf-8"))
        self._links[fmt] = download_link(text, fmt, filename, css_class=f"ek-download-{fmt}")
        self.downloads.value = " · ".join(self._links[f] for f in REPORT_FORMATS if f in self._links)
        written = "".join(
            f'<li><code>{html.escape(str(self.saved[f]))}</code> ({self._sizes[f]:,} bytes)</li>'
            for f in REPORT_FORMATS if f in self._links)
        self.status.value = f'<div class="ek-saved">Saved in {html.escape(str(path.parent))}:<ul>{written}</ul></div>'
        return path

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.ui._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            # Where widgets cannot be drawn (a static render, nbconvert), say what is there rather than
            # print the widget tree's repr.
            bundle["text/plain"] = ("The decision app (SMTP, a REST email API, or both?): run this notebook, "
                                    "or `make app`, to use it.")
        return bundle


def build_app(criteria: Criteria | None = None, *, reports_folder: str | Path | None = None,
              title: str = "our service") -> App:
    """The decision app (see `App`); reports go to `reports_folder`, default `reports_dir()`."""
    return App(criteria, reports_folder=reports_folder, title=title)


_WIDGET_CSS = """
.ek-app .widget-html-content { line-height: 1.35; }
.ek-app-title { font-size: 1.4rem; font-weight: 700; margin: .2rem 0; }
.ek-group-title { font-weight: 700; margin-top: .6rem; border-bottom: 1px solid #d0d7de; }
.ek-q-text { margin-top: .35rem; font-size: .92rem; }
.ek-error { color: #cf222e; }
.ek-saved { color: #1a7f37; }
.ek-downloads a { margin-right: .8rem; color: #0969da; text-decoration: underline; }
.ek-saved ul { margin: .2rem 0 0 1rem; padding: 0; } .ek-saved code { overflow-wrap: anywhere; }
/* The result stays in view while the lower questions are answered (wide screens; narrow ones stack). */
.ek-app, .ek-app .ek-body { overflow: visible !important; }  /* a scrolling box would pin nothing */
@media (min-width: 50rem) {
  .ek-sticky { position: sticky; top: .5rem; align-self: flex-start; max-height: calc(100vh - 1rem); overflow-y: auto; }
  .ek-sticky > * { flex-shrink: 0; }  /* scroll inside the panel; never squeeze its parts over each other */
}
"""
