"""Injected faults (PUT /v3/admin/faults) on a real provider relaying to a real sandbox.

A faulted send is answered 429/503 with Retry-After before anything is sent or stored,
so a retry with the same Idempotency-Key delivers exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from tests.support.provider import Lab, address, error_of

from emailkit.errors import InvalidInput
from emailkit.faults import set_provider_faults
from emailkit.provider import Faults



@pytest.fixture(autouse=True)
def faults_off(lab: Lab) -> Iterator[None]:
    lab.provider.faults = None
    yield
    lab.provider.faults = None


def put_faults(lab: Lab, body: dict, **kwargs) -> httpx.Response:  # noqa: ANN003
    return lab.http.put("/v3/admin/faults", json=body, **kwargs)


def stored(lab: Lab) -> int:
    """Messages in the sandbox, counted through its Mailpit API."""
    return int(lab.mailpit.info()["Messages"])


def one(rcpt: str) -> dict:
    return {"to": [{"email": rcpt}], "subject": "fault test", "body": "x"}


@pytest.mark.parametrize(("status", "type_", "retry_after", "header"), [
    (429, "rate_limit_error", 1.5, "2"),  # whole seconds, rounded up
    (503, "service_unavailable", 3, "3"),
])
def test_at_100_percent_every_send_fails_before_smtp(lab: Lab, status: int, type_: str, retry_after: float,
                                                      header: str) -> None:
    ann = lab.grant("ann")
    r = put_faults(lab, {"status": status, "probability": 100, "retry_after": retry_after})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"request_id", "data"} and body["request_id"] == r.headers["request-id"]
    assert body["data"] == {"status": status, "probability": 100, "retry_after": retry_after}
    assert lab.http.get("/v3/admin/faults").json()["data"] == body["data"]
    before, connections, injected = stored(lab), lab.provider.smtp_connections, lab.provider.faults_injected

    single = lab.send(ann, one(address()), headers={"Idempotency-Key": str(uuid.uuid4())})
    batch = lab.http.post(f"/v3/grants/{ann.id}/messages/send-batch", json={"messages": [one(address())] * 3})
    for r in (single, batch):
        assert r.status_code == status, r.text
        assert r.headers["Retry-After"] == header
        error = error_of(r)
        assert set(error) == {"type", "message"} and error["type"] == type_
        assert "retry after" in error["message"] and "nothing was sent" in error["message"]
    assert stored(lab) == before  # nothing reached SMTP
    assert lab.provider.smtp_connections == connections
    assert lab.provider.store.sent_records(ann.id) == []  # nothing stored
    assert lab.provider.faults_injected == injected + 2


def test_faults_hit_sends_only_and_only_after_authentication(lab: Lab) -> None:
    ann = lab.grant("ann")
    lab.provider.faults = Faults(status=429, probability=100, retry_after=1)
    r = httpx.post(f"{lab.provider.url}/v3/grants/{ann.id}/messages/send", json=one(address()))
    assert r.status_code == 401  # who is asking comes first
    assert lab.messages(ann).status_code == 200  # reads are not faulted
    assert lab.http.get(f"/v3/grants/{ann.id}/templates").status_code == 200
    assert lab.send(ann, one(address())).status_code == 429


def test_a_retry_with_the_same_key_after_a_fault_delivers_exactly_once(lab: Lab) -> None:
    ann, rcpt = lab.grant("ann"), address()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    lab.provider.set_faults(status=503, probability=100, retry_after=0)
    first = lab.send(ann, one(rcpt), headers=key)
    assert first.status_code == 503 and first.headers["Retry-After"] == "0"
    lab.provider.faults = None
    second = lab.send(ann, one(rcpt), headers=key)  # the fault was not cached under the key
    assert second.status_code == 200, second.text
    assert "Idempotent-Response" not in second.headers
    # The success is cached: a retry (even one that meets a fault first) replays it.
    lab.provider.set_faults(status=429, probability=100, retry_after=1)
    assert lab.send(ann, one(rcpt), headers=key).status_code == 429
    lab.provider.faults = None
    third = lab.send(ann, one(rcpt), headers=key)
    assert third.status_code == 200 and third.headers["Idempotent-Response"] == "true"
    assert third.json() == second.json()
    assert lab.mailpit.search(f"to:{rcpt}").messages_count == 1
    assert len(lab.provider.store.sent_records(ann.id)) == 1


def test_zero_percent_changes_nothing(lab: Lab) -> None:
    ann, rcpt = lab.grant("ann"), address()
    r = put_faults(lab, {"status": 429, "probability": 0, "retry_after": 5})
    assert r.status_code == 200 and r.json()["data"]["probability"] == 0
    injected = lab.provider.faults_injected
    codes = [lab.send(ann, one(rcpt)).status_code for _ in range(20)]
    assert codes == [200] * 20
    assert lab.provider.faults_injected == injected
    assert lab.mailpit.search(f"to:{rcpt}").messages_count == 20


def test_thirty_percent_fails_about_thirty_of_a_hundred(lab: Lab) -> None:
    ann, rcpt = lab.grant("ann"), address()
    assert put_faults(lab, {"status": 429, "probability": 30, "retry_after": 1}).status_code == 200
    codes = [lab.send(ann, one(rcpt)).status_code for _ in range(100)]
    assert set(codes) <= {200, 429}
    failed = codes.count(429)
    # Binomial(100, 0.3): mean 30, sd 4.6; 10..55 is more than 4 sd either side.
    assert 10 <= failed <= 55, failed
    assert lab.mailpit.search(f"to:{rcpt}").messages_count == codes.count(200)  # every success delivered once
    print(f"30 % faults: {failed} of 100 sends answered 429")


@pytest.mark.parametrize(("body", "field"), [
    ({"status": 500, "probability": 50}, "status"),
    ({"status": 200, "probability": 50}, "status"),
    ({"status": "429", "probability": 50}, "status"),
    ({"probability": 50}, "status"),
    ({"status": 429, "probability": 101}, "probability"),
    ({"status": 429, "probability": -1}, "probability"),
    ({"status": 429}, "probability"),
    ({"status": 503, "probability": 10, "retry_after": -1}, "retry_after"),
    ({"status": 503, "probability": 10, "retry_after": 1e9}, "retry_after"),
    ({"status": 503, "probability": 10, "delay": 1}, "delay"),
])
def test_bad_settings_are_400_naming_the_field_and_change_nothing(lab: Lab, body: dict, field: str) -> None:
    lab.provider.set_faults(status=429, probability=5, retry_after=2)
    r = put_faults(lab, body)
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["type"] == "invalid_request_error" and error["field"] == field
    assert field in error["message"]
    assert lab.provider.faults == Faults(status=429, probability=5, retry_after=2)


def test_the_python_setter_checks_its_values(lab: Lab) -> None:
    with pytest.raises(InvalidInput) as caught:
        Faults(status=500, probability=10)
    assert caught.value.field == "status"
    with pytest.raises(InvalidInput) as caught:
        lab.provider.set_faults(status=429, probability=150)
    assert caught.value.field == "probability"
    with pytest.raises(InvalidInput):
        lab.provider.faults = {"status": 429}  # type: ignore[assignment]
    assert lab.provider.set_faults(status=503, probability=12.5, retry_after=0.5) == Faults(503, 12.5, 0.5)
    assert lab.http.get("/v3/admin/faults").json()["data"] == {"status": 503, "probability": 12.5, "retry_after": 0.5}


def test_the_retry_helpers_call_works(lab: Lab) -> None:
    answer = set_provider_faults(lab.provider.url, lab.provider.api_key, status=429, probability=100, retry_after=2)
    assert answer["data"] == {"status": 429, "probability": 100, "retry_after": 2}
    assert lab.send(lab.grant(), one(address())).status_code == 429
    set_provider_faults(lab.provider.url, lab.provider.api_key, status=None)
    assert lab.provider.faults.active is False
    assert lab.send(lab.grant(), one(address())).status_code == 200


# --------------------------------------------------------------------------- who may set faults


def test_only_the_api_key_may_read_or_set_faults(lab: Lab) -> None:
    ann = lab.grant("ann")
    token = lab.token(ann.email, "email.send email.read")["access_token"]
    on = {"status": 503, "probability": 100, "retry_after": 1}
    url = f"{lab.provider.url}/v3/admin/faults"
    for method in ("GET", "PUT"):
        r = httpx.request(method, url, json=on)
        assert r.status_code == 401 and error_of(r)["type"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = httpx.request(method, url, json=on, headers={"Authorization": "Bearer not-the-key"})
        assert r.status_code == 401 and error_of(r)["type"] == "unauthorized"
        r = httpx.request(method, url, json=on, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403 and error_of(r)["type"] == "forbidden"
    assert lab.provider.faults.active is False
    # The token still sends (faults are off); and it is faulted like the API key once they are on.
    send = {"Authorization": f"Bearer {token}"}
    me = f"{lab.provider.url}/v3/grants/me/messages/send"
    assert httpx.post(me, json=one(address()), headers=send).status_code == 200
    assert put_faults(lab, on).status_code == 200
    assert httpx.post(me, json=one(address()), headers=send).status_code == 503


def test_the_admin_route_stays_out_of_openapi(lab: Lab) -> None:
    paths = lab.http.get("/openapi.json").json()["paths"]
    assert "/v3/admin/faults" not in paths  # a schema fuzzer would switch faults on (see app.py)
    assert "/v3/grants/{grant_id}/messages/send-batch" in paths
