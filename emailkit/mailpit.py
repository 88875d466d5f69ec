"""The one Mailpit REST client, for a real Mailpit and the embedded sandbox alike.

`Mailpit` (sync) and `AsyncMailpit` share one implementation: every operation is written
once as a small generator (in `_Operations`) that yields HTTP requests and parses the responses;
each class drives it with its own httpx client through a one-line, fully typed public method
(`Mailpit.search(...) -> MessagesPage`, `await AsyncMailpit.search(...) -> MessagesPage`). The
twins' signatures are pinned equal by tests/unit/test_typing.py, and mypy checks each one-liner
against the generator it drives. Results are typed: `MessagesPage`, `MessageSummary`, `Message`
keep the JSON they came from in `.raw`; the answers that stay JSON objects are TypedDicts with
Mailpit's own field names (`AppInformation`, `ChaosTriggers`), as is the body of `send`
(`SendRequest`).

    mp = Mailpit("http://127.0.0.1:8025")
    mp.wait_for('subject:"Welcome"')[0].id
    msg = mp.message("latest")          # marks it read, as Mailpit does
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import httpx

from .errors import InvalidInput, MailpitError, MailpitNotFound, MailpitTimeout, MailpitUnreachable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAILPIT_VERSION", "Address", "AppInformation", "AsyncMailpit", "ChaosTrigger", "ChaosTriggers", "ChaosUpdate",
           "Mailpit", "Message", "MessageSummary", "MessagesPage", "RuntimeStats", "SendAddress", "SendAttachment",
           "SendRequest", "shown_url"]

#: The Mailpit release the workbook is built and tested against: `make mailpit` builds it,
#: docker-compose.yml runs it, the sandbox imitates it and the contract tests read its spec.
MAILPIT_VERSION = "v1.33.1"

T = TypeVar("T")


@dataclass(frozen=True)
class Address:
    name: str
    address: str

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Address:
        data = data or {}
        return cls(data.get("Name", ""), data.get("Address", ""))

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


def _addresses(items: list[dict[str, Any]] | None) -> list[Address]:
    return [Address.from_json(i) for i in items or []]  # Mailpit sends null or [] alike


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class MessageSummary:
    """One row of a list or search result."""

    id: str
    message_id: str
    read: bool
    sender: Address
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]
    subject: str
    created: datetime | None
    size: int
    attachments: int
    snippet: str
    tags: list[str]
    username: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MessageSummary:
        return cls(
            id=d["ID"], message_id=d.get("MessageID", ""), read=bool(d.get("Read")),
            sender=Address.from_json(d.get("From")), to=_addresses(d.get("To")), cc=_addresses(d.get("Cc")),
            bcc=_addresses(d.get("Bcc")), reply_to=_addresses(d.get("ReplyTo")), subject=d.get("Subject", ""),
            created=_when(d.get("Created")), size=int(d.get("Size", 0)), attachments=int(d.get("Attachments", 0)),
            snippet=d.get("Snippet", ""), tags=list(d.get("Tags") or []), username=d.get("Username", ""), raw=d,
        )


@dataclass(frozen=True)
class MessagesPage:
    """A page of messages: `messages_count` matches in all, `messages` on this page."""

    total: int
    unread: int
    messages_count: int
    start: int
    tags: list[str]
    messages: list[MessageSummary]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MessagesPage:
        return cls(
            total=d.get("total", 0), unread=d.get("unread", 0), messages_count=d.get("messages_count", 0),
            start=d.get("start", 0), tags=list(d.get("tags") or []),
            messages=[MessageSummary.from_json(m) for m in d.get("messages") or []], raw=d,
        )

    def __len__(self) -> int:
        return len(self.messages)

    def to_dataframe(self) -> pd.DataFrame:
        """The page as a pandas DataFrame, one row per message."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"id": m.id, "created": m.created, "from": str(m.sender), "to": ", ".join(map(str, m.to)),
                 "subject": m.subject, "read": m.read, "size": m.size, "message_id": m.message_id}
                for m in self.messages
            ],
            columns=["id", "created", "from", "to", "subject", "read", "size", "message_id"],
        )


