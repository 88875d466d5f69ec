"""Every notebook's "try it" solution (exercises/solutions/NN_*.py) runs against a fresh lab, on the
embedded sandbox and on real Mailpit, and its prediction holds (each script asserts it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import BACKENDS, need_mailpit

pytestmark = pytest.mark.slow  # each runs a notebook's cells in a kernel: seconds apiece (make test runs them)

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_has_a_solution_with_its_answer_marked() -> None:
    assert [p.stem for p in SOLUTIONS] == [p.stem for p in NOTEBOOKS]
    for path in SOLUTIONS:
        text = path.read_text()
        assert text.count("### BEGIN SOLUTION") == 1 and text.count("### END SOLUTION") == 1, path.name
        assert "Answer:" in text.split('"""')[1], f"{path.name}: the docstring states the task and the answer"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem[:2])
def test_the_solution_runs_and_its_prediction_holds(solution: Path, backend: str, tmp_path: Path) -> None:
    if backend == "mailpit":
        need_mailpit()
    env = {**os.environ, "EMAILKIT_MAILBOX": backend, "EMAILKIT_EVIDENCE_DIR": str(tmp_path / "evidence"),
           "EMAILKIT_REPORTS_DIR": str(tmp_path / "reports")}
    env.pop("MAILPIT_URL", None)
    done = subprocess.run([sys.executable, str(solution)], cwd=solution.parent, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip(), "a solution prints what it found"



def test_the_notebooks_end_with_their_try_it_cells() -> None:
    """Once appended: each notebook's last markdown cells hold a "Try it" heading naming its solution."""
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells[-3:])
        assert "## Try it" in text, f"{path.name} has no 'Try it' cells at its end"
        assert f"exercises/solutions/{path.stem}.py" in text, path.name
