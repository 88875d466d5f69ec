"""The limits both lab servers enforce on their input, and the JSON reader that enforces them.

The sandbox (Mailpit's API, SMTP, POP3) and the provider (the Nylas-shaped API) take the
same input in places — a JSON body, a search, a list of recipients, a message's headers —
and refuse it at the same size, so a program that works against one works against the
other. Each number is a named constant here; docs/sandbox.md and docs/provider.md list them
("Limits and bad input").

`read_json(body)` is the one JSON reader both use. It parses with the stdlib (C) decoder and
refuses, naming where in the document the problem is:

* nesting deeper than `JSON_MAX_DEPTH` (the C decoder would raise RecursionError at ~1000
  levels; a limit far below that keeps every later step — validation, re-encoding — safe too);
* an integer outside signed 64 bits (what SQLite, Go's int64 and most JSON readers hold), and
  a number that overflows a float (``1e999``); Python's own limit would be a ValueError at
  4,300 digits, after the work is done;
* ``NaN``/``Infinity`` (not JSON; Python accepts them by default);
* a lone UTF-16 surrogate (``"\\ud800"``): valid JSON syntax but no character, and it cannot
  be written as UTF-8 into a message or a database.

The walk over the parsed value is iterative (a stack), so it never recurses either.

`JSONBodyLimits` is the same check as ASGI middleware, for an app that parses its bodies itself
(FastAPI): it caps the body's size and runs `read_json` before the app sees the body, and answers
a refusal in the app's own error shape (a callable the app passes in).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

__all__ = [
    "BODY_MAX_BYTES",
    "HEADER_MAX_FIELDS",
    "INT_MAX",
    "INT_MIN",
    "JSON_MAX_DEPTH",
    "LINE_SECONDS",
    "MIME_MAX_DEPTH",
    "POP3_IDLE_SECONDS",
    "POP3_SESSION_SECONDS",
    "QUERY_MAX_LENGTH",
    "RECIPIENTS_MAX",
    "SEARCH_MAX_TERMS",
    "SEND_BODY_MAX_BYTES",
    "SMTP_IDLE_SECONDS",
    "SMTP_SESSION_SECONDS",
    "TZ_MAX_LENGTH",
    "JSONBodyLimits",
    "JSONLimitError",
    "read_json",
]

#: A JSON request body other than a send: Mailpit caps these at 5 MiB; the provider does the same.
BODY_MAX_BYTES: Final = 5 * 1024 * 1024
#: A send's JSON body (`/api/v1/send`, the provider's `…/messages/send[-batch]`): the default
#: message size limit of the sandbox's SMTP server (its EHLO ``SIZE``), so a send that fits one fits all.
SEND_BODY_MAX_BYTES: Final = 50 * 1024 * 1024
#: Levels of JSON nesting: the deepest real request (a batch of sends with attachments) has 5.
JSON_MAX_DEPTH: Final = 32
#: JSON integers must fit in signed 64 bits.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
#: Terms in one search (Mailpit's search language, or the addresses of a provider filter).
#: SQLite refuses an expression more than 1,000 levels deep; each term is one or more levels.
SEARCH_MAX_TERMS: Final = 100
#: Characters in one search query or filter value.
QUERY_MAX_LENGTH: Final = 4096
#: Characters in a ``tz`` name (the longest IANA name, America/Argentina/ComodRivadavia, has 32).
TZ_MAX_LENGTH: Final = 64
#: Recipients of one message (To + Cc + Bcc; Mailpit's and the sandbox's SMTP ``RCPT`` limit).
RECIPIENTS_MAX: Final = 100
#: Header fields in one message (SMTP DATA, a send's custom headers).
HEADER_MAX_FIELDS: Final = 1000
#: Levels of MIME nesting (multipart in multipart, message/rfc822): Postfix's mime_nesting_limit.
MIME_MAX_DEPTH: Final = 100
#: SMTP: seconds the server waits for the next command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
SMTP_IDLE_SECONDS: Final = 300.0
#: SMTP and POP3: seconds from a line's first byte to its end (Postfix's per-record deadline idea:
#: a client that drips a byte a second is cut after this, not after the idle time).
LINE_SECONDS: Final = 30.0
#: SMTP: seconds one connection may stay open in all (Exchange's receive-connector ConnectionTimeout).
SMTP_SESSION_SECONDS: Final = 600.0
#: POP3: seconds of silence before autologout (RFC 1939 §3: at least 10 minutes).
POP3_IDLE_SECONDS: Final = 600.0
#: POP3: seconds one connection may stay open in all.
POP3_SESSION_SECONDS: Final = 1800.0


class JSONLimitError(ValueError):
    """A JSON body that cannot be used: `problem` says what, `field` where (``IDs[3]``), `fix` what to do."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{problem}; {fix}")


