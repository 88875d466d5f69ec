"""What a route reads from a request: the app's resources, query parameters, the body, the message ``{id}``.

Stricter than Mailpit where Mailpit would hide a mistake: a bad ``start``/``limit``/``before``/``tz``
is a 400 naming the parameter (Mailpit silently falls back to its defaults).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from starlette.requests import Request

from emailkit.sandbox.chaos import Chaos
from emailkit.sandbox.json_input import decode_object
from emailkit.sandbox.routes.answers import BadRequest, EarlyAnswer, text
from emailkit.sandbox.search import SearchError, parse_date, resolve_tz
from emailkit.sandbox.store import Store

__all__ = ["JSON_BODY_LIMIT", "Resources", "basic_auth_user", "before_ms", "int_param", "json_body", "message_id",
           "read_body", "resources", "tz"]

JSON_BODY_LIMIT = 5 * 1024 * 1024  # Mailpit caps every JSON body but /send at 5 MB
_MAX_INT_PARAM = 2**63 - 1  # SQLite binds signed 64-bit integers; anything larger would be a 500


@dataclass(frozen=True)
class Resources:
    """What the routes work on, kept on ``app.state.resources`` by `emailkit.sandbox.app.create_app`."""

    store: Store
    chaos: Chaos
    max_message_size: int


def resources(request: Request) -> Resources:
    """The store, chaos triggers and size limit of the app serving `request`."""
    found: Resources = request.app.state.resources
    return found


def int_param(request: Request, name: str, default: int) -> int:
    """Every integer query parameter goes through here: 0..2**63-1, else 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:  # also raised for strings past Python's int-conversion digit limit
        value = -1
    if not 0 <= value <= _MAX_INT_PARAM:
        raise BadRequest(f'invalid {name} parameter: "{raw}" (use a whole number from 0 to {_MAX_INT_PARAM})')
    return value


def tz(request: Request) -> tzinfo:
    """The ``tz`` parameter (Mailpit's time zone for search dates), else 400."""
    try:
        return resolve_tz(request.query_params.get("tz"))
    except SearchError as exc:
        raise BadRequest(str(exc)) from None


def before_ms(request: Request, zone: tzinfo) -> int | None:
    """The ``before`` parameter as epoch milliseconds, None without one, else 400."""
    raw = request.query_params.get("before")
    if not raw:
        return None
    try:
        return int(parse_date(raw, zone).timestamp() * 1000)
    except SearchError:
        raise BadRequest(f'invalid before parameter: "{raw}" (use yyyy/mm/dd, yyyy-mm-dd hh:mm or RFC 3339)') from None


async def read_body(request: Request, limit: int, *, as_json: bool = False) -> bytes:
    """The body, at most `limit` bytes (0: no limit); more is Go's ``413 http: request body too large``."""
    declared = request.headers.get("content-length")
    if limit and declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest("http: request body too large", status=413, as_json=as_json)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit and size > limit:
            raise BadRequest("http: request body too large", status=413, as_json=as_json)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object body (at most 5 MB) folded onto `fields`; empty or ``null`` is ``{}`` (Go's zero struct)."""
    return decode_object(await read_body(request, JSON_BODY_LIMIT), fields) or {}


def message_id(request: Request) -> str:
    """The ``{id}`` of the path; ``latest`` (``?query=`` narrows it) is the newest message's, else 404."""
    given: str = request.path_params["id"]
    if given != "latest":
        return given
    query = request.query_params.get("query", "").strip()
    found = resources(request).store.latest(query or None, tz=tz(request))
    if found is None:
        raise EarlyAnswer(text("Message not found", 404))
    return found


def basic_auth_user(request: Request) -> str | None:
    """The user name of a Basic ``Authorization`` header (Mailpit stores it as the message's Username)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _, _ = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    return user or None
