"""One participant's share of a Mailpit that a whole room uses: their mail only, over SMTP, REST and POP3.

A workshop can point every participant at one shared Mailpit (``MAILPIT_URL``). The notebooks send
from and to fixed addresses (``ann@example.com`` ...), so addresses cannot tell one participant's mail
from another's; a **tag** does. `ParticipantScope` starts, on loopback, for one participant tag:

* **an SMTP front** — a relay to the shared Mailpit's SMTP port that inserts ``X-Tags: <tag>`` as the
  first header line of every message (after the server's ``354``) and changes nothing else: the
  client still hears Mailpit's own greeting, EHLO, reply codes and ``queued as <ID>``. After each
  message it checks (over the REST API) that the stored message carries the tag; one that does not
  (a Mailpit started with ``--tags-disable x-tags``, say) is deleted again and the client hears a
  ``554`` saying why, so no untagged mail stays behind. STARTTLS cannot pass (the front could not
  insert the header into an encrypted session): it is left out of the EHLO keywords and a client's
  ``STARTTLS`` is answered ``454``. The workshop keeps STARTTLS off, as Mailpit does by default.
* **a scoped REST gateway** — Mailpit's REST API (``/api/v1/...``, the same JSON) limited to the
  messages carrying the tag: a list is the search ``tag:<tag>`` with the scope's totals, a search is
  ``tag:<tag> <query>``, one message (its raw source, headers, parts) answers ``404 page not found``
  unless it carries the tag (exactly as for an ID that does not exist), delete and read flags act
  only within the scope, ``/api/v1/send`` adds the tag, ``info`` and ``tags`` count the scope only.
  The scope's own tag is left out of the answers' ``Tags``, so the view is that of a Mailpit of the
  participant's own. What would act on, or show, everybody's mail — Chaos, renaming or deleting a
  tag, the events websocket, the web UI — answers ``403`` with the reason.
* **POP3** — emailkit's POP3 server (`emailkit.sandbox.pop3_server.POP3Server`) over a maildrop read
  through the gateway, with a generated login: the maildrop is the scope's (Mailpit's own POP3 would
  hand out everyone's).

Whatever reads through the gateway is scoped with it: `emailkit.imap` (the lab's IMAP server reads
Mailpit's REST API) and the provider (it reads the mailbox's REST API and delivers over its SMTP).

What this does not isolate: the shared Mailpit itself. Its own web UI, REST API, SMTP and POP3 show
and take everything, to anyone who has its address — and a participant's kernel has it
(``MAILPIT_URL``). The scope keeps a room's views apart; it is not a security boundary. A message
that names a participant's tag itself (``X-Tags``, or a plus-address ``someone+<tag>@...``) lands in
that participant's scope, as mail sent to them would.

    with ParticipantScope("http://127.0.0.1:8025", "127.0.0.1", 1025, "participant-01") as scope:
        scope.smtp_host, scope.smtp_port, scope.api_url, scope.pop3
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .background import BackgroundLoop
from .errors import EmailkitError, InvalidInput, MailpitNotFound
from .mailpit import Mailpit, shown_url
from .serving import AsgiServer

__all__ = [
    "PARTICIPANT_VARIABLE",
    "ParticipantScope",
    "SMTPFront",
    "ScopedMailpit",
    "ScopedMaildrop",
    "gateway_app",
    "participant_tag",
]

log = logging.getLogger("emailkit.participant")

#: The variable naming the participant whose scope a shared Mailpit is read through.
PARTICIPANT_VARIABLE: Final = "EMAILKIT_PARTICIPANT"

# Lower case only: Mailpit's `tag:` search lower-cases the term (its tag names compare without case),
# and no '+' (plus-addresses split on it), ',' (X-Tags separates on it) or space (a search splits on it).
_TAG: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Mailpit's database IDs (and the sandbox's) are URL-safe words; anything else is not a message.
_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_QUEUED: Final = re.compile(rb"queued as ([A-Za-z0-9_-]+)")
_PAGE: Final = 500            # messages per request when the gateway walks its whole scope
_TAGS_TTL: Final = 2.0        # seconds the scope's tag list is reused (list and search answer it)
_KNOWN_MAX: Final = 20_000    # IDs remembered as in the scope (Mailpit never reuses an ID)


def participant_tag(value: str | None, field_name: str = PARTICIPANT_VARIABLE) -> str:
    """`value` checked as a participant tag (lower-case letters, digits, ``-``, ``_``, ``.``)."""
    fix = (f"set {field_name} to a lower-case name of letters, digits, '-', '_' or '.', up to 64 characters "
           "(e.g. participant-01); the workshop sets it to each participant's user name")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field_name, "is empty", fix=fix)
    if not _TAG.match(value):
        raise InvalidInput(field_name, f"{value!r} cannot be a Mailpit tag for one participant", fix=fix)
    return value


# --------------------------------------------------------------------------- the scope, against Mailpit


@dataclass
class _Counters:
    """The scope's own runtime counters (what `info` reports instead of the shared server's)."""

    started: float = field(default_factory=time.monotonic)
    accepted: int = 0
    accepted_size: int = 0
    rejected: int = 0
    deleted: int = 0


class ScopedMailpit:
    """The shared Mailpit's REST API seen through one tag (async; used on one event loop).

    Every method talks to `upstream` with httpx; a message is in the scope when Mailpit's search
    ``tag:<tag>`` finds it. Nothing here ever hands out an ID the scope's search did not return.
    """

    def __init__(self, upstream: str, tag: str, *, timeout: float = 10.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.tag = participant_tag(tag, "tag")
        self.term = f"tag:{self.tag}"
        self.timeout = timeout
        self.counters = _Counters()
        self._client: httpx.AsyncClient | None = None
        self._tags: tuple[float, dict[str, int]] | None = None
        # IDs this scope has already been shown by Mailpit's search: opening a listed message then costs
        # one request, not three (a message leaves a scope only when deleted, or untagged from outside)
        self._known: collections.OrderedDict[str, None] = collections.OrderedDict()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, inside the loop that uses it
            self._client = httpx.AsyncClient(base_url=self.upstream, timeout=self.timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def changed(self) -> None:
        """Forget the cached tag list (after anything that may have changed the scope's tags)."""
        self._tags = None

    def remember(self, messages: list[dict[str, Any]]) -> None:
        """Note the IDs of summaries Mailpit's scoped search returned (they are in the scope)."""
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("ID"), str):
                self._known[message["ID"]] = None
                self._known.move_to_end(message["ID"])
        while len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)

    async def _search(self, query: str, *, start: int | str = 0, limit: int | str = 50,
                      extra: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        params = [("query", query), ("start", str(start)), ("limit", str(limit)), *(extra or [])]
        answer = await self.client.get("/api/v1/search", params=httpx.QueryParams(tuple(params)))
        answer.raise_for_status()
        page = dict(answer.json())
        if query.startswith(self.term + " ") or query == self.term:
            self.remember(page.get("messages") or [])
        return page

    async def counts(self) -> tuple[int, int]:
        """(messages, unread) in the scope."""
        page = await self._search(self.term, limit=1)
        return int(page.get("messages_count", 0)), int(page.get("messages_unread", 0))

    async def summaries(self) -> list[dict[str, Any]]:
        """Every message summary in the scope, newest first (walked page by page)."""
        found: list[dict[str, Any]] = []
        while True:
            page = await self._search(self.term, start=len(found), limit=_PAGE)
            batch = list(page.get("messages") or [])
            found += batch
            if len(batch) < _PAGE or len(found) >= int(page.get("messages_count", 0)):
                return found

    async def ids(self) -> set[str]:
        return {str(m["ID"]) for m in await self.summaries()}

    async def tag_counts(self) -> dict[str, int]:
        """Each tag on the scope's messages (the scope's own left out) → how many carry it, sorted by name."""
        now = time.monotonic()
        if self._tags is not None and now - self._tags[0] < _TAGS_TTL:
            return self._tags[1]
        names: dict[str, str] = {}
        counts: collections.Counter[str] = collections.Counter()
        for summary in await self.summaries():
            for tag in summary.get("Tags") or []:
                if tag.lower() != self.tag:
                    names.setdefault(tag.lower(), tag)
                    counts[tag.lower()] += 1
        result = {names[key]: counts[key] for key in sorted(names)}
        self._tags = (now, result)
        return result

    async def tags(self) -> list[str]:
        """The tags on the scope's messages, the scope's own left out (sorted as Mailpit sorts them)."""
        return list(await self.tag_counts())

    async def contains(self, message_id: str) -> bool:
        """Whether `message_id` is in the scope, with no side effect on the message (never marks it read).

        Fast path: its Message-ID from ``/headers`` (which does not mark read), then the search
        ``tag:<tag> message-id:<it>``; else (no usable Message-ID) a walk of the scope's IDs."""
        if not _ID.match(message_id):
            return False
        if message_id in self._known:
            return True
        answer = await self.client.get(f"/api/v1/message/{message_id}/headers")
        if answer.status_code != 200:
            return False
        headers = {k.lower(): v for k, v in dict(answer.json()).items()}
        values = headers.get("message-id") or []
        wanted = values[0].strip().strip("<>") if values else ""
        if wanted and not re.search(r'[\s"<>,;()]', wanted):
            page = await self._search(f"{self.term} message-id:{wanted}", limit=50)
            if any(m.get("ID") == message_id for m in page.get("messages") or []):
                return True
            if int(page.get("messages_count", 0)) <= 50:
                return False
        return message_id in await self.ids()

    async def latest(self, query: str | None = None) -> str | None:
        """The ID of the scope's newest message (matching `query`, if given), or None."""
        page = await self._search(f"{self.term} {query}" if query else self.term, limit=1)
        messages = page.get("messages") or []
        return str(messages[0]["ID"]) if messages else None

    def hide(self, tags: list[str] | None) -> list[str]:
        """A message's tags without the scope's own (the participant's view is that of their own Mailpit)."""
        return [t for t in tags or [] if t.lower() != self.tag]

    async def delete_ids(self, ids: list[str]) -> int:
        """Delete those of `ids` that are in the scope (never forwards an empty list, which means all)."""
        wanted = [i for i in dict.fromkeys(ids) if isinstance(i, str)]
        if len(wanted) > 3:
            scope = await self.ids()
            kept = [i for i in wanted if i in scope]
        else:
            kept = [i for i in wanted if await self.contains(i)]
        if kept:
            answer = await self.client.request("DELETE", "/api/v1/messages", json={"IDs": kept})
            answer.raise_for_status()
            for message_id in kept:
                self._known.pop(message_id, None)
            self.counters.deleted += len(kept)
            self.changed()
        return len(kept)

    async def delete_search(self, query: str | None = None) -> int:
        """Delete the scope's messages (matching `query`, if given)."""
        terms = f"{self.term} {query}" if query else self.term
        count = int((await self._search(terms, limit=1)).get("messages_count", 0))
        answer = await self.client.request("DELETE", "/api/v1/search", params={"query": terms})
        answer.raise_for_status()
        self._known.clear()
        self.counters.deleted += count
        self.changed()
        return count

    async def delete_unscoped(self, message_id: str) -> None:
        """Delete one message the front itself just delivered and found untagged (not in any scope)."""
        await self.client.request("DELETE", "/api/v1/messages", json={"IDs": [message_id]})


# --------------------------------------------------------------------------- the REST gateway


_DROP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "date",
                 "server"}


