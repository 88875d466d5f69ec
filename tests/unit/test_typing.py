"""The calls notebooks use most have real types: mypy accepts code that uses them right and refuses code that does not.

`Mailpit` and `AsyncMailpit` are one implementation with two thin, typed faces; the signature tests keep the
faces twins, and `Lab.send` / `connect` keep the keywords of what they forward to. The mypy test type-checks
two small files against the installed package (so `emailkit/py.typed` is exercised too): one that must pass
under --strict --disallow-any-expr (so no result it uses unannotated is `Any`), one whose every marked line must
be an error (so no result is `Any` there either: `Any` would be accepted anywhere).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest

from emailkit.lab import Lab, connect
from emailkit.mailboxes import open_mailbox
from emailkit.mailpit import AsyncMailpit, Mailpit
from emailkit.smtp import Connection

ROOT = Path(__file__).resolve().parents[2]

LIFECYCLE = {"close", "aclose"}


def _public_methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)} - LIFECYCLE


def _params(fn: object, drop: set[str]) -> list[tuple[str, object, object, object]]:
    return [(p.name, p.kind, p.default, p.annotation)
            for p in inspect.signature(fn).parameters.values() if p.name not in drop]  # type: ignore[arg-type]


def test_the_async_client_is_the_sync_one_awaited() -> None:
    names = _public_methods(Mailpit)
    assert names == _public_methods(AsyncMailpit)
    assert {"search", "message", "wait_for", "info", "chaos", "send"} <= names
    for name in sorted(names):
        sync, async_ = getattr(Mailpit, name), getattr(AsyncMailpit, name)
        assert not inspect.iscoroutinefunction(sync) and inspect.iscoroutinefunction(async_), name
        assert _params(sync, set()) == _params(async_, set()), name
        returns = inspect.signature(sync).return_annotation
        assert returns == inspect.signature(async_).return_annotation, name
        assert "Any" not in returns, f"Mailpit.{name} returns {returns}"
        assert async_.__doc__ == sync.__doc__ and sync.__doc__, name


def test_lab_send_takes_the_keywords_of_an_smtp_connection() -> None:
    lab_send = _params(Lab.send, {"self", "message"})
    assert lab_send == _params(Connection.__init__, {"self", "host", "port"})
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _, _ in lab_send)


def test_connect_takes_the_keywords_of_open_mailbox() -> None:
    # `xoauth2` is the Stack's own (the provider's token check); everything else is the caller's to choose.
    ours = _params(connect, {"fresh", "backend", "provider_options"})
    assert ours == _params(open_mailbox, {"backend", "xoauth2"})
    assert not any(kind is inspect.Parameter.VAR_KEYWORD for _, kind, _, _ in _params(connect, set()))


GOOD = '''
    from __future__ import annotations

    from email.message import EmailMessage

    from emailkit.lab import Lab, connect
    from emailkit.mailpit import (AppInformation, AsyncMailpit, ChaosTriggers, Mailpit, Message, MessageSummary,
                                  MessagesPage)
    from emailkit.smtp import SendResult


    def sync(url: str) -> None:
        with Mailpit(url, timeout=2.0) as mp:
            page: MessagesPage = mp.search("subject:x", limit=10)
            everything: MessagesPage = mp.messages(limit=0)
            first: MessageSummary = page.messages[0]
            message: Message = mp.message("latest", query="subject:x")
            found: list[MessageSummary] = mp.wait_for("subject:x", 1.0, count=2)
            headers: dict[str, list[str]] = mp.headers(first.id)
            source: bytes = mp.raw(message.id)
            new_id: str = mp.send({"From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com", "Name": "Bob"}],
                                   "Subject": "hi", "Text": "hello", "Tags": ["t"]})
            ids: list[str] = mp.stored_ids("<a@example.com>")
            info: AppInformation = mp.info()
            stored: int = info["Messages"] + info["RuntimeStats"]["SMTPAccepted"]
            version: str = info["Version"]
            chaos: ChaosTriggers = mp.chaos()
            code: int = chaos["Recipient"]["ErrorCode"]
            again: ChaosTriggers = mp.set_chaos(chaos)
            some: ChaosTriggers = mp.set_chaos({"Sender": {"ErrorCode": 451, "Probability": 50}})
            ok: bool = mp.ready()
            mp.set_read([new_id], read=False)
            mp.delete([])
            # Used without an annotation, an `Any` result would be an error here (--disallow-any-expr).
            print(mp.search("x").total, mp.messages().messages[0].sender.address, mp.message().text.upper(),
                  mp.wait_for("x")[0].subject.upper(), mp.headers("id")["To"][0].upper(), mp.raw("id").decode(),
                  mp.send({"From": {"Email": "ann@example.com"}}).upper(), mp.stored_ids("<a@example.com>")[0].upper(),
                  mp.info()["Version"].upper(), mp.chaos()["Sender"]["Probability"] + 1, mp.ready() is True)


    async def asynchronous(url: str) -> None:
        async with AsyncMailpit(url) as mp:
            page: MessagesPage = await mp.search("subject:x", limit=10)
            message: Message = await mp.message()
            found: list[MessageSummary] = await mp.wait_for("subject:x", count=2)
            headers: dict[str, list[str]] = await mp.headers(message.id)
            source: bytes = await mp.raw(message.id)
            new_id: str = await mp.send({"From": {"Email": "ann@example.com"}})
            info: AppInformation = await mp.info()
            chaos: ChaosTriggers = await mp.chaos()
            ok: bool = await mp.ready()
            await mp.delete([new_id])
            print((await mp.search("x")).total, (await mp.message()).text.upper(), (await mp.wait_for("x"))[0].id.upper(),
                  (await mp.info())["Messages"] + 1, (await mp.chaos())["Recipient"]["ErrorCode"] + 1)


    async def lab_send(message: EmailMessage[str, str]) -> None:  # typeshed's EmailMessage is generic
        lab: Lab = connect(backend="sandbox", starttls=True, max_messages=10, max_recipients=5, max_message_size_mb=1)
        result: SendResult = await lab.send(message, username="ann", password="secret", starttls=True, record=True,
                                            rtt=0.04, timeout=5)
        page: MessagesPage = lab.mailpit.search("subject:x")
'''

# Each line marked `# E` must be a mypy error; nothing else may be.
BAD = '''
    from __future__ import annotations

    from email.message import EmailMessage

    from emailkit.lab import Lab, connect
    from emailkit.mailpit import AsyncMailpit, Mailpit, MessagesPage


    def sync(mp: Mailpit) -> None:
        n: int = mp.search("x")  # E
        s: str = mp.info()["Messages"]  # E
        mp.info()["Nope"]  # E
        mp.chaos()["Recipient"]["Code"]  # E
        mp.send({"To": [{"Email": "bob@example.com"}]})  # E
        mp.send({"From": {"Address": "ann@example.com"}})  # E
        mp.wait_for("x", count="2")  # E
        b: bytes = mp.headers("id")  # E


    async def asynchronous(mp: AsyncMailpit) -> None:
        page: MessagesPage = mp.search("x")  # E
        m: MessagesPage = await mp.message()  # E


    async def lab_send(lab: Lab, message: EmailMessage[str, str]) -> None:
        await lab.send(message, pasword="secret")  # E
        await lab.send(message, rtt="40ms")  # E
        connect(max_mesages=10)  # E
        connect(starttls="yes")  # E
'''


@pytest.mark.slow
def test_mypy_pins_the_public_types(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(textwrap.dedent(GOOD))
    bad.write_text(textwrap.dedent(BAD))
    cache = pytestconfig.cache.mkdir("mypy") if pytestconfig.cache else tmp_path / "cache"
    # Run where emailkit is not on the path: it is found installed, as a user's project would find it.
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
         "--strict", "--disallow-any-expr", "--no-error-summary", "--hide-error-context", "good.py", "bad.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    out = run.stdout + run.stderr
    assert "error: Cannot find implementation or library stub" not in out, out
    assert "good.py" not in out, out  # every call above is typed right, and no unannotated result is Any
    errors = {int(m.group(1)) for m in re.finditer(r"^bad\.py:(\d+): error:", out, re.MULTILINE)}
    marked = {i for i, line in enumerate(bad.read_text().splitlines(), 1) if line.endswith("# E")}
    assert errors == marked, out
    assert run.returncode == 1


SWAGGER = ROOT / ".tools" / "mailpit" / "swagger.json"


def _spec() -> dict[str, object]:
    if not SWAGGER.exists():  # the same rule as tests/contract: `make mailpit` writes it, CI must have it
        if os.environ.get("CI"):
            pytest.fail(f"Mailpit spec not found at {SWAGGER}: 'make mailpit' writes it")
        pytest.skip(f"Mailpit spec not found at {SWAGGER}: run 'make mailpit'")
    return json.loads(SWAGGER.read_text())  # type: ignore[no-any-return]


def _matches(hint: object, schema: dict[str, Any]) -> bool:
    """Whether a TypedDict field's type is what the spec's JSON schema says (integer, string, array, object)."""
    origin = typing.get_origin(hint) or hint
    kind = schema.get("type", "object")
    if kind == "integer":
        return hint is int
    if kind == "string":
        return hint is str
    if kind == "array":
        return origin is list and _matches(typing.get_args(hint)[0], schema["items"])
    if typing.is_typeddict(hint):
        return _keys_match(hint, schema)
    value = schema.get("additionalProperties")
    return origin is dict and value is not None and _matches(typing.get_args(hint)[1], value)


def _keys_match(typed: Any, schema: dict[str, Any]) -> bool:
    hints = typing.get_type_hints(typed)
    properties = schema["properties"]
    return set(hints) == set(properties) and all(_matches(hints[k], properties[k]) for k in hints) and \
        set(schema.get("required", [])) <= typed.__required_keys__


def test_the_json_types_are_mailpits_own() -> None:
    """`AppInformation`, `ChaosTriggers` and `SendRequest` have exactly the fields, types and required keys of the
    pinned Mailpit's OpenAPI spec (`info`, `chaos` answers; `send`'s body)."""
    from emailkit.mailpit import AppInformation, ChaosTriggers, SendAddress, SendAttachment, SendRequest

    spec: Any = _spec()

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(spec["definitions"][node["$ref"].split("/")[-1]])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    send_body = next(p for p in spec["paths"]["/api/v1/send"]["post"]["parameters"] if p["in"] == "body")["schema"]
    for typed, schema in ((AppInformation, spec["definitions"]["AppInformation"]),
                          (ChaosTriggers, spec["definitions"]["ChaosTriggers"]), (SendRequest, send_body)):
        assert _keys_match(typed, resolve(schema)), typed.__name__
    # What a caller must give is what Mailpit requires, no more (at run time too, not only for mypy).
    assert SendRequest.__required_keys__ == {"From"}
    assert SendAddress.__required_keys__ == {"Email"}
    assert SendAttachment.__required_keys__ == {"Content", "Filename"}