class _BigNumber(str):
    """A number literal kept as text because it is out of range (found again by the walk)."""


def _parse_int(text: str) -> int | _BigNumber:
    # Cheap length test first: int() of a 5,000-digit string is what Python refuses (and it is slow).
    if len(text.lstrip("-")) > 19:
        return _BigNumber(text)
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else _BigNumber(text)


def _parse_float(text: str) -> float | _BigNumber:
    value = float(text)
    return value if math.isfinite(value) else _BigNumber(text)


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError("", f"{name} is not JSON", "send a number, or null")


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _check_text(text: str, field: str, what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise JSONLimitError(field, f"{what} holds a lone UTF-16 surrogate (\\u{code:04x}), which is no character",
                             "send text as UTF-8, or pair the surrogate escapes (\\ud83d\\ude00)") from None


def read_json(body: bytes | str, *, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """The JSON value in `body`, checked against the limits above; raises `JSONLimitError`.

    A syntax error is a `json.JSONDecodeError` (also a ValueError), and a body that is not
    UTF-8 a `UnicodeDecodeError`, as `json.loads` raises them.
    """
    try:
        value = json.loads(body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONLimitError("", f"JSON nested deeper than {max_depth} levels", "flatten the document") from None
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, field, depth = stack.pop()
        if isinstance(item, _BigNumber):
            raise JSONLimitError(field, f"the number {item[:30]}{'…' if len(item) > 30 else ''} is out of range",
                                 f"use a whole number from {INT_MIN} to {INT_MAX}, or a finite decimal")
        if isinstance(item, str):
            _check_text(item, field, "the text")
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise JSONLimitError(field, f"JSON nested deeper than {max_depth} levels", "flatten the document")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, _path(field, "?"), "a key")
                    stack.append((child, _path(field, key), depth + 1))
            else:
                stack.extend((child, _path(field, i), depth + 1) for i, child in enumerate(item))
    return value


#: ``(scope, status, field, message) -> (body, content type)``: a refusal in the app's own shape.
Refusal = Callable[[dict[str, Any], int, str, str], tuple[bytes, bytes]]


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class JSONBodyLimits:
    """ASGI middleware: a body larger than `max_bytes(path)` is a 413, a JSON body past the limits a 400.

    Both answers come from `refuse`, so they have the app's error shape; anything else (a JSON
    syntax error included) reaches the app as sent, which reports it its own way.
    """

    def __init__(self, app: Any, *, refuse: Refusal, max_bytes: Callable[[str], int] = lambda path: BODY_MAX_BYTES,
                 ) -> None:
        self.app = app
        self.refuse = refuse
        self.max_bytes = max_bytes

    async def _answer(self, send: Callable[[dict[str, Any]], Awaitable[None]], scope: dict[str, Any], status: int,
                      field: str, message: str) -> None:
        body, content_type = self.refuse(scope, status, field, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes(scope["path"])
        too_big = (f"the request body is larger than {limit} bytes; send at most {limit} bytes "
                   "(attachments count base64-encoded), or split the request")
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._answer(send, scope, 413, "body", too_big)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._answer(send, scope, 413, "body", too_big)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body.strip() and _is_json(scope.get("headers", [])):
            try:
                read_json(body)
            except JSONLimitError as exc:
                field = exc.field or "body"
                await self._answer(send, scope, 400, field, f"{field}: {exc.problem}; {exc.fix}")
                return
            except ValueError:  # a syntax error or a body that is not UTF-8: the app's own message says it
                pass
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
