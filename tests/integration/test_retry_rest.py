"""The retry policy on the REST path, against the provider: real 429s, lost responses, outages, bounces.

The 429 comes from the provider's own per-grant rate limit, the lost response from a proxy
that drops the provider's ``200`` after the send was done, the 503 from an SMTP server the
provider cannot reach, the bounce from the sandbox's Chaos API refusing a recipient.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
import pytest

from emailkit.faults import HTTP_OK, lost_reply, set_chaos
from emailkit.mailpit import Mailpit
from emailkit.provider import Provider, WebhookReceiver, verify_signature
from emailkit.replies import classify_http
from emailkit.delivery import send_rest_with_retry
from emailkit.retry import RetryPolicy
from emailkit.sandbox import Sandbox
from emailkit.wiretap import Wiretap

FAST = RetryPolicy(attempts=4, timeout=10, wait_initial=0.01, wait_max=0.05, jitter=0.01)


@dataclass
class Rest:
    sandbox: Sandbox
    provider: Provider
    grant_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.provider.api_key}"}

    @property
    def send_url(self) -> str:
        return f"{self.provider.url}/v3/grants/{self.grant_id}/messages/send"

    def via(self, host: str, port: int) -> str:
        return f"http://{host}:{port}/v3/grants/{self.grant_id}/messages/send"

    def copies(self, subject: str) -> int:
        with Mailpit(self.sandbox.api_url) as mp:
            return sum(1 for m in mp.search(f'subject:"{subject}"').messages if m.subject == subject)


def start(**provider_options: object) -> Iterator[Rest]:
    with Sandbox(chaos=True, max_messages=0) as box:
        provider = Provider(box.api_url, box.smtp_host, box.smtp_port, poll_interval=None,
                            **provider_options).start()  # type: ignore[arg-type]
        try:
            grant = provider.create_grant(f"app-{uuid.uuid4().hex[:8]}@example.com")
            yield Rest(box, provider, grant.id)
        finally:
            provider.close()


@pytest.fixture(scope="module")
def rest() -> Iterator[Rest]:
    yield from start(webhook_wait_initial=0.05)


@pytest.fixture(scope="module")
def throttled() -> Iterator[Rest]:
    yield from start(rate_limit=1, rate_burst=1)


def payload(subject: str, to: str = "ann@example.com") -> dict[str, object]:
    return {"to": [{"email": to}], "subject": subject, "body": "hello", "is_plaintext": True}


async def test_retry_after_is_honoured_for_real(throttled: Rest) -> None:
    """The provider allows 1 request/s: the second send gets 429 + Retry-After: 1, and waits."""
    subject = f"throttled {uuid.uuid4().hex}"
    async with httpx.AsyncClient(headers=throttled.headers, timeout=10) as client:
        first = await client.post(throttled.send_url, json=payload(subject + " first"))
        assert first.status_code == 200, first.text
        outcome = await send_rest_with_retry(client, throttled.send_url, payload(subject), policy=FAST)
    assert outcome.delivered and outcome.attempts == 2
    assert outcome.history[0].status == 429 and outcome.history[0].verdict.retry_after == 1.0
    assert outcome.waits[0] >= 0.95  # it waited what the server asked, not the 0.01 s backoff
    assert outcome.data["subject"] == subject
    assert throttled.copies(subject) == 1


async def test_retry_after_longer_than_the_budget_gives_up_at_once(throttled: Rest) -> None:
    subject = f"impatient {uuid.uuid4().hex}"
    async with httpx.AsyncClient(headers=throttled.headers, timeout=10) as client:
        await client.post(throttled.send_url, json=payload(subject + " first"))
        outcome = await send_rest_with_retry(client, throttled.send_url, payload(subject),
                                             policy=RetryPolicy(attempts=5, timeout=0.5))
    assert not outcome.delivered and outcome.status == 429
    assert outcome.attempts == 1 and outcome.waits == []
    assert "Retry-After" in outcome.gave_up
    await asyncio.sleep(1.1)  # leave the bucket full for the next test


async def test_a_lost_response_is_not_sent_twice(rest: Rest) -> None:
    subject = f"lost {uuid.uuid4().hex}"
    parts = urlsplit(rest.provider.url)
    with lost_reply(parts.hostname or "", parts.port or 0, pattern=HTTP_OK, times=1) as proxy:
        async with httpx.AsyncClient(headers=rest.headers, timeout=10) as client:
            outcome = await send_rest_with_retry(client, rest.via(proxy.host, proxy.port), payload(subject),
                                                 policy=FAST)
    assert proxy.lost == 1
    assert outcome.delivered and outcome.attempts == 2 and outcome.duplicate_avoided
    assert outcome.history[0].status is None and outcome.history[0].verdict.kind == "connection"
    assert rest.copies(subject) == 1


async def test_a_lost_response_doubles_a_naive_retry(rest: Rest) -> None:
    """Without one Idempotency-Key for both tries, the same fault delivers the message twice."""
    subject = f"naive {uuid.uuid4().hex}"
    parts = urlsplit(rest.provider.url)
    with lost_reply(parts.hostname or "", parts.port or 0, pattern=HTTP_OK, times=1) as proxy:
        async with httpx.AsyncClient(headers=rest.headers, timeout=10) as client:
            with pytest.raises(httpx.TransportError):
                await client.post(rest.via(proxy.host, proxy.port), json=payload(subject))
            again = await client.post(rest.via(proxy.host, proxy.port), json=payload(subject))
    assert again.status_code == 200
    assert rest.copies(subject) == 2


async def test_a_bad_request_is_not_retried(rest: Rest) -> None:
    async with httpx.AsyncClient(headers=rest.headers, timeout=10) as client:
        outcome = await send_rest_with_retry(client, rest.send_url, {"to": [{"email": "not an address"}],
                                                                     "subject": "bad", "body": "x"}, policy=FAST)
    assert not outcome.delivered and outcome.attempts == 1
    assert outcome.status == 400 and outcome.verdict.kind == "client_error"
    assert outcome.reply.startswith("invalid_request_error")


async def test_a_bounce_is_a_422_not_retried_and_a_signed_webhook(rest: Rest) -> None:
    subject = f"bounce {uuid.uuid4().hex}"
    with WebhookReceiver() as receiver:
        hook = httpx.post(f"{rest.provider.url}/v3/webhooks", headers=rest.headers,
                          json={"webhook_url": receiver.url, "trigger_types": ["message.bounce_detected"]}).json()["data"]
        try:
            set_chaos(rest.sandbox.api_url, recipient=(550, 100))
            async with httpx.AsyncClient(headers=rest.headers, timeout=10) as client:
                outcome = await send_rest_with_retry(client, rest.send_url, payload(subject, "gone@example.com"),
                                                     policy=FAST)
            set_chaos(rest.sandbox.api_url)
            [event] = receiver.wait_for(1, timeout=10, type="message.bounce_detected")
        finally:
            set_chaos(rest.sandbox.api_url)
            httpx.delete(f"{rest.provider.url}/v3/webhooks/{hook['id']}", headers=rest.headers)
    assert not outcome.delivered and outcome.attempts == 1
    assert outcome.status == 422 and outcome.verdict.kind == "rejected"
    assert verify_signature(hook["webhook_secret"], event.body, event.signature)
    bounced = event.json()["data"]["object"]["bounced_recipients"]
    assert [(b["email"], b["smtp_code"]) for b in bounced] == [("gone@example.com", 550)]
    assert rest.copies(subject) == 0


async def test_an_unreachable_smtp_server_is_a_503_with_retry_after() -> None:
    with Sandbox() as box, Wiretap(box.smtp_host, box.smtp_port, block="refuse") as firewall:
        with Provider(box.api_url, firewall.host, firewall.port, poll_interval=None) as provider:
            grant = provider.create_grant("app@example.com")
            url = f"{provider.url}/v3/grants/{grant.id}/messages/send"
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {provider.api_key}"}) as client:
                outcome = await send_rest_with_retry(client, url, payload("down"),
                                                     policy=RetryPolicy(attempts=3, timeout=1))
    assert not outcome.delivered and outcome.status == 503
    assert outcome.verdict.kind == "server_error" and outcome.verdict.retry_after is not None
    assert outcome.attempts == 1 and "Retry-After" in outcome.gave_up


class _Busy:
    """A real webhook receiver on loopback (served like every lab server, `emailkit.serving`): the first POST
    gets 503 with `retry_after`, the next 200."""

    def __init__(self, retry_after: str) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        from emailkit.serving import AsgiServer

        self.arrived: list[float] = []

        async def hook(request: Request) -> Response:
            await request.body()
            self.arrived.append(time.monotonic())
            if len(self.arrived) == 1:
                return Response(status_code=503, headers={"Retry-After": retry_after})
            return Response(status_code=200)

        self.server = AsgiServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
        self.url = f"{self.server.url}/hook"

    def close(self) -> None:
        self.server.close()


def _http_date(seconds_from_now: float) -> str:
    from email.utils import format_datetime

    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(("retry_after", "low", "high"), [
    ("0", 0.0, 1.0),                      # delta-seconds
    (_http_date(-3600), 0.0, 1.0),        # an HTTP-date in the past: now (a seconds-only reader backs off 3 s)
    ("http-date+2", 0.9, 2.6),            # an HTTP-date two seconds ahead (second resolution)
], ids=["seconds", "past-date", "future-date"])
async def test_webhook_deliveries_honour_retry_after_as_the_client_does(retry_after: str, low: float,
                                                                        high: float) -> None:
    """The provider's webhook retries read Retry-After with the client's parser (emailkit.replies)."""
    from emailkit.provider.store import Store
    from emailkit.provider.webhooks import Dispatcher

    if retry_after == "http-date+2":
        retry_after = _http_date(2)
    receiver = _Busy(retry_after)
    store = Store()
    try:
        hook = store.create_webhook(receiver.url, ["message.created"], "retry-after test")
        dispatcher = Dispatcher(store, attempts=2, wait_initial=3.0, wait_max=3.0, wait_jitter=0.0)
        assert dispatcher.emit("message.created", "grant", {"id": "m1"}) == 1
        assert await dispatcher.drain(timeout=10)
        await dispatcher.aclose()
    finally:
        receiver.close()
    assert [d["status_code"] for d in store.deliveries(hook["id"])] == [503, 200]
    waited = receiver.arrived[1] - receiver.arrived[0]
    assert low <= waited < high, (retry_after, waited)
    # The client's policy reads the same header the same way.
    assert classify_http(503, {"Retry-After": retry_after}).retry_after is not None
