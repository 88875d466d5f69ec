"""Signed webhooks to a real HTTP receiver on loopback: sent, created, bounced; retries; tampering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support.provider import Lab, address, error_of, picky_provider

from emailkit.message import compose
from emailkit.provider import Provider, WebhookReceiver, verify_signature
from emailkit.provider.webhooks import SIGNATURE_HEADER, sign


# The provider options of this module's `lab` (tests/integration/conftest.py).
LAB_OPTIONS = {"webhook_wait_initial": 0.05, "webhook_attempts": 4, "poll_interval": 0.1}


@pytest.fixture()
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def subscribe(lab: Lab, url: str, *types: str) -> dict[str, Any]:
    r = lab.http.post("/v3/webhooks", json={"webhook_url": url, "trigger_types": list(types)})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


@pytest.fixture()
def hooks(lab: Lab) -> Iterator[None]:
    yield
    for hook in lab.http.get("/v3/webhooks").json()["data"]:
        lab.http.delete(f"/v3/webhooks/{hook['id']}")


def test_signature_helpers() -> None:
    body = b'{"type":"message.send_success"}'
    header = sign("s3cret", body)
    assert verify_signature("s3cret", body, header)
    assert verify_signature("s3cret", body, header.upper())  # hex is case-insensitive
    assert not verify_signature("s3cret", body + b" ", header)  # tampered body
    assert not verify_signature("other", body, header)
    assert not verify_signature("s3cret", body, None) and not verify_signature("s3cret", body, "")
    assert not verify_signature("s3cret", body, "zz" * 32)


def test_webhook_crud_shows_the_secret_once(lab: Lab, receiver: WebhookReceiver, hooks: None) -> None:
    created = subscribe(lab, receiver.url, "message.send_success", "message.send_success")
    assert created["trigger_types"] == ["message.send_success"] and len(created["webhook_secret"]) == 64
    listed = lab.http.get("/v3/webhooks").json()["data"]
    assert [h["id"] for h in listed] == [created["id"]] and "webhook_secret" not in listed[0]
    one = lab.http.get(f"/v3/webhooks/{created['id']}").json()["data"]
    assert one["webhook_url"] == receiver.url and "webhook_secret" not in one
    assert lab.http.delete(f"/v3/webhooks/{created['id']}").json().keys() == {"request_id", "data"}
    r = lab.http.get(f"/v3/webhooks/{created['id']}")
    assert r.status_code == 404 and error_of(r)["field"] == "webhook_id"


@pytest.mark.parametrize(("payload", "field"), [
    ({"webhook_url": "ftp://x", "trigger_types": ["message.send_success"]}, "webhook_url"),
    ({"webhook_url": "http://127.0.0.1:1/x", "trigger_types": ["message.opened"]}, "trigger_types"),
    ({"webhook_url": "http://127.0.0.1:1/x", "trigger_types": []}, "trigger_types"),
    ({"trigger_types": ["message.send_success"]}, "webhook_url"),
])
def test_bad_webhooks_are_refused(lab: Lab, payload: dict, field: str) -> None:
    r = lab.http.post("/v3/webhooks", json=payload)
    assert r.status_code == 400 and error_of(r)["field"] == field
    assert lab.http.get("/v3/webhooks").json()["data"] == []


def test_webhooks_need_the_api_key(lab: Lab) -> None:
    r = httpx.get(f"{lab.provider.url}/v3/webhooks")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_message_sent_is_delivered_signed(lab: Lab, receiver: WebhookReceiver, hooks: None) -> None:
    hook = subscribe(lab, receiver.url, "message.send_success")
    ann = lab.grant("ann")
    sent = lab.sent_ok(ann, {"to": [{"email": address()}], "subject": "watched", "body": "x"})
    (delivery,) = receiver.wait_for(1)
    assert delivery.verify(hook["webhook_secret"])
    assert delivery.headers["Content-Type"] == "application/json"
    event = delivery.json()
    assert event["type"] == "message.send_success" and event["webhook_delivery_attempt"] == 1
    assert event["data"]["grant_id"] == ann.id
    assert event["data"]["object"]["id"] == sent["id"] and event["data"]["object"]["subject"] == "watched"
    # A body changed by one byte no longer matches its signature.
    tampered = delivery.body.replace(b"watched", b"Watched")
    assert not verify_signature(hook["webhook_secret"], tampered, delivery.signature)
    # Re-serialised JSON is not the signed bytes either: verify the raw body.
    reserialised = json.dumps(event, indent=2).encode()
    assert not verify_signature(hook["webhook_secret"], reserialised, delivery.signature)


def test_failed_deliveries_are_retried_until_accepted(lab: Lab, hooks: None) -> None:
    with WebhookReceiver(fail_first=2) as flaky:
        hook = subscribe(lab, flaky.url, "message.send_success")
        lab.sent_ok(lab.grant("ann"), {"to": [{"email": address()}], "body": "x"})
        (accepted,) = flaky.wait_for(1)
        assert [r.status for r in flaky.received] == [500, 500, 200]
        assert [r.json()["webhook_delivery_attempt"] for r in flaky.received] == [1, 2, 3]
        assert len({r.json()["id"] for r in flaky.received}) == 1  # one event, three attempts
        assert all(r.verify(hook["webhook_secret"]) for r in flaky.received)
        assert lab.provider.drain_webhooks()
        attempts = [d for d in lab.provider.store.deliveries(hook["id"])]
        assert [(d["attempt"], d["status_code"]) for d in attempts] == [(1, 500), (2, 500), (3, 200)]


def test_retries_are_bounded(lab: Lab, hooks: None) -> None:
    with WebhookReceiver(fail_first=100, fail_status=503) as broken:
        hook = subscribe(lab, broken.url, "message.send_success")
        lab.sent_ok(lab.grant("ann"), {"to": [{"email": address()}], "body": "x"})
        assert lab.provider.drain_webhooks(timeout=20)
        assert len(broken.received) == 4  # webhook_attempts=4, then it gives up
        assert [d["status_code"] for d in lab.provider.store.deliveries(hook["id"])] == [503] * 4


def test_unreachable_receiver_is_retried_and_recorded(lab: Lab, hooks: None) -> None:
    with WebhookReceiver() as gone:  # answers the challenge on creation, then stops listening
        hook = subscribe(lab, gone.url, "message.send_success")
    lab.sent_ok(lab.grant("ann"), {"to": [{"email": address()}], "body": "x"})
    assert lab.provider.drain_webhooks(timeout=20)
    deliveries = lab.provider.store.deliveries(hook["id"])
    assert len(deliveries) == 4 and all(d["status_code"] is None and "Connect" in d["error"] for d in deliveries)


def test_inbound_mail_triggers_message_created_once(lab: Lab, receiver: WebhookReceiver, hooks: None) -> None:
    hook = subscribe(lab, receiver.url, "message.created")
    ann = lab.grant("ann")
    lab.smtp(compose(sender=address("outsider"), to=[ann.email], subject="hello ann", text="x"))
    (delivery,) = receiver.wait_for(1, timeout=10)  # found by the background poll, no read needed
    assert delivery.verify(hook["webhook_secret"])
    event = delivery.json()
    assert event["type"] == "message.created" and event["data"]["grant_id"] == ann.id
    assert event["data"]["object"]["subject"] == "hello ann" and event["data"]["object"]["folders"] == ["INBOX"]
    lab.messages(ann)
    lab.provider.drain_webhooks()
    assert len(receiver.received) == 1
    # Mail the grant sends itself through the API is message.send_success, not message.created.
    lab.sent_ok(ann, {"to": [{"email": address()}], "body": "x"})
    lab.messages(ann)
    lab.provider.drain_webhooks()
    assert len(receiver.received) == 1


# --------------------------------------------------------------------------- bounces


@pytest.fixture(scope="module")
def bouncing() -> Iterator[tuple[Provider, httpx.Client]]:
    with picky_provider() as served:
        yield served


def test_a_refused_recipient_is_reported_and_bounced(bouncing: tuple[Provider, httpx.Client]) -> None:
    provider, http = bouncing
    ann = provider.create_grant(address("ann"))
    good, bad = address("good"), "bounce-" + address()
    with WebhookReceiver() as receiver:
        hook = http.post("/v3/webhooks", json={"webhook_url": receiver.url,
                                               "trigger_types": ["message.send_success", "message.bounce_detected"]}).json()["data"]
        try:
            r = http.post(f"/v3/grants/{ann.id}/messages/send",
                          json={"to": [{"email": good}, {"email": bad}], "subject": "partly", "body": "x"})
            assert r.status_code == 200, r.text
            data = r.json()["data"]
            assert data["refused_recipients"] == [{"email": bad, "smtp_code": 550, "smtp_reply": (
                f"5.1.1 <{bad}>: Recipient address rejected: User unknown")}]
            events = {d.json()["type"]: d for d in receiver.wait_for(2)}
            assert set(events) == {"message.send_success", "message.bounce_detected"}
            bounce = events["message.bounce_detected"]
            assert bounce.verify(hook["webhook_secret"])
            obj = bounce.json()["data"]["object"]
            assert obj["id"] == data["id"] and obj["message_id"] == data["message_id"]
            assert [b["email"] for b in obj["bounced_recipients"]] == [bad]
        finally:
            http.delete(f"/v3/webhooks/{hook['id']}")


def test_every_recipient_refused_is_a_422_with_the_smtp_reply(bouncing: tuple[Provider, httpx.Client]) -> None:
    provider, http = bouncing
    ann = provider.create_grant(address("ann"))
    bad = "bounce-" + address()
    with WebhookReceiver() as receiver:
        hook = http.post("/v3/webhooks", json={"webhook_url": receiver.url,
                                               "trigger_types": ["message.send_success", "message.bounce_detected"]}).json()["data"]
        try:
            key = {"Idempotency-Key": "bounce-" + ann.id}
            r = http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": bad}], "body": "x"}, headers=key)
            assert r.status_code == 422
            error = error_of(r)
            assert error["type"] == "provider_error" and "550" in error["message"]
            assert error["provider_error"]["smtp_code"] == 550
            assert error["provider_error"]["recipients"][0]["email"] == bad
            (bounce,) = receiver.wait_for(1)
            assert bounce.json()["type"] == "message.bounce_detected" and bounce.json()["data"]["object"]["id"] is None
            assert provider.store.sent_records(ann.id) == []
            # A permanent refusal is replayed for the same key (not retried against SMTP).
            again = http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": bad}], "body": "x"},
                              headers=key)
            assert again.status_code == 422 and again.headers["Idempotent-Response"] == "true"
            provider.drain_webhooks()
            assert len(receiver.received) == 1
        finally:
            http.delete(f"/v3/webhooks/{hook['id']}")


def test_a_deferred_recipient_is_a_503_to_retry(bouncing: tuple[Provider, httpx.Client]) -> None:
    provider, http = bouncing
    ann = provider.create_grant(address("ann"))
    r = http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": "busy-" + address()}], "body": "x"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert error_of(r)["provider_error"]["smtp_code"] == 450


def test_receiver_sees_the_signature_header_name(lab: Lab, receiver: WebhookReceiver, hooks: None) -> None:
    subscribe(lab, receiver.url, "message.send_success")
    lab.sent_ok(lab.grant("ann"), {"to": [{"email": address()}], "body": "x"})
    (delivery,) = receiver.wait_for(1)
    assert SIGNATURE_HEADER in delivery.headers and len(delivery.headers[SIGNATURE_HEADER]) == 64
