"""Mailpit's HTTP rules around every API answer: CORS, the ``OPTIONS`` preflight, 405 with a full ``Allow``.

As Mailpit v1.33.1 (`server/server.go`, `server/cors.go`) with no ``--allowed-hosts`` and no
``--api-cors`` (the lab's configuration):

* a request under ``/api/`` or to ``/view/{ID}.html`` with an ``Origin`` whose host:port is not the
  request's ``Host`` → ``403 Blocked due to CORS violation``; no ``Origin`` (curl, Python, Node) or
  the same origin (the page Mailpit itself served) is allowed. `allowed_origins` adds others
  (``"*"`` = any), as ``--api-cors`` does;
* every such answer carries ``Access-Control-Allow-Origin`` (the request's ``Origin``, empty when none),
  ``Access-Control-Allow-Methods: GET, POST, DELETE, PUT, OPTIONS`` and ``Access-Control-Allow-Headers: *``;
* ``OPTIONS`` on any ``/api/v1/...`` path → 200 with an empty ``text/plain`` body (the preflight);
* a method a path does not serve → 405 ``Method Not Allowed`` whose ``Allow`` lists every method of every
  route on that path, sorted, ``HEAD`` with ``GET`` (Go's ServeMux).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match

__all__ = ["ALLOW_METHODS", "cors_allowed", "go_error", "method_not_allowed", "preflight", "with_mailpit_headers"]

ALLOW_METHODS = "GET, POST, DELETE, PUT, OPTIONS"
_VIEW_HTML = re.compile(r"^/view/[a-zA-Z0-9]+\.html$")

Endpoint = Callable[[Request], Awaitable[Response]]


def _cors_path(path: str) -> bool:
    return path.startswith("/api/") or bool(_VIEW_HTML.match(path))


def cors_allowed(origin: str | None, host: str, allowed_origins: Iterable[str] = ()) -> bool:
    """Mailpit's `corsOriginAccessControl`: no Origin, the same host:port, or a listed origin."""
    if origin is None:
        return True
    try:
        origin_host = urlsplit(origin).netloc.lower()
    except ValueError:
        return False
    allowed = {a.lower() for a in allowed_origins}
    return origin_host == host.lower() or "*" in allowed or origin_host in allowed


def go_error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """Go's `http.Error`: the message and a newline, text/plain with nosniff."""
    response = PlainTextResponse(message + "\n", status_code=status, headers=headers)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def with_mailpit_headers(endpoint: Endpoint, allowed_origins: Iterable[str] = ()) -> Endpoint:
    """`endpoint` behind Mailpit's middleware: CORS check and headers, Referrer-Policy."""
    origins = tuple(allowed_origins)

    async def wrapped(request: Request) -> Response:
        cors = _cors_path(request.url.path)
        if cors and not cors_allowed(request.headers.get("origin"), request.headers.get("host", ""), origins):
            return go_error("Blocked due to CORS violation", 403, {"Referrer-Policy": "no-referrer"})
        response = await endpoint(request)
        response.headers["Referrer-Policy"] = "no-referrer"
        if cors:
            response.headers["Access-Control-Allow-Origin"] = request.headers.get("origin", "")
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = "*"
        return response

    wrapped.__name__ = getattr(endpoint, "__name__", "endpoint")
    return wrapped


async def preflight(request: Request) -> Response:
    """``OPTIONS /api/v1/...``: Mailpit's `GetOptions` (200, empty text/plain)."""
    return Response(b"", headers={"Content-Type": "text/plain"})


def method_not_allowed(routes: Callable[[], list[BaseRoute]]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A 405 handler whose ``Allow`` names every method any route serves on the request's path."""

    async def handle(request: Request, exc: Exception) -> Response:
        methods: set[str] = set()
        for route in routes():
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= set(getattr(route, "methods", None) or ())
        if "GET" in methods:
            methods.add("HEAD")
        return go_error("Method Not Allowed", 405, {"Allow": ", ".join(sorted(methods))})

    return handle
