"""Bad input to the provider: a 4xx in its own envelope naming the field, nothing sent, the connection kept.

Each class here once got an HTTP 500 (and a traceback in the log). The OAuth endpoints answer in
RFC 6749's shape (``{"error", "error_description"}``), every other route in the provider's
``{request_id, error: {type, message, field}}``. Every test checks that the next request on the
same `httpx.Client` travels on the same TCP connection and is answered.

Also here: files that hold secrets are created 0600, and one API key file is shared, never
overwritten.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from tests.support.provider import Lab, address, error_of

from emailkit.limits import (
    BODY_MAX_BYTES,
    HEADER_MAX_FIELDS,
    INT_MAX,
    JSON_MAX_DEPTH,
    QUERY_MAX_LENGTH,
    SEARCH_MAX_TERMS,
)
from emailkit.provider import Provider
from emailkit.provider.cli import announce_api_key, api_key_from_file


def port_of(response: httpx.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def still_serving(lab: Lab, refused: httpx.Response) -> None:
    after = lab.http.get("/v3/grants")
    assert after.status_code == 200, after.text
    assert port_of(after) == port_of(refused), "the server dropped the keep-alive connection"


def refused(response: httpx.Response, field: str, *words: str) -> dict:
    assert response.status_code == 400, (response.status_code, response.text[:400])
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["field"] == field, error
    for word in words:
        assert word in error["message"], error
    return error


def post_json(lab: Lab, path: str, body: bytes) -> httpx.Response:
    return lab.http.post(path, content=body, headers={"Content-Type": "application/json"})


# --------------------------------------------------------------------------- sends


@pytest.mark.parametrize(("body", "field"), [
    (b'{"to": [{"email": "bob@example.com"}], "subject": "hi \\ud800", "body": "x"}', "subject"),
    (b'{"to": [{"email": "bob@example.com"}], "subject": "hi", "body": "\\udfff"}', "body"),
    (b'{"to": [{"email": "bob@example.com", "name": "B\\ud83d"}], "body": "x"}', "to[0].name"),
    (b'{"to": [{"email": "bob@example.com"}], "body": "x", "custom_headers": [{"name": "X-A", "value": "\\udc00"}]}',
     "custom_headers[0].value"),
])
def test_a_lone_surrogate_in_a_send_is_a_400_naming_the_field(lab: Lab, body: bytes, field: str) -> None:
    grant = lab.grant()
    response = post_json(lab, f"/v3/grants/{grant.id}/messages/send", body)
    refused(response, field, "surrogate", "UTF-8")
    assert lab.provider.store.sent_records(grant.id) == []
    still_serving(lab, response)


@pytest.mark.parametrize("path", ["/messages/send", "/messages/send-batch", "/templates"])
@pytest.mark.parametrize("levels", [JSON_MAX_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_a_400(lab: Lab, path: str, levels: int) -> None:
    grant = lab.grant()
    body = b'{"to": ' + b"[" * levels + b"]" * levels + b"}"
    response = post_json(lab, f"/v3/grants/{grant.id}{path}", body)
    error = refused(response, "body" if levels > 1_000 else "to" + "[0]" * (JSON_MAX_DEPTH - 1),
                    f"nested deeper than {JSON_MAX_DEPTH} levels", "flatten")
    assert error["message"].startswith(error["field"] + ": ")
    assert lab.provider.store.sent_records(grant.id) == []
    still_serving(lab, response)


@pytest.mark.parametrize("number", [str(INT_MAX + 1), "9" * 5_000, "1e999"])
def test_out_of_range_numbers_are_a_400_naming_the_field(lab: Lab, number: str) -> None:
    grant = lab.grant()
    body = b'{"to": [{"email": "bob@example.com"}], "body": "x", "template": {"id": "t", "variables": {"n": ' + \
        number.encode() + b"}}}"
    response = post_json(lab, f"/v3/grants/{grant.id}/messages/send", body)
    refused(response, "template.variables.n", "out of range", str(INT_MAX))
    assert lab.provider.store.sent_records(grant.id) == []
    still_serving(lab, response)


def test_more_custom_headers_than_a_message_holds_is_a_400(lab: Lab) -> None:
    grant = lab.grant()
    headers = [{"name": f"X-H{i}", "value": "v"} for i in range(HEADER_MAX_FIELDS + 1)]
    one = {"to": [{"email": address()}], "body": "x", "custom_headers": headers}
    response = lab.send(grant, one)
    refused(response, "custom_headers", f"at most {HEADER_MAX_FIELDS} header fields")
    batch = lab.http.post(f"/v3/grants/{grant.id}/messages/send-batch",
                          json={"messages": [{"to": [{"email": address()}], "body": "ok"}, one]})
    refused(batch, "messages[1].custom_headers", f"at most {HEADER_MAX_FIELDS}")
    assert lab.provider.store.sent_records(grant.id) == []  # the good first item was not sent either
    still_serving(lab, batch)


def test_a_body_over_the_limit_is_a_413_in_the_envelope(lab: Lab) -> None:
    grant = lab.grant()
    response = post_json(lab, f"/v3/grants/{grant.id}/templates", b'{"name": "' + b"x" * BODY_MAX_BYTES + b'"}')
    assert response.status_code == 413, response.text[:300]
    error = error_of(response)
    assert error["field"] == "body" and f"at most {BODY_MAX_BYTES} bytes" in error["message"]
    assert lab.http.get("/v3/grants").status_code == 200


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize("field", ["to", "from"])
@pytest.mark.parametrize("route", ["messages", "threads"])
def test_a_thousand_addresses_in_a_filter_is_a_400(lab: Lab, field: str, route: str) -> None:
    grant = lab.grant()
    many = ",".join(f"a{i}@example.com" for i in range(1_000))
    response = lab.http.get(f"/v3/grants/{grant.id}/{route}", params={field: many})
    refused(response, field, f"at most {QUERY_MAX_LENGTH}")
    still_serving(lab, response)


@pytest.mark.parametrize("route", ["messages", "threads"])
def test_more_addresses_than_search_terms_is_a_400(lab: Lab, route: str) -> None:
    grant = lab.grant()
    many = ",".join(f"a{i}@x.io" for i in range(SEARCH_MAX_TERMS + 1))
    assert len(many) < QUERY_MAX_LENGTH
    response = lab.http.get(f"/v3/grants/{grant.id}/{route}", params={"to": many})
    refused(response, "to", f"{SEARCH_MAX_TERMS + 1} addresses", f"at most {SEARCH_MAX_TERMS}")
    still_serving(lab, response)
    exactly = lab.http.get(f"/v3/grants/{grant.id}/{route}",
                           params={"to": ",".join(f"a{i}@x.io" for i in range(SEARCH_MAX_TERMS))})
    assert exactly.status_code == 200, exactly.text


# --------------------------------------------------------------------------- OAuth


@pytest.mark.parametrize("endpoint", ["/v3/connect/token", "/v3/connect/revoke"])
@pytest.mark.parametrize("body", [b'{"grant_type": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                  b'{"token": "x", "n": ' + b"9" * 5_000 + b"}",
                                  b'{"grant_type": "refresh_token", "refresh_token": "\\ud800"}'],
                         ids=["deep", "huge-number", "surrogate"])
def test_bad_json_to_the_oauth_endpoints_is_a_400_in_oauth_shape(lab: Lab, endpoint: str, body: bytes) -> None:
    response = post_json(lab, endpoint, body)
    assert response.status_code == 400, response.text[:300]
    answer = response.json()
    assert answer["error"] == "invalid_request", answer
    assert answer["error_description"]
    still_serving(lab, response)


# --------------------------------------------------------------------------- files holding secrets


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_provider_database_is_created_private(lab: Lab, tmp_path: Path) -> None:
    database = tmp_path / "state" / "provider.db"
    old = os.umask(0o022)  # a usual umask: files would be 0644
    try:
        with Provider(lab.sandbox.api_url, lab.sandbox.smtp_host, lab.sandbox.smtp_port, database=database) as p:
            p.create_grant(address())
            p.oauth.register_client(redirect_uris=["http://127.0.0.1:8765/callback"], name="secret holder")
            files = [f for f in tmp_path.joinpath("state").iterdir()]
            assert database in files
            for path in files:  # provider.db and its -wal/-shm
                assert mode(path) == 0o600, (path.name, oct(mode(path)))
    finally:
        os.umask(old)


def test_one_api_key_file_is_shared_and_never_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / ".emailkit" / "provider-api-key"
    old = os.umask(0o022)
    try:
        first = api_key_from_file(key_file)  # `emailkit up` ...
        second = api_key_from_file(key_file)  # ... then `emailkit provider`, in the same folder
    finally:
        os.umask(old)
    assert first == second and len(first) >= 32
    assert key_file.read_text().strip() == first
    assert mode(key_file) == 0o600


def test_announcing_another_key_leaves_the_file_alone(lab: Lab, tmp_path: Path) -> None:
    key_file = tmp_path / "provider-api-key"
    kept = api_key_from_file(key_file)
    with Provider(lab.sandbox.api_url, lab.sandbox.smtp_host, lab.sandbox.smtp_port) as other:
        line = announce_api_key(other, given=False, key_file=str(key_file))
    assert "not written" in line and other.api_key not in line and kept not in line
    assert key_file.read_text().strip() == kept


def test_an_empty_key_file_is_an_error_naming_it(tmp_path: Path) -> None:
    from emailkit.errors import InvalidInput

    key_file = tmp_path / "k"
    key_file.write_text("")
    with pytest.raises(InvalidInput, match="is empty"):
        api_key_from_file(key_file)
