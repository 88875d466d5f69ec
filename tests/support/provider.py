"""Shared by the provider tests: a started sandbox + provider on loopback, and small helpers."""

from __future__ import annotations

import atexit
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from emailkit import oauth_client
from emailkit.background import BackgroundLoop
from emailkit.mailpit import Mailpit
from emailkit.provider import Provider
from emailkit.provider.store import Grant
from emailkit.sandbox import Sandbox
from emailkit.sandbox.smtp_server import save_to_database


def address(name: str = "user") -> str:
    """A mailbox address nobody else in the test run uses."""
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


REDIRECT = "http://127.0.0.1:8765/callback"
_token_loop: BackgroundLoop | None = None


def _loop() -> BackgroundLoop:
    global _token_loop
    if _token_loop is None:
        _token_loop = BackgroundLoop(name="provider-tests")
        atexit.register(_token_loop.close)
    return _token_loop


@dataclass
class Lab:
    sandbox: Sandbox
    provider: Provider
    http: httpx.Client
    mailpit: Mailpit

    def grant(self, name: str = "user") -> Grant:
        return self.provider.create_grant(address(name))

    def token(self, email: str, scope: str) -> dict[str, Any]:
        """A real OAuth token for `email` (code + PKCE through the consent page), plus its client_id."""
        client = self.provider.oauth.register_client(redirect_uris=[REDIRECT], name="provider tests")

        async def flow() -> dict[str, Any]:
            app = oauth_client.oauth_app(self.provider.url, client_id=client.client_id, redirect_uri=REDIRECT,
                                         scope=scope)
            async with app:
                return dict(await oauth_client.authorize(app, self.provider.url, email=email))

        return {**_loop().run(flow(), timeout=30), "client_id": client.client_id}

    def send(self, grant: Grant | str, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        gid = grant if isinstance(grant, str) else grant.id
        return self.http.post(f"/v3/grants/{gid}/messages/send", json=payload, **kwargs)

    def sent_ok(self, grant: Grant, payload: dict[str, Any]) -> dict[str, Any]:
        r = self.send(grant, payload)
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    def messages(self, grant: Grant, **params: Any) -> httpx.Response:
        return self.http.get(f"/v3/grants/{grant.id}/messages", params=params)

    def smtp(self, message: EmailMessage) -> None:
        """Deliver `message` by hand over SMTP, as a mail client outside the API would."""
        from emailkit.smtp import send_sync

        send_sync(message, host=self.sandbox.smtp_host, port=self.sandbox.smtp_port)


def make_lab(**provider_options: Any) -> Iterator[Lab]:
    with Sandbox() as box:
        provider = Provider(box.api_url, box.smtp_host, box.smtp_port, **provider_options).start()
        try:
            with httpx.Client(base_url=provider.url, timeout=15,
                              headers={"Authorization": f"Bearer {provider.api_key}"}) as http, \
                    Mailpit(box.api_url) as mailpit:
                yield Lab(box, provider, http, mailpit)
        finally:
            provider.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error envelope's `error`, after checking the envelope's shape."""
    body = response.json()
    assert set(body) == {"request_id", "error"}, body
    assert body["request_id"] == response.headers["request-id"]
    assert isinstance(body["error"]["type"], str) and body["error"]["message"]
    return dict(body["error"])


class Picky:
    """A real SMTP server that refuses bounce-* (550) and busy-* (450) and stores the rest in a sandbox."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if address.startswith("bounce-"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.startswith("busy-"):
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        assert self.box.store is not None
        mid = save_to_database(self.box.store, envelope.original_content, envelope.mail_from, list(envelope.rcpt_tos))
        return f"250 2.0.0 Ok: queued as {mid}"


@contextmanager
def provider_relaying_to(make_handler: Any, **provider_options: Any) -> Iterator[tuple[Sandbox, Provider, httpx.Client]]:
    """A provider whose SMTP hop goes to a real aiosmtpd server running `make_handler(box)` (mail the
    handler stores lands in the sandbox `box`): for SMTP servers that answer as the sandbox does not."""
    with Sandbox() as box:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        controller = Controller(make_handler(box), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with Provider(box.api_url, "127.0.0.1", port, **provider_options) as provider, \
                    httpx.Client(base_url=provider.url, headers={"Authorization": f"Bearer {provider.api_key}"},
                                 timeout=20) as http:
                yield box, provider, http
        finally:
            controller.stop()


@contextmanager
def picky_provider() -> Iterator[tuple[Provider, httpx.Client]]:
    """A provider relaying to a `Picky` SMTP server (mail it accepts lands in a sandbox)."""
    with provider_relaying_to(Picky, webhook_wait_initial=0.05) as (_, provider, http):
        yield provider, http
