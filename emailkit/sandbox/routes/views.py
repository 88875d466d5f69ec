"""``/view/{ID}.html`` and ``/view/{ID}.txt``: a message's HTML (``cid:`` images linked to their parts) or text.

As Mailpit's `apiv1/testing.go`; neither marks the message read. An unknown ID is ``Message not
found`` here (the API's routes say ``404 page not found``): see `routes.message.stored_message`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.previews import html_view
from emailkit.sandbox.routes.answers import handler, text
from emailkit.sandbox.routes.message import stored_message
from emailkit.sandbox.summary import parse_message

__all__ = ["routes", "view_html", "view_text"]

_PAGE = "text/plain; charset=utf-8"


def _message_not_found() -> Response:
    return text("Message not found", 404, _PAGE)


@handler
async def view_html(request: Request) -> Response:
    """``GET /view/{ID}.html``."""
    found_id, stored = stored_message(request, missing=_message_not_found)
    parsed = parse_message(stored.raw)
    if not parsed.html:
        return text("This message does not contain a HTML part", 404, _PAGE)
    return text(html_view(parsed.html, found_id, parsed.inline + parsed.attachments), 200, "text/html; charset=utf-8")


@handler
async def view_text(request: Request) -> Response:
    """``GET /view/{ID}.txt``."""
    _, stored = stored_message(request, missing=_message_not_found)
    return text(parse_message(stored.raw).text, 200, _PAGE)


routes = [
    Route("/view/{id}.html", view_html, methods=["GET"]),
    Route("/view/{id}.txt", view_text, methods=["GET"]),
]
