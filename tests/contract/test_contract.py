"""Contract: the sandbox's JSON matches the pinned Mailpit — our schema (key order too) and Mailpit's own spec.

`mailpit_schema.json` (beside this file) is written from Mailpit's Go structs. The upstream
Swagger 2.0 spec of the pinned version (`emailkit.mailboxes.MAILPIT_VERSION`) is in Mailpit's module
sources; ``make mailpit`` copies it to ``.tools/mailpit/swagger.json`` (git-ignored), and the same
responses are checked against its ``definitions``/``responses``. Without it (no Go here) only those
checks are skipped; under CI, where ``make test`` builds Mailpit first, its absence is a failure.

Tolerated spec deviation: the spec types To/Cc/Bcc/ReplyTo as arrays without saying whether
null is allowed; real Mailpit emits null for empty lists in list/search results, the sandbox
(as a stand-in should) always emits ``[]``, which the spec accepts. Nothing else needed
tolerating: the spec marks no field required and allows extra keys (e.g. the legacy ``count``).
"""

from __future__ import annotations

import os

import base64
import copy
import json
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from emailkit.mailboxes import open_mailbox
from tests.support import BACKENDS, need_mailpit

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SCHEMA = json.loads((HERE / "mailpit_schema.json").read_text())
SWAGGER_PATH = REPO_ROOT / ".tools" / "mailpit" / "swagger.json"
SWAGGER_URI = "urn:mailpit-swagger"


def ours(name: str, value: Any) -> None:
    """Validate against our schema's `$defs/name`, then check key order where it matters."""
    validator = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    check_order(SCHEMA["$defs"][name], value)


