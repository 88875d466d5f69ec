"""`emailkit sandbox` with POP3 and chaos: Mailpit's flags and MP_* variables, refusals before anything starts."""

from __future__ import annotations

import argparse
import os
import poplib
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from emailkit.sandbox import add_arguments, run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--smtp", "127.0.0.1:0", "--listen", "127.0.0.1:0", *argv])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MP_POP3_AUTH", "MP_ENABLE_CHAOS", "MP_CHAOS_TRIGGERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--pop3", "127.0.0.1:0"], {}, "--pop3: POP3 needs credentials"),
        (["--pop3-auth", "alice"], {}, "--pop3-auth: entry 1 has no ':'"),
        ([], {"MP_POP3_AUTH": "alice:"}, "MP_POP3_AUTH: the password of 'alice' is empty"),
        (["--pop3", "nowhere", "--pop3-auth", "a:b"], {}, "--pop3: 'nowhere' is not HOST:PORT"),
        (["--chaos-triggers", "Sender:451"], {}, "--chaos-triggers: 'Sender:451' is not TRIGGER:CODE:PERCENT"),
        ([], {"MP_CHAOS_TRIGGERS": "Recipient:600:5"}, "Recipient.ErrorCode 600 is not between 400 and 599"),
    ],
)
def test_bad_settings_are_refused_before_anything_listens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], env: dict, message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run(parse(*argv)) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and message in out


def test_a_hashed_password_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    auth = tmp_path / "pop3.auth"
    auth.write_text("alice:$2y$05$abcdefghijklmnopqrstuu5Q2Ffd5yC0rYlsH2v5Fh8e8u5bD2dSy\n")
    assert run(parse("--pop3-auth-file", str(auth))) == 2
    out = capsys.readouterr().out
    assert "line 1 holds a hashed password" in out and "$2y$" not in out


def test_the_cli_serves_pop3_from_mp_pop3_auth_and_chaos_triggers(tmp_path: Path) -> None:
    env = {**os.environ, "MP_POP3_AUTH": "alice:s3cret bob:b0b", "MP_CHAOS_TRIGGERS": "Recipient:550:100"}
    command = [sys.executable, "-m", "emailkit.sandbox", "--smtp", "127.0.0.1:0", "--listen", "127.0.0.1:0",
               "--pop3", "127.0.0.1:0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert process.stdout is not None
        lines = []
        while not lines or lines[-1] != "Ctrl-C to stop":
            line = process.stdout.readline()
            assert line, f"the sandbox stopped early: {lines}"
            lines.append(line.rstrip("\n"))
        printed = "\n".join(lines)
        assert "s3cret" not in printed
        pop3 = re.search(r"^POP3\s+127\.0\.0\.1:(\d+)$", printed, re.M)
        api = re.search(r"^HTTP API (\S+)$", printed, re.M)
        assert pop3 and api, printed
        client = poplib.POP3("127.0.0.1", int(pop3.group(1)), timeout=10)
        client.user("bob")
        assert client.pass_("b0b") == b"+OK signed in"
        client.quit()
        chaos = httpx.get(api.group(1) + "/api/v1/chaos").json()
        assert chaos["Recipient"] == {"ErrorCode": 550, "Probability": 100}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_enable_chaos_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from emailkit.sandbox.cli import sandbox_options

    assert sandbox_options(parse())["chaos"] is False
    assert sandbox_options(parse("--enable-chaos"))["chaos"] is True
    monkeypatch.setenv("MP_ENABLE_CHAOS", "true")
    assert sandbox_options(parse())["chaos"] is True
    monkeypatch.setenv("MP_ENABLE_CHAOS", "0")
    assert sandbox_options(parse())["chaos"] is False
    assert sandbox_options(parse("--chaos-triggers", "auth:454:3"))["chaos"] == "auth:454:3"
