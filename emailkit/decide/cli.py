"""`emailkit decide`: score a project's answers, or a portfolio of services, and write reports.

    emailkit decide answers.yaml --format md --format html --output reports/
    emailkit decide --portfolio services.csv --format md --output reports/
    emailkit decide --list-questions

An answers file is YAML, either ``question: answer`` lines, or ``title:``, ``context:`` and an
``answers:`` mapping (see examples/answers/). Unknown questions or answers exit with code 2 and a
message naming the question, the value and the allowed values.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

from emailkit.decide.model import load_criteria, score
from emailkit.decide.portfolio import PORTFOLIO_FORMATS, render_portfolio, score_portfolio
from emailkit.decide.report import REPORT_FORMATS, render_report, report_filename, reports_dir
from emailkit.errors import InvalidInput

__all__ = ["add_arguments", "main", "read_answers", "run"]

_FILE_KEYS = ("title", "context", "answers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `emailkit decide`."""
    parser.add_argument("answers", nargs="?", type=Path, metavar="ANSWERS.yaml",
                        help="YAML answers ('question: answer', or title/context/answers keys)")
    parser.add_argument("--portfolio", type=Path, metavar="CSV",
                        help="score many services: a CSV with a 'service' column and one column per question")
    parser.add_argument("--format", "-f", dest="formats", action="append", metavar="FORMAT",
                        help=f"md (an ADR), html, json; for a portfolio also csv. Repeat for several (default md)")
    parser.add_argument("--output", "-o", default=None, metavar="DIR",
                        help="folder for the reports (created; default $EMAILKIT_REPORTS_DIR, else reports/ at the "
                             "project root, the folder the widget writes to); '-' prints to stdout")
    parser.add_argument("--title", help="project name in the report (default: the file's title, or its name)")
    parser.add_argument("--list-questions", action="store_true",
                        help="print every question id with its allowed answers and default, then exit")


def read_answers(path: Path) -> tuple[dict[str, Any], str, str]:
    """(answers, title, context) from a YAML answers file; `InvalidInput` if it cannot be used."""
    if not path.is_file():
        raise InvalidInput(str(path), "does not exist", fix="pass the path of a YAML answers file (see examples/answers/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(str(path), f"is not valid YAML ({exc})", fix="write one 'question: answer' per line") from exc
    if data is None or data == {}:
        raise InvalidInput(str(path), "is empty: it answers no question",
                           fix="write one 'question: answer' per line (emailkit decide --list-questions lists them), "
                               "or copy one of examples/answers/")
    if not isinstance(data, dict):
        raise InvalidInput(str(path), "must be a mapping", fix="write one 'question: answer' per line")
    if "answers" not in data:
        # A flat file holds questions only. A file-level key here means the 'answers:' mapping is
        # missing or misspelt; say so instead of calling the key an unknown question.
        names = [str(key).strip() for key in data]
        misspelt = [n for n in names if difflib.get_close_matches(n, ["answers"], n=1, cutoff=0.75)]
        for name in misspelt + [n for n in names if n in _FILE_KEYS]:
            hint = "; did you mean 'answers'?" if name in misspelt else ""
            raise InvalidInput(f"{path}: {name}", f"is not a question, and there is no 'answers:' mapping{hint}",
                               fix="put the questions under a top-level 'answers:' key beside title and context, "
                                   "or write a flat file of 'question: answer' lines only")
        return data, path.stem, ""
    extra = [k for k in data if k not in _FILE_KEYS]
    if extra:
        raise InvalidInput(f"{path}: {extra[0]}", "is not a key of an answers file",
                           fix=f"use only {', '.join(_FILE_KEYS)} at the top level, and put questions under 'answers:'")
    answers = data.get("answers")
    if answers is None or answers == {}:
        raise InvalidInput(f"{path}: answers", "is empty: it answers no question",
                           fix="write one 'question: answer' per line under 'answers:' "
                               "(emailkit decide --list-questions lists them)")
    if not isinstance(answers, dict):
        raise InvalidInput(f"{path}: answers", "must be a mapping", fix="write one 'question: answer' per line under 'answers:'")
    return answers, str(data.get("title") or path.stem), str(data.get("context") or "")


def _list_questions() -> str:
    criteria = load_criteria()
    lines = []
    for question in criteria.questions.values():
        lines.append(f"{question.id}: {question.text}")
        for option in question.options:
            mark = " (default)" if option.value == question.default else ""
            lines.append(f"    {option.value:<14} {option.label}{mark}")
    return "\n".join(lines) + "\n"


def _formats(requested: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    formats = []
    for item in requested or ["md"]:
        for fmt in item.split(","):
            fmt = fmt.strip().lower()
            if fmt not in allowed:
                raise InvalidInput("--format", f"{fmt!r} is not a format for {what}", fix=f"use one of: {', '.join(allowed)}")
            if fmt not in formats:
                formats.append(fmt)
    return formats


def _emit(text: str, output: str | None, filename: str) -> str:
    if output == "-":
        sys.stdout.write(text)
        return "stdout"
    folder = Path(output).expanduser().resolve() if output else reports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(text, encoding="utf-8")
    return str(path)  # absolute: the reader sees exactly where the file went


def run(args: argparse.Namespace) -> int:
    """`emailkit decide`: 0 on success, 2 on bad input (with the question, the value and the fix)."""
    if args.list_questions:
        sys.stdout.write(_list_questions())
        return 0
    try:
        if (args.answers is None) == (args.portfolio is None):
            raise InvalidInput("arguments", "give either an answers file or --portfolio CSV (one of them)",
                               fix="e.g. emailkit decide examples/answers/web-app.yaml, "
                                   "or emailkit decide --portfolio examples/portfolio.csv")
        quiet = args.output == "-"
        if args.portfolio is not None:
            formats = _formats(args.formats, PORTFOLIO_FORMATS, "a portfolio")
            frame = score_portfolio(args.portfolio)
            title = args.title or args.portfolio.stem
            for fmt in formats:
                where = _emit(render_portfolio(frame, fmt, title=title), args.output, f"{args.portfolio.stem}-decisions.{fmt}")
                if not quiet:
                    print(f"wrote {where}")
            if not quiet:
                counts = ", ".join(f"{k} {v}" for k, v in frame["choice"].value_counts().items())
                print(f"{len(frame)} services: {counts}")
            return 0
        formats = _formats(args.formats, tuple(REPORT_FORMATS), "a decision report")
        answers, title, context = read_answers(args.answers)
        title = args.title or title
        rec = score(answers)
        for fmt in formats:
            text = render_report(rec, fmt, title=title, context=context)
            where = _emit(text, args.output, report_filename(title, fmt))
            if not quiet:
                print(f"wrote {where}")
        if not quiet:
            print(rec.summary())
        return 0
    except InvalidInput as exc:
        named = args.answers or args.portfolio
        source = (f"{named}: " if named and not exc.field.startswith(("--", "arguments", str(named)))
                  else "")
        print(f"emailkit decide: error: {source}{exc.field}: {exc.problem}", file=sys.stderr)
        print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"emailkit decide: error: {exc}", file=sys.stderr)
        print("  fix: check the --output folder exists or can be created, and that you may write there", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Run `emailkit decide` on its own (``python -m emailkit.decide.cli``)."""
    parser = argparse.ArgumentParser(prog="emailkit decide", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