@dataclass(frozen=True)
class Message:
    """A full message as `GET /api/v1/message/{ID}` returns it."""

    id: str
    message_id: str
    sender: Address
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]
    return_path: str
    subject: str
    date: datetime | None
    tags: list[str]
    username: str
    text: str
    html: str
    size: int
    attachments: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        return cls(
            id=d["ID"], message_id=d.get("MessageID", ""), sender=Address.from_json(d.get("From")),
            to=_addresses(d.get("To")), cc=_addresses(d.get("Cc")), bcc=_addresses(d.get("Bcc")),
            reply_to=_addresses(d.get("ReplyTo")), return_path=d.get("ReturnPath", ""), subject=d.get("Subject", ""),
            date=_when(d.get("Date")), tags=list(d.get("Tags") or []), username=d.get("Username", ""),
            text=d.get("Text", ""), html=d.get("HTML", ""), size=int(d.get("Size", 0)),
            attachments=list(d.get("Attachments") or []), raw=d,
        )


# -- the JSON objects that stay dicts: names and fields as in Mailpit's OpenAPI spec ------------


class RuntimeStats(TypedDict):
    """`AppInformation["RuntimeStats"]`: counters since the server started."""

    Memory: int  # bytes in use
    MessagesDeleted: int
    SMTPAccepted: int
    SMTPAcceptedSize: int  # bytes
    SMTPIgnored: int  # duplicates dropped (--ignore-duplicate-ids)
    SMTPRejected: int
    Uptime: int  # seconds


class AppInformation(TypedDict):
    """The answer of `GET /api/v1/info` (`Mailpit.info()`)."""

    Version: str
    LatestVersion: str
    Database: str
    DatabaseSize: int  # bytes
    Messages: int
    Unread: int
    Tags: dict[str, int]  # tag -> messages carrying it
    RuntimeStats: RuntimeStats


class ChaosTrigger(TypedDict):
    """One Chaos trigger: answer `ErrorCode` (400-599) to `Probability` % of the commands."""

    ErrorCode: int
    Probability: int


class ChaosTriggers(TypedDict):
    """The answer of `GET`/`PUT /api/v1/chaos` (`Mailpit.chaos()`, `Mailpit.set_chaos()`)."""

    Authentication: ChaosTrigger
    Recipient: ChaosTrigger
    Sender: ChaosTrigger


# A required field sits in a base class and the optional ones in a `total=False` subclass, not under
# `NotRequired[...]`: with `from __future__ import annotations` Python 3.11 cannot see that marker at run
# time, and `__required_keys__` would name every field.


class _SendAddressRequired(TypedDict):
    Email: str


class SendAddress(_SendAddressRequired, total=False):
    """An address in a `SendRequest`: ``{"Email": "bob@example.com", "Name": "Bob"}`` (`Name` optional)."""

    Name: str


class _SendAttachmentRequired(TypedDict):
    Content: str  # base64
    Filename: str


class SendAttachment(_SendAttachmentRequired, total=False):
    """An attachment in a `SendRequest`: `Content` (base64) and `Filename` required."""

    ContentID: str  # makes it inline, for ``cid:`` references in HTML
    ContentType: str


class _SendRequestRequired(TypedDict):
    From: SendAddress


class SendRequest(_SendRequestRequired, total=False):
    """The body of `POST /api/v1/send` (`Mailpit.send()`); only `From` is required."""

    To: list[SendAddress]
    Cc: list[SendAddress]
    Bcc: list[str]  # bare addresses, as Mailpit takes them
    ReplyTo: list[SendAddress]
    Subject: str
    Text: str
    HTML: str
    Attachments: list[SendAttachment]
    Headers: dict[str, str]
    Tags: list[str]


# -- the operations, written once ----------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    unreachable_ok: bool = False  # answer None instead of raising MailpitUnreachable


