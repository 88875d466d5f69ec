"""The sandbox's HTTP app: Mailpit v1.33.1's REST API, as measured by tests/differential (Starlette).

`create_app(store, ...)` puts the routes of `emailkit.sandbox.routes` (one module per resource) behind
Mailpit's middleware (CORS, Referrer-Policy: `emailkit.sandbox.cors`) and its answers for a path no
route serves (404), a method a path does not serve (405 with ``Allow``) and a crash (500 with the
request id). The routes read the store, the chaos triggers and the size limit from
``app.state.resources`` (`routes.params.Resources`).

Exact Mailpit JSON (field names, key order, compact like Go's encoder, ``<>&`` escaped as Go does),
text ``ok`` replies, 400 text errors, 404 ``404 page not found``; lenient input (JSON keys
case-insensitive, unknown keys ignored). docs/sandbox.md has what was measured, and each route module
the deliberate differences on its routes.

Starlette, not FastAPI (the provider's): the sandbox answers as Go's ServeMux does (``HEAD`` with every
``GET``, its 405 and 404 texts, no request validation of its own, no ``/docs``), which Starlette's
plain routes give as they are.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.chaos import Chaos
from emailkit.sandbox.cors import go_error, method_not_allowed, with_mailpit_headers
from emailkit.sandbox.routes import chaos as chaos_routes
from emailkit.sandbox.routes import info, message, messages, send, tags, views
from emailkit.sandbox.routes.answers import text
from emailkit.sandbox.routes.info import MAILPIT_VERSION, VERSION
from emailkit.sandbox.routes.params import Resources
from emailkit.sandbox.store import Store

__all__ = ["MAILPIT_VERSION", "VERSION", "create_app"]


async def _not_found(request: Request, exc: Exception) -> Response:
    return go_error("404 page not found", 404)  # Go's ServeMux for a path no route serves


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Logged, and the connection kept, by emailkit.serving.NeverDrop (which set the request id).
    rid = request.scope.get("state", {}).get("request_id", "unknown")
    return text(f"internal error (request id {rid}): the server log has details", 500)


def create_app(store: Store, *, max_message_size: int = 50 * 1024 * 1024, chaos: Chaos | None = None) -> Starlette:
    """The Starlette app serving Mailpit's API over `store` (and `chaos`'s triggers, when enabled)."""
    routes = [
        *messages.routes, *send.routes, *message.routes, *tags.routes, *info.routes, *chaos_routes.routes,
        *views.routes, *info.fallback_routes,  # the catch-alls last
    ]
    # Mailpit's middleware (CORS, Referrer-Policy) around every route, as its middleWareFunc does
    wrapped = [Route(r.path, with_mailpit_headers(r.endpoint), methods=sorted(r.methods or ())) for r in routes]
    app = Starlette(routes=wrapped, exception_handlers={404: _not_found, Exception: _internal_error})
    app.add_exception_handler(405, method_not_allowed(lambda: app.router.routes))
    app.state.resources = Resources(store, chaos if chaos is not None else Chaos(), max_message_size)
    return app
