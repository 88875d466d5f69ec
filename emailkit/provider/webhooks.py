"""Signed webhooks: the provider tells your app what happened, and you check it was the provider.

Each event is POSTed as JSON (Nylas v3's notification shape) to every webhook subscribed
to its type. The header ``X-Nylas-Signature`` (Nylas's own name, so a receiver written for
Nylas works unchanged) carries the hex HMAC-SHA256 of the raw body, keyed with the
webhook's secret (shown once, when the webhook is created). A receiver recomputes it over
the bytes it received — not over re-serialised JSON — and compares in constant time:
`verify_signature()`.

Creating a webhook (or pointing it at a new URL) first runs Nylas's challenge handshake:
the provider sends ``GET <webhook_url>?challenge=<random>`` and the receiver must answer
200 with exactly that value as the body within a few seconds (`Dispatcher.challenge`);
otherwise the webhook is not stored.

Deliveries run in the background and are retried with exponential backoff and jitter
(`stamina`), a bounded number of times, on connection errors and non-2xx answers; a
receiver's ``Retry-After`` is honoured (capped). Every attempt is recorded in the store.

Events (Nylas's trigger names): ``message.send_success`` (an API send was accepted by
SMTP), ``message.created`` (new mail addressed to a grant was seen in Mailpit),
``message.bounce_detected`` (SMTP refused a recipient with a 5xx reply to RCPT).

`WebhookRegistry` is the API's side of managing webhooks (create after the challenge, update,
rotate the secret, delete). `WebhookReceiver` is a small real HTTP server on loopback for
notebooks and tests (an ASGI app on `emailkit.serving`, like every server of the lab): it answers
the challenge, records what arrives and can be told to fail the first N deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import stamina
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.errors import InvalidInput
from emailkit.provider.addresses import address_list
from emailkit.provider.problems import ProviderError
from emailkit.provider.store import Store
from emailkit.serving import AsgiServer

__all__ = [
    "CHALLENGE_TIMEOUT",
    "EVENT_TYPES",
    "LEGACY_EVENT_TYPES",
    "SIGNATURE_HEADER",
    "Dispatcher",
    "ReceivedWebhook",
    "WebhookReceiver",
    "WebhookRegistry",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Nylas-Signature"

#: Trigger types a webhook may subscribe to (Nylas's names), and when each fires.
EVENT_TYPES: dict[str, str] = {
    "message.send_success": "a message sent through the API was accepted by the SMTP server",
    "message.created": "new mail addressed to a grant appeared in Mailpit",
    "message.bounce_detected": "the SMTP server refused a recipient with a permanent (5xx) reply",
}

#: The provider's earlier names, still accepted when a webhook is created (stored and sent under
#: Nylas's name), so code written before the rename keeps working.
LEGACY_EVENT_TYPES: dict[str, str] = {
    "message.sent": "message.send_success",
    "message.bounced": "message.bounce_detected",
}

#: Seconds a receiver has to answer the challenge GET (Nylas allows 10).
CHALLENGE_TIMEOUT = 10.0


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `body` keyed with `secret` (the value of ``X-Nylas-Signature``)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of exactly these `body` bytes (constant-time compare)."""
    if not header or not isinstance(body, (bytes, bytearray)):
        return False
    expected = sign(secret, bytes(body))
    return hmac.compare_digest(expected.encode("ascii"), header.strip().lower().encode("ascii", "replace"))


