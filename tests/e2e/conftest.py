"""`make app` (Voila serving app/decide.ipynb) on a free loopback port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import signal
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
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Seconds an idle kernel lives in the test's `make app` (the Makefile's default is 120).
CULL_IDLE = 15  # long enough for a page to connect after Voila ran the notebook
# Playwright's own browser download cannot work here; use Debian's chromium.
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
    pid: int
    cull_idle: int = CULL_IDLE


@pytest.fixture(scope="session")
def voila_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoilaApp]:
    """`make app` on 127.0.0.1:<free port> (exactly what a reader runs), its reports in a temporary folder."""
    work = tmp_path_factory.mktemp("voila")
    app = VoilaApp(url="", reports=work / "reports", evidence=work / "evidence", log=work / "voila.log", pid=0)
    env = {**os.environ, "EMAILKIT_REPORTS_DIR": str(app.reports), "EMAILKIT_EVIDENCE_DIR": str(app.evidence),
           "VENV": str(Path(sys.executable).parent.parent)}
    port = _free_port()
    with open(app.log, "wb") as log:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "app", f"PORT={port}", f"CULL_IDLE={CULL_IDLE}", "CULL_EVERY=1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    app.pid = proc.pid
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"make app exited with {proc.returncode}:\n{app.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"make app did not listen on port {port} within 90 s:\n{app.log.read_text()}")
                time.sleep(0.1)
        app.url = f"http://127.0.0.1:{port}/"
        yield app
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the voila it started: our own process group only
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Offline:
    """Every request the page made that was not to loopback (each one was aborted)."""

    leaked: list[str]


@pytest.fixture
def offline(page, voila_app: VoilaApp) -> Iterator[Offline]:
    """The page may only talk to loopback: every other request is aborted and recorded.

    (Voila's stock lab template asks cdn.jsdelivr.net for Font Awesome; the app's template must not.)
    """
    seen = Offline([])

    def route(request_route) -> None:
        if urlparse(request_route.request.url).hostname in LOOPBACK:
            request_route.continue_()
        else:
            seen.leaked.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    yield seen


@pytest.fixture
def offline_page(page, offline: Offline):
    return page
