"""Mailpit's answers, as its Go server writes them: JSON, ``ok``, text errors, ``404 page not found``.

* JSON as Go's `json.Encoder` writes it (`go_json`: compact, UTF-8, ``<>&`` escaped, a newline), times
  as Go's RFC3339Nano (`go_time`);
* ``ok`` and error messages as ``text/plain`` without a charset (Mailpit's `httpError`);
* an answer decided before a route's end — a refusal (`BadRequest`), a message that is not there —
  is raised as an `EarlyAnswer` and returned by `handler`, which wraps every endpoint.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from emailkit.sandbox.json_input import FieldError
from emailkit.sandbox.search import SearchError

__all__ = ["BadRequest", "EarlyAnswer", "content_disposition", "go_json", "go_time", "handler", "json_response",
           "not_found", "ok", "path_escape", "text"]

Endpoint = Callable[[Request], Awaitable[Response]]


def go_json(value: Any) -> bytes:
    """JSON as Go's `json.Encoder` writes it: compact, UTF-8, ``<``/``>``/``&`` escaped, newline."""
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "<" in encoded or ">" in encoded or "&" in encoded or "\u2028" in encoded or "\u2029" in encoded:
        encoded = (
            encoded.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return (encoded + "\n").encode("utf-8")


def go_time(value: datetime) -> str:
    """Go's RFC3339Nano: the value's own offset (``Z`` for UTC), fraction trimmed."""
    formatted = value.isoformat()
    if value.microsecond:
        head, _dot, rest = formatted.partition(".")
        digits, sign, zone = rest[:6], rest[6:7], rest[7:]
        formatted = f"{head}.{digits.rstrip('0')}{sign}{zone}" if sign else f"{head}.{digits.rstrip('0')}"
    offset = value.utcoffset()
    return formatted.replace("+00:00", "Z") if offset is not None and not offset else formatted


def json_response(value: Any, status: int = 200) -> Response:
    """`value` as Go's JSON, ``application/json``."""
    return Response(go_json(value), status_code=status, media_type="application/json")


def text(message: str, status: int = 200, content_type: str = "text/plain") -> Response:
    """`message` as the body; ``text/plain`` without a charset unless `content_type` says otherwise.

    Mailpit's httpError and "ok" have no charset; Starlette's ``media_type`` would add one.
    """
    return Response(message.encode("utf-8"), status_code=status, headers={"Content-Type": content_type})


def ok() -> Response:
    """Mailpit's ``ok``."""
    return text("ok")


def not_found() -> Response:
    """Mailpit's fourOFour: ``404 page not found``, no newline, ``text/plain`` without a charset."""
    return text("404 page not found", 404)


def path_escape(name: str) -> str:
    """Go's `url.PathEscape`: UTF-8 percent-encoding except unreserved characters and ``$&+:=@``."""
    return quote(name, safe="$&+:=@")


def content_disposition(name: str, disposition: str = "inline") -> str:
    """Mailpit's part header: ``inline; filename="<name, path-escaped>"`` (the name stays ASCII and unquoted).

    Hand-written: Starlette only has this inside FileResponse (which needs a file on disk).
    """
    return f'{disposition}; filename="{path_escape(name)}"'


class EarlyAnswer(Exception):
    """An answer decided before the route's end (a message that is not there, a refusal); `handler` returns it."""

    def __init__(self, answer: Response) -> None:
        super().__init__(answer.status_code)
        self.answer = answer

    def response(self) -> Response:
        return self.answer


class BadRequest(EarlyAnswer):
    """A refusal in Mailpit's words: text (most routes) or ``{"Error": ...}`` (``/api/v1/send``)."""

    def __init__(self, message: str, *, status: int = 400, as_json: bool = False) -> None:
        super().__init__(json_response({"Error": message}, status) if as_json else text(message, status))
        self.message = message
        self.status = status


def handler(endpoint: Endpoint) -> Endpoint:
    """`endpoint` answering an `EarlyAnswer` it raises, and bad input (`FieldError`, `SearchError`) as text 400."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except EarlyAnswer as exc:
            return exc.response()
        except (FieldError, SearchError) as exc:
            return text(str(exc), 400)

    return wrapped