@dataclass(frozen=True)
class _Sleep:
    seconds: float


_Op = Generator["_Request | _Sleep", "httpx.Response | None", T]


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code == 404:
        raise MailpitNotFound(
            f"{what}: not found ({response.text.strip()})",
            fix="list the mailbox with messages() or search() for a current ID; 'latest' means the newest",
            status=404,
        )
    if response.status_code >= 400:
        body = response.text.strip()
        try:
            body = response.json().get("Error", body)
        except (ValueError, AttributeError):
            pass
        raise MailpitError(
            f"{what}: HTTP {response.status_code}: {body}",
            fix="correct the request as the message says (see Mailpit's API docs at /api/v1/)",
            status=response.status_code,
        )
    return response


def _check_chaos(response: httpx.Response, base_url: str) -> httpx.Response:
    text = response.text.strip()
    if response.status_code == 400 and "not enabled" in text.lower():
        raise MailpitError(f"Chaos is not enabled at {shown_url(base_url)}", status=400,
                           fix="start Mailpit with --enable-chaos (MP_ENABLE_CHAOS=true), or use "
                               "emailkit.sandbox.Sandbox(chaos=True)")
    if response.status_code != 200:
        raise MailpitError(f"chaos: HTTP {response.status_code}: {text}", status=response.status_code,
                           fix="check the trigger JSON (codes 400-599, probability 0-100)")
    return response


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise MailpitError(
            f"{what}: the answer is not JSON ({response.headers.get('content-type', 'no content type')}); "
            "is this Mailpit?",
            fix="point MAILPIT_URL at Mailpit's HTTP port (8025 by default), not another web server",
            status=response.status_code,
        ) from None


