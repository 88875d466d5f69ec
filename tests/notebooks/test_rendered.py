"""Every notebook executed and rendered to HTML as a reader sees it: no cut text in tables, no raw
Python reprs, no epoch dates, no tracebacks, no sources a reader does not have, and a closing verdict.

Slow (it runs every notebook): ``pytest -m slow tests/notebooks``. The mailbox is whatever
``EMAILKIT_MAILBOX`` picks (run it with ``sandbox`` and with ``mailpit``).
"""

from __future__ import annotations

import html
import re
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.slow

#: A Python repr where a reader expects a value: `Evidence(key=...)`, `Client(client_id=...)`, dicts, widgets.
REPR = re.compile(r"\b[A-Z][A-Za-z0-9_]*\((?:[a-z_][a-z0-9_]*)=|\{'[^']*': |<[A-Za-z_.]+ object at 0x|"
                  r"\bVBox\(children=|<Transcript \w+:")
#: Epoch seconds (2020-2035) standing alone in an output, where a date should be.
EPOCH = re.compile(r"(?<![\d.:/-])1[6-9]\d{8}(?:\.\d+)?(?![\d])")
#: Whole numbers printed as floats in a table cell: 19.000, 210.0.
FLOAT_INT = re.compile(r"<td[^>]*>\s*-?\d[\d,]*\.0+\s*</td>")
#: A table cell cut short by pandas or by hand.
CUT = re.compile(r"(?:\.\.\.|…)\s*</td>")
#: Files and sections a reader of the workbook does not have.
PRIVATE = re.compile(r"EMAIL-FACTS|MAILPIT-NOTES|REAL-PEERS|CLAIMS\.md|NOTEBOOK-TOOLING|\b\d{3}_[0-9a-f]{16}\.txt\b")


def _execute(path: Path):
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="emailkit-render-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"),
                           connection_file=str(Path(sockets) / "kernel.json"))
        client = NotebookClient(nb, km=km, timeout=300, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


def _rendered_outputs(nb) -> list[tuple[int, str]]:
    """(cell index, the HTML nbconvert renders for that cell's outputs), code cells only."""
    from nbconvert.filters import strip_ansi

    shown = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        parts = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(html.escape(strip_ansi(output.text)))
            elif output.output_type == "error":
                parts.append("Traceback: " + html.escape(strip_ansi("\n".join(output.traceback))))
            else:
                data = output.get("data", {})
                if "text/html" in data:
                    parts.append(data["text/html"])
                elif "image/png" in data or "image/svg+xml" in data:
                    parts.append("<img>")
                elif "text/markdown" in data:
                    parts.append(html.escape(data["text/markdown"]))
                elif "text/plain" in data:
                    parts.append(html.escape(data["text/plain"]))
        shown.append((index, "\n".join(parts)))
    return shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_rendered_notebook_reads_cleanly(path: Path, tmp_path, monkeypatch) -> None:
    from nbconvert import HTMLExporter

    monkeypatch.setenv("EMAILKIT_REPORTS_DIR", str(tmp_path / "reports"))
    nb = _execute(path)
    page, _ = HTMLExporter().from_notebook_node(nb)  # the whole page renders
    assert "</html>" in page
    problems: list[str] = []
    for index, shown in _rendered_outputs(nb):
        markup = re.sub(r"<style.*?</style>|<script.*?</script>", "", shown, flags=re.S)
        text = html.unescape(re.sub(r"<[^>]+>", "", markup))  # what the browser shows: an unescaped <x> vanishes
        where = f"cell {index}"
        if "Traceback" in shown:
            problems.append(f"{where}: a traceback")
        if match := REPR.search(text):
            problems.append(f"{where}: a raw repr {match.group(0)!r}")
        if match := EPOCH.search(text):
            problems.append(f"{where}: an epoch date {match.group(0)!r}")
        if match := FLOAT_INT.search(shown):
            problems.append(f"{where}: a whole number shown as a float {match.group(0)!r}")
        if match := CUT.search(shown):
            problems.append(f"{where}: text cut short {match.group(0)!r}")
        if "smtp..amazonaws" in text:
            problems.append(f"{where}: a <placeholder> swallowed as HTML")
        if match := PRIVATE.search(text):
            problems.append(f"{where}: cites {match.group(0)!r}, which readers do not have")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and (match := PRIVATE.search(cell.source)):
            problems.append(f"markdown cell {index}: cites {match.group(0)!r}, which readers do not have")
    # The notebook ends by saying what it showed, built from this run (before its "Try it" exercises).
    exercises = next((i for i, c in enumerate(nb.cells)
                      if c.cell_type == "markdown" and c.source.lstrip().startswith("## Try it")), len(nb.cells))
    last_outputs = [shown for index, shown in _rendered_outputs(nb) if index < exercises][-3:]
    if not any("ek-verdict" in shown for shown in last_outputs):
        problems.append("no generated 'What this showed' verdict at the end")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)
