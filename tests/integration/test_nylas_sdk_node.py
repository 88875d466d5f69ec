"""The Node SDK suite (tests/node, `node --test`) run from pytest, so `make test` covers it.

It installs the suite's locked npm packages first when they are missing (`npm ci`), and
points the suite at this interpreter to start the sandbox and the provider.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the Node SDK suite needs Node.js 18+ and npm "
                    "(https://nodejs.org, or apt-get install nodejs npm)")
    return path


def test_the_official_node_sdk_passes_against_the_provider() -> None:
    node, npm = _tool("node"), _tool("npm")
    if not (NODE_DIR / "node_modules" / "nylas" / "package.json").exists():
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                                   text=True, timeout=300)
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    result = subprocess.run([node, "--test"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "EMAILKIT_PYTHON": sys.executable})
    summary = "\n".join(line for line in result.stdout.splitlines() if line.startswith("# "))
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    counts = dict(line[2:].split(" ", 1) for line in summary.splitlines() if line[2:].split(" ", 1)[0]
                  in ("tests", "pass", "fail", "cancelled", "skipped"))
    assert int(counts["tests"]) >= 10 and counts["pass"] == counts["tests"], summary
    assert counts["fail"] == counts["cancelled"] == counts["skipped"] == "0", summary
