"""OAuth clients registered from outside the Python process (`emailkit provider clients …`), then
used by the official Nylas Python SDK against the running provider."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nylas import Client
from nylas.models.errors import NylasOAuthError
from tests.support.provider import address

from emailkit import oauth_client
from emailkit.provider import Provider
from emailkit.sandbox import Sandbox

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`

CALLBACK = "http://127.0.0.1:8765/cli-callback"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Provider, Path]]:
    database = tmp_path_factory.mktemp("provider") / "provider.db"
    with Sandbox() as box, Provider(box.api_url, box.smtp_host, box.smtp_port, database=database) as provider:
        yield provider, database


def cli(database: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emailkit", "provider", "clients", "--database", str(database),
                           *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def code_for(nylas: Client, client_id: str, email: str) -> tuple[str, str]:
    auth = nylas.auth.url_for_oauth2_pkce({"client_id": client_id, "redirect_uri": CALLBACK,
                                            "scope": ["email.read"], "login_hint": email})

    async def browse() -> oauth_client.ConsentAnswer:
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await oauth_client.open_consent(browser, auth.url)
            assert page.ok, page.text
            return await oauth_client.answer_consent(browser, page, email=email)

    answer = asyncio.run(browse())
    assert answer.code, answer
    return answer.code, auth.secret


def test_public_client_added_by_the_cli_works_with_the_sdk_while_the_provider_runs(
        running: tuple[Provider, Path]) -> None:
    provider, database = running
    added = cli(database, "add", "--name", "CLI app", "--redirect-uri", CALLBACK)
    assert added.returncode == 0, added.stderr
    client_id = added.stdout.split()[1]
    assert "public" in added.stdout
    listed = cli(database, "list")
    assert listed.returncode == 0 and client_id in listed.stdout and CALLBACK in listed.stdout
    assert "application" in listed.stdout  # the SDKs' own client_id is listed too

    nylas = Client(api_key=provider.api_key, api_uri=provider.url)
    email = address("cli")
    code, secret = code_for(nylas, client_id, email)
    token = nylas.auth.exchange_code_for_token({"redirect_uri": CALLBACK, "code": code, "client_id": client_id,
                                                "code_verifier": secret})
    assert token.email == email

    removed = cli(database, "remove", client_id)
    assert removed.returncode == 0, removed.stderr
    # Removing the client revoked its tokens and ends its flows.
    user = Client(api_key=token.access_token, api_uri=provider.url)
    with pytest.raises(Exception) as caught:
        user.messages.list("me")
    assert getattr(caught.value, "status_code", None) == 401
    with pytest.raises(NylasOAuthError) as refused:
        nylas.auth.refresh_access_token({"redirect_uri": CALLBACK, "refresh_token": token.refresh_token or "",
                                         "client_id": client_id})
    assert refused.value.error == "invalid_client"
    assert cli(database, "remove", client_id).returncode == 1


def test_confidential_client_secret_goes_to_a_private_file_never_the_output(
        running: tuple[Provider, Path], tmp_path: Path) -> None:
    provider, database = running
    added = cli(database, "add", "--name", "Server app", "--redirect-uri", CALLBACK, "--confidential",
                "--client-id", "server-app", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    secret_file = tmp_path / ".emailkit" / "oauth-client-server-app.secret"
    secret = secret_file.read_text().strip()
    assert len(secret) >= 43 and secret not in added.stdout + added.stderr
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    nylas = Client(api_key=provider.api_key, api_uri=provider.url)
    email = address("server")
    code, verifier = code_for(nylas, "server-app", email)
    # The client's own secret works in place of the API key…
    token = nylas.auth.exchange_code_for_token({"redirect_uri": CALLBACK, "code": code, "client_id": "server-app",
                                                "client_secret": secret, "code_verifier": verifier})
    assert token.email == email
    # …and a wrong one does not.
    code, verifier = code_for(nylas, "server-app", email)
    with pytest.raises(NylasOAuthError) as refused:
        nylas.auth.exchange_code_for_token({"redirect_uri": CALLBACK, "code": code, "client_id": "server-app",
                                            "client_secret": "wrong", "code_verifier": verifier})
    assert refused.value.error == "invalid_client" and refused.value.status_code == 401


def test_application_redirect_uris_from_the_cli_show_in_the_sdk(running: tuple[Provider, Path]) -> None:
    provider, database = running
    nylas = Client(api_key=provider.api_key, api_uri=provider.url)
    uri = "http://127.0.0.1:8766/from-cli"
    assert cli(database, "add-uri", uri).returncode == 0
    assert uri in {u.url for u in nylas.applications.redirect_uris.list().data}
    assert cli(database, "remove-uri", uri).returncode == 0
    assert uri not in {u.url for u in nylas.applications.redirect_uris.list().data}


@pytest.mark.parametrize(("args", "says"), [
    (("add", "--name", "x", "--redirect-uri", "ftp://nope"), "redirect_uris"),
    (("add", "--name", " ", "--redirect-uri", CALLBACK), "name"),
    (("remove-uri", "http://127.0.0.1:1/never"), "no redirect URI"),
])
def test_bad_cli_input_is_refused_naming_the_problem(running: tuple[Provider, Path], args: tuple[str, ...],
                                                     says: str) -> None:
    _, database = running
    result = cli(database, *args)
    assert result.returncode != 0 and says in result.stderr and "Traceback" not in result.stderr


def test_cli_without_a_database_file_says_how_to_reach_a_provider_in_memory(tmp_path: Path) -> None:
    result = cli(tmp_path / "missing.db", "list")
    assert result.returncode == 2 and "/v3/applications/redirect-uris" in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_emailkit_provider_prints_the_client_id_and_how_to_register_a_redirect_uri(tmp_path: Path) -> None:
    """`emailkit provider` names the application's client_id and both ways to allow a redirect URI."""
    import signal
    import time

    database = tmp_path / "provider.db"
    with Sandbox() as box:
        process = subprocess.Popen(
            [sys.executable, "-m", "emailkit", "provider", "--mailpit", box.api_url, "--smtp",
             f"{box.smtp_host}:{box.smtp_port}", "--listen", "127.0.0.1:0", "--database", str(database)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                 "EMAILKIT_PROVIDER_API_KEY": "k-" + "x" * 40})
        lines: list[str] = []
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(line.startswith("Ctrl-C") for line in lines):
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    output = "\n".join(lines)
    oauth = next(line for line in lines if line.startswith("OAuth"))
    client_id = oauth.split()[2]
    assert "/v3/applications/redirect-uris" in output and f"--database {database}" in output, output
    assert "k-" + "x" * 40 not in output  # the key never reaches the output
    listed = cli(database, "list")
    assert listed.returncode == 0 and client_id in listed.stdout and "application" in listed.stdout
