"""`emailkit decide` (the subcommand's add_arguments/run, as the top-level CLI wires them)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from emailkit.decide import cli, score

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="emailkit decide")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("EMAILKIT_EVIDENCE_DIR", str(tmp_path / "evidence"))
    monkeypatch.chdir(tmp_path)


def test_answers_file_to_three_reports(tmp_path, capsys) -> None:
    code = run(str(EXAMPLES / "answers" / "enterprise-legacy.yaml"), "--format", "md", "--format", "html,json",
               "--output", str(tmp_path / "out"))
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"email-decision-customer-portal-beside-the-erp.{ext}" for ext in ("html", "json", "md")]
    out = capsys.readouterr().out
    assert "Hybrid (SMTP and REST API)" in out and str(tmp_path / "out") in out
    data = json.loads((tmp_path / "out" / written[1]).read_text())
    assert data["title"] == "Customer portal beside the ERP" and data["context"].startswith("A new customer portal")


def test_default_output_is_the_one_reports_folder_shown_as_an_absolute_path(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("EMAILKIT_REPORTS_DIR", "shared-reports")  # relative: resolved against the cwd
    assert run(str(EXAMPLES / "answers" / "wordpress.yaml"), "-f", "md,json") == 0
    folder = tmp_path / "shared-reports"
    text = (folder / "email-decision-marketing-wordpress-site.md").read_text()
    assert 'Chosen option: "SMTP"' in text
    out = capsys.readouterr().out
    for ext in ("md", "json"):  # every file written, each as an absolute path
        assert f"wrote {folder.resolve() / ('email-decision-marketing-wordpress-site.' + ext)}\n" in out


def test_without_the_variable_reports_go_to_the_project_root_whatever_the_current_folder(monkeypatch) -> None:
    from emailkit.decide import reports_dir

    monkeypatch.delenv("EMAILKIT_REPORTS_DIR", raising=False)
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root / "notebooks")  # where the widget runs inside JupyterLab
    assert reports_dir() == root / "reports"
    assert reports_dir().is_absolute()


@pytest.mark.parametrize("name", sorted(p.name for p in (EXAMPLES / "answers").glob("*.yaml")))
def test_every_example_answers_file_is_valid(name, tmp_path) -> None:
    assert run(str(EXAMPLES / "answers" / name), "-o", str(tmp_path)) == 0


def test_a_flat_answers_file_works_too(tmp_path, capsys) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text("hosting: serverless\nlegacy_smtp: yes\n")
    assert run(str(path), "--format", "json", "--output", "-") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"]["choice"] == score({"hosting": "serverless", "legacy_smtp": "yes"}).choice
    assert data["title"] == "flat"


@pytest.mark.parametrize(("content", "expected"), [
    ("hosting: cloud\n", ["hosting", "'cloud'", "vm, container, serverless, on_prem"]),
    ("hostin: vm\n", ["hostin", "did you mean 'hosting'"]),
    ("answers:\n  hosting: vm\nowner: me\n", ["owner", "title, context, answers"]),
    ("- hosting\n", ["must be a mapping"]),
    ("hosting: [vm\n", ["not valid YAML"]),
    ("", ["is empty", "--list-questions"]),
    ("# nothing answered yet\n", ["is empty"]),
    ("title: Shop\nanswers:\n", ["answers: is empty"]),
    ("title: Shop\nanswer:\n  hosting: vm\n", [": answer: is not a question", "did you mean 'answers'", "'answers:'"]),
    ("title: Shop\nhosting: vm\n", [": title: is not a question, and there is no 'answers:' mapping"]),
])
def test_bad_answers_exit_2_naming_the_question_and_the_fix(tmp_path, capsys, content, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert run(str(path), "-o", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.startswith("emailkit decide: error: ") and "fix:" in err
    for piece in expected:
        assert piece in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_usage_errors_exit_2(tmp_path, capsys) -> None:
    assert run() == 2
    assert "--portfolio" in capsys.readouterr().err
    assert run(str(EXAMPLES / "answers" / "wordpress.yaml"), "--format", "pdf") == 2
    assert "md, html, json" in capsys.readouterr().err
    assert run(str(tmp_path / "missing.yaml")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_portfolio_form(tmp_path, capsys) -> None:
    assert run("--portfolio", str(EXAMPLES / "portfolio.csv"), "-f", "md,csv", "-o", str(tmp_path / "out")) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["portfolio-decisions.csv", "portfolio-decisions.md"]
    assert "8 services:" in capsys.readouterr().out


def test_bad_portfolio_exits_2(tmp_path, capsys) -> None:
    path = tmp_path / "services.csv"
    path.write_text("service,volume\nbilling,huge\n")
    assert run("--portfolio", str(path)) == 2
    err = capsys.readouterr().err
    assert "row 2 (billing).volume" in err and "low, medium, high" in err


def test_list_questions(capsys) -> None:
    assert run("--list-questions") == 0
    out = capsys.readouterr().out
    assert "hosting: Where does the sending code run?" in out and "(default)" in out
