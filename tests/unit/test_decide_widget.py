"""The decision widget, driven headlessly: set values, click buttons, read the HTML."""

from __future__ import annotations

import base64
import html
import re

import pytest

from emailkit.decide import build_app, load_criteria, score

CRITERIA = load_criteria()


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path / "evidence"))
    monkeypatch.setenv("EMAILKIT_REPORTS_DIR", str(tmp_path / "reports"))
    return build_app()


def choice_shown(app) -> str:
    match = re.search(r'data-choice="(\w+)"', app.result.value)
    assert match, app.result.value
    return match.group(1)


def test_opens_with_every_question_at_its_default(app) -> None:
    assert app.answers == CRITERIA.defaults()
    assert set(app.questions) == set(CRITERIA.questions)
    assert choice_shown(app) == score({}).choice
    assert app.preset.value == "defaults"


def test_changing_an_answer_updates_the_recommendation_live(app) -> None:
    before = app.recommendation
    app.questions["hosting"].value = "serverless"
    assert app.recommendation != before
    assert app.recommendation == score({**CRITERIA.defaults(), "hosting": "serverless"})
    assert "serverless" in app.result.value
    app.questions["legacy_smtp"].value = "yes"
    assert choice_shown(app) == "hybrid"
    assert app.preset.value == "custom"


def test_chart_and_reasons_show_the_current_scores(app) -> None:
    app.questions["codebase"].value = "packaged"
    rec = app.recommendation
    assert re.search(rf'ek-score-smtp">{rec.smtp_score}<', app.chart.value)
    assert re.search(rf'ek-score-api">{rec.api_score}<', app.chart.value)
    assert app.reasons.value.count('class="ek-reason ') == len(rec.reasons)
    assert app.flips.value.count('class="ek-flip"') == len(rec.sensitivity)
    for route in rec.architecture:
        assert route.traffic[1:] in html.unescape(app.architecture.value)


@pytest.mark.parametrize("preset", list(CRITERIA.presets))
def test_presets_set_their_answers_and_the_rest_to_defaults(app, preset) -> None:
    app.questions["self_hosting"].value = "self_host"  # something the preset must reset
    app.preset.value = preset
    expected = {**CRITERIA.defaults(), **CRITERIA.presets[preset].answers}
    assert app.answers == expected
    assert app.recommendation == score(expected)
    assert app.preset.value == preset


def test_exports_save_files_and_offer_matching_downloads(app, tmp_path) -> None:
    app.title.value = "Billing API"
    app.preset.value = "enterprise_legacy"
    for button in (app.export_md, app.export_html, app.export_json):
        button.click()
    folder = tmp_path / "reports"
    assert sorted(p.name for p in folder.iterdir()) == [
        "email-decision-billing-api.html", "email-decision-billing-api.json", "email-decision-billing-api.md"]
    for fmt in ("md", "html", "json"):
        link = re.search(rf'class="ek-download-{fmt}" download="([^"]+)" href="data:[^;]+;charset=utf-8;base64,([^"]+)"',
                         app.downloads.value)
        assert link, app.downloads.value
        assert base64.b64decode(link.group(2)).decode() == (folder / link.group(1)).read_text()
    md = (folder / "email-decision-billing-api.md").read_text()
    assert 'Chosen option: "Hybrid (SMTP and REST API)"' in md and "# Billing API: send email over SMTP and through a REST email API" in md
    # The status names every file written, each by its absolute path (not only the last one).
    for ext in ("md", "html", "json"):
        assert f"<code>{(folder / f'email-decision-billing-api.{ext}').resolve()}</code>" in app.status.value


def test_the_panel_speaks_plainly_and_has_no_filler_route(app) -> None:
    app.preset.value = "enterprise_legacy"
    chart = app.chart.value
    assert "API minus SMTP" not in chart and "rule" not in chart
    rec = app.recommendation
    leader = "The REST email API leads by" if rec.margin > 0 else "SMTP leads by" if rec.margin < 0 else "The two"
    assert leader in chart and "What decided it:" in chart
    routes = app.architecture.value
    assert "Both paths</b>" not in routes and "→ Hybrid" not in routes
    assert "Both paths: route them through the same email service" in routes
    assert "seed " not in app.reasons.value and re.search(r"\bA[0-4]\b", app.reasons.value)


def test_the_result_panel_stays_in_view_while_the_questions_scroll(app) -> None:
    panel = app.ui.children[1].children[1]
    assert "ek-sticky" in panel._dom_classes
    css = app.ui.children[0].value
    assert re.search(r"\.ek-sticky \{ position: sticky;", css)


def test_a_changed_answer_withdraws_stale_downloads(app) -> None:
    app.export_md.click()
    assert "ek-download-md" in app.downloads.value
    app.questions["volume"].value = "high"
    assert app.downloads.value == ""
    assert "export again" in app.status.value


def test_an_export_that_cannot_be_written_says_why(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path / "evidence"))
    app = build_app(reports_folder=blocker / "reports")
    assert app.export("md") is None
    assert "Could not export" in app.status.value and app.downloads.value == ""


def test_stable_css_classes_for_the_browser_test(app) -> None:
    classes = {cls for w in (app.result, app.chart, app.reasons, app.flips, app.downloads, app.preset,
                             app.export_md, app.export_html, app.export_json) for cls in w._dom_classes}
    assert {"ek-result", "ek-chart", "ek-reasons", "ek-flips", "ek-downloads", "ek-preset",
            "ek-export-md", "ek-export-html", "ek-export-json"} <= classes
    for qid, dropdown in app.questions.items():
        assert f"ek-q-{qid}" in dropdown._dom_classes


def test_the_app_displays_as_its_widget_tree(app) -> None:
    bundle = app._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == app.ui.model_id
