"""`Service.send_once` with no HTTP in front: the same Idempotency-Key sends one message, once.

A real sandbox (SMTP + Mailpit API) and a real provider; the sends are calls to the provider's
service on its own loop, the way a route makes them, but without a request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emailkit.mailpit import Mailpit
from emailkit.provider import Provider
from emailkit.provider.models import SendRequest
from emailkit.provider.problems import ProviderError
from emailkit.provider.service import Answer
from emailkit.sandbox import Sandbox


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, Mailpit]]:
    with Sandbox() as box, Provider(box.api_url, box.smtp_host, box.smtp_port) as provider, \
            Mailpit(box.api_url) as mailpit:
        yield provider, mailpit


def copies(mailpit: Mailpit, subject: str) -> int:
    """How many messages with exactly this subject the mailbox holds."""
    return sum(m.subject == subject for m in mailpit.search(f'subject:"{subject}"').messages)


def send(provider: Provider, body: dict[str, object], key: str | None) -> Answer:
    assert provider.service is not None and provider.background_loop is not None
    grant = provider.create_grant("ann@example.com")
    request = SendRequest.model_validate(body)
    return provider.background_loop.run(
        provider.service.send_once(grant, request, str(uuid.uuid4()), idempotency_key=key), timeout=30)


def test_the_same_key_sends_one_message_and_answers_it_twice(provider: tuple[Provider, Mailpit]) -> None:
    api, mailpit = provider
    subject = f"once {uuid.uuid4().hex[:8]}"
    body = {"to": [{"email": "bob@example.com"}], "subject": subject, "body": "hello"}
    first = send(api, body, "order-1")
    again = send(api, body, "order-1")
    assert first.status == 200 and not first.replayed
    assert again.replayed and again.json()["data"]["id"] == first.json()["data"]["id"]
    assert copies(mailpit, subject) == 1  # one copy in the mailbox


def test_another_body_under_the_same_key_is_the_conflict_and_sends_nothing(provider: tuple[Provider, Mailpit]) -> None:
    api, mailpit = provider
    subject = f"conflict {uuid.uuid4().hex[:8]}"
    send(api, {"to": [{"email": "bob@example.com"}], "subject": subject, "body": "first"}, "order-2")
    with pytest.raises(ProviderError) as refused:
        send(api, {"to": [{"email": "bob@example.com"}], "subject": subject, "body": "second"}, "order-2")
    assert (refused.value.status, refused.value.type) == (409, "invalid_idempotent_request")
    assert copies(mailpit, subject) == 1


def test_without_a_key_every_call_sends(provider: tuple[Provider, Mailpit]) -> None:
    api, mailpit = provider
    subject = f"twice {uuid.uuid4().hex[:8]}"
    body = {"to": [{"email": "bob@example.com"}], "subject": subject, "body": "hello"}
    ids = {send(api, body, None).json()["data"]["id"] for _ in range(2)}
    assert len(ids) == 2 and copies(mailpit, subject) == 2