def _not_found() -> Response:
    # Word for word what Mailpit answers for an ID it does not have: another participant's
    # message is indistinguishable from no message.
    return PlainTextResponse("404 page not found", status_code=404)


def _bad_request(text: str) -> Response:
    return PlainTextResponse(text, status_code=400)


def _relay(answer: httpx.Response) -> Response:
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP_HEADERS}
    return Response(answer.content, status_code=answer.status_code, headers=headers)


def _lower_keys(body: Any) -> dict[str, Any]:
    """Mailpit reads JSON keys without regard to case (Go's decoder): so does the gateway."""
    return {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}


def _first_json(raw: bytes) -> tuple[bool, Any]:
    """The first JSON value in `raw`, as Go's json.Decoder reads it (trailing bytes ignored)."""
    text = raw.decode("utf-8", errors="replace").lstrip()
    if not text:
        return False, None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return False, None
    return True, value


def gateway_app(scope: ScopedMailpit) -> Starlette:
    """Mailpit's REST API limited to `scope` (an ASGI app; `ParticipantScope` serves it)."""
    tag = scope.tag

    def forbidden(why: str) -> Response:
        return PlainTextResponse(f"403 forbidden for participant {tag}: {why}", status_code=403)

    async def forward(request: Request, path: str, *, content: bytes | None = None) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization",
                                                                              "accept")}
        return await scope.client.request(request.method, path, params=list(request.query_params.multi_items()),
                                          headers=headers, content=content)

    def page_params(request: Request) -> dict[str, str]:
        q = request.query_params
        return {k: q[k] for k in ("start", "limit") if k in q}

    def extra(request: Request) -> list[tuple[str, str]]:
        return [(k, v) for k, v in request.query_params.multi_items() if k in ("before", "tz")]

    async def shaped(page: dict[str, Any], totals: tuple[int, int]) -> Response:
        scope.remember(page.get("messages") or [])
        for message in page.get("messages") or []:
            message["Tags"] = scope.hide(message.get("Tags"))
        answer = {"total": totals[0], "unread": totals[1], "count": len(page.get("messages") or []),
                  "messages_count": page.get("messages_count", 0), "messages_unread": page.get("messages_unread", 0),
                  "start": page.get("start", 0), "tags": await scope.tags(), "messages": page.get("messages") or []}
        return JSONResponse(answer)

    async def messages(request: Request) -> Response:
        if request.method == "GET":
            params = page_params(request)
            answer = await scope.client.get("/api/v1/search", params=[("query", scope.term), *params.items(),
                                                                          *extra(request)])
            if answer.status_code >= 400:
                return _relay(answer)
            page = dict(answer.json())
            totals = (int(page.get("messages_count", 0)), int(page.get("messages_unread", 0)))
            return await shaped(page, totals)
        raw = await request.body()
        ok, body = _first_json(raw)
        if request.method == "DELETE":
            if raw.strip() and not ok:
                return _bad_request("invalid JSON body")
            ids = _lower_keys(body).get("ids") or []
            if not isinstance(ids, list):
                return _bad_request("IDs must be a list of message IDs")
            if ids:
                await scope.delete_ids([str(i) for i in ids])
            else:
                await scope.delete_search()
            return PlainTextResponse("ok")
        # PUT: read flags, by IDs, by a search, or for the whole scope
        if not ok or not isinstance(body, dict):
            return _bad_request("invalid JSON body: expected {\"Read\": true, \"IDs\": [...]} or {\"Search\": ...}")
        fields = _lower_keys(body)
        ids, search, read = fields.get("ids") or [], str(fields.get("search") or "").strip(), bool(fields.get("read"))
        if ids and search:
            return _bad_request("You may specify either IDs or a search query, not both")
        if ids:
            if not isinstance(ids, list):
                return _bad_request("IDs must be a list of message IDs")
            scoped = await scope.ids() if len(ids) > 3 else None
            kept = [str(i) for i in ids if (str(i) in scoped if scoped is not None else await scope.contains(str(i)))]
            if not kept:
                return PlainTextResponse("ok")
            upstream = {"Read": read, "IDs": kept}
        else:
            upstream = {"Read": read, "Search": f"{scope.term} {search}" if search else scope.term}
        answer = await scope.client.put("/api/v1/messages", params=httpx.QueryParams(tuple(extra(request))), json=upstream)
        return _relay(answer)

    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return _bad_request("Error: no search query")
        if request.method == "DELETE":
            await scope.delete_search(query)
            return PlainTextResponse("ok")
        answer, totals = await asyncio.gather(
            scope.client.get("/api/v1/search", params=[("query", f"{scope.term} {query}"),
                                                       *page_params(request).items(), *extra(request)]),
            scope.counts())
        if answer.status_code >= 400:
            return _relay(answer)
        return await shaped(dict(answer.json()), totals)

    async def send(request: Request) -> Response:
        ok, body = _first_json(await request.body())
        if not ok or not isinstance(body, dict):
            # Mailpit would refuse it too; forwarding it unread could store a message without the tag.
            return _bad_request("invalid JSON body: expected Mailpit's send request ({\"From\": {...}, ...})")
        key = next((k for k in body if str(k).lower() == "tags"), "Tags")
        given = body.get(key) or []
        if not isinstance(given, list):
            return _bad_request("Tags must be a list of strings")
        body[key] = [*given, tag]
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        answer = await scope.client.post("/api/v1/send", json=body, headers=headers)
        scope.changed()
        return _relay(answer)

    async def tags(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(await scope.tags())
        ok, body = _first_json(await request.body())
        fields = _lower_keys(body) if ok else {}
        ids, wanted = fields.get("ids") or [], fields.get("tags") or []
        if not ok or not isinstance(ids, list) or not isinstance(wanted, list):
            return _bad_request("invalid JSON body: expected {\"IDs\": [...], \"Tags\": [...]}")
        kept = [str(i) for i in ids if await scope.contains(str(i))]
        if kept:  # the scope's own tag stays on: a message cannot be moved out of the scope from inside it
            answer = await scope.client.put("/api/v1/tags", json={"IDs": kept, "Tags": [*wanted, tag]})
            scope.changed()
            if answer.status_code >= 400:
                return _relay(answer)
        return PlainTextResponse("ok")

    async def info(request: Request) -> Response:
        answer = await scope.client.get("/api/v1/info")
        if answer.status_code >= 400:
            return _relay(answer)
        data = dict(answer.json())
        data["Messages"], data["Unread"] = await scope.counts()
        data["Tags"] = dict(await scope.tag_counts())
        stats = dict(data.get("RuntimeStats") or {})
        c = scope.counters
        stats.update(MessagesDeleted=c.deleted, SMTPAccepted=c.accepted, SMTPAcceptedSize=c.accepted_size,
                     SMTPRejected=c.rejected, SMTPIgnored=0)
        data["RuntimeStats"] = stats
        return JSONResponse(data)

    async def passthrough(request: Request) -> Response:
        return _relay(await forward(request, request.url.path))

    async def message(request: Request) -> Response:
        message_id = request.path_params["id"]
        rest = request.path_params.get("rest", "")
        if message_id == "latest":
            found = await scope.latest(request.query_params.get("query") or None)
            if found is None:
                return _not_found()
            message_id = found
        elif not await scope.contains(message_id):
            return _not_found()
        if request.method == "POST" and rest != "release":
            return PlainTextResponse("Method Not Allowed", status_code=405)
        path = f"/api/v1/message/{message_id}" + (f"/{rest}" if rest else "")
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "query"]
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        answer = await scope.client.request(request.method, path, params=httpx.QueryParams(tuple(params)), headers=headers,
                                            content=await request.body() if request.method == "POST" else None)
        if not rest and answer.status_code == 200:
            data = dict(answer.json())
            data["Tags"] = scope.hide(data.get("Tags"))
            scope.changed()
            return JSONResponse(data)
        return _relay(answer)

    reasons = {
        "/api/v1/chaos": "Chaos would fail every participant's mail on the shared Mailpit (notebook 05 starts "
                         "a Mailpit of its own for it)",
        "/api/v1/tags/": "renaming or deleting a tag changes every participant's messages",
        "/api/events": "the events websocket carries every participant's new messages",
    }

    async def refuse(request: Request) -> Response:
        path = request.url.path
        for prefix, why in reasons.items():
            if path.startswith(prefix):
                return forbidden(why)
        return forbidden(f"{path} is not part of Mailpit's REST API served here: the shared Mailpit's web inbox "
                         "and other pages show every participant's mail (open your messages through the API, "
                         "POP3 or IMAP)")

    async def refuse_websocket(websocket: WebSocket) -> None:
        await websocket.close(code=1008, reason=reasons["/api/events"])

    any_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes = [
        Route("/livez", passthrough, methods=["GET"]),
        Route("/readyz", passthrough, methods=["GET"]),
        Route("/api/v1/messages", messages, methods=["GET", "PUT", "DELETE"]),
        Route("/api/v1/search", search, methods=["GET", "DELETE"]),
        Route("/api/v1/send", send, methods=["POST"]),
        Route("/api/v1/tags", tags, methods=["GET", "PUT"]),
        Route("/api/v1/info", info, methods=["GET"]),
        Route("/api/v1/webui", passthrough, methods=["GET"]),
        Route("/api/v1/swagger.json", passthrough, methods=["GET"]),
        Route("/api/v1/message/{id}", message, methods=["GET"]),
        Route("/api/v1/message/{id}/{rest:path}", message, methods=["GET", "POST"]),
        Route("/{path:path}", refuse, methods=any_method),
        WebSocketRoute("/{path:path}", refuse_websocket),
    ]
    return Starlette(routes=routes)


