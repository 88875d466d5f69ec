"""The error envelope, authentication, the rate limit, OpenAPI and the docs page, and the CLI."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.provider import Lab, address, error_of


# The provider options of this module's `lab` (tests/integration/conftest.py).
LAB_OPTIONS = {"record_smtp": True}


def test_no_credentials_is_401_with_a_bearer_challenge(lab: Lab) -> None:
    ann = lab.grant()
    r = httpx.get(f"{lab.provider.url}/v3/grants/{ann.id}/messages")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(r)["type"] == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_bad_credentials_are_401(lab: Lab, header: str) -> None:
    ann = lab.grant()
    r = httpx.post(f"{lab.provider.url}/v3/grants/{ann.id}/messages/send", headers={"Authorization": header},
                   json={"to": [{"email": address()}], "body": "x"})
    assert r.status_code == 401 and error_of(r)["type"] == "unauthorized"
    assert lab.provider.store.sent_records(ann.id) == []


def test_invalid_token_challenge_names_the_error(lab: Lab) -> None:
    r = httpx.get(f"{lab.provider.url}/v3/grants/me/messages", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_unknown_grant_is_404_and_me_needs_a_token(lab: Lab) -> None:
    r = lab.http.get("/v3/grants/no-such-grant/messages")
    assert r.status_code == 404 and error_of(r)["field"] == "grant_id"
    r = lab.http.get("/v3/grants/me/messages")
    assert r.status_code == 400 and "access token" in error_of(r)["message"]


def test_unknown_path_and_method_use_the_envelope(lab: Lab) -> None:
    r = lab.http.get("/v3/nothing-here")
    assert r.status_code == 404 and error_of(r)["type"] == "not_found_error"
    r = lab.http.delete(f"/v3/grants/{lab.grant().id}/messages/send")
    assert r.status_code == 405 and error_of(r)["type"] == "method_not_allowed"


def test_missing_body_and_wrong_types_are_400(lab: Lab) -> None:
    ann = lab.grant()
    r = lab.http.post(f"/v3/grants/{ann.id}/messages/send")
    assert r.status_code == 400 and error_of(r)["type"] == "invalid_request_error"
    r = lab.http.post(f"/v3/grants/{ann.id}/messages/send", json=["not", "an", "object"])
    assert r.status_code == 400 and "object" in error_of(r)["message"]


def test_grants_api(lab: Lab) -> None:
    email = address("new")
    first = lab.http.post("/v3/grants", json={"email": email})
    again = lab.http.post("/v3/grants", json={"email": email.upper()})
    assert first.status_code == again.status_code == 200
    assert first.json()["data"]["id"] == again.json()["data"]["id"]  # one grant per address
    assert lab.provider.create_grant(email).id == first.json()["data"]["id"]
    assert email in [g["email"] for g in lab.http.get("/v3/grants").json()["data"]]
    assert lab.http.get(f"/v3/grants/{email}").json()["data"]["id"] == first.json()["data"]["id"]
    r = lab.http.post("/v3/grants", json={"email": "Ann <ann@example.com>"})
    assert r.status_code == 400 and error_of(r)["field"] == "email"


SLOW_LAB_OPTIONS = {"rate_limit": 2.0, "rate_burst": 2}  # `slow_lab` (tests/integration/conftest.py)


def test_rate_limit_is_per_grant_with_retry_after(slow_lab: Lab) -> None:
    ann, bob = slow_lab.grant("ann"), slow_lab.grant("bob")
    codes = [slow_lab.messages(ann).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = slow_lab.messages(ann)
    assert r.status_code == 429
    assert error_of(r)["type"] == "rate_limit_error"
    retry_after = int(r.headers["Retry-After"])
    assert retry_after >= 1
    assert slow_lab.messages(bob).status_code == 200  # another grant has its own bucket
    # A limited send is refused before anything is sent.
    r = slow_lab.send(ann, {"to": [{"email": address()}], "body": "x"})
    assert r.status_code == 429 and slow_lab.provider.store.sent_records(ann.id) == []
    time.sleep(retry_after)
    assert slow_lab.messages(ann).status_code == 200


def test_openapi_documents_every_route_and_its_errors(lab: Lab) -> None:
    spec = lab.http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v3/grants/{grant_id}/messages/send", "/v3/grants/{grant_id}/messages",
                 "/v3/grants/{grant_id}/messages/{message_id}", "/v3/grants/{grant_id}/threads",
                 "/v3/grants/{grant_id}/threads/{thread_id}", "/v3/grants/{grant_id}/templates", "/v3/webhooks",
                 "/v3/webhooks/{webhook_id}", "/v3/connect/token"):
        assert path in paths, path
    send = paths["/v3/grants/{grant_id}/messages/send"]["post"]
    for status in ("400", "401", "403", "404", "409", "422", "429", "503"):
        ref = send["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert "Idempotency-Key" in [p["name"] for p in send["parameters"]]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    message = spec["components"]["schemas"]["MessageOut"]["properties"]
    assert {"id", "thread_id", "message_id", "from", "to", "date"} <= set(message)


def test_docs_page_works_offline(lab: Lab) -> None:
    page = lab.http.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[-1]
    for asset in ("/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/swagger-ui.css"):
        assert asset in page.text
        assert lab.http.get(asset).status_code == 200


def test_cli_serves_until_interrupted(lab: Lab, tmp_path: Path) -> None:
    import socket
    key_file = tmp_path / "key"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("EMAILKIT_PROVIDER_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "emailkit.provider.cli", "--mailpit", lab.sandbox.api_url,
         "--smtp", f"{lab.sandbox.smtp_host}:{lab.sandbox.smtp_port}", "--listen", f"127.0.0.1:{port}",
         "--grant", "cli@example.com", "--api-key-file", str(key_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        assert proc.stdout is not None
        while not any(line.startswith("API key") for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        key = key_file.read_text().strip()
        assert key and key not in "".join(lines)  # printed nowhere, kept in a private file
        assert key_file.stat().st_mode & 0o077 == 0
        assert f"listening on http://127.0.0.1:{port}" in "".join(lines)
        r = httpx.post(f"http://127.0.0.1:{port}/v3/grants/cli@example.com/messages/send",
                       headers={"Authorization": f"Bearer {key}"}, json={"to": [{"email": address()}], "body": "x"})
        assert r.status_code == 200, r.text
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_refuses_a_bad_address() -> None:
    proc = subprocess.run([sys.executable, "-m", "emailkit.provider.cli", "--smtp", "nowhere"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--smtp" in proc.stderr and "HOST:PORT" in proc.stderr


def test_an_unexpected_error_is_one_500_and_one_log_line_with_its_request_id(
        lab: Lab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A bug cannot be caused for real on purpose: the service method the route calls is made to raise.
    def broken(**_: object) -> None:
        raise RuntimeError("a bug nobody foresaw")

    assert lab.provider.service is not None
    monkeypatch.setattr(lab.provider.service, "list_grants", broken)
    with caplog.at_level(logging.ERROR):
        answer = lab.http.get("/v3/grants")
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if r.levelno >= logging.ERROR] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # a second log line, if any, would come right after the first
    assert answer.status_code == 500 and error_of(answer)["type"] == "internal_error"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert answer.headers["request-id"] in errors[0].getMessage()
    assert "a bug nobody foresaw" in str(errors[0].exc_info[1] if errors[0].exc_info else "")
