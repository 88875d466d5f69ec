"""The `emailkit` command: `up` serves a mailbox (sandbox or real Mailpit) and the provider wired together;
`run` executes notebooks."""

from __future__ import annotations

import json
import os
import poplib
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from emailkit.message import compose
from emailkit.smtp import send_sync
from tests.support import need_mailpit


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("EMAILKIT_PROVIDER_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "emailkit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        name, _, value = line.strip().partition(" ")
        seen[name] = value.strip()
        if line.startswith("Ctrl-C"):
            return proc, seen
    raise AssertionError(f"`emailkit {' '.join(args)}` ended before it was ready: {seen}")


@pytest.mark.parametrize("backend", ["sandbox", "mailpit"])
def test_up_serves_a_mailbox_and_the_provider_wired_together(tmp_path: Path, backend: str) -> None:
    if backend == "mailpit":
        need_mailpit()
    key_file = tmp_path / "key"
    proc, seen = _start("up", "--backend", backend, "--smtp", "127.0.0.1:0", "--listen", "127.0.0.1:0",
                        "--pop3", "127.0.0.1:0", "--provider", "127.0.0.1:0", "--api-key-file", str(key_file),
                        "--pop3-login-file", str(tmp_path / "pop3-login"))
    try:
        assert seen["Mailbox"].startswith("real Mailpit" if backend == "mailpit" else "embedded sandbox")
        if backend == "mailpit":  # its web inbox, served where the REST API is
            assert seen["Web"].startswith("UI") and httpx.get(seen["Web"].split()[-1]).status_code == 200
        else:
            assert "XOAUTH2: provider tokens" in seen["SMTP"]
        smtp_host, smtp_port = seen["SMTP"].split()[0].rsplit(":", 1)
        mailpit = seen["Mailpit"].removesuffix("/api/v1/")
        provider = seen["Provider"].split()[0]
        key = key_file.read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        grant_id = httpx.post(f"{provider}/v3/grants", headers=headers, json={"email": "ann@example.com"}).json()["data"]["id"]
        # Mail sent over the sandbox's SMTP is readable through the sandbox's REST API...
        send_sync(compose(sender="bob@example.com", to=["ann@example.com"], subject="via SMTP", text="hi"),
                  host=smtp_host, port=int(smtp_port))
        listed = httpx.get(f"{mailpit}/api/v1/search", params={"query": "subject:via"}).json()
        assert listed["messages_count"] == 1
        # ...and the provider, started beside it, answers with its API key.
        sent = httpx.post(f"{provider}/v3/grants/{grant_id}/messages/send", headers=headers,
                          json={"to": [{"email": "bob@example.com"}], "subject": "via the API", "body": "hello"})
        assert sent.status_code == 200, sent.text
        assert httpx.get(f"{mailpit}/api/v1/search", params={"query": "subject:api"}).json()["messages_count"] == 1
        assert httpx.get(f"{provider}/v3/grants/{grant_id}/messages", headers={"Authorization": "Bearer wrong"}).status_code == 401
        # POP3 from outside Python: the login is in a 0600 file, never in the output.
        pop3_host, pop3_port = seen["POP3"].split()[0].rsplit(":", 1)
        user, password = (tmp_path / "pop3-login").read_text().strip().split(":", 1)
        pop = poplib.POP3(pop3_host, int(pop3_port), timeout=10)
        try:
            pop.user(user)
            pop.pass_(password)
            assert pop.stat()[0] == 2  # the message sent over SMTP and the one sent through the API
        finally:
            pop.quit()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in out
    assert key not in out and key not in "".join(seen.values())  # never printed: kept in a 0600 file
    assert key_file.stat().st_mode & 0o077 == 0
    assert password not in out and (tmp_path / "pop3-login").stat().st_mode & 0o077 == 0


def test_up_refuses_a_bad_address_with_exit_code_2() -> None:
    result = subprocess.run([sys.executable, "-m", "emailkit", "up", "--provider", "nowhere"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--provider" in result.stdout and "HOST:PORT" in result.stdout


def _notebook(path: Path, source: str) -> None:
    nb = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_run_executes_every_numbered_notebook_and_reports_failures(tmp_path: Path) -> None:
    _notebook(tmp_path / "00_fine.ipynb", "print(6 * 7)")
    _notebook(tmp_path / "01_broken.ipynb", "1 / 0")
    _notebook(tmp_path / "scratch.ipynb", "raise SystemExit('not numbered: never run')")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "emailkit", "run", "--notebooks", str(tmp_path),
                             "--output", str(out)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert "00_fine.ipynb: ok" in result.stdout and re.search(r"01_broken.ipynb: FAILED", result.stdout)
    assert sorted(p.name for p in out.iterdir()) == ["00_fine.ipynb", "01_broken.ipynb"]
    executed = json.loads((out / "00_fine.ipynb").read_text())
    assert "".join(executed["cells"][1]["outputs"][0]["text"]) == "42\n"
    # The kernels talk over IPC and are shut down: no TCP-encryption or orphaned-kernel warnings.
    assert "without encryption" not in result.stderr and "Parent appears to have exited" not in result.stderr


def test_a_server_that_cannot_bind_leaves_nothing_behind() -> None:
    import socket

    from starlette.applications import Starlette

    from emailkit.serving import AsgiServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = AsgiServer(Starlette(), "127.0.0.1", port)
        try:
            server.start()
        except OSError:
            pass
        else:  # SO_REUSEADDR may let a second listener bind on some systems; then it must still serve
            server.close()
            return
        assert server._socket is None and not server.loop.running
