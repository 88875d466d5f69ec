"""Shared by the OAuth tests: an in-memory grant store, a settable clock, and a real uvicorn
server on a free loopback port serving the authorization server's routes."""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from emailkit import oauth_client
from emailkit.provider.oauth import OAuth
from emailkit.provider.routes.oauth import router
from emailkit.serving import AsgiServer

REDIRECT = "http://127.0.0.1:8765/callback"


class Grants:
    """The provider store's grant lookup, reduced to two dicts (one grant per mailbox)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_email: dict[str, str] = {}
        self.by_id: dict[str, str] = {}

    def grant_for_email(self, email: str) -> str:
        with self._lock:
            if email not in self.by_email:
                grant_id = str(uuid.uuid4())
                self.by_email[email] = grant_id
                self.by_id[grant_id] = email
            return self.by_email[email]

    def email_for_grant(self, grant_id: str) -> str | None:
        return self.by_id.get(grant_id)

    def delete(self, grant_id: str) -> None:
        with self._lock:
            email = self.by_id.pop(grant_id)
            del self.by_email[email]


class Clock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Current:
    """One uvicorn per test process, serving whichever test's app is current (tests run one
    at a time in a process); starting and stopping uvicorn per test cost ~0.2 s each."""

    app: Any = None
    server: AsgiServer | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


_current = _Current()


def _shared_server() -> AsgiServer:
    if _current.server is None:
        _current.server = AsgiServer(_current, name="oauth-test-http").start()
        atexit.register(_current.server.close)
    return _current.server


class Provider:
    """An OAuth server with its router live over HTTP, one public client registered."""

    def __init__(self, database: Any = None, *, ttl: int = 3600) -> None:
        self.grants = Grants()
        self.clock = Clock()
        self.oauth = OAuth(database, self.grants, issuer="Test provider", access_token_ttl=ttl, clock=self.clock)
        self.http_app = FastAPI()
        self.http_app.include_router(router(self.oauth))
        _current.app = self.http_app
        self.url = _shared_server().url
        self.client = self.oauth.register_client(redirect_uris=[REDIRECT], name="Test app")

    def app(self, scope: str = "email.send email.read", **kwargs: Any) -> oauth_client.AsyncOAuth2Client:
        options: dict[str, Any] = {"client_id": self.client.client_id, "redirect_uri": REDIRECT, "timeout": 10}
        options.update(kwargs)
        return oauth_client.oauth_app(self.url, scope=scope, **options)

    async def token(self, email: str = "ana@example.com", scope: str = "email.send email.read") -> dict[str, Any]:
        async with self.app(scope) as app:
            return await oauth_client.authorize(app, self.url, email=email)

    def close(self) -> None:
        if _current.app is self.http_app:
            _current.app = None
        self.oauth.close()


async def post_form(url: str, data: dict[str, str], **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, data=data, **kwargs)
