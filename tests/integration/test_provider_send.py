"""POST …/messages/send against a real provider (uvicorn) relaying to a real SMTP server (sandbox)."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.support.provider import Lab, address, error_of

from emailkit.mailpit import Mailpit
from emailkit.provider import Provider
from emailkit.sandbox import Sandbox


# The provider options of this module's `lab` (tests/integration/conftest.py).
LAB_OPTIONS = {"record_smtp": True}


def test_send_delivers_over_smtp_and_returns_the_message(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), address("bob")
    data = lab.sent_ok(ann, {"to": [{"email": bob, "name": "Bob"}], "cc": [{"email": address("carol")}],
                             "subject": "Quarterly numbers", "body": "<p>Attached.</p>"})
    assert data["object"] == "message" and data["grant_id"] == ann.id
    assert data["from"] == [{"name": "", "email": ann.email}]
    assert data["to"] == [{"name": "Bob", "email": bob}]
    assert data["folders"] == ["SENT"] and data["unread"] is False
    assert data["thread_id"] and isinstance(data["date"], int)
    # The API's id is Mailpit's ID of the stored message; message_id is its RFC Message-ID.
    stored = lab.mailpit.message(data["id"])
    assert stored.subject == "Quarterly numbers" and stored.html.strip() == "<p>Attached.</p>"
    assert f"<{stored.message_id}>" == data["message_id"]
    headers = lab.mailpit.headers(data["id"])
    assert headers["From"] == [ann.email]


def test_the_smtp_hop_is_recorded_and_the_session_reused(lab: Lab) -> None:
    ann = lab.grant("ann")
    before = lab.provider.smtp_connections
    for i in range(3):
        lab.sent_ok(ann, {"to": [{"email": address()}], "subject": f"reuse {i}", "body": "x"})
    assert lab.provider.smtp_connections == max(before, 1)  # one session for all of them
    hop = lab.provider.last_smtp_exchange
    assert hop is not None
    commands = [c.split(":")[0] for c in hop.commands if c[:4] in ("MAIL", "RCPT", "DATA")]
    assert commands == ["MAIL FROM", "RCPT TO", "DATA"]
    assert any("queued as" in r for r in hop.replies)
    assert "EHLO" not in " ".join(hop.commands)  # the session was already open


def test_plain_text_custom_headers_and_attachments(lab: Lab) -> None:
    ann = lab.grant("ann")
    data = lab.sent_ok(ann, {
        "to": [{"email": address()}], "subject": "Report", "body": "Plain text body", "is_plaintext": True,
        "custom_headers": [{"name": "X-Campaign", "value": "spring"}],
        "attachments": [{"filename": "r.csv", "content_type": "text/csv",
                         "content": base64.b64encode(b"a,b\n1,2\n").decode()}],
    })
    headers = lab.mailpit.headers(data["id"])
    assert headers["X-Campaign"] == ["spring"]
    stored = lab.mailpit.message(data["id"])
    assert stored.text.strip() == "Plain text body" and stored.html == ""
    assert [a["FileName"] for a in stored.attachments] == ["r.csv"]
    assert data["attachments"][0]["filename"] == "r.csv" and data["attachments"][0]["size"] == 8


def test_from_may_carry_a_name_but_not_another_address(lab: Lab) -> None:
    ann = lab.grant("ann")
    data = lab.sent_ok(ann, {"from": [{"email": ann.email.upper(), "name": "Ann A."}], "to": [{"email": address()}],
                             "subject": "named", "body": "x"})
    assert data["from"] == [{"name": "Ann A.", "email": ann.email}]
    r = lab.send(ann, {"from": [{"email": "ceo@example.com"}], "to": [{"email": address()}], "body": "x"})
    assert r.status_code == 400 and error_of(r)["field"] == "from[0].email"


def test_grant_can_be_named_by_email_address(lab: Lab) -> None:
    ann = lab.grant("ann")
    r = lab.send(ann.email, {"to": [{"email": address()}], "subject": "by address", "body": "x"})
    assert r.status_code == 200 and r.json()["data"]["grant_id"] == ann.id


@pytest.mark.parametrize(("payload", "field", "words"), [
    ({"to": [{"email": "not-an-address"}], "body": "x"}, "to[0].email", "user@domain"),
    ({"to": [], "body": "x"}, "to", "recipient"),
    ({"to": [{"email": "a@example.com"}], "subject": "two\r\nBcc: evil@example.com", "body": "x"}, "subject", "CR"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "From", "value": "x@y.z"}]},
     "custom_headers[0].name", "cannot be overridden"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "References", "value": "<a@b>"}]},
     "custom_headers[0].name", "reply_to_message_id"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "X-A", "value": "1\nX-B: 2"}]},
     "custom_headers[0].value", "CR or LF"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "Bad Name", "value": "1"}]},
     "custom_headers[0].name", "header name"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "X-A", "value": "1\u2028X-B: 2"}]},
     "custom_headers[0].value", "line break"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "X-A", "value": "ok"},
                                                             {"name": "X-B", "value": "1\x85X-C: 2"}]},
     "custom_headers[1].value", "line break"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "Message-ID", "value": "<a@b>"}]},
     "custom_headers[0].name", "cannot be overridden"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "Subject", "value": "x"}]},
     "custom_headers[0].name", "cannot be overridden"),
    ({"to": [{"email": "a@example.com"}], "custom_headers": [{"name": "X-A", "value": "1"},
                                                             {"name": "x-a", "value": "2"}]},
     "custom_headers[1].name", "twice"),
    ({"to": [{"email": "a@example.com"}], "attachments": [{"filename": "a", "content_type": "text/plain",
                                                           "content": "***"}]}, "attachments[0].content", "base64"),
    ({"to": [{"email": "a@example.com"}], "send_at": 1700000000}, "send_at", "not a field"),
    ({"to": [{"email": "a@example.com"}], "is_plaintext": "yes"}, "is_plaintext", "is_plaintext"),
    ({"to": "a@example.com"}, "to", "to"),
    ({"to": [{"name": "no address"}]}, "to[0].email", "required"),
    ({"to": [{"email": "a@example.com"}], "reply_to_message_id": "nope"}, "reply_to_message_id", "no message"),
    ({"to": [{"email": "a@example.com"}], "template": {"id": "nope"}}, "template.id", "no template"),
])
def test_bad_input_is_refused_clearly_and_nothing_is_sent(lab: Lab, payload: dict, field: str, words: str) -> None:
    ann = lab.grant("ann")
    before = lab.mailpit.info()["Messages"]
    r = lab.send(ann, payload)
    assert r.status_code in (400, 404), r.text
    error = error_of(r)
    assert error["field"] == field
    assert words.lower() in error["message"].lower()
    assert lab.mailpit.info()["Messages"] == before  # nothing reached SMTP
    assert lab.provider.store.sent_records(ann.id) == []  # nothing stored
    assert lab.messages(ann).json()["data"] == []


def test_malformed_json_names_the_problem(lab: Lab) -> None:
    ann = lab.grant("ann")
    r = lab.http.post(f"/v3/grants/{ann.id}/messages/send", content=b'{"to": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = error_of(r)
    assert error["type"] == "invalid_request_error" and "not valid JSON" in error["message"]


def test_too_many_recipients_is_a_400_before_smtp(lab: Lab) -> None:
    ann = lab.grant("ann")
    r = lab.send(ann, {"to": [{"email": f"r{i}@example.com"} for i in range(101)], "body": "x"})
    assert r.status_code == 400 and "at most 100" in error_of(r)["message"]


def test_template_send(lab: Lab) -> None:
    ann = lab.grant("ann")
    r = lab.http.post(f"/v3/grants/{ann.id}/templates", json={
        "name": "welcome", "subject": "Welcome, {{ name }}!", "body": "<p>Hi {{ name }}, your plan is {{ plan }}.</p>"})
    assert r.status_code == 200, r.text
    template = r.json()["data"]
    assert template["object"] == "template" and template["engine"] == "jinja2"
    listed = lab.http.get(f"/v3/grants/{ann.id}/templates").json()["data"]
    assert [t["id"] for t in listed] == [template["id"]]
    data = lab.sent_ok(ann, {"to": [{"email": address()}],
                             "template": {"id": template["id"], "variables": {"name": "<Bo>", "plan": "Pro"}}})
    assert data["subject"] == "Welcome, <Bo>!"
    assert data["body"] == "<p>Hi &lt;Bo&gt;, your plan is Pro.</p>"  # HTML autoescaped
    assert lab.mailpit.message(data["id"]).html.strip() == data["body"]


def test_template_missing_variable_is_named_and_nothing_sent(lab: Lab) -> None:
    ann = lab.grant("ann")
    tid = lab.http.post(f"/v3/grants/{ann.id}/templates", json={
        "name": "t", "subject": "Hello {{ name }}", "body": "Code {{ code }}", "is_plaintext": True}).json()["data"]["id"]
    before = lab.mailpit.info()["Messages"]
    r = lab.send(ann, {"to": [{"email": address()}], "template": {"id": tid, "variables": {"name": "x"}}})
    assert r.status_code == 400
    error = error_of(r)
    assert error["field"] == "template.variables.code" and "'code'" in error["message"]
    assert lab.mailpit.info()["Messages"] == before
    r = lab.send(ann, {"to": [{"email": address()}], "body": "x", "template": {"id": tid}})
    assert r.status_code == 400 and error_of(r)["field"] == "body"


def test_template_syntax_error_is_refused_at_creation(lab: Lab) -> None:
    ann = lab.grant("ann")
    r = lab.http.post(f"/v3/grants/{ann.id}/templates", json={"name": "t", "subject": "ok", "body": "{% if x %}open"})
    assert r.status_code == 400 and error_of(r)["field"] == "body" and "line 1" in error_of(r)["message"]
    assert lab.http.get(f"/v3/grants/{ann.id}/templates").json()["data"] == []


def test_template_sandbox_blocks_python_internals(lab: Lab) -> None:
    ann = lab.grant("ann")
    tid = lab.http.post(f"/v3/grants/{ann.id}/templates", json={
        "name": "t", "subject": "x", "body": "{{ name.__class__.__mro__ }}"}).json()["data"]["id"]
    r = lab.send(ann, {"to": [{"email": address()}], "template": {"id": tid, "variables": {"name": "x"}}})
    assert r.status_code == 400 and "template" in error_of(r)["field"]


def test_idempotent_replay_sends_once(lab: Lab) -> None:
    ann, rcpt = lab.grant("ann"), address()
    key = str(uuid.uuid4())
    payload = {"to": [{"email": rcpt}], "subject": "once", "body": "x"}
    first = lab.send(ann, payload, headers={"Idempotency-Key": key})
    second = lab.send(ann, {"body": "x", "subject": "once", "to": [{"email": rcpt}]},  # same JSON, other key order
                      headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Response"] == "true" and "Idempotent-Response" not in first.headers
    assert second.json() == first.json()
    assert lab.mailpit.search(f"to:{rcpt}").messages_count == 1


def test_idempotency_key_with_another_payload_conflicts(lab: Lab) -> None:
    ann = lab.grant("ann")
    key = str(uuid.uuid4())
    assert lab.send(ann, {"to": [{"email": address()}], "body": "a"}, headers={"Idempotency-Key": key}).status_code == 200
    r = lab.send(ann, {"to": [{"email": address()}], "body": "b"}, headers={"Idempotency-Key": key})
    assert r.status_code == 409 and error_of(r)["type"] == "invalid_idempotent_request"
    assert len(lab.provider.store.sent_records(ann.id)) == 1


def test_idempotency_keys_are_scoped_per_grant(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    key = str(uuid.uuid4())
    assert lab.send(ann, {"to": [{"email": address()}], "body": "a"}, headers={"Idempotency-Key": key}).status_code == 200
    r = lab.send(bob, {"to": [{"email": address()}], "body": "b"}, headers={"Idempotency-Key": key})
    assert r.status_code == 200 and "Idempotent-Response" not in r.headers


def test_idempotency_key_too_long(lab: Lab) -> None:
    ann = lab.grant("ann")
    r = lab.send(ann, {"to": [{"email": address()}], "body": "a"}, headers={"Idempotency-Key": "k" * 257})
    assert r.status_code == 400 and error_of(r)["type"] == "invalid_idempotency_key"
    assert lab.provider.store.sent_records(ann.id) == []


def test_a_failed_validation_is_not_cached_under_the_key(lab: Lab) -> None:
    ann = lab.grant("ann")
    key = str(uuid.uuid4())
    bad = lab.send(ann, {"to": [{"email": "broken"}], "body": "a"}, headers={"Idempotency-Key": key})
    assert bad.status_code == 400
    good = lab.send(ann, {"to": [{"email": address()}], "body": "a"}, headers={"Idempotency-Key": key})
    assert good.status_code == 200


def test_concurrent_sends_share_the_session_safely(lab: Lab) -> None:
    ann = lab.grant("ann")
    rcpts = [address() for _ in range(12)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda r: lab.send(ann, {"to": [{"email": r}], "subject": r, "body": "x"}), rcpts))
    assert [r.status_code for r in results] == [200] * 12
    for rcpt, r in zip(rcpts, results):
        assert lab.mailpit.message(r.json()["data"]["id"]).to[0].address == rcpt


def test_reconnects_after_the_smtp_server_restarts() -> None:
    first = Sandbox().start()
    smtp_port, api_port = first.smtp_port, first.api_port
    with Provider(first.api_url, first.smtp_host, smtp_port) as provider:
        import httpx

        ann = provider.create_grant(address("ann"))
        http = httpx.Client(base_url=provider.url, headers={"Authorization": f"Bearer {provider.api_key}"})
        assert http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": address()}], "body": "1"}).status_code == 200
        first.close()  # the server goes away with the provider's session open
        second = Sandbox(smtp=("127.0.0.1", smtp_port), listen=("127.0.0.1", api_port)).start()
        try:
            r = http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": address()}], "body": "2"})
            assert r.status_code == 200, r.text
            assert provider.smtp_connections == 2
            with Mailpit(second.api_url) as mp:
                assert mp.messages().total == 1  # the new server got the second message
        finally:
            second.close()
        http.close()


def test_smtp_unreachable_is_a_503_with_retry_after() -> None:
    with Sandbox() as box:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        with Provider(box.api_url, "127.0.0.1", dead_port) as provider:
            import httpx

            ann = provider.create_grant(address("ann"))
            r = httpx.post(f"{provider.url}/v3/grants/{ann.id}/messages/send",
                           headers={"Authorization": f"Bearer {provider.api_key}"},
                           json={"to": [{"email": address()}], "body": "x"})
            assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
            assert error_of(r)["type"] == "provider_unavailable"
            assert provider.store.sent_records() == []


def test_recording_can_be_switched_on_for_a_running_provider() -> None:
    with Sandbox() as box, Provider(box.api_url, box.smtp_host, box.smtp_port) as provider:
        import httpx

        ann = provider.create_grant(address("ann"))
        http = httpx.Client(base_url=provider.url, headers={"Authorization": f"Bearer {provider.api_key}"})
        assert http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": address()}], "body": "1"}).status_code == 200
        assert provider.last_smtp_exchange is None and provider.smtp_connections == 1
        provider.record_smtp = True
        assert http.post(f"/v3/grants/{ann.id}/messages/send", json={"to": [{"email": address()}], "body": "2"}).status_code == 200
        hop = provider.last_smtp_exchange
        assert hop is not None and hop.commands[0].startswith("EHLO")  # a new, recorded session
        assert provider.smtp_connections == 2
        http.close()


def test_a_database_file_keeps_grants_and_the_index_across_restarts(tmp_path) -> None:  # noqa: ANN001
    import httpx

    database = tmp_path / "provider.db"
    with Sandbox() as box:
        with Provider(box.api_url, box.smtp_host, box.smtp_port, database=database) as first:
            ann = first.create_grant(address("ann"))
            r = httpx.post(f"{first.url}/v3/grants/{ann.id}/messages/send",
                           headers={"Authorization": f"Bearer {first.api_key}"},
                           json={"to": [{"email": address()}], "subject": "kept", "body": "x"})
            sent = r.json()["data"]
        with Provider(box.api_url, box.smtp_host, box.smtp_port, database=database) as second:
            assert second.create_grant(ann.email).id == ann.id
            r = httpx.get(f"{second.url}/v3/grants/{ann.id}/messages/{sent['id']}",
                          headers={"Authorization": f"Bearer {second.api_key}"})
            assert r.status_code == 200 and r.json()["data"]["thread_id"] == sent["thread_id"]
