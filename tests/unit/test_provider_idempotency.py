"""The provider's Idempotency-Key rules live in its service, so they hold with no HTTP in front.

`Service.idempotent` runs a send at most once per (grant, key): the same request gets the first
answer back, another request under the same key a 409, and errors are not kept (a retry runs).
The store is the provider's real SQLite store (in memory); nothing here listens on a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from emailkit.mailpit import AsyncMailpit
from emailkit.provider.mailbox import Mailbox
from emailkit.provider.outbound import Outbound
from emailkit.provider.problems import ProviderError
from emailkit.provider.ratelimit import TokenBucket
from emailkit.provider.service import IDEMPOTENCY_KEY_MAX, Answer, Service, request_hash
from emailkit.provider.store import Grant, Store
from emailkit.provider.webhooks import Dispatcher


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    store = Store(None)
    mailpit = AsyncMailpit("http://127.0.0.1:9")  # never asked: idempotent() only reaches the store
    service = Service(store=store, mailbox=Mailbox(store, mailpit), outbound=Outbound("127.0.0.1", 9, mailpit=mailpit),
                      dispatcher=Dispatcher(store), limiter=TokenBucket(100), oauth=None, api_key="key")
    yield service
    await service.aclose()
    store.close()


class Sender:
    """A stand-in for the send a route hands over: counts its runs, answers with a new body each time."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self) -> Answer:
        self.runs += 1
        return Answer(200, f'{{"request_id":"r{self.runs}","data":{{"id":"m{self.runs}"}}}}'.encode())


def grant(service: Service, email: str = "ann@example.com") -> Grant:
    return service.create_grant(email)


async def test_the_same_key_and_request_run_once_and_replay_the_first_answer(service: Service) -> None:
    send, ann = Sender(), grant(service)
    first = await service.idempotent(ann, "key-1", b'{"to":[{"email":"bob@example.com"}],"subject":"hi"}', send)
    again = await service.idempotent(ann, "key-1", b'{"subject": "hi", "to": [{"email": "bob@example.com"}]}', send)
    assert send.runs == 1  # key order and spacing do not make it another request
    assert (first.status, first.replayed) == (200, False)
    assert again.replayed and again.body == first.body and again.json()["data"]["id"] == "m1"


async def test_another_request_under_the_same_key_is_a_409_and_nothing_runs(service: Service) -> None:
    send, ann = Sender(), grant(service)
    await service.idempotent(ann, "key-2", b'{"subject":"hi"}', send)
    with pytest.raises(ProviderError) as refused:
        await service.idempotent(ann, "key-2", b'{"subject":"changed"}', send)
    assert (refused.value.status, refused.value.type, refused.value.field) == (
        409, "invalid_idempotent_request", "Idempotency-Key")
    assert send.runs == 1


async def test_keys_belong_to_one_grant_and_no_key_always_runs(service: Service) -> None:
    send, ann, bob = Sender(), grant(service), grant(service, "bob@example.com")
    await service.idempotent(ann, "shared", b"{}", send)
    other = await service.idempotent(bob, "shared", b"{}", send)
    assert not other.replayed and send.runs == 2
    await service.idempotent(ann, None, b"{}", send)
    await service.idempotent(ann, None, b"{}", send)
    assert send.runs == 4


async def test_an_error_is_answered_but_not_kept_so_a_retry_runs(service: Service) -> None:
    ann, calls = grant(service), []

    async def flaky() -> Answer:
        calls.append(1)
        if len(calls) == 1:
            raise ProviderError(503, "provider_unavailable", "SMTP is down; retry later")
        return Answer(200, b'{"data":{"id":"m"}}')

    with pytest.raises(ProviderError):
        await service.idempotent(ann, "key-3", b"{}", flaky)
    answer = await service.idempotent(ann, "key-3", b"{}", flaky)
    assert len(calls) == 2 and not answer.replayed
    assert (await service.idempotent(ann, "key-3", b"{}", flaky)).replayed and len(calls) == 2


async def test_a_second_request_while_the_first_runs_is_a_409(service: Service) -> None:
    ann, release = grant(service), asyncio.Event()

    async def slow() -> Answer:
        await release.wait()
        return Answer(200, b"{}")

    first = asyncio.ensure_future(service.idempotent(ann, "key-4", b"{}", slow))
    await asyncio.sleep(0)
    with pytest.raises(ProviderError) as busy:
        await service.idempotent(ann, "key-4", b"{}", slow)
    assert (busy.value.status, busy.value.type) == (409, "concurrent_idempotent_request")
    release.set()
    assert (await first).status == 200
    assert (await service.idempotent(ann, "key-4", b"{}", slow)).replayed


@pytest.mark.parametrize("key", ["", "   ", "k" * (IDEMPOTENCY_KEY_MAX + 1)])
async def test_a_key_that_is_blank_or_too_long_is_a_400_naming_the_header(service: Service, key: str) -> None:
    send = Sender()
    with pytest.raises(ProviderError) as refused:
        await service.idempotent(grant(service), key, b"{}", send)
    assert (refused.value.status, refused.value.type, refused.value.field) == (
        400, "invalid_idempotency_key", "Idempotency-Key")
    assert send.runs == 0


async def test_the_longest_key_is_accepted(service: Service) -> None:
    send = Sender()
    assert (await service.idempotent(grant(service), "k" * IDEMPOTENCY_KEY_MAX, b"{}", send)).status == 200


def test_the_request_hash_ignores_json_key_order_but_not_values() -> None:
    assert request_hash(b'{"a":1,"b":[1,2]}') == request_hash(b'{ "b": [1, 2], "a": 1 }')
    assert request_hash(b'{"a":1}') != request_hash(b'{"a":2}')
    assert request_hash(b"not json") != request_hash(b"not json!")  # bytes that are not JSON: as they are
