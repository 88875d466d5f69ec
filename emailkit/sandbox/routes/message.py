"""One message: ``/api/v1/message/{ID}`` (marks it read) and its headers, raw source, parts, thumbnails, checks.

``{ID}`` may be ``latest`` (``?query=`` narrows it), as in Mailpit. Answers as Mailpit v1.33.1 in the
lab's configuration (no relay), measured by ``tests/differential``:

* ``…/part/{PartID}`` — the part with its own type, exactly; types a browser would render as a page
  (script included) are served as downloads, as Mailpit does; ``…/part/{PartID}/thumb`` a JPEG
  (`emailkit.sandbox.previews.thumbnail`);
* ``…/link-check`` — the links Mailpit would check; the sandbox requests none (``StatusCode 0``);
* ``…/html-check`` — Mailpit's own error answers (no HTML, unknown ID); a message *with* HTML gets 501:
  the check needs Mailpit's caniemail database and CSS engine;
* ``POST …/release`` — validates as Mailpit does, then fails as Mailpit without a relay does
  (``400 SMTP error: error connecting to :0: ...``, its words, measured).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import getaddresses

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.previews import check_link, link_targets, thumbnail, thumbnail_name
from emailkit.sandbox.routes.answers import (BadRequest, EarlyAnswer, content_disposition, go_time, handler,
                                             json_response, not_found, path_escape, text)
from emailkit.sandbox.routes.params import message_id, resources
from emailkit.sandbox.store import StoredMessage
from emailkit.sandbox.summary import AttachmentInfo, find_part, parse_message

__all__ = ["get_headers", "get_message", "get_part", "get_raw", "get_thumbnail", "html_check", "link_check",
           "message_part", "release", "routes", "stored_message"]

# Parts a browser would render as a page (script included) are served as downloads, as Mailpit does.
_DOWNLOAD_ONLY_TYPES = {"text/html", "text/xml", "application/xhtml+xml", "image/svg+xml", "application/xml",
                        "text/xsl"}


# --------------------------------------------------------------------------- lookups


def stored_message(request: Request, *, mark_read: bool = False,
                   missing: Callable[[], Response] = not_found) -> tuple[str, StoredMessage]:
    """The ``{id}`` message and its ID, else an `EarlyAnswer`: `missing()` for an unknown ID.

    One lookup for every route that reads a whole message; what an unknown ID gets is the parameter
    because Mailpit answers it differently on purpose: ``404 page not found`` on the API,
    ``Message not found`` on the ``/view/`` pages. ``latest`` with no message is always
    ``Message not found`` (`params.message_id`).
    """
    found_id = message_id(request)
    stored = resources(request).store.get(found_id, mark_read=mark_read)
    if stored is None:
        raise EarlyAnswer(missing())
    return found_id, stored


def message_part(request: Request, *, missing: Callable[[], Response]) -> AttachmentInfo:
    """The ``{part}`` of the ``{id}`` message, else an `EarlyAnswer`: `missing()` for an unknown message or part.

    One lookup for the part and its thumbnail, the difference a parameter: Mailpit answers a missing
    part with its ``404 page not found`` for ``/part/{PartID}``, but with the database's error as a 400
    (``sql: no rows in result set``) for ``/part/{PartID}/thumb``.
    """
    raw = resources(request).store.raw(message_id(request))
    part = find_part(raw, request.path_params["part"]) if raw is not None else None
    if part is None:
        raise EarlyAnswer(missing())
    return part


def _no_rows() -> Response:
    return text("sql: no rows in result set", 400)


# --------------------------------------------------------------------------- routes


@handler
async def get_message(request: Request) -> Response:
    """``GET /api/v1/message/{ID}``: Mailpit's `Message` JSON; marks the message read."""
    found_id, stored = stored_message(request, mark_read=True)
    try:
        parsed = parse_message(stored.raw)
    except Exception as exc:  # noqa: BLE001 - Mailpit answers 400 when it cannot parse a message
        raise BadRequest(f"error parsing message: {exc}") from None
    date = parsed.date or datetime.fromtimestamp(stored.created_ms / 1000, timezone.utc)
    return json_response(
        {
            "ID": stored.id,
            "MessageID": parsed.message_id,
            "From": parsed.sender,
            "To": parsed.to,
            "Cc": parsed.cc,
            "Bcc": parsed.bcc,
            "ReplyTo": parsed.reply_to,
            "ReturnPath": parsed.return_path,
            "Subject": parsed.subject,
            "ListUnsubscribe": parsed.list_unsubscribe,
            "Date": go_time(date),
            "Tags": stored.tags,
            "Username": stored.username,
            "Text": parsed.text,
            "HTML": parsed.html,
            "Size": len(stored.raw),
            "Inline": [a.to_json() for a in parsed.inline],
            "Attachments": [a.to_json() for a in parsed.attachments],
        }
    )


