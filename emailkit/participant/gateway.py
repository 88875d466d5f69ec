"""The scoped REST gateway: Mailpit's REST API (the same paths and JSON) limited to one participant's mail."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from emailkit.limits import read_json
from emailkit.participant.scoped_mailpit import ScopedMailpit

__all__ = ["gateway_app"]

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
    """The JSON value in `raw` read by the house's one JSON reader (`emailkit.limits.read_json`: depth,
    number and text limits); ``(False, None)`` for an empty or unreadable body. Stricter than Mailpit
    in one way: bytes after the value are refused, where Go's decoder ignores them."""
    if not raw.strip():
        return False, None
    try:
        return True, read_json(raw)
    except ValueError:  # JSONDecodeError, JSONLimitError, UnicodeDecodeError
        return False, None


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
            if raw.strip() and (not ok or (body is not None and not isinstance(body, dict))):
                return _bad_request("invalid JSON body: expected {\"IDs\": [...]}, or no body for all of the scope")
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
