"""``/api/v1/messages`` and ``/api/v1/search``: pages of message summaries, read flags, deleting.

Deliberate differences from Mailpit, each because Mailpit would hide a mistake:

* ``DELETE /api/v1/messages`` with a body that is not valid JSON → 400 and nothing deleted (so does
  Mailpit v1.33.1, measured; older releases deleted every message); a missing body or empty ``IDs``
  still deletes all;
* an unreadable ``before:``/``after:`` date in a search → 400 (Mailpit ignores the term).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.json_input import boolean, str_list, string
from emailkit.sandbox.routes.answers import BadRequest, handler, json_response, ok
from emailkit.sandbox.routes.params import before_ms, int_param, json_body, resources, tz
from emailkit.sandbox.store import Store

__all__ = ["delete_messages", "delete_search", "list_messages", "routes", "search", "set_read", "summary_page"]


def summary_page(
    store: Store, messages: list[dict[str, Any]], start: int, matches: int | None = None,
    unread_matches: int | None = None,
) -> dict[str, Any]:
    """Mailpit's `MessagesSummary`: the mailbox's counts and tags around one page of `messages`."""
    counts = store.counts()
    return {
        "total": counts.total,
        "unread": counts.unread,
        "count": len(messages),
        "messages_count": counts.total if matches is None else matches,
        "messages_unread": counts.unread if unread_matches is None else unread_matches,
        "start": start,
        "tags": store.tags(),
        "messages": messages,
    }


def _query(request: Request) -> str:
    query = request.query_params.get("query", "").strip()
    if not query:
        raise BadRequest("Error: no search query")
    return query


@handler
async def list_messages(request: Request) -> Response:
    """``GET /api/v1/messages?start=&limit=&before=``: the newest first."""
    store = resources(request).store
    start, limit = int_param(request, "start", 0), int_param(request, "limit", 50)
    before = before_ms(request, tz(request))
    return json_response(summary_page(store, store.list(start, limit, before_ms=before), start))


@handler
async def set_read(request: Request) -> Response:
    """``PUT /api/v1/messages`` ``{"IDs": [...], "Read": true}`` or ``{"Search": "...", "Read": true}``; none: all."""
    store = resources(request).store
    data = await json_body(request, ("IDs", "Read", "Search"))
    ids = str_list(data.get("IDs"), "IDs")
    search_query = string(data.get("Search"), "Search").strip()
    read = boolean(data.get("Read"), "Read")
    if ids and search_query:
        raise BadRequest("You may specify either IDs or a search query, not both")
    if search_query:
        store.set_read(read=read, query=search_query, tz=tz(request))
    elif ids:
        store.set_read(ids, read=read)
    else:
        store.set_read(None, read=read)
    return ok()


@handler
async def delete_messages(request: Request) -> Response:
    """``DELETE /api/v1/messages`` ``{"IDs": [...]}``; no body or no IDs: every message."""
    data = await json_body(request, ("IDs",))
    resources(request).store.delete(str_list(data.get("IDs"), "IDs") or None)
    return ok()


@handler
async def search(request: Request) -> Response:
    """``GET /api/v1/search?query=`` in Mailpit's search language."""
    store = resources(request).store
    query = _query(request)
    start, limit = int_param(request, "start", 0), int_param(request, "limit", 50)
    zone = tz(request)
    page, matches, unread = store.search(query, start, limit, tz=zone, before_ms=before_ms(request, zone))
    return json_response(summary_page(store, page, start, matches, unread))


@handler
async def delete_search(request: Request) -> Response:
    """``DELETE /api/v1/search?query=``: every matching message."""
    query = _query(request)
    resources(request).store.delete_search(query, tz=tz(request))
    return ok()


routes = [
    Route("/api/v1/messages", list_messages, methods=["GET"]),
    Route("/api/v1/messages", set_read, methods=["PUT"]),
    Route("/api/v1/messages", delete_messages, methods=["DELETE"]),
    Route("/api/v1/search", search, methods=["GET"]),
    Route("/api/v1/search", delete_search, methods=["DELETE"]),
]