def shown_url(url: str) -> str:
    """`url` as it may be shown: without a user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _page(start: int, limit: int) -> dict[str, int]:
    if start < 0 or limit < 0:
        raise ValueError("start and limit must be >= 0")
    return {"start": start, "limit": limit}


class _Operations:
    """The API once, as generators: each yields `_Request`s (and `_Sleep`s) and returns the result.

    `Mailpit` and `AsyncMailpit` give each one a public method that drives it with their own client.
    """

    base_url: str

    def _messages(self, start: int, limit: int) -> _Op[MessagesPage]:
        r = yield _Request("GET", "/api/v1/messages", _page(start, limit))
        assert r is not None
        return MessagesPage.from_json(_json(_check(r, "list messages"), "list messages"))

    def _search(self, query: str, start: int, limit: int) -> _Op[MessagesPage]:
        r = yield _Request("GET", "/api/v1/search", {"query": query, **_page(start, limit)})
        assert r is not None
        return MessagesPage.from_json(_json(_check(r, f"search {query!r}"), f"search {query!r}"))

    def _stored_ids(self, message_id: str, limit: int) -> _Op[list[str]]:
        # Mailpit's ``message-id:`` search is a substring match of one search word, and its query
        # parser splits quoted or comma-holding IDs (``<"a,b"@x>``), so the search uses the longest
        # plain run of the ID and the exact comparison is made here.
        bare = message_id.strip().strip("<>")
        runs = re.findall(r"[A-Za-z0-9._@+=$%&#!/^`{|}~-]+", bare)
        word = max(runs, key=len) if runs else ""
        if not word:
            return []
        query = f"message-id:{word}"
        r = yield _Request("GET", "/api/v1/search", {"query": query, **_page(0, limit)})
        assert r is not None
        page = MessagesPage.from_json(_json(_check(r, f"search {query!r}"), f"search {query!r}"))
        return [m.id for m in page.messages if m.message_id.strip("<>") == bare]

    def _stored_ids_by_subject(self, subject: str, limit: int) -> _Op[list[str]]:
        # Mailpit's ``subject:"…"`` search matches the phrase anywhere in the subject (and a ``"``
        # would end the phrase), so the search uses the longest part without one and the exact
        # comparison is made here.
        if not subject.strip():
            raise InvalidInput("subject", "is empty: every message without a subject would match",
                               fix="give the subject the message was sent with, or use stored_ids(message_id)")
        phrase = max((part.strip() for part in subject.split('"')), key=len)
        query = f'subject:"{phrase}"'
        r = yield _Request("GET", "/api/v1/search", {"query": query, **_page(0, limit)})
        assert r is not None
        page = MessagesPage.from_json(_json(_check(r, f"search {query!r}"), f"search {query!r}"))
        return [m.id for m in page.messages if m.subject == subject]

    def _message(self, id: str, query: str | None) -> _Op[Message]:
        r = yield _Request("GET", f"/api/v1/message/{id}", {"query": query} if query else None)
        assert r is not None
        return Message.from_json(_json(_check(r, f"message {id}"), f"message {id}"))

    def _headers(self, id: str) -> _Op[dict[str, list[str]]]:
        r = yield _Request("GET", f"/api/v1/message/{id}/headers")
        assert r is not None
        return dict(_json(_check(r, f"headers of {id}"), f"headers of {id}"))

    def _raw(self, id: str) -> _Op[bytes]:
        r = yield _Request("GET", f"/api/v1/message/{id}/raw")
        assert r is not None
        return _check(r, f"raw source of {id}").content

    def _send(self, payload: SendRequest) -> _Op[str]:
        r = yield _Request("POST", "/api/v1/send", json=payload)
        assert r is not None
        return str(_json(_check(r, "send"), "send")["ID"])

    def _set_read(self, ids: list[str] | None, read: bool, search: str | None) -> _Op[None]:
        if ids is not None and not ids and search is None:
            return  # an empty selection: Mailpit would read it as "every message"
        body: dict[str, Any] = {"Read": read}
        if ids is not None:
            body["IDs"] = ids
        if search is not None:
            body["Search"] = search
        r = yield _Request("PUT", "/api/v1/messages", json=body)
        assert r is not None
        _check(r, "set read status")

    def _delete(self, ids: list[str] | None) -> _Op[None]:
        if ids is not None and not ids:
            return  # Mailpit reads "no IDs" as "all": never send that for an empty selection
        r = yield _Request("DELETE", "/api/v1/messages", json={"IDs": ids} if ids else None)
        assert r is not None
        _check(r, "delete messages")

    def _info(self) -> _Op[AppInformation]:
        r = yield _Request("GET", "/api/v1/info")
        assert r is not None
        return cast(AppInformation, dict(_json(_check(r, "info"), "info")))

    def _chaos(self, triggers: Mapping[str, Any] | None) -> _Op[ChaosTriggers]:
        if triggers is None:
            r = yield _Request("GET", "/api/v1/chaos")
        else:
            r = yield _Request("PUT", "/api/v1/chaos", json=dict(triggers))
        assert r is not None
        return cast(ChaosTriggers, dict(_json(_check_chaos(r, self.base_url), "chaos")))

    def _ready(self) -> _Op[bool]:
        r = yield _Request("GET", "/readyz", unreachable_ok=True)
        return r is not None and r.status_code == 200

    def _wait_for(self, query: str, timeout: float, count: int, interval: float) -> _Op[list[MessageSummary]]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            r = yield _Request("GET", "/api/v1/search", {"query": query, "start": 0, "limit": max(count, 50)})
            assert r is not None
            page = MessagesPage.from_json(_json(_check(r, f"search {query!r}"), f"search {query!r}"))
            seen = page.messages_count
            if seen >= count:
                return page.messages[:count]
            if time.monotonic() >= deadline:
                raise MailpitTimeout(
                    f"waited {timeout:g}s for {count} message(s) matching {query!r}; found {seen}",
                    fix="check the message was sent to this Mailpit (same SMTP port) and the query is right",
                )
            yield _Sleep(interval)


def _unreachable(base_url: str, exc: Exception) -> MailpitUnreachable:
    return MailpitUnreachable(
        f"Mailpit not reachable at {shown_url(base_url)} ({exc.__class__.__name__})",
        fix="start it with `docker compose up -d mailpit`, or use `emailkit.lab.connect()` for the embedded sandbox",
    )


#: Chaos triggers to set: the whole answer of `chaos()`, or some of them as plain dicts
#: (``{"Recipient": {"ErrorCode": 451, "Probability": 50}}``); omitted ones reset.
ChaosUpdate = ChaosTriggers | Mapping[str, Mapping[str, int]]


class Mailpit(_Operations):
    """Synchronous client. `Mailpit(url).messages()` returns a `MessagesPage`."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def _drive(self, op: _Op[T]) -> T:
        response: httpx.Response | None = None
        try:
            while True:
                step = op.send(response)
                if isinstance(step, _Sleep):
                    time.sleep(step.seconds)
                    response = None
                    continue
                try:
                    response = self._http.request(step.method, step.path, params=step.params, json=step.json)
                except httpx.TransportError as exc:
                    if not step.unreachable_ok:
                        raise _unreachable(self.base_url, exc) from exc
                    response = None
        except StopIteration as done:
            return cast(T, done.value)

    # The API. Each method drives its `_Operations` generator; `AsyncMailpit` has the same ones, awaited.

    def messages(self, start: int = 0, limit: int = 50) -> MessagesPage:
        """Newest first; `limit=0` returns every message."""
        return self._drive(self._messages(start, limit))

    def search(self, query: str, start: int = 0, limit: int = 50) -> MessagesPage:
        """Mailpit search syntax: words, "phrases", from:, to:, subject:, is:unread, …"""
        return self._drive(self._search(query, start, limit))

    def stored_ids(self, message_id: str, *, limit: int = 50) -> list[str]:
        """Database IDs of the stored messages whose Message-ID is exactly `message_id` (newest first).

        Before re-sending after a broken connection this tells whether the server stored the message
        although its `250` never arrived (an exact comparison: Mailpit's ``message-id:`` search alone
        matches substrings and splits quoted IDs).
        """
        return self._drive(self._stored_ids(message_id, limit))

    def stored_ids_by_subject(self, subject: str, *, limit: int = 50) -> list[str]:
        """Database IDs of the stored messages whose Subject is exactly `subject` (newest first): the
        stored-copy check for a send whose Message-ID the client did not choose (a REST API's).
        An empty subject is `InvalidInput`."""
        return self._drive(self._stored_ids_by_subject(subject, limit))

    def message(self, id: str = "latest", *, query: str | None = None) -> Message:
        """The whole message (marks it read). `id="latest"` (+ `query`) means the newest match."""
        return self._drive(self._message(id, query))

    def headers(self, id: str) -> dict[str, list[str]]:
        """Every header as {Canonical-Name: [raw values]} (Message-Id, In-Reply-To, References…)."""
        return self._drive(self._headers(id))

    def raw(self, id: str) -> bytes:
        """The stored RFC 5322 source, with Mailpit's own added headers."""
        return self._drive(self._raw(id))

    def send(self, payload: SendRequest) -> str:
        """POST /api/v1/send (Mailpit's JSON: From/To use "Email"); returns the new database ID."""
        return self._drive(self._send(payload))

    def set_read(self, ids: list[str] | None = None, read: bool = True, *, search: str | None = None) -> None:
        """Mark IDs (or a search's matches, or everything when both are None) read or unread."""
        return self._drive(self._set_read(ids, read, search))

    def delete(self, ids: list[str] | None = None) -> None:
        """Delete these IDs; with None, delete EVERY message (as Mailpit does). An empty list deletes nothing."""
        return self._drive(self._delete(ids))

    def info(self) -> AppInformation:
        """Version, database, counts and runtime statistics."""
        return self._drive(self._info())

    def chaos(self) -> ChaosTriggers:
        """The Chaos triggers (``GET /api/v1/chaos``; Mailpit started with --enable-chaos)."""
        return self._drive(self._chaos(None))

    def set_chaos(self, triggers: ChaosUpdate) -> ChaosTriggers:
        """Set the Chaos triggers (``PUT /api/v1/chaos``); omitted triggers reset. Returns the new ones."""
        return self._drive(self._chaos(triggers))

    def ready(self) -> bool:
        """True when /readyz answers 200; False when it answers otherwise or nothing answers."""
        return self._drive(self._ready())

    def wait_for(self, query: str, timeout: float = 5.0, *, count: int = 1,
                 interval: float = 0.05) -> list[MessageSummary]:
        """Poll the search until at least `count` messages match; return them (newest first)."""
        return self._drive(self._wait_for(query, timeout, count, interval))

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Mailpit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Mailpit({shown_url(self.base_url)!r})"


