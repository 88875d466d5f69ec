"""ASGI middleware in front of the provider's routes (`emailkit.provider.app` installs them).

* `RequestIds`: every answer carries a fresh ``request-id`` (and ``x-request-id``, which the
  Node SDK reads), the same one the error envelope names.
* `MultipartSend`: a ``multipart/form-data`` send (the SDKs' form for large attachments) becomes
  the JSON send it stands for, so one route, one schema and one idempotency hash serve both.
* `limit_refusal` / `body_limit`: how `emailkit.limits.JSONBodyLimits` answers here (RFC 6749's
  shape on the OAuth endpoints, the envelope elsewhere) and how large a body may be.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emailkit.limits import BODY_MAX_BYTES, SEND_BODY_MAX_BYTES
from emailkit.provider.problems import ProviderError

__all__ = ["MultipartSend", "RequestIds", "body_limit", "limit_refusal"]


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def limit_refusal(scope: dict[str, Any], status: int, field: str, message: str) -> tuple[bytes, bytes]:
    """emailkit.limits.JSONBodyLimits' answer: RFC 6749's shape on the OAuth endpoints, else the envelope."""
    if scope["path"].startswith("/v3/connect/"):
        return _json({"error": "invalid_request", "error_description": message}), b"application/json"
    rid = scope.get("state", {}).get("request_id") or str(uuid.uuid4())
    error = {"type": "invalid_request_error", "message": message, "field": field}
    return _json({"request_id": rid, "error": error}), b"application/json"



def body_limit(path: str) -> int:
    return SEND_BODY_MAX_BYTES if path.endswith(("/messages/send", "/messages/send-batch")) else BODY_MAX_BYTES



class RequestIds:
    """ASGI middleware: a fresh ``request-id`` for every request, in ``request.state`` and the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"request-id" for name, _ in headers):
                    headers.append((b"request-id", rid.encode("ascii")))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):  # the Node SDK reads this one
                    headers.append((b"x-request-id", rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class MultipartSend:
    """ASGI middleware: a ``multipart/form-data`` send, as Nylas's SDKs make one when the attachments
    reach 3 MiB, becomes the JSON send it stands for before FastAPI reads it.

    The form has a ``message`` part (the JSON body without attachments) and one file part per
    attachment, named after its content_id (an inline part) or ``file<N>``. Converting here keeps
    one route, one schema in /openapi.json and one idempotency hash for both encodings.
    """

    #: The message part may be large (a long HTML body); Starlette's default cap is 1 MiB.
    MAX_MESSAGE_PART = 16 * 1024 * 1024

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/messages/send") \
                or not Headers(scope=scope).get("content-type", "").lower().startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._as_json(StarletteRequest(scope, receive))
        except ProviderError as exc:
            rid = scope.get("state", {}).get("request_id") or str(uuid.uuid4())
            await exc.response(rid)(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # the client's later messages (a disconnect)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

    async def _as_json(self, request: StarletteRequest) -> bytes:
        def bad(field: str, problem: str) -> ProviderError:
            return ProviderError(400, "invalid_request_error", f"{field}: {problem}", field=field)

        try:
            form = await request.form(max_part_size=self.MAX_MESSAGE_PART)
        except Exception as exc:  # noqa: BLE001 - python-multipart's and Starlette's parse errors
            raise bad("body", f"the multipart/form-data body cannot be parsed ({exc}); send JSON, or a form "
                      "with a 'message' part and one file part per attachment") from None
        try:
            message = form.get("message")
            if message is None and form.get("mime") is not None:
                raise bad("mime", "raw MIME sends (send_raw_mime, ?type=mime) are not implemented; send the "
                          "message's fields as JSON (messages.send)")
            if message is None:
                raise bad("message", "a multipart send needs a 'message' part holding the JSON body")
            text = (await message.read()).decode("utf-8") if isinstance(message, UploadFile) else message
            try:
                payload = json.loads(text)
            except ValueError:
                raise bad("message", "the 'message' part is not valid JSON") from None
            if not isinstance(payload, dict):
                raise bad("message", "the 'message' part must be a JSON object")
            attachments = list(payload.get("attachments") or [])
            for name, value in form.multi_items():
                if name == "message":
                    continue
                if not isinstance(value, UploadFile):
                    raise bad(name, "is not a file; put the message's fields in the 'message' part")
                data = await value.read()
                item = {"filename": value.filename or name, "content": base64.b64encode(data).decode("ascii"),
                        "content_type": value.content_type or "application/octet-stream"}
                if not re.fullmatch(r"file\d+", name):  # the SDKs name an inline part after its content_id
                    item["content_id"] = name
                attachments.append(item)
            payload["attachments"] = attachments
            return json.dumps(payload, separators=(",", ":")).encode("utf-8")
        finally:
            await form.close()