@handler
async def get_headers(request: Request) -> Response:
    """``GET /api/v1/message/{ID}/headers``: every header, ``{"Name": ["value", ...]}``."""
    headers = resources(request).store.headers(message_id(request))
    return not_found() if headers is None else json_response(headers)


@handler
async def get_raw(request: Request) -> Response:
    """``GET /api/v1/message/{ID}/raw`` (``?dl=1``: as a download)."""
    found_id = message_id(request)
    raw = resources(request).store.raw(found_id)
    if raw is None:
        return not_found()
    headers = {}
    if request.query_params.get("dl") == "1":
        headers["Content-Disposition"] = f'attachment; filename="{found_id}.eml"'
    return Response(raw, media_type="text/plain; charset=utf-8", headers=headers)


@handler
async def get_part(request: Request) -> Response:
    """``GET /api/v1/message/{ID}/part/{PartID}``: the part's bytes with its own type."""
    part = message_part(request, missing=not_found)
    name = part.filename or part.content_id
    content_type, disposition = part.content_type, "inline"
    if content_type.lower() in _DOWNLOAD_ONLY_TYPES:
        content_type, disposition = "application/octet-stream", "attachment"
    # the part's own type, exactly (no charset added, as Starlette's media_type would)
    headers = {"Content-Type": content_type, "Content-Disposition": content_disposition(name, disposition)}
    return Response(part.data, headers=headers)


@handler
async def get_thumbnail(request: Request) -> Response:
    """``GET /api/v1/message/{ID}/part/{PartID}/thumb``: a 180×120 JPEG."""
    part = message_part(request, missing=_no_rows)
    name = thumbnail_name(part.filename or part.content_id)
    return Response(thumbnail(part.data, part.content_type),
                    headers={"Content-Type": "image/jpeg", "Content-Disposition": f'filename="{path_escape(name)}"'})


@handler
async def link_check(request: Request) -> Response:
    """``GET /api/v1/message/{ID}/link-check``: the links, none requested beyond loopback."""
    _, stored = stored_message(request)
    parsed = parse_message(stored.raw)
    links = [check_link(link) for link in link_targets(parsed.html, parsed.text)]
    errors = sum(1 for link in links if link["StatusCode"] >= 400 or link["StatusCode"] == 0)
    return json_response({"Errors": errors, "Links": links})


@handler
async def html_check(request: Request) -> Response:
    """``GET /api/v1/message/{ID}/html-check``: Mailpit's refusals; 501 for a message with HTML."""
    _, stored = stored_message(request)
    if not parse_message(stored.raw).html:
        return text("message does not contain HTML", 400)
    return text("html-check is not available on the sandbox: it needs Mailpit's caniemail database and "
                "CSS engine; run real Mailpit ('make mailpit', then EMAILKIT_MAILBOX=mailpit)", 501,
                "text/plain; charset=utf-8")


@handler
async def release(request: Request) -> Response:
    """``POST /api/v1/message/{ID}/release`` ``{"To": [...]}``: checked, then Mailpit's answer without a relay."""
    if resources(request).store.raw(message_id(request)) is None:
        return not_found()
    body = await request.body()
    if not body.strip():
        return text("EOF", 400)  # Go's json.Decoder on an empty body, as Mailpit answers
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return text(f"invalid JSON: {exc}", 400)
    to = data.get("To") if isinstance(data, dict) else None
    if to is not None and not (isinstance(to, list) and all(isinstance(t, str) for t in to)):
        return text('invalid JSON: field "To" must be an array of strings', 400)
    for address in to or []:
        parsed = getaddresses([address])
        if len(parsed) != 1 or "@" not in parsed[0][1]:
            return text(f"Invalid email address: {address}", 400)
    if not to:
        return text("No valid addresses found", 400)
    # Mailpit with no --smtp-relay-* configured dials an empty address; its answer, word for word:
    return text("SMTP error: error connecting to :0: dial tcp :0: connect: connection refused", 400)


routes = [
    Route("/api/v1/message/{id}", get_message, methods=["GET"]),
    Route("/api/v1/message/{id}/headers", get_headers, methods=["GET"]),
    Route("/api/v1/message/{id}/raw", get_raw, methods=["GET"]),
    Route("/api/v1/message/{id}/part/{part}", get_part, methods=["GET"]),
    Route("/api/v1/message/{id}/part/{part}/thumb", get_thumbnail, methods=["GET"]),
    Route("/api/v1/message/{id}/link-check", link_check, methods=["GET"]),
    Route("/api/v1/message/{id}/html-check", html_check, methods=["GET"]),
    Route("/api/v1/message/{id}/release", release, methods=["POST"]),
]