class AsyncMailpit(_Operations):
    """Asynchronous twin of `Mailpit`: the same methods, awaited (their docstrings are `Mailpit`'s)."""

    def __init__(
        self, base_url: str, *, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def _drive(self, op: _Op[T]) -> T:
        response: httpx.Response | None = None
        try:
            while True:
                step = op.send(response)
                if isinstance(step, _Sleep):
                    await asyncio.sleep(step.seconds)
                    response = None
                    continue
                try:
                    response = await self._http.request(step.method, step.path, params=step.params, json=step.json)
                except httpx.TransportError as exc:
                    if not step.unreachable_ok:
                        raise _unreachable(self.base_url, exc) from exc
                    response = None
        except StopIteration as done:
            return cast(T, done.value)

    async def messages(self, start: int = 0, limit: int = 50) -> MessagesPage:
        return await self._drive(self._messages(start, limit))

    async def search(self, query: str, start: int = 0, limit: int = 50) -> MessagesPage:
        return await self._drive(self._search(query, start, limit))

    async def stored_ids(self, message_id: str, *, limit: int = 50) -> list[str]:
        return await self._drive(self._stored_ids(message_id, limit))

    async def stored_ids_by_subject(self, subject: str, *, limit: int = 50) -> list[str]:
        return await self._drive(self._stored_ids_by_subject(subject, limit))

    async def message(self, id: str = "latest", *, query: str | None = None) -> Message:
        return await self._drive(self._message(id, query))

    async def headers(self, id: str) -> dict[str, list[str]]:
        return await self._drive(self._headers(id))

    async def raw(self, id: str) -> bytes:
        return await self._drive(self._raw(id))

    async def send(self, payload: SendRequest) -> str:
        return await self._drive(self._send(payload))

    async def set_read(self, ids: list[str] | None = None, read: bool = True, *, search: str | None = None) -> None:
        return await self._drive(self._set_read(ids, read, search))

    async def delete(self, ids: list[str] | None = None) -> None:
        return await self._drive(self._delete(ids))

    async def info(self) -> AppInformation:
        return await self._drive(self._info())

    async def chaos(self) -> ChaosTriggers:
        return await self._drive(self._chaos(None))

    async def set_chaos(self, triggers: ChaosUpdate) -> ChaosTriggers:
        return await self._drive(self._chaos(triggers))

    async def ready(self) -> bool:
        return await self._drive(self._ready())

    async def wait_for(self, query: str, timeout: float = 5.0, *, count: int = 1,
                       interval: float = 0.05) -> list[MessageSummary]:
        return await self._drive(self._wait_for(query, timeout, count, interval))

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMailpit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncMailpit({shown_url(self.base_url)!r})"


# One text per operation: each public method of the async twin shows `Mailpit`'s docstring in help() and
# Jupyter's `?` (tests/unit/test_typing.py pins the twins' names and signatures equal).
for _name, _method in vars(AsyncMailpit).items():
    if not _name.startswith("_") and _method.__doc__ is None and hasattr(Mailpit, _name):
        _method.__doc__ = getattr(Mailpit, _name).__doc__
del _name, _method
