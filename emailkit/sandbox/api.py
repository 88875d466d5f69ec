"""The sandbox's HTTP API: Mailpit v1.33.1's REST API, as measured by tests/differential (Starlette).

Exact Mailpit JSON (field names, key order, compact like Go's encoder, ``<>&`` escaped as
Go does), text ``ok`` replies, 400 text errors, 404 ``404 page not found``; lenient input
(JSON keys case-insensitive, unknown keys ignored). docs/sandbox.md has what was measured.

Deliberate differences from Mailpit, each because Mailpit would hide a mistake:

* bad ``start``/``limit``/``before``/``tz`` parameters → 400 naming the parameter
  (Mailpit silently falls back to defaults);
* ``DELETE /api/v1/messages`` with a body that is not valid JSON → 400 and nothing deleted
  (so does Mailpit v1.33.1, measured; older releases deleted every message); a missing body or
  empty ``IDs`` still deletes all;
* an unreadable ``before:``/``after:`` date in a search → 400 (Mailpit ignores the term);
* ``PUT /api/v1/chaos`` checks every trigger before changing any and names the bad one
  (``Recipient.ErrorCode: 600 is not between 400 and 599 ...``); Mailpit may apply the
  triggers before the bad one and says only ``error code must be between 400 and 599``.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from typing import Any
from email import errors
from email.headerregistry import Address
from email.utils import getaddresses
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from emailkit.errors import InvalidInput
from emailkit.limits import HEADER_MAX_FIELDS, RECIPIENTS_MAX, JSONLimitError, read_json
from emailkit.message import compose, parse_address
from emailkit.sandbox.chaos import Chaos
from emailkit.sandbox.cors import go_error, method_not_allowed, preflight, with_mailpit_headers
from emailkit.sandbox.search import SearchError, parse_date, resolve_tz
from emailkit.sandbox.send_builder import build_message
from emailkit.sandbox.smtp_server import save_to_database
from emailkit.sandbox.store import Store, new_id
from emailkit.sandbox.summary import find_part, parse_message
from emailkit.sandbox.views import extra_routes

__all__ = ["MAILPIT_VERSION", "VERSION", "create_app", "go_json"]

#: The Mailpit release whose API this sandbox imitates (the one `make mailpit` builds).
from emailkit.mailpit import MAILPIT_VERSION  # noqa: E402
#: What `GET /api/v1/info` reports as `Version` (Mailpit's, marked as the emailkit stand-in).
VERSION = f"{MAILPIT_VERSION}-emailkit-sandbox"

JSON_BODY_LIMIT = 5 * 1024 * 1024  # Mailpit caps every JSON body but /send at 5 MB
_RESTRICTED_SEND_HEADERS = ("To", "From", "Cc", "Bcc", "Reply-To", "Date", "Subject", "Content-Type", "Mime-Version")


# --------------------------------------------------------------------------- output helpers


def go_json(value: Any) -> bytes:
    """JSON as Go's `json.Encoder` writes it: compact, UTF-8, ``<``/``>``/``&`` escaped, newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return (text + "\n").encode("utf-8")


def _json(value: Any, status: int = 200) -> Response:
    return Response(go_json(value), status_code=status, media_type="application/json")


def _text(message: str, status: int = 200) -> Response:
    # Mailpit's httpError and "ok": Content-Type "text/plain", no charset (Starlette would add one)
    return Response(message.encode("utf-8"), status_code=status, headers={"Content-Type": "text/plain"})


def _ok() -> Response:
    return _text("ok")


def _not_found() -> Response:
    # Mailpit's fourOFour: no newline, and "text/plain" without a charset
    return Response(b"404 page not found", status_code=404, headers={"Content-Type": "text/plain"})


def go_time(value: datetime) -> str:
    """Go's RFC3339Nano: the value's own offset (``Z`` for UTC), fraction trimmed."""
    text = value.isoformat()
    if value.microsecond:
        head, _dot, rest = text.partition(".")
        digits, sign, zone = rest[:6], rest[6:7], rest[7:]
        text = f"{head}.{digits.rstrip('0')}{sign}{zone}" if sign else f"{head}.{digits.rstrip('0')}"
    return text.replace("+00:00", "Z") if value.utcoffset() is not None and not value.utcoffset() else text