# --------------------------------------------------------------------------- the SMTP front


_STARTTLS_REFUSED: Final = (b"454 4.7.0 STARTTLS is not available through this participant's SMTP front: it tags "
                            b"each message for the shared Mailpit and cannot do that in an encrypted session "
                            b"(the workshop keeps STARTTLS off)\r\n")
_HIDDEN_KEYWORDS: Final = {b"STARTTLS", b"CHUNKING"}
_COMMAND_LINE_MAX: Final = 4096


class SMTPFront:
    """An SMTP relay on loopback to `upstream` that tags every message with ``X-Tags: <tag>``.

    Hand-written rather than built on `emailkit.wiretap.Wiretap`: the tap passes bytes through
    unchanged and records them, while the front must follow the conversation (which reply answers
    which command, when message content starts and ends) to insert one header line, hide STARTTLS
    and check each stored message. A `Wiretap` in front of the front still records it all.

    `check(id)` — awaited after each ``250 ... queued as <ID>``: True when the stored message
    carries the tag; `discard(id)` deletes one that does not.
    """

    def __init__(self, upstream_host: str, upstream_port: int, tag: str, *, loop: BackgroundLoop,
                 check: Callable[[str], Awaitable[bool]] | None = None,
                 discard: Callable[[str], Awaitable[None]] | None = None,
                 counters: _Counters | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tag = participant_tag(tag, "tag")
        self.header = f"X-Tags: {self.tag}\r\n".encode("ascii")
        self.loop = loop
        self.check, self.discard = check, discard
        self.counters = counters or _Counters()
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> SMTPFront:
        self._server = self.loop.run(asyncio.start_server(self._session, self.host, self.port), timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._server is not None and self.loop.running:
            self.loop.run(stop(), timeout=10)
        self._server = None

    async def _session(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError as exc:
                host, port = self.upstream
                client_writer.write(f"421 4.3.0 the shared Mailpit's SMTP at {host}:{port} does not answer "
                                    f"({exc.strerror or exc})\r\n".encode())
                await client_writer.drain()
                return
            try:
                await _Relay(self, client_reader, client_writer, up_reader, up_writer).run()
            finally:
                up_writer.close()
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            client_writer.close()


class _Relay:
    """One SMTP connection through the front: commands and replies paired in order (RFC 5321 answers
    every command line with one reply, multi-line replies continuing with ``ddd-``)."""

    def __init__(self, front: SMTPFront, cr: asyncio.StreamReader, cw: asyncio.StreamWriter,
                 ur: asyncio.StreamReader, uw: asyncio.StreamWriter) -> None:
        self.front = front
        self.cr, self.cw, self.ur, self.uw = cr, cw, ur, uw
        self.pending: collections.deque[str] = collections.deque(["greeting"])
        self.in_data = False          # the client is sending message content
        self.header_due = False       # the tag header goes before the content's first byte
        self.line_start = True        # in content: the next byte begins a line
        self.answered = asyncio.Event()  # the server has answered DATA (354 or a refusal)
        self.size = 0

    async def run(self) -> None:
        upstream = asyncio.ensure_future(self.replies())
        client = asyncio.ensure_future(self.commands())
        done, _ = await asyncio.wait({upstream, client}, return_when=asyncio.FIRST_COMPLETED)
        if client in done and not upstream.done():
            # the client finished (after QUIT, usually): let the server's last replies through
            try:
                await asyncio.wait_for(asyncio.shield(upstream), timeout=5)
            except TimeoutError:
                pass
        for task in (upstream, client):
            task.cancel()
        await asyncio.gather(upstream, client, return_exceptions=True)

    # ---- client → shared Mailpit
    async def commands(self) -> None:
        buffer = b""
        while data := await self.cr.read(65536):
            buffer += data
            while buffer:
                if self.in_data:
                    out, buffer, ended = self.content(buffer)
                    self.uw.write(out)
                    if not ended:
                        break
                    self.in_data = False
                    self.pending.append("message")
                    continue
                end = buffer.find(b"\n")
                if end < 0:
                    if len(buffer) > _COMMAND_LINE_MAX:  # RFC 5321 allows 512 octets; nothing is stored
                        self.cw.write(b"500 5.5.2 command line too long (over %d bytes): closing\r\n"
                                      % _COMMAND_LINE_MAX)
                        await self.cw.drain()
                        self.uw.close()
                        return
                    break
                line, buffer = buffer[: end + 1], buffer[end + 1 :]
                words = line.split(None, 1)
                verb = words[0].upper() if words else b""
                if verb == b"STARTTLS":
                    self.pending.append("starttls")
                    self.uw.write(b"NOOP\r\n")  # its reply is replaced by the refusal, keeping replies in order
                    continue
                self.pending.append({b"EHLO": "ehlo", b"DATA": "data"}.get(verb, "line"))
                self.uw.write(line)
                if verb == b"DATA":
                    await self.uw.drain()
                    self.answered.clear()
                    await self.answered.wait()  # content may follow only after the server's 354
            await self.uw.drain()
        if self.uw.can_write_eof():
            self.uw.write_eof()

    def content(self, buffer: bytes) -> tuple[bytes, bytes, bool]:
        """Content to forward, bytes held back (a possible end marker, incomplete), and whether it ended."""
        out = bytearray()
        if self.header_due:
            out += self.front.header
            self.header_due, self.line_start = False, True
        i = 0
        while i < len(buffer):
            if self.line_start:
                rest = buffer[i : i + 3]
                for marker in (b".\r\n", b".\n"):
                    if buffer.startswith(marker, i):
                        out += marker
                        self.size += i
                        return bytes(out), buffer[i + len(marker) :], True
                if rest in (b".", b".\r"):
                    self.size += i
                    return bytes(out), buffer[i:], False  # wait for the rest of the line
            end = buffer.find(b"\n", i)
            if end < 0:
                out += buffer[i:]
                self.line_start = False
                self.size += len(buffer)
                return bytes(out), b"", False
            out += buffer[i : end + 1]
            i = end + 1
            self.line_start = True
        self.size += len(buffer)
        return bytes(out), b"", False

    # ---- shared Mailpit → client
    async def replies(self) -> None:
        buffer, lines = b"", []
        while data := await self.ur.read(65536):
            buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                line, buffer = buffer[: end + 1], buffer[end + 1 :]
                lines.append(line)
                if line[3:4] == b"-":
                    continue  # a multi-line reply goes on
                kind = self.pending.popleft() if self.pending else "line"
                self.cw.write(await self.answer(kind, lines))
                lines = []
            await self.cw.drain()
        self.answered.set()

    async def answer(self, kind: str, lines: list[bytes]) -> bytes:
        code = lines[-1][:3]
        if kind == "starttls":
            return _STARTTLS_REFUSED
        if kind == "ehlo":
            kept = [ln for ln in lines if not (ln[4:].split() or [b""])[0].upper() in _HIDDEN_KEYWORDS]
            return b"".join(ln[:3] + (b" " if n == len(kept) - 1 else b"-") + ln[4:] for n, ln in enumerate(kept))
        if kind == "data":
            if code == b"354":
                self.in_data, self.header_due, self.size = True, True, 0
            self.answered.set()
        elif kind == "message":
            return await self.delivered(code, lines)
        return b"".join(lines)

    async def delivered(self, code: bytes, lines: list[bytes]) -> bytes:
        counters = self.front.counters
        if code != b"250":
            counters.rejected += 1
            return b"".join(lines)
        match = _QUEUED.search(lines[-1])
        if match and self.front.check is not None:
            message_id = match.group(1).decode("ascii")
            try:
                tagged = await self.front.check(message_id)
            except httpx.HTTPError as exc:
                log.warning("could not check message %s for its tag: %s", message_id, exc)
                tagged = False
            if not tagged:
                if self.front.discard is not None:
                    try:
                        await self.front.discard(message_id)
                    except httpx.HTTPError:
                        log.warning("could not delete untagged message %s", message_id)
                counters.rejected += 1
                return (f"554 5.7.0 the shared Mailpit stored this message without the tag "
                        f"{self.front.tag} (X-Tags), so it was deleted again: start it with X-Tags tagging on "
                        f"(no --tags-disable x-tags)\r\n").encode()
        counters.accepted += 1
        counters.accepted_size += self.size
        return b"".join(lines)


# --------------------------------------------------------------------------- POP3 over the scope


class ScopedMaildrop:
    """What `emailkit.sandbox.pop3_server.POP3Server` reads — ``maildrop(limit)``, ``raw(id)``,
    ``delete(ids)`` — taken from the gateway's REST API, so POP3 hands out the scope only."""

    def __init__(self, api_url: str) -> None:
        self.client = Mailpit(api_url, timeout=10.0)

    def maildrop(self, limit: int = 100) -> list[tuple[str, int]]:
        page = self.client.messages(start=0, limit=limit)
        return [(m.id, m.size) for m in page.messages]

    def raw(self, message_id: str) -> bytes | None:
        try:
            return bytes(self.client.raw(message_id))
        except MailpitNotFound:
            return None

    def delete(self, ids: list[str]) -> int:
        if not ids:  # an empty list to the API would mean every message
            return 0
        self.client.delete(list(ids))
        return len(ids)

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- all three, started together


class ParticipantScope:
    """The SMTP front, REST gateway and POP3 server of one participant `tag` on the shared Mailpit at
    `url` (SMTP at `smtp_host:smtp_port`), all on loopback ports of their own (0 = any free one)."""

    def __init__(self, url: str, smtp_host: str, smtp_port: int, tag: str, *, host: str = "127.0.0.1",
                 smtp_listen_port: int = 0, http_port: int = 0, pop3: bool = True, pop3_port: int = 0) -> None:
        self.url = url.rstrip("/")
        self.tag = participant_tag(tag)
        self.upstream_smtp = (smtp_host, smtp_port)
        self.host = host
        self._ports = (smtp_listen_port, http_port, pop3_port)
        self._want_pop3 = pop3
        self.loop: BackgroundLoop | None = None
        self.scope: ScopedMailpit | None = None
        self.gateway: AsgiServer | None = None
        self.front: SMTPFront | None = None
        self.pop3_server: Any = None
        self.pop3_user = "workbook"
        self.pop3_password = secrets.token_urlsafe(12)
        self._maildrop: ScopedMaildrop | None = None

    def start(self) -> ParticipantScope:
        try:
            self.loop = BackgroundLoop(name=f"emailkit-participant-{self.tag}")
            self.scope = ScopedMailpit(self.url, self.tag)
            self.gateway = AsgiServer(gateway_app(self.scope), self.host, self._ports[1], loop=self.loop).start()
            self.front = SMTPFront(*self.upstream_smtp, self.tag, loop=self.loop, check=self.scope.contains,
                                   discard=self.scope.delete_unscoped, counters=self.scope.counters,
                                   host=self.host, port=self._ports[0]).start()
            if self._want_pop3:
                from .sandbox.pop3_server import POP3Server

                self._maildrop = ScopedMaildrop(self.gateway.url)
                self.pop3_server = POP3Server(self._maildrop, credentials={self.pop3_user: self.pop3_password},  # type: ignore[arg-type]
                                              host=self.host, port=self._ports[2])
                self.pop3_server.start()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def api_url(self) -> str:
        if self.gateway is None:
            raise EmailkitError("the participant scope is not started", fix="call start() first")
        return self.gateway.url

    @property
    def smtp_host(self) -> str:
        return self.host

    @property
    def smtp_port(self) -> int:
        if self.front is None:
            raise EmailkitError("the participant scope is not started", fix="call start() first")
        return self.front.port

    @property
    def pop3_port(self) -> int:
        return int(self.pop3_server.port) if self.pop3_server is not None else 0

    def describe(self) -> str:
        return f"shared Mailpit at {shown_url(self.url)}, participant {self.tag}"

    def close(self) -> None:
        if self.pop3_server is not None:
            self.pop3_server.close()
            self.pop3_server = None
        if self._maildrop is not None:
            self._maildrop.close()
            self._maildrop = None
        if self.front is not None:
            self.front.close()
            self.front = None
        if self.gateway is not None:
            self.gateway.close(force=True)
            self.gateway = None
        if self.loop is not None:
            if self.scope is not None and self.loop.running:
                self.loop.run(self.scope.aclose(), timeout=5)
            self.loop.close()
            self.loop = None

    def __enter__(self) -> ParticipantScope:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