class _DeliveryFailed(Exception):
    def __init__(self, status: int | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _retry_after(value: str | None, cap: float) -> float | None:
    """A receiver's ``Retry-After`` in seconds, capped at `cap` (read by the one parser, in `emailkit.replies`:
    delta-seconds or an HTTP-date; junk is None, the past or a negative number 0)."""
    from emailkit.replies import parse_retry_after

    seconds = parse_retry_after(value)
    return None if seconds is None else min(seconds, cap)


class Dispatcher:
    """Deliver events to subscribed webhooks in the background (on the provider's loop)."""

    def __init__(self, store: Store, *, attempts: int = 5, wait_initial: float = 0.2, wait_max: float = 5.0,
                 wait_jitter: float = 0.2, timeout: float = 5.0, max_retry_after: float = 10.0) -> None:
        self.store = store
        self.attempts = attempts
        self.wait_initial = wait_initial
        self.wait_max = wait_max
        self.wait_jitter = wait_jitter
        self.timeout = timeout
        self.max_retry_after = max_retry_after
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, type: str, grant_id: str, obj: dict[str, Any]) -> int:
        """Queue `type` for every webhook subscribed to it; returns how many deliveries started."""
        hooks = self.store.webhooks(type)
        for hook in hooks:
            event = {
                "specversion": "1.0",
                "type": type,
                "source": "/emailkit/provider",
                "id": str(uuid.uuid4()),
                "time": int(time.time()),
                "data": {"application_id": "emailkit", "grant_id": grant_id, "object": obj},
            }
            task = asyncio.get_running_loop().create_task(self._deliver(hook, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(hooks)

    async def challenge(self, url: str, timeout: float = CHALLENGE_TIMEOUT) -> str | None:
        """Nylas's handshake: ``GET url?challenge=<random>`` must answer 200 with that value.

        Returns None when the receiver answered correctly, else what went wrong (for the 400).
        """
        value = secrets.token_urlsafe(24)
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                response = await client.get(url, params={"challenge": value},
                                            headers={"User-Agent": "emailkit-provider-webhooks/1"})
        except httpx.HTTPError as exc:
            return f"the challenge GET to {url} failed ({exc.__class__.__name__}: {exc or 'no answer'})"
        if response.status_code != 200:
            return f"the challenge GET to {url} was answered {response.status_code}, not 200"
        if response.text.strip() != value:
            return (f"the challenge GET to {url} was answered without the challenge value; answer 200 with "
                    "the 'challenge' query parameter as the whole body")
        return None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery finished (delivered or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=left)
        return True

    def _backoff(self, exc: Exception) -> bool | float:
        if isinstance(exc, _DeliveryFailed):
            return exc.retry_after if exc.retry_after is not None else True
        return isinstance(exc, httpx.TransportError)

    async def _deliver(self, hook: dict[str, Any], event: dict[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            async for attempt in stamina.retry_context(
                on=self._backoff, attempts=self.attempts, timeout=None, wait_initial=self.wait_initial,
                wait_max=self.wait_max, wait_jitter=self.wait_jitter,
            ):
                with attempt:
                    await self._attempt(hook, event, attempt.num)
        except (_DeliveryFailed, httpx.HTTPError):
            pass  # given up after the last attempt; every attempt is in the store

    async def _attempt(self, hook: dict[str, Any], event: dict[str, Any], number: int) -> None:
        assert self._client is not None
        body = json.dumps({**event, "webhook_delivery_attempt": number}, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "emailkit-provider-webhooks/1",
            SIGNATURE_HEADER: sign(hook["secret"], body),
        }
        try:
            response = await self._client.post(hook["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.store.record_delivery(hook["id"], event["id"], event["type"], number, None,
                                       f"{exc.__class__.__name__}: {exc}")
            raise
        ok = 200 <= response.status_code < 300
        self.store.record_delivery(hook["id"], event["id"], event["type"], number, response.status_code,
                                   "" if ok else f"receiver answered {response.status_code}")
        if not ok:
            raise _DeliveryFailed(response.status_code, f"receiver answered {response.status_code}",
                                  _retry_after(response.headers.get("Retry-After"), self.max_retry_after))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class WebhookRegistry:
    """The application's webhooks as the API manages them: each a URL whose receiver answered the
    challenge, its triggers, and a secret shown once (at creation and on rotation). Methods return
    the API's JSON; a bad field or an unknown ID is a `ProviderError` naming it."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    @staticmethod
    def _webhook_json(hook: dict[str, Any], *, secret: bool = False) -> dict[str, Any]:
        updated = int(hook.get("updated_at") or hook["created_at"])
        out = {"id": hook["id"], "object": "webhook", "webhook_url": hook["url"],
               "trigger_types": hook["trigger_types"], "description": hook["description"],
               "notification_email_addresses": hook.get("notification_email_addresses", []), "status": "active",
               "status_updated_at": int(hook["created_at"]), "created_at": int(hook["created_at"]),
               "updated_at": updated}
        if secret:
            out["webhook_secret"] = hook["secret"]
        return out

    @staticmethod
    def _trigger_types(given: list[str]) -> list[str]:
        names = [LEGACY_EVENT_TYPES.get(t, t) for t in given]
        unknown = [t for t in names if t not in EVENT_TYPES]
        if unknown:
            raise ProviderError(400, "invalid_request_error", f"trigger_types: {unknown[0]!r} is not an event this "
                                f"provider sends; use {', '.join(EVENT_TYPES)}", field="trigger_types")
        return list(dict.fromkeys(names))

    @staticmethod
    def _notification_addresses(given: list[str] | None) -> list[str] | None:
        return None if given is None else list(address_list(given, "notification_email_addresses"))

    async def _challenged(self, given: str) -> str:
        """`given` once it is an absolute http(s) URL whose receiver answered the challenge, else a 400."""
        url = urlsplit(given)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ProviderError(400, "invalid_request_error", "webhook_url: must be an absolute http(s) URL, e.g. "
                                "http://127.0.0.1:8000/webhook", field="webhook_url")
        problem = await self.dispatcher.challenge(given)
        if problem is not None:
            raise ProviderError(400, "invalid_request_error", f"webhook_url: {problem}. The webhook was not "
                                "created: make the receiver answer GET ?challenge=<value> with 200 and the value",
                                field="webhook_url")
        return given

    def _webhook_row(self, webhook_id: str) -> dict[str, Any]:
        hook = self.store.webhook(webhook_id)
        if hook is None:
            raise ProviderError(404, "not_found_error", f"no webhook {webhook_id!r}: list them with GET /v3/webhooks",
                                field="webhook_id")
        return hook

    async def create(self, *, webhook_url: str, trigger_types: list[str], description: str | None = None,
                     notification_email_addresses: list[str] | None = None) -> dict[str, Any]:
        """Register a webhook after its receiver answered the challenge; its JSON with the secret (shown once)."""
        triggers = self._trigger_types(trigger_types)
        addresses = self._notification_addresses(notification_email_addresses) or []
        url = await self._challenged(webhook_url)
        hook = self.store.create_webhook(url, triggers, description or "", addresses)
        return self._webhook_json(hook, secret=True)

    def all(self) -> list[dict[str, Any]]:
        return [self._webhook_json(h) for h in self.store.webhooks()]

    def get(self, webhook_id: str) -> dict[str, Any]:
        return self._webhook_json(self._webhook_row(webhook_id))

    async def update(self, webhook_id: str, *, webhook_url: str | None = None,
                     trigger_types: list[str] | None = None, description: str | None = None,
                     notification_email_addresses: list[str] | None = None) -> dict[str, Any]:
        """Change a webhook (a new URL is challenged again); its JSON after."""
        hook = self._webhook_row(webhook_id)
        triggers = self._trigger_types(trigger_types) if trigger_types is not None else None
        addresses = self._notification_addresses(notification_email_addresses)
        url = None
        if webhook_url is not None and webhook_url != hook["url"]:
            url = await self._challenged(webhook_url)
        updated = self.store.update_webhook(webhook_id, url=url, trigger_types=triggers, description=description,
                                            notification_email_addresses=addresses)
        if updated is None:  # deleted meanwhile
            self._webhook_row(webhook_id)
        assert updated is not None
        return self._webhook_json(updated)

    def rotate_secret(self, webhook_id: str) -> dict[str, Any]:
        """A new secret for the webhook (the old one stops); its JSON with the secret (shown once)."""
        self._webhook_row(webhook_id)
        hook = self.store.update_webhook(webhook_id, rotate_secret=True)
        if hook is None:
            self._webhook_row(webhook_id)
        assert hook is not None
        return self._webhook_json(hook, secret=True)

    def delete(self, webhook_id: str) -> None:
        if not self.store.delete_webhook(webhook_id):
            self._webhook_row(webhook_id)


# --------------------------------------------------------------------------- a receiver for the lab


@dataclass(frozen=True)
class ReceivedWebhook:
    """One POST as the receiver saw it: the raw body, its headers (any letter case), and what it answered."""

    body: bytes
    headers: Mapping[str, str]
    status: int
    at: float = field(default_factory=time.time)

    @property
    def signature(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> bool:
        return verify_signature(secret, self.body, self.signature)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records webhook POSTs.

    An ASGI app served like every HTTP server of the lab (`emailkit.serving.AsgiServer`, uvicorn
    on a background loop). It answers Nylas's challenge (``GET ?challenge=<value>``) on any path;
    `fail_first=N` answers the first N POSTs with `fail_status` (500 by default), so a notebook or
    test sees the provider retry. `url` is known once started.
    """

    def __init__(self, *, fail_first: int = 0, fail_status: int = 500, host: str = "127.0.0.1") -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.received: list[ReceivedWebhook] = []
        self.challenges: list[str] = []  # the challenge GETs answered
        self._cond = threading.Condition()  # the server's loop thread appends, callers' threads wait
        self._server = AsgiServer(self._app(), host, 0, name="webhook-receiver")
        self._started = False

    def _app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            if request.method == "GET":  # Nylas's challenge handshake
                challenge = request.query_params.get("challenge", "")
                with self._cond:
                    self.challenges.append(challenge)
                return Response(challenge.encode("utf-8"), status_code=200 if challenge else 400,
                                media_type="text/plain")
            body = await request.body()
            with self._cond:
                failing = len(self.received) < self.fail_first
                status = self.fail_status if failing else 200
                self.received.append(ReceivedWebhook(body, request.headers, status))
                self._cond.notify_all()
            return Response(status_code=status)

        return Starlette(routes=[Route("/{path:path}", receive, methods=["GET", "POST"])])

    @property
    def url(self) -> str:
        if not self._started:
            raise InvalidInput("url", "the receiver is not listening yet",
                               fix="start it first: WebhookReceiver().start(), or use it in a with block")
        return f"{self._server.url}/webhook"

    def start(self) -> WebhookReceiver:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def close(self) -> None:
        if self._started:
            self._server.close()
            self._started = False

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def accepted(self) -> list[ReceivedWebhook]:
        """The deliveries answered with 200."""
        with self._cond:
            return [r for r in self.received if r.status == 200]

    def wait_for(self, count: int = 1, timeout: float = 10.0, *, type: str | None = None) -> list[ReceivedWebhook]:
        """Wait until `count` deliveries (of event `type`, if given) were accepted; return them."""
        deadline = time.monotonic() + timeout

        wanted = LEGACY_EVENT_TYPES.get(type, type) if type is not None else None

        def matching() -> list[ReceivedWebhook]:
            return [r for r in self.received if r.status == 200 and (wanted is None or r.json().get("type") == wanted)]

        with self._cond:
            while len(found := matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited {timeout:g}s for {count} webhook(s)"
                                       f"{f' of type {type}' if type else ''}; got {len(found)}")
                self._cond.wait(left)
            return found[:count]