class _BadRequest(Exception):
    def __init__(self, message: str, *, status: int = 400, as_json: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.as_json = as_json

    def response(self) -> Response:
        if self.as_json:
            return _json({"Error": self.message}, self.status)
        return _text(self.message, self.status)


# --------------------------------------------------------------------------- input helpers


_MAX_INT_PARAM = 2**63 - 1  # SQLite binds signed 64-bit integers; anything larger would be a 500


def _int_param(request: Request, name: str, default: int) -> int:
    """Every integer query parameter goes through here: 0..2**63-1, else 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:  # also raised for strings past Python's int-conversion digit limit
        value = -1
    if not 0 <= value <= _MAX_INT_PARAM:
        raise _BadRequest(f'invalid {name} parameter: "{raw}" (use a whole number from 0 to {_MAX_INT_PARAM})')
    return value


# Parts a browser would render as a page (script included) are served as downloads, as Mailpit does.
_DOWNLOAD_ONLY_TYPES = {"text/html", "text/xml", "application/xhtml+xml", "image/svg+xml", "application/xml",
                        "text/xsl"}


def _path_escape(name: str) -> str:
    """Go's `url.PathEscape`: UTF-8 percent-encoding except unreserved characters and ``$&+:=@``."""
    return quote(name, safe="$&+:=@")


def _content_disposition(name: str, disposition: str = "inline") -> str:
    """Mailpit's part header: ``inline; filename="<name, path-escaped>"`` (the name stays ASCII and unquoted).

    Hand-written: Starlette only has this inside FileResponse (which needs a file on disk).
    """
    return f'{disposition}; filename="{_path_escape(name)}"'


def _tz(request: Request) -> tzinfo:
    try:
        return resolve_tz(request.query_params.get("tz"))
    except SearchError as exc:
        raise _BadRequest(str(exc)) from None


def _before_ms(request: Request, zone: tzinfo) -> int | None:
    raw = request.query_params.get("before")
    if not raw:
        return None
    try:
        return int(parse_date(raw, zone).timestamp() * 1000)
    except SearchError:
        raise _BadRequest(f'invalid before parameter: "{raw}" (use yyyy/mm/dd, yyyy-mm-dd hh:mm or RFC 3339)') from None


async def _body(request: Request, limit: int, *, as_json: bool = False) -> bytes:
    declared = request.headers.get("content-length")
    if limit and declared and declared.isdigit() and int(declared) > limit:
        raise _BadRequest("http: request body too large", status=413, as_json=as_json)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit and size > limit:
            raise _BadRequest("http: request body too large", status=413, as_json=as_json)
        chunks.append(chunk)
    return b"".join(chunks)


def _fold(data: dict, fields: tuple[str, ...]) -> dict:
    """Go's case-insensitive key matching onto `fields`; unknown keys dropped, last one wins."""
    by_lower = {f.lower(): f for f in fields}
    result: dict = {}
    for key, value in data.items():
        canonical = by_lower.get(str(key).lower())
        if canonical is not None:
            result[canonical] = value
    return result


def _decode(body: bytes, fields: tuple[str, ...], *, as_json: bool = False) -> dict | None:
    """The JSON object in `body` folded onto `fields`; None when the body is empty."""
    if not body.strip():
        return None
    try:
        data = read_json(body)  # depth, integer size, lone surrogates: emailkit.limits
    except JSONLimitError as exc:
        raise _BadRequest(f"invalid JSON: {exc}", as_json=as_json) from None
    except UnicodeDecodeError:
        raise _BadRequest("invalid JSON: the body is not UTF-8", as_json=as_json) from None
    except json.JSONDecodeError as exc:
        raise _BadRequest(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", as_json=as_json) from None
    if data is None:  # Go decodes `null` into an empty struct
        return None
    if not isinstance(data, dict):
        raise _BadRequest(f"invalid JSON: expected an object {{...}}, got {type(data).__name__}", as_json=as_json)
    return _fold(data, fields)


def _type_error(field: str, expected: str, as_json: bool) -> _BadRequest:
    return _BadRequest(f'invalid JSON: field "{field}" must be {expected}', as_json=as_json)


def _str_list(value: Any, field: str, *, as_json: bool = False) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _type_error(field, "an array of strings", as_json)
    return value


def _string(value: Any, field: str, *, as_json: bool = False) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(field, "a string", as_json)
    return value


def _boolean(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _type_error(field, "true or false", False)
    return value


# --------------------------------------------------------------------------- the app


def create_app(store: Store, *, max_message_size: int = 50 * 1024 * 1024, chaos: Chaos | None = None) -> Starlette:
    """The Starlette app serving Mailpit's API over `store` (and `chaos`'s triggers, when enabled)."""
    chaos = chaos if chaos is not None else Chaos()

    def handler(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except _BadRequest as exc:
                return exc.response()
            except SearchError as exc:
                return _text(str(exc), 400)

        endpoint.__name__ = fn.__name__
        return endpoint

    def summary_page(
        messages: list[dict], start: int, matches: int | None = None, unread_matches: int | None = None
    ) -> dict:
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

    def resolve(request: Request) -> str | Response:
        message_id = request.path_params["id"]
        if message_id != "latest":
            return message_id
        query = request.query_params.get("query", "").strip()
        found = store.latest(query or None, tz=_tz(request))
        return found if found is not None else _text("Message not found", 404)

    # -- messages --------------------------------------------------------------------

    @handler
    async def list_messages(request: Request) -> Response:
        start, limit = _int_param(request, "start", 0), _int_param(request, "limit", 50)
        before = _before_ms(request, _tz(request))
        return _json(summary_page(store.list(start, limit, before_ms=before), start))

    @handler
    async def set_read(request: Request) -> Response:
        data = _decode(await _body(request, JSON_BODY_LIMIT), ("IDs", "Read", "Search")) or {}
        ids = _str_list(data.get("IDs"), "IDs")
        search = _string(data.get("Search"), "Search").strip()
        read = _boolean(data.get("Read"), "Read")
        if ids and search:
            raise _BadRequest("You may specify either IDs or a search query, not both")
        if search:
            store.set_read(read=read, query=search, tz=_tz(request))
        elif ids:
            store.set_read(ids, read=read)
        else:
            store.set_read(None, read=read)
        return _ok()

    @handler
    async def delete_messages(request: Request) -> Response:
        data = _decode(await _body(request, JSON_BODY_LIMIT), ("IDs",)) or {}
        ids = _str_list(data.get("IDs"), "IDs")
        store.delete(ids or None)
        return _ok()

    @handler
    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            raise _BadRequest("Error: no search query")
        start, limit = _int_param(request, "start", 0), _int_param(request, "limit", 50)
        zone = _tz(request)
        page, matches, unread = store.search(query, start, limit, tz=zone, before_ms=_before_ms(request, zone))
        return _json(summary_page(page, start, matches, unread))

    @handler
    async def delete_search(request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            raise _BadRequest("Error: no search query")
        store.delete_search(query, tz=_tz(request))
        return _ok()

    # -- one message -----------------------------------------------------------------

    @handler
    async def get_message(request: Request) -> Response:
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        stored = store.get(message_id, mark_read=True)
        if stored is None:
            return _not_found()
        try:
            parsed = parse_message(stored.raw)
        except Exception as exc:  # noqa: BLE001 - Mailpit answers 400 when it cannot parse a message
            raise _BadRequest(f"error parsing message: {exc}") from None
        date = parsed.date or datetime.fromtimestamp(stored.created_ms / 1000, timezone.utc)
        return _json(
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
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        headers = store.headers(message_id)
        return _not_found() if headers is None else _json(headers)

    @handler
    async def get_raw(request: Request) -> Response:
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        raw = store.raw(message_id)
        if raw is None:
            return _not_found()
        headers = {}
        if request.query_params.get("dl") == "1":
            headers["Content-Disposition"] = f'attachment; filename="{message_id}.eml"'
        return Response(raw, media_type="text/plain; charset=utf-8", headers=headers)

    @handler
    async def get_part(request: Request) -> Response:
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        raw = store.raw(message_id)
        part = find_part(raw, request.path_params["part"]) if raw is not None else None
        if part is None:
            return _not_found()
        name = part.filename or part.content_id
        content_type, disposition = part.content_type, "inline"
        if content_type.lower() in _DOWNLOAD_ONLY_TYPES:
            content_type, disposition = "application/octet-stream", "attachment"
        # the part's own type, exactly (no charset added, as Starlette's media_type would)
        headers = {"Content-Type": content_type, "Content-Disposition": _content_disposition(name, disposition)}
        return Response(part.data, headers=headers)

    # -- send ------------------------------------------------------------------------

    def build_and_store(data: dict, username: str | None) -> str:
        def addresses(key: str, label: str) -> list[tuple[str, str]]:
            items = data.get(key)
            if items is None:
                return []
            if not isinstance(items, list):
                raise _type_error(key, "an array", True)
            result = []
            for i, item in enumerate(items):
                if key == "Bcc":
                    email, name = _string(item, f"{key}[{i}]", as_json=True), ""
                else:
                    if not isinstance(item, dict):
                        raise _type_error(f"{key}[{i}]", 'an object {"Email": ..., "Name": ...}', True)
                    folded = _fold(item, ("Email", "Name"))
                    email = _string(folded.get("Email"), f"{key}[{i}].Email", as_json=True)
                    name = _string(folded.get("Name"), f"{key}[{i}].Name", as_json=True)
                try:
                    parse_address(email, f"{key}[{i}]")
                except InvalidInput:
                    raise _BadRequest(f"invalid {label} address: {email}", as_json=True) from None
                result.append((name, email))
            return result

        sender_raw = data.get("From")
        if sender_raw is not None and not isinstance(sender_raw, dict):
            raise _type_error("From", 'an object {"Email": ..., "Name": ...}', True)
        sender = _fold(sender_raw or {}, ("Email", "Name"))
        quoted_from: Address | None = None
        from_email = _string(sender.get("Email"), "From.Email", as_json=True)
        from_name = _string(sender.get("Name"), "From.Name", as_json=True)
        try:
            # also takes "Name <a@b.c>", as Mailpit does, and like Mailpit keeps only the address (the
            # name comes from From.Name alone)
            _, from_email = parse_address(from_email, "From")
        except InvalidInput:
            # Mailpit parses From.Email as an address list entry: "API <api@example.com>" is accepted
            parsed_from = getaddresses([from_email]) if "<" in from_email else []
            if len(parsed_from) == 1 and "@" in parsed_from[0][1]:
                from_email = parsed_from[0][1]
            else:
                # and a quoted local part with spaces ("odd user"@example.com), which the project's own
                # address check refuses: the message is composed around it (see below)
                quoted_from = _quoted_address(from_email)
                if quoted_from is None:
                    raise _BadRequest(f"invalid From address: {from_email}", as_json=True) from None
        to = addresses("To", "To")
        cc = addresses("Cc", "Cc")
        bcc = addresses("Bcc", "Bcc")
        reply_to = addresses("ReplyTo", "Reply-To")

        restricted = list(_RESTRICTED_SEND_HEADERS)
        headers_in = data.get("Headers") or {}
        if not isinstance(headers_in, dict):
            raise _type_error("Headers", 'an object {"Name": "value"}', True)
        if len(headers_in) > HEADER_MAX_FIELDS:
            raise _BadRequest(f"too many headers: {len(headers_in)} in Headers (at most {HEADER_MAX_FIELDS} header "
                              "fields per message)", as_json=True)
        headers: dict[str, str] = {}
        tags = _str_list(data.get("Tags"), "Tags", as_json=True)
        if tags:
            headers["X-Tags"] = ", ".join(tags)
            restricted.append("X-Tags")
        lowered = {h.lower() for h in restricted}
        message_id = None
        for key, value in headers_in.items():
            if key.lower() in lowered:
                raise _BadRequest(f'cannot overwrite header: "{key}"', as_json=True)
            value = _string(value, f"Headers.{key}", as_json=True)
            if key.lower() == "message-id":
                message_id = value
            else:
                headers[key] = value

        files = []
        parts: list[tuple[str, str, bytes, str]] = []  # as given, for Mailpit's builder (it sniffs a missing type)
        raw_attachments = data.get("Attachments") or []
        if not isinstance(raw_attachments, list):
            raise _type_error("Attachments", "an array", True)
        for i, item in enumerate(raw_attachments):
            if not isinstance(item, dict):
                raise _type_error(f"Attachments[{i}]", "an object", True)
            att = _fold(item, ("Content", "Filename", "ContentType", "ContentID"))
            filename = _string(att.get("Filename"), f"Attachments[{i}].Filename", as_json=True)
            content = _string(att.get("Content"), f"Attachments[{i}].Content", as_json=True).split(",")[-1]
            try:
                payload = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _BadRequest(f'error decoding base64 attachment "{filename}": {exc}', as_json=True) from None
            given_type = _string(att.get("ContentType"), f"Attachments[{i}].ContentType", as_json=True)
            ctype = given_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
            cid = _string(att.get("ContentID"), f"Attachments[{i}].ContentID", as_json=True)
            files.append((filename, ctype, payload, cid) if cid else (filename, ctype, payload))
            parts.append((filename, given_type, payload, cid))

        text = _string(data.get("Text"), "Text", as_json=True)
        html = _string(data.get("HTML"), "HTML", as_json=True)
        try:
            message = compose(
                sender=(from_name, from_email if quoted_from is None else "quoted-local-part@sender.invalid"),
                to=to,
                cc=cc,
                bcc=bcc,
                reply_to=reply_to,
                subject=_string(data.get("Subject"), "Subject", as_json=True),
                text=text if (text or not html) else None,
                html=html or None,
                headers=headers,
                message_id=message_id if message_id is not None else f"<{new_id()}@mailpit>",
                attachments=files,
            )
            message.as_bytes(policy=message.policy)  # compose() checked every field: now write it as Mailpit does
            sent_headers = dict(headers) if message_id is None else {**headers, "Message-ID": message_id}
            raw = build_message(
                from_name=from_name,
                from_email=from_email if quoted_from is None else f"{quoted_from.username}@{quoted_from.domain}",
                to=to, cc=cc, reply_to=reply_to, subject=_string(data.get("Subject"), "Subject", as_json=True),
                text=text, html=html, headers=sent_headers, attachments=parts,
            )
        except InvalidInput as exc:
            raise _BadRequest(str(exc), as_json=True) from None
        except ValueError as exc:
            # The email package refuses what compose() let through, e.g. U+0085/U+2028 (line
            # breaks to Python) in a header value: the caller's input, so 400 rather than 500.
            raise _BadRequest(f"invalid message: {exc}", as_json=True) from None
        recipients = [email for _, email in to + cc + bcc]
        if len(recipients) > RECIPIENTS_MAX:  # emailkit.limits: SMTP's RCPT limit, and the provider's
            raise _BadRequest(f"too many recipients: {len(recipients)} in To, Cc and Bcc (at most {RECIPIENTS_MAX} "
                              "per message; send several messages)", as_json=True)
        return save_to_database(store, raw, from_email, recipients, username=username)

    async def send(request: Request) -> Response:
        try:
            body = await _body(request, max_message_size, as_json=True)
            data = _decode(
                body,
                ("From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Text", "HTML", "Attachments", "Tags", "Headers"),
                as_json=True,
            )
            if data is None:
                raise _BadRequest("invalid JSON: the body is empty (send a JSON object)", as_json=True)
            username = _basic_auth_user(request)
            if len(body) > 1024 * 1024:
                message_id = await run_in_threadpool(build_and_store, data, username)
            else:
                message_id = build_and_store(data, username)
        except _BadRequest as exc:
            return exc.response()
        return _json({"ID": message_id})

    # -- tags ------------------------------------------------------------------------

    @handler
    async def get_tags(request: Request) -> Response:
        return _json(store.tags())

    @handler
    async def set_tags(request: Request) -> Response:
        data = _decode(await _body(request, JSON_BODY_LIMIT), ("Tags", "IDs")) or {}
        store.set_tags(_str_list(data.get("IDs"), "IDs"), _str_list(data.get("Tags"), "Tags"))
        return _ok()

    @handler
    async def rename_tag(request: Request) -> Response:
        data = _decode(await _body(request, JSON_BODY_LIMIT), ("Name",)) or {}
        try:
            store.rename_tag(request.path_params["tag"], _string(data.get("Name"), "Name"))
        except (LookupError, ValueError) as exc:
            raise _BadRequest(str(exc)) from None
        return _ok()

    @handler
    async def delete_tag(request: Request) -> Response:
        try:
            store.delete_tag(request.path_params["tag"])
        except LookupError as exc:
            raise _BadRequest(str(exc)) from None
        return _ok()

    # -- application -----------------------------------------------------------------

    async def info(request: Request) -> Response:
        counts = store.counts()
        stats = store.stats
        return _json(
            {
                "Version": VERSION,
                "LatestVersion": "disabled",
                "Database": str(store.path),
                "DatabaseSize": store.size_bytes(),
                "Messages": counts.total,
                "Unread": counts.unread,
                "Tags": store.tag_counts(),
                "RuntimeStats": {
                    "Uptime": int(time.time() - stats.started),
                    "Memory": _memory_bytes(),
                    "MessagesDeleted": stats.messages_deleted,
                    "SMTPAccepted": stats.smtp_accepted,
                    "SMTPAcceptedSize": stats.smtp_accepted_size,
                    "SMTPRejected": stats.smtp_rejected,
                    "SMTPIgnored": stats.smtp_ignored,
                },
            }
        )

    async def webui(request: Request) -> Response:
        return _json(
            {
                "Label": "",  # as the lab's Mailpit, started without --label
                "MessageRelay": {
                    "Enabled": False,
                    "SMTPServer": "",
                    "ReturnPath": "",
                    "AllowedRecipients": "",
                    "BlockedRecipients": "",
                    "OverrideFrom": "",
                    "PreserveMessageIDs": False,
                    "RecipientAllowlist": "",
                },
                "SpamAssassin": False,
                "Rspamd": False,
                "ChaosEnabled": chaos.enabled,
                "DuplicatesIgnored": False,
                "HideDeleteAllButton": False,
            }
        )

    @handler
    async def get_chaos(request: Request) -> Response:
        if not chaos.enabled:
            return _text("Chaos is not enabled", 400)
        return _json(chaos.to_json())

    @handler
    async def set_chaos(request: Request) -> Response:
        if not chaos.enabled:
            return _text("Chaos is not enabled", 400)
        body = await _body(request, JSON_BODY_LIMIT)
        if not body.strip():
            raise _BadRequest('invalid JSON: the body is empty (send {} to reset every trigger, or '
                               '{"Recipient": {"ErrorCode": 550, "Probability": 50}})')
        data = _decode(body, ("Sender", "Recipient", "Authentication")) or {}
        try:
            chaos.update(data)
        except InvalidInput as exc:
            raise _BadRequest(str(exc)) from None
        return _json(chaos.to_json())

    async def livez(request: Request) -> Response:
        return _text("ok")

    async def readyz(request: Request) -> Response:
        return _text("ok") if store.ping() else _text("database not ready", 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return go_error("404 page not found", 404)  # Go's ServeMux for a path no route serves

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Logged, and the connection kept, by emailkit.serving.NeverDrop (which set the request id).
        rid = request.scope.get("state", {}).get("request_id", "unknown")
        return _text(f"internal error (request id {rid}): the server log has details", 500)

    routes = [
        Route("/api/v1/messages", list_messages, methods=["GET"]),
        Route("/api/v1/messages", set_read, methods=["PUT"]),
        Route("/api/v1/messages", delete_messages, methods=["DELETE"]),
        Route("/api/v1/search", search, methods=["GET"]),
        Route("/api/v1/search", delete_search, methods=["DELETE"]),
        Route("/api/v1/send", send, methods=["POST"]),
        Route("/api/v1/message/{id}", get_message, methods=["GET"]),
        Route("/api/v1/message/{id}/headers", get_headers, methods=["GET"]),
        Route("/api/v1/message/{id}/raw", get_raw, methods=["GET"]),
        Route("/api/v1/message/{id}/part/{part}", get_part, methods=["GET"]),
        Route("/api/v1/tags", get_tags, methods=["GET"]),
        Route("/api/v1/tags", set_tags, methods=["PUT"]),
        Route("/api/v1/tags/{tag}", rename_tag, methods=["PUT"]),
        Route("/api/v1/tags/{tag}", delete_tag, methods=["DELETE"]),
        Route("/api/v1/info", info, methods=["GET"]),
        Route("/api/v1/webui", webui, methods=["GET"]),
        Route("/api/v1/chaos", get_chaos, methods=["GET"]),
        Route("/api/v1/chaos", set_chaos, methods=["PUT"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *extra_routes(store, resolve),
        Route("/api/v1/{rest:path}", preflight, methods=["OPTIONS"]),  # CORS preflight, as Mailpit
    ]
    # Mailpit's middleware (CORS, Referrer-Policy) around every route, as its middleWareFunc does
    routes = [Route(r.path, with_mailpit_headers(r.endpoint), methods=sorted(r.methods or ()))
              for r in routes]
    app = Starlette(routes=routes, exception_handlers={404: not_found, Exception: internal_error})
    app.add_exception_handler(405, method_not_allowed(lambda: app.router.routes))
    return app


def _quoted_address(value: str) -> Address | None:
    """`value` as an addr-spec with a quoted local part (``"odd user"@example.com``), else None."""
    if not value.startswith('"'):
        return None
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, errors.HeaderParseError):
        return None
    return address if address.username and address.domain else None


def _basic_auth_user(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _, _ = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    return user or None


def _memory_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
