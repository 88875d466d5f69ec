"""Voila serving notebook 07 on a free loopback port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07_decide.ipynb"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# NOTEBOOK-TOOLING §3: Playwright's own browser download cannot work here; use Debian's chromium.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed, so the Voila app cannot be tested in a browser: "
                    "run `apt-get install -y chromium` (Debian/Ubuntu; or `make chromium`)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": chromium_path(), "headless": True,
            "args": CHROMIUM_FLAGS}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VoilaApp:
    url: str
    reports: Path
    evidence: Path
    log: Path


@pytest.fixture(scope="session")
def voila_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoilaApp]:
    """`voila notebooks/07_decide.ipynb` on 127.0.0.1:<free port>, its reports in a temporary folder."""
    work = tmp_path_factory.mktemp("voila")
    app = VoilaApp(url="", reports=work / "reports", evidence=work / "evidence", log=work / "voila.log")
    env = {**os.environ, "EMAILKIT_REPORTS_DIR": str(app.reports), "EMAILKIT_EVIDENCE_DIR": str(app.evidence)}
    voila = Path(sys.executable).with_name("voila")
    port = _free_port()
    with open(app.log, "wb") as log:
        proc = subprocess.Popen(
            [str(voila), str(NOTEBOOK), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}:\n{app.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"voila did not listen on port {port} within 60 s:\n{app.log.read_text()}")
                time.sleep(0.1)
        app.url = f"http://127.0.0.1:{port}/"
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def offline_page(page, voila_app: VoilaApp):
    """A page that may only talk to loopback: every other request is aborted.

    (Voila's lab template asks cdn.jsdelivr.net for Font Awesome; the app must work without it.)
    """

    def route(request_route) -> None:
        if urlparse(request_route.request.url).hostname in LOOPBACK:
            request_route.continue_()
        else:
            request_route.abort()

    page.route("**/*", route)
    return page
