"""POST …/messages/send-batch against a real provider (uvicorn) relaying to a real SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from tests.support.provider import Lab, address, error_of, picky_provider

from emailkit.mailpit import Mailpit
from emailkit.provider import Provider, WebhookReceiver
from emailkit.sandbox import Sandbox



def batch(lab: Lab, grant_ref: str, messages: list[dict], **kwargs) -> httpx.Response:  # noqa: ANN003
    return lab.http.post(f"/v3/grants/{grant_ref}/messages/send-batch", json={"messages": messages}, **kwargs)


def stored(lab: Lab) -> int:
    return int(lab.mailpit.info()["Messages"])


def test_ten_messages_are_delivered_in_order_on_one_session(lab: Lab) -> None:
    ann, tag = lab.grant("ann"), uuid.uuid4().hex[:8]
    rcpts = [address(f"r{i}") for i in range(10)]
    lab.sent_ok(ann, {"to": [{"email": address()}], "body": "warm-up"})  # the session is open
    connections, before = lab.provider.smtp_connections, stored(lab)
    r = batch(lab, ann.id, [{"to": [{"email": rcpt}], "subject": f"{tag} #{i}", "body": f"<p>{i}</p>"}
                            for i, rcpt in enumerate(rcpts)])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"request_id", "data"} and body["request_id"] == r.headers["request-id"]
    results = body["data"]
    assert [m["subject"] for m in results] == [f"{tag} #{i}" for i in range(10)]
    assert [m["to"][0]["email"] for m in results] == rcpts
    assert len({m["id"] for m in results}) == len({m["thread_id"] for m in results}) == 10
    for m in results:
        assert m["object"] == "message" and m["grant_id"] == ann.id and m["refused_recipients"] == []
        assert m["folders"] == ["SENT"] and m["message_id"].startswith("<")
    assert stored(lab) == before + 10
    assert lab.mailpit.search(f"subject:{tag}").messages_count == 10
    for m in results[::3]:  # each id is the stored message's
        assert lab.mailpit.message(m["id"]).subject == m["subject"]
    assert lab.provider.smtp_connections == connections  # the reused session carried them all
    assert len(lab.provider.store.sent_records(ann.id)) == 11
    listed = {m["id"] for m in lab.messages(ann, limit=20).json()["data"]}
    assert {m["id"] for m in results} <= listed


def test_items_answer_like_single_sends_and_replies_join_their_thread(lab: Lab) -> None:
    ann = lab.grant("ann")
    parent = lab.sent_ok(ann, {"to": [{"email": address()}], "subject": "Plans", "body": "x"})
    results = batch(lab, ann.email, [
        {"to": [{"email": address()}], "subject": "new topic", "body": "a", "is_plaintext": True},
        {"to": parent["to"], "reply_to_message_id": parent["id"], "body": "b"},
    ]).json()["data"]
    assert results[1]["thread_id"] == parent["thread_id"] and results[1]["subject"] == "Re: Plans"
    assert results[0]["thread_id"] != parent["thread_id"]
    headers = lab.mailpit.headers(results[1]["id"])
    assert headers["In-Reply-To"] == [parent["message_id"]]
    # The item is the same message object GET …/messages/{id} returns.
    got = lab.http.get(f"/v3/grants/{ann.id}/messages/{results[0]['id']}").json()["data"]
    assert {k: v for k, v in results[0].items() if k != "refused_recipients"} == got


@pytest.mark.parametrize(("item", "field", "words"), [
    ({"to": [{"email": "not-an-address"}], "body": "x"}, "messages[2].to[0].email", "user@domain"),
    ({"to": [{"email": "a@example.com"}], "subject": "x\r\nBcc: evil@example.com", "body": "x"},
     "messages[2].subject", "CR"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "X-A", "value": "1\nX-B: 2"}]},
     "messages[2].custom_headers[0].value", "CR or LF"),
    ({"to": [{"email": "a@example.com"}], "send_at": 1700000000}, "messages[2].send_at", "not a field"),
    ({"to": [{"email": "a@example.com"}], "template": {"id": "nope"}}, "messages[2].template.id", "no template"),
])
def test_one_bad_item_refuses_the_whole_batch(lab: Lab, item: dict, field: str, words: str) -> None:
    ann = lab.grant("ann")
    before = stored(lab)
    good = {"to": [{"email": address()}], "body": "fine"}
    r = batch(lab, ann.id, [good, good, item, good], headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code in (400, 404), r.text
    error = error_of(r)
    assert error["field"] == field and words.lower() in error["message"].lower()
    assert stored(lab) == before  # nothing was sent, not even the good items before it
    assert lab.provider.store.sent_records(ann.id) == []


@pytest.mark.parametrize(("count", "words"), [(101, "at most 100"), (0, "at least 1")])
def test_batch_size_is_1_to_100(lab: Lab, count: int, words: str) -> None:
    ann = lab.grant("ann")
    before = stored(lab)
    r = batch(lab, ann.id, [{"to": [{"email": address()}], "body": "x"}] * count)
    assert r.status_code == 400
    error = error_of(r)
    assert error["field"] == "messages" and words in error["message"]
    assert stored(lab) == before


def test_a_batch_is_replayed_under_its_idempotency_key(lab: Lab) -> None:
    ann, rcpt = lab.grant("ann"), address()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    items = [{"to": [{"email": rcpt}], "subject": f"once {i}", "body": "x"} for i in range(3)]
    first = batch(lab, ann.id, items, headers=key)
    again = batch(lab, ann.id, items, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Response"] == "true" and "Idempotent-Response" not in first.headers
    assert again.json() == first.json()
    assert lab.mailpit.search(f"to:{rcpt}").messages_count == 3
    other = batch(lab, ann.id, items[:2], headers=key)
    assert other.status_code == 409 and error_of(other)["type"] == "invalid_idempotent_request"


SLOW_LAB_OPTIONS = {"rate_limit": 0.1, "rate_burst": 2}  # `slow_lab`: a third request within 10 s is refused


def test_a_batch_is_one_request_for_the_rate_limit(slow_lab: Lab) -> None:
    ann = slow_lab.grant("ann")
    items = [{"to": [{"email": address()}], "body": "x"} for _ in range(5)]
    assert batch(slow_lab, ann.id, items).status_code == 200  # 5 messages, 1 token
    assert batch(slow_lab, ann.id, items).status_code == 200
    r = batch(slow_lab, ann.id, items)
    assert r.status_code == 429 and error_of(r)["type"] == "rate_limit_error"
    assert len(slow_lab.provider.store.sent_records(ann.id)) == 10


# --------------------------------------------------------------------------- scopes


def test_batch_needs_the_send_scope_for_the_tokens_own_grant(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    items = [{"to": [{"email": address()}], "body": "x"}]
    url = f"{lab.provider.url}/v3/grants/me/messages/send-batch"
    reader = {"Authorization": f"Bearer {lab.token(ann.email, 'email.read')['access_token']}"}
    r = httpx.post(url, json={"messages": items}, headers=reader)
    assert r.status_code == 403 and error_of(r)["type"] == "insufficient_scope"
    assert 'scope="email.send"' in r.headers["WWW-Authenticate"]
    sender = {"Authorization": f"Bearer {lab.token(ann.email, 'email.send')['access_token']}"}
    r = httpx.post(url, json={"messages": items}, headers=sender)
    assert r.status_code == 200 and r.json()["data"][0]["grant_id"] == ann.id
    r = httpx.post(f"{lab.provider.url}/v3/grants/{bob.id}/messages/send-batch", json={"messages": items},
                   headers=sender)
    assert r.status_code == 403 and error_of(r)["type"] == "forbidden"
    r = httpx.post(url, json={"messages": items})
    assert r.status_code == 401
    assert len(lab.provider.store.sent_records(ann.id)) == 1 and lab.provider.store.sent_records(bob.id) == []


def test_openapi_describes_the_batch(lab: Lab) -> None:
    spec = lab.http.get("/openapi.json").json()
    op = spec["paths"]["/v3/grants/{grant_id}/messages/send-batch"]["post"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/BatchResponse")
    for status in ("400", "401", "403", "404", "409", "429", "503"):
        assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    schemas = spec["components"]["schemas"]
    assert schemas["BatchSendRequest"]["properties"]["messages"]["maxItems"] == 100
    items = schemas["BatchResponse"]["properties"]["data"]["items"]["anyOf"]
    assert {i["$ref"].rsplit("/", 1)[1] for i in items} == {"SentMessageOut", "BatchItemError"}


# --------------------------------------------------------------------------- refusals, per item


@pytest.fixture(scope="module")
def picky() -> Iterator[tuple[Provider, httpx.Client]]:
    with picky_provider() as served:
        yield served


def test_a_refused_item_fails_alone_and_webhooks_fire_per_item(picky: tuple[Provider, httpx.Client]) -> None:
    provider, http = picky
    ann = provider.create_grant(address("ann"))
    bad, good = "bounce-" + address(), address("good")
    with WebhookReceiver() as receiver:
        hook = http.post("/v3/webhooks", json={"webhook_url": receiver.url,
                                               "trigger_types": ["message.send_success", "message.bounce_detected"]}).json()["data"]
        try:
            r = http.post(f"/v3/grants/{ann.id}/messages/send-batch", json={"messages": [
                {"to": [{"email": address()}], "subject": "first", "body": "x"},
                {"to": [{"email": bad}], "subject": "refused", "body": "x"},
                {"to": [{"email": good}, {"email": bad}], "subject": "partly", "body": "x"},
            ]})
            assert r.status_code == 200, r.text
            first, refused, partly = r.json()["data"]
            assert first["subject"] == "first" and first["refused_recipients"] == []
            assert set(refused) == {"error", "index"} and refused["index"] == 1
            assert refused["error"]["type"] == "provider_error" and "550" in refused["error"]["message"]
            detail = refused["error"]["provider_error"]
            assert detail["smtp_code"] == 550 and [x["email"] for x in detail["recipients"]] == [bad]
            assert partly["subject"] == "partly" and partly["to"][1]["email"] == bad
            assert partly["refused_recipients"] == [{"email": bad, "smtp_code": 550, "smtp_reply": (
                f"5.1.1 <{bad}>: Recipient address rejected: User unknown")}]
            assert [s["message_id"] for s in provider.store.sent_records(ann.id)] == [
                first["message_id"], partly["message_id"]]
            events = receiver.wait_for(4)
            sent = sorted(e.json()["data"]["object"]["id"] for e in events if e.json()["type"] == "message.send_success")
            bounced = [e.json()["data"]["object"] for e in events if e.json()["type"] == "message.bounce_detected"]
            assert sent == sorted([first["id"], partly["id"]])
            assert sorted((b["id"] or "") for b in bounced) == sorted(["", partly["id"]])  # no id: nothing stored
            assert all(b["bounced_recipients"][0]["email"] == bad for b in bounced)
            assert all(e.verify(hook["webhook_secret"]) for e in events)
        finally:
            http.delete(f"/v3/webhooks/{hook['id']}")


def test_deferred_items_are_reported_and_a_wholly_deferred_batch_is_a_503(
        picky: tuple[Provider, httpx.Client]) -> None:
    provider, http = picky
    ann = provider.create_grant(address("ann"))
    url = f"/v3/grants/{ann.id}/messages/send-batch"
    r = http.post(url, json={"messages": [{"to": [{"email": address()}], "body": "x"},
                                          {"to": [{"email": "busy-" + address()}], "body": "x"}]})
    assert r.status_code == 200, r.text
    sent, deferred = r.json()["data"]
    assert sent["object"] == "message"
    assert deferred["index"] == 1 and deferred["error"]["type"] == "provider_unavailable"
    assert deferred["error"]["provider_error"]["smtp_code"] == 450
    key = {"Idempotency-Key": str(uuid.uuid4())}
    everyone_busy = {"messages": [{"to": [{"email": "busy-" + address()}], "body": "x"} for _ in range(2)]}
    r = http.post(url, json=everyone_busy, headers=key)
    assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
    error = error_of(r)
    assert error["type"] == "provider_unavailable" and "nothing was sent" in error["message"]
    assert error["provider_error"]["smtp_code"] == 450
    again = http.post(url, json=everyone_busy, headers=key)
    assert again.status_code == 503 and "Idempotent-Response" not in again.headers  # not kept: retry it
    assert [s["message_id"] for s in provider.store.sent_records(ann.id)] == [sent["message_id"]]


def test_smtp_unreachable_is_a_503_for_the_batch_and_the_retry_sends_once() -> None:
    first = Sandbox().start()
    smtp_port, api_port = first.smtp_port, first.api_port
    first.close()  # nothing listens there now
    with Provider(first.api_url, "127.0.0.1", smtp_port) as provider, \
            httpx.Client(base_url=provider.url, headers={"Authorization": f"Bearer {provider.api_key}"},
                         timeout=15) as http:
        ann, rcpt = provider.create_grant(address("ann")), address()
        body = {"messages": [{"to": [{"email": rcpt}], "subject": f"m{i}", "body": "x"} for i in range(3)]}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        r = http.post(f"/v3/grants/{ann.id}/messages/send-batch", json=body, headers=key)
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
        error = error_of(r)
        assert error["type"] == "provider_unavailable" and "nothing was sent" in error["message"]
        assert provider.store.sent_records() == []
        with Sandbox(smtp=("127.0.0.1", smtp_port), listen=("127.0.0.1", api_port)), Mailpit(first.api_url) as mp:
            r = http.post(f"/v3/grants/{ann.id}/messages/send-batch", json=body, headers=key)
            assert r.status_code == 200, r.text
            assert "Idempotent-Response" not in r.headers  # the 503 was not kept under the key
            assert [m["subject"] for m in r.json()["data"]] == ["m0", "m1", "m2"]
            assert mp.search(f"to:{rcpt}").messages_count == 3
            again = http.post(f"/v3/grants/{ann.id}/messages/send-batch", json=body, headers=key)
            assert again.headers["Idempotent-Response"] == "true"
            assert mp.search(f"to:{rcpt}").messages_count == 3