def check_order(schema: dict, value: Any) -> None:
    """Mailpit writes keys in Go struct order; the schema's `required` lists them in that order."""
    if "$ref" in schema and schema["$ref"].startswith("#/$defs/"):
        schema = SCHEMA["$defs"][schema["$ref"].split("/")[-1]]
    if isinstance(value, dict) and "required" in schema and schema.get("additionalProperties") is False:
        assert list(value) == schema["required"], f"key order {list(value)} != {schema['required']}"
        for key, sub in schema.get("properties", {}).items():
            check_order(sub, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            check_order(schema["items"], item)


# --------------------------------------------------------------------------- the upstream spec


def _absolute(node: Any) -> Any:
    """Rewrite the spec's local ``#/...`` refs to point into the registered spec document."""
    if isinstance(node, dict):
        return {
            k: (SWAGGER_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _absolute(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute(v) for v in node]
    return node


@pytest.fixture(scope="module")
def swagger() -> dict:
    if not SWAGGER_PATH.exists():
        if os.environ.get("CI"):  # make test builds Mailpit (and so copies its spec) before the tests
            pytest.fail(f"Mailpit spec not found at {SWAGGER_PATH}: 'make mailpit' writes it")
        pytest.skip(f"Mailpit spec not found at {SWAGGER_PATH}: run 'make mailpit'")
    return json.loads(SWAGGER_PATH.read_text())


def spec_validate(spec: dict, path: str, method: str, value: Any) -> None:
    """Validate `value` against the 200 response schema the spec gives for `method path`."""
    response = spec["paths"][path][method]["responses"]["200"]
    if "$ref" in response:  # "#/responses/Name" → that response's schema
        response = spec["responses"][response["$ref"].split("/")[-1]]
    schema = _absolute(copy.deepcopy(response["schema"]))
    registry = Registry().with_resource(SWAGGER_URI, Resource.from_contents(spec, default_specification=DRAFT4))
    errors = list(Draft4Validator(schema, registry=registry).iter_errors(value))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


# --------------------------------------------------------------------------- a mailbox with variety


def _as_arrays(page: dict[str, Any]) -> dict[str, Any]:
    """Real Mailpit writes an empty To/Cc/Bcc/ReplyTo in list/search results as null; the sandbox
    writes [] (both mean "none", and the spec allows either). Our schema says [], so a real
    Mailpit's page is read with null as []."""
    page = copy.deepcopy(page)
    for summary in page.get("messages") or []:
        for key in ("To", "Cc", "Bcc", "ReplyTo"):
            if summary.get(key) is None:
                summary[key] = []
    return page


@pytest.fixture(scope="module", params=BACKENDS)
def populated(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """One mailbox (sandbox, then real Mailpit) with mail from both doors, and every response the contract covers."""
    if request.param == "mailpit":
        need_mailpit()
    box, _ = open_mailbox(request.param, chaos=False, pop3=False)
    with box, httpx.Client(base_url=box.api_url) as api:
        sent = api.post(
            "/api/v1/send",
            json={
                "From": {"Email": "ann@example.com", "Name": "Ann"},
                "To": [{"Email": "bob+team@example.com", "Name": "Bob"}],
                "Cc": [{"Email": "cat@example.com"}],
                "Bcc": ["dan@example.com"],
                "ReplyTo": [{"Email": "desk@example.com", "Name": "Desk"}],
                "Subject": "Contract <check> & more",
                "Text": "plain",
                "HTML": '<p>html <img src="cid:logo"></p>',
                "Tags": ["contract"],
                "Headers": {
                    "Message-ID": "<contract-1@example.com>",
                    "In-Reply-To": "<root@example.com>",
                    "List-Unsubscribe": "<mailto:unsub@example.com>, <https://example.com/u>",
                },
                "Attachments": [
                    {"Filename": "a.txt", "Content": base64.b64encode(b"hello").decode(), "ContentType": "text/plain"},
                    {"Filename": "logo.png", "ContentID": "logo", "Content": base64.b64encode(b"\x89PNG").decode()},
                ],
            },
        )
        with smtplib.SMTP(box.smtp_host, box.smtp_port) as smtp:
            smtp.login("smtp-user", "pw")
            smtp.sendmail(
                "eve@example.com",
                ["frank@example.com", "hidden@example.com"],
                b"From: eve@example.com\r\nTo: frank@example.com\r\nSubject: via smtp\r\n"
                b"Date: Mon, 20 Jul 2026 16:16:47 +1200\r\n\r\nbody\r\n",
            )
        send_id = sent.json()["ID"]
        yield {
            "send": sent.json(),
            "list": _as_arrays(api.get("/api/v1/messages").json()),
            "search": _as_arrays(api.get("/api/v1/search", params={"query": "tag:contract"}).json()),
            "message": api.get(f"/api/v1/message/{send_id}").json(),
            "smtp_message": api.get("/api/v1/message/latest").json(),
            "headers": api.get(f"/api/v1/message/{send_id}/headers").json(),
            "info": api.get("/api/v1/info").json(),
            "tags": api.get("/api/v1/tags").json(),
            "send_error": api.post("/api/v1/send", json={"From": {"Email": "x"}}).json(),
        }


def test_the_mailbox_has_what_the_contract_needs(populated: dict[str, Any]) -> None:
    assert populated["list"]["total"] == 2
    assert populated["message"]["Attachments"] and populated["message"]["Inline"]
    assert populated["message"]["ListUnsubscribe"]["Links"] == ["mailto:unsub@example.com", "https://example.com/u"]
    assert populated["smtp_message"]["Username"] == "smtp-user"


@pytest.mark.parametrize(
    ("key", "definition"),
    [
        ("list", "MessagesSummary"),
        ("search", "MessagesSummary"),
        ("message", "Message"),
        ("smtp_message", "Message"),
        ("headers", "Headers"),
        ("info", "AppInformation"),
        ("send", "SendResponse"),
        ("send_error", "JSONError"),
        ("tags", "TagList"),
    ],
)
def test_responses_match_our_schema_and_key_order(populated: dict[str, Any], key: str, definition: str) -> None:
    ours(definition, populated[key])


def test_our_schema_rejects_what_mailpit_would_not_send(populated: dict[str, Any]) -> None:
    """The schema has teeth: wrong case, bracketed Message-IDs and wrong key order all fail."""
    bad = copy.deepcopy(populated["list"])
    bad["messages"][0]["MessageID"] = "<x@y>"
    with pytest.raises(AssertionError):
        ours("MessagesSummary", bad)
    reordered = dict(reversed(list(populated["message"].items())))
    with pytest.raises(AssertionError, match="key order"):
        ours("Message", reordered)
    with pytest.raises(AssertionError):
        ours("Headers", {"Message-ID": ["<x@y>"]})


@pytest.mark.parametrize(
    ("key", "path", "method"),
    [
        ("list", "/api/v1/messages", "get"),
        ("search", "/api/v1/search", "get"),
        ("message", "/api/v1/message/{ID}", "get"),
        ("smtp_message", "/api/v1/message/{ID}", "get"),
        ("headers", "/api/v1/message/{ID}/headers", "get"),
        ("info", "/api/v1/info", "get"),
        ("send", "/api/v1/send", "post"),
        ("tags", "/api/v1/tags", "get"),
    ],
)
def test_responses_match_mailpits_own_spec(
    swagger: dict, populated: dict[str, Any], key: str, path: str, method: str
) -> None:
    spec_validate(swagger, path, method, populated[key])


def test_spec_check_has_teeth(swagger: dict, populated: dict[str, Any]) -> None:
    bad = copy.deepcopy(populated["list"])
    bad["messages"][0]["Size"] = "big"
    with pytest.raises(AssertionError):
        spec_validate(swagger, "/api/v1/messages", "get", bad)


# --------------------------------------------------------------------------- chaos


@pytest.fixture(scope="module", params=BACKENDS)
def chaos_responses(request: pytest.FixtureRequest) -> dict[str, Any]:
    """GET and PUT /api/v1/chaos from a mailbox (sandbox, then real Mailpit) started with chaos on."""
    if request.param == "mailpit":
        need_mailpit()
    box, _ = open_mailbox(request.param, chaos=True, pop3=False)
    with box, httpx.Client(base_url=box.api_url) as api:
        return {
            "get": api.get("/api/v1/chaos").json(),
            "put": api.put(
                "/api/v1/chaos",
                json={"Recipient": {"ErrorCode": 550, "Probability": 30}, "Authentication": {"Probability": 5}},
            ).json(),
            "reset": api.put("/api/v1/chaos", json={}).json(),
        }


@pytest.mark.parametrize("key", ["get", "put", "reset"])
def test_chaos_matches_our_schema_and_key_order(chaos_responses: dict[str, Any], key: str) -> None:
    ours("ChaosTriggers", chaos_responses[key])


@pytest.mark.parametrize(("key", "method"), [("get", "get"), ("put", "put"), ("reset", "put")])
def test_chaos_matches_mailpits_own_spec(swagger: dict, chaos_responses: dict[str, Any], key: str, method: str) -> None:
    spec_validate(swagger, "/api/v1/chaos", method, chaos_responses[key])


def test_chaos_checks_have_teeth(swagger: dict, chaos_responses: dict[str, Any]) -> None:
    reordered = dict(reversed(list(chaos_responses["put"].items())))
    with pytest.raises(AssertionError, match="key order"):
        ours("ChaosTriggers", reordered)
    bad = copy.deepcopy(chaos_responses["put"])
    bad["Recipient"]["ErrorCode"] = "550"
    with pytest.raises(AssertionError):
        spec_validate(swagger, "/api/v1/chaos", "get", bad)
    with pytest.raises(AssertionError):
        ours("ChaosTriggers", {**chaos_responses["get"], "Sender": {"ErrorCode": 250, "Probability": 0}})
