"""The provider's HTTP API (FastAPI): Nylas-v3-shaped paths in front of `Service`.

    app = create_app(service, oauth_router=oauth.router)

Every grant-scoped route authorises first (API key, or an access token with the right
scope for that grant), then applies the grant's rate limit. Every answer carries a
``request-id`` header; every error is the ``{request_id, error}`` envelope
(`emailkit.provider.problems`). ``/openapi.json`` documents it all; ``/docs`` serves
Swagger UI from local files when the `fastapi-offline` package is installed (no CDN),
and FastAPI's default page (which loads Swagger UI from a CDN) otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emailkit.errors import InvalidInput
from emailkit.limits import (BODY_MAX_BYTES, HEADER_MAX_FIELDS, QUERY_MAX_LENGTH, SEARCH_MAX_TERMS, SEND_BODY_MAX_BYTES,
                             JSONBodyLimits)
from emailkit.provider.problems import (
    IMPLEMENTED,
    ProviderError,
    error_responses,
    install_error_handlers,
    request_id_of,
)
from emailkit.provider.fault_injection import Faults
from emailkit.provider.models import (
    MAX_BATCH,
    ApplicationOut,
    BatchResponse,
    BatchSendRequest,
    CustomAuthRequest,
    DataResponse,
    DeleteResponse,
    FaultsIn,
    FaultsOut,
    GrantCreate,
    GrantOut,
    ListResponse,
    MessageOut,
    RedirectUriIn,
    RedirectUriOut,
    RedirectUriUpdate,
    SendRequest,
    SentMessageOut,
    TemplateCreate,
    TemplateOut,
    ThreadOut,
    UpdateMessageRequest,
    WebhookCreate,
    WebhookCreatedOut,
    WebhookDeleteResponse,
    WebhookOut,
    WebhookUpdate,
)
from emailkit.provider.service import Access, Service
from emailkit.provider.store import MessageFilter, ThreadFilter, normalise_email
from emailkit.provider.templating import check as check_template
from emailkit.provider.webhooks import EVENT_TYPES, LEGACY_EVENT_TYPES

__all__ = ["create_app"]

_bearer = HTTPBearer(auto_error=False, description="The provider's API key, or an OAuth access token for one grant")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
GrantRef = Annotated[str, Path(description="Grant ID, the grant's email address, or 'me' with an access token")]
IncludeHeaders = Annotated[Literal["standard", "include_headers"] | None,
                           Query(description="include_headers adds the headers array")]

_ERRORS = (400, 401, 403, 404, 429, 503)
#: Unix seconds at 9999-12-31T23:59:59Z: the largest time a filter may name.
UNIX_MAX = 253402300799


def _token(credentials: HTTPAuthorizationCredentials | None, request: Request) -> str | None:
    if credentials is not None:
        return credentials.credentials
    header = request.headers.get("authorization")
    if header:  # present but not "Bearer <token>"
        raise ProviderError(401, "unauthorized", "use 'Authorization: Bearer <API key or access token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="emailkit"'})
    return None


#: Query parameters Nylas documents that this provider does not implement, and what to do instead.
_NOT_IMPLEMENTED_QUERY = {
    "search_query_native": "use the filters subject, from, to, cc, bcc, any_email, in, unread, starred, "
                           "has_attachment, received_before/received_after",
    "select": "drop it: every field is returned",
    "metadata_pair": "drop it: the provider keeps no metadata on messages",
    "earliest_message_date": "use latest_message_after / latest_message_before",
}
_known_query: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route and its dependencies read (FastAPI's `Dependant` tree)."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _check_query(request: Request) -> None:
    """A query parameter this route does not read is a 400 naming it (never silently ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _known_query.get(id(route))
    if known is None:
        known = _known_query[id(route)] = frozenset(_query_names(dependant))
    for name in request.query_params:
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            hint = _NOT_IMPLEMENTED_QUERY.get(name)
            problem = (f"{name}: this provider does not implement the {name!r} parameter; {hint}" if hint else
                       f"{name}: {request.method} {request.url.path} takes no query parameter {name!r}")
            raise ProviderError(400, "invalid_request_error", f"{problem} (accepted here: {accepted})", field=name)


def _csv(values: list[str] | None, field: str) -> tuple[str, ...]:
    length = sum(len(value) for value in values or [])
    if length > QUERY_MAX_LENGTH:  # emailkit.limits: the same as the sandbox's search
        raise ProviderError(400, "invalid_request_error", f"{field}: {length} characters; at most "
                            f"{QUERY_MAX_LENGTH}: split the query", field=field)
    out: list[str] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if part:
                try:
                    out.append(normalise_email(part, field))
                except InvalidInput as exc:
                    raise ProviderError(400, "invalid_request_error", f"{field}: {exc.problem}; {exc.fix}",
                                        field=field) from None
    if len(out) > SEARCH_MAX_TERMS:
        raise ProviderError(400, "invalid_request_error", f"{field}: {len(out)} addresses; at most "
                            f"{SEARCH_MAX_TERMS} per filter (the sandbox's search-term limit): split the query",
                            field=field)
    return tuple(out)


def _limit_refusal(scope: dict[str, Any], status: int, field: str, message: str) -> tuple[bytes, bytes]:
    """emailkit.limits.JSONBodyLimits' answer: RFC 6749's shape on the OAuth endpoints, else the envelope."""
    if scope["path"].startswith("/v3/connect/"):
        return _json({"error": "invalid_request", "error_description": message}), b"application/json"
    rid = scope.get("state", {}).get("request_id") or str(uuid.uuid4())
    error = {"type": "invalid_request_error", "message": message, "field": field}
    return _json({"request_id": rid, "error": error}), b"application/json"


def _check_header_count(headers: list[Any], field: str) -> None:
    if len(headers) > HEADER_MAX_FIELDS:  # emailkit.limits: the sandbox's and its SMTP server's limit
        raise ProviderError(400, "invalid_request_error", f"{field}: {len(headers)} headers; at most "
                            f"{HEADER_MAX_FIELDS} header fields per message", field=field)


def _body_limit(path: str) -> int:
    return SEND_BODY_MAX_BYTES if path.endswith(("/messages/send", "/messages/send-batch")) else BODY_MAX_BYTES


def _any_email(values: list[str] | None) -> tuple[str, ...]:
    found = _csv(values, "any_email")
    if len(found) > 25:
        raise ProviderError(400, "invalid_request_error", f"any_email: {len(found)} addresses; at most 25 per "
                            "request (Nylas's limit): split the query", field="any_email")
    return found


def _include_headers(fields: str | None) -> bool:
    return fields == "include_headers"


def _ok(request: Request, data: Any, **extra: Any) -> dict[str, Any]:
    return {"request_id": request_id_of(request), "data": data, **extra}


def _hash(body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def _access(scope: str) -> Callable[..., Awaitable[Access]]:
    # async: checking a key or a token is quick; a sync dependency would cost a thread hop per request.
    async def dependency(request: Request, grant_id: GrantRef, credentials: Credentials) -> Access:
        access = _service(request).authorize(_token(credentials, request), grant_id, scope)
        _check_query(request)
        return access

    return dependency


async def _app_key(request: Request, credentials: Credentials) -> None:
    _service(request).require_api_key(_token(credentials, request))
    _check_query(request)


async def _send_access(request: Request, grant_id: GrantRef, credentials: Credentials) -> Access:
    """``email.send`` access, then the injected fault if one is due (before anything else happens)."""
    service = _service(request)
    access = service.authorize(_token(credentials, request), grant_id, "email.send")
    _check_query(request)
    service.inject_fault()
    return access


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _once(request: Request, service: Service, who: Access, key: str | None, fields: str | None,
                run: Callable[[], Awaitable[tuple[int, bytes]]]) -> Response:
    """Run a send under its Idempotency-Key (see docs/provider.md, Idempotency).

    `run` returns the (status, JSON body) to answer and to replay; errors it raises are
    answered but not kept, so a retry with the same key runs again.
    """
    if key is None:
        status, payload = await run()
        return Response(payload, status_code=status, media_type="application/json")
    if not key.strip() or len(key) > 256:
        raise ProviderError(400, "invalid_idempotency_key",
                            "Idempotency-Key must be 1 to 256 characters; use a UUID per logical send",
                            field="Idempotency-Key")
    grant = who.grant
    digest = _hash(await request.body() + (fields or "").encode())
    cached = service.store.idempotent(grant.id, key, service.idempotency_ttl)
    if cached is not None:
        if cached["request_hash"] != digest:
            raise ProviderError(409, "invalid_idempotent_request",
                                "this Idempotency-Key was used with a different request; use a new key for a "
                                "new send", field="Idempotency-Key")
        return Response(cached["body"], status_code=cached["status"], media_type="application/json",
                        headers={"Idempotent-Response": "true"})
    slot = (grant.id, key)
    if slot in service.inflight:
        raise ProviderError(409, "concurrent_idempotent_request",
                            "a request with this Idempotency-Key is still running; wait for it, then retry",
                            field="Idempotency-Key")
    service.inflight.add(slot)
    try:
        status, payload = await run()
        service.store.remember(grant.id, key, digest, status, payload)
    finally:
        service.inflight.discard(slot)
    return Response(payload, status_code=status, media_type="application/json")


class _RequestIds:
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


class _MultipartSend:
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


Reader = Annotated[Access, Depends(_access("email.read"))]
Sender = Annotated[Access, Depends(_access("email.send"))]
#: A send: `email.send` access, then an injected fault when one is due.
Sending = Annotated[Access, Depends(_send_access)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="At most 256 characters; a replay within the cache time returns "
    "the first answer with Idempotent-Response: true")]
AppKey = Depends(_app_key)


def create_app(service: Service, *, oauth_router: APIRouter | None = None, title: str = "emailkit provider") -> FastAPI:
    """The FastAPI application for `service` (mounting the OAuth server's router when given)."""
    try:
        from fastapi_offline import FastAPIOffline

        app: FastAPI = FastAPIOffline(title=title, version="1", description=__doc__, redoc_url=None)
    except ImportError:  # FastAPI's default /docs loads Swagger UI from a CDN (needs the network)
        app = FastAPI(title=title, version="1", description=__doc__, redoc_url=None)
    app.state.service = service
    install_error_handlers(app)

    # Inside _MultipartSend (which turns a multipart send into JSON): every JSON body is checked.
    app.add_middleware(JSONBodyLimits, refuse=_limit_refusal, max_bytes=_body_limit)
    app.add_middleware(_MultipartSend)
    app.add_middleware(_RequestIds)  # added last: outermost, so every answer has its request-id

    if oauth_router is not None:
        app.include_router(oauth_router)

    # ------------------------------------------------------------------ grants

    @app.post("/v3/grants", tags=["grants"], dependencies=[AppKey], response_model=DataResponse[GrantOut],
              responses=error_responses(400, 401, 403), summary="Connect a mailbox (one grant per address)")
    async def create_grant(request: Request, body: GrantCreate) -> dict[str, Any]:
        try:
            grant = service.store.create_grant(body.email)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"email: {exc.problem}; {exc.fix}", field="email") from None
        return _ok(request, grant.to_json())

    @app.post("/v3/connect/custom", tags=["grants"], dependencies=[AppKey], response_model=DataResponse[GrantOut],
              responses=error_responses(400, 401, 403),
              summary="Custom authentication: connect a mailbox with the API key (no consent page)")
    async def custom_authentication(request: Request, body: CustomAuthRequest) -> dict[str, Any]:
        try:
            grant = service.store.create_grant(body.settings.email)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"settings.email: {exc.problem}; {exc.fix}",
                                field="settings.email") from None
        out = grant.to_json()
        if body.state is not None:
            out["state"] = body.state
        return _ok(request, out)

    @app.get("/v3/grants", tags=["grants"], dependencies=[AppKey], response_model=ListResponse[GrantOut],
             responses=error_responses(400, 401, 403))
    async def list_grants(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=200, description="1 to 200 (Nylas pages grants by offset)")] = 200,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        email: Annotated[str | None, Query(description="Only the grant of this address")] = None,
        provider: Annotated[str | None, Query(description="emailkit (the only provider here)")] = None,
        grant_status: Annotated[str | None, Query(description="valid (every grant here is)")] = None,
    ) -> dict[str, Any]:
        grants = [g.to_json() for g in service.store.grants()]
        if email is not None:
            grants = [g for g in grants if g["email"].casefold() == email.strip().casefold()]
        if provider is not None:
            grants = [g for g in grants if g["provider"] == provider]
        if grant_status is not None:
            grants = [g for g in grants if g["grant_status"] == grant_status]
        return _ok(request, grants[offset:offset + limit], next_cursor=None)

    @app.get("/v3/grants/{grant_id}", tags=["grants"], response_model=DataResponse[GrantOut],
             responses=error_responses(*_ERRORS))
    async def get_grant(request: Request, who: Reader) -> dict[str, Any]:
        return _ok(request, who.grant.to_json())

    # ------------------------------------------------------------------ messages

    @app.post("/v3/grants/{grant_id}/messages/send", tags=["messages"], response_model=DataResponse[SentMessageOut],
              responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503),
              summary="Send a message (delivered over SMTP behind the scenes)")
    async def send_message(
        request: Request,
        body: SendRequest,
        who: Sending,
        fields: IncludeHeaders = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        _check_header_count(body.custom_headers, "custom_headers")

        async def run() -> tuple[int, bytes]:
            try:
                data = await service.send(who.grant, body, request_id_of(request),
                                          include_headers=_include_headers(fields))
            except ProviderError as exc:
                if exc.status != 422:  # only answers given after SMTP was tried are replayed
                    raise
                return exc.status, _json(exc.body(request_id_of(request)))
            out = DataResponse[SentMessageOut].model_validate({"request_id": request_id_of(request), "data": data})
            return 200, out.model_dump_json(by_alias=True).encode()

        return await _once(request, service, who, idempotency_key, fields, run)

    @app.post("/v3/grants/{grant_id}/messages/send-batch", tags=["messages"],
              response_model=BatchResponse,
              responses=error_responses(400, 401, 403, 404, 409, 429, 503),
              summary=f"Send 1 to {MAX_BATCH} messages in one request (results per message, in order)")
    async def send_batch(
        request: Request,
        body: BatchSendRequest,
        who: Sending,
        fields: IncludeHeaders = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Every item is checked before any is sent (a bad one refuses the batch, naming
        ``messages[i].…``); then they go out one after another on the shared SMTP session.
        The answer is 200 with one result per item: the message object as …/messages/send
        returns it, or ``{"error": {type, message, …}, "index": i}`` for an item SMTP refused."""
        for i, item in enumerate(body.messages):
            _check_header_count(item.custom_headers, f"messages[{i}].custom_headers")

        async def run() -> tuple[int, bytes]:
            data = await service.send_batch(who.grant, body.messages, request_id_of(request),
                                            include_headers=_include_headers(fields))
            out = BatchResponse.model_validate({"request_id": request_id_of(request), "data": data})
            return 200, out.model_dump_json(by_alias=True).encode()

        return await _once(request, service, who, idempotency_key, fields, run)

    @app.get("/v3/grants/{grant_id}/messages", tags=["messages"], response_model=ListResponse[MessageOut],
             responses=error_responses(*_ERRORS), summary="List messages, newest first")
    async def list_messages(
        request: Request,
        who: Reader,
        limit: Annotated[int, Query(ge=1, le=200, description="1 to 200")] = 50,
        page_token: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
        subject: Annotated[str | None, Query(description="Subject contains (case-insensitive)")] = None,
        from_: Annotated[list[str] | None, Query(alias="from", description="Sender address (comma list)")] = None,
        to: Annotated[list[str] | None, Query(description="To address (comma list)")] = None,
        cc: Annotated[list[str] | None, Query(description="Cc address (comma list)")] = None,
        bcc: Annotated[list[str] | None, Query(description="Bcc address (comma list; another address matches "
                                               "only the grant's own sent mail)")] = None,
        any_email: Annotated[list[str] | None, Query(description="In from, to, cc or bcc (comma list, at most "
                                                     "25)")] = None,
        in_: Annotated[str | None, Query(alias="in", description="Folder ID: INBOX or SENT")] = None,
        unread: bool | None = None,
        starred: bool | None = None,
        has_attachment: bool | None = None,
        thread_id: str | None = None,
        received_after: Annotated[int | None, Query(ge=0, le=UNIX_MAX, description="Unix seconds")] = None,
        received_before: Annotated[int | None, Query(ge=0, le=UNIX_MAX, description="Unix seconds")] = None,
        fields: IncludeHeaders = None,
    ) -> dict[str, Any]:
        include = _include_headers(fields)
        filters = MessageFilter(subject=subject, from_=_csv(from_, "from"), to=_csv(to, "to"), cc=_csv(cc, "cc"),
                                bcc=_csv(bcc, "bcc"), any_email=_any_email(any_email), in_=in_, unread=unread,
                                starred=starred, has_attachment=has_attachment, thread_id=thread_id,
                                received_after=received_after, received_before=received_before)
        await service.sync(who.grant)
        try:
            page = service.store.list_messages(who.grant.id, filters, limit, page_token)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"{exc.field}: {exc.problem}; {exc.fix}",
                                field=exc.field) from None
        data = [await service.message_json(who.grant, row, include_headers=include) for row in page.rows]
        return _ok(request, data, next_cursor=page.next_cursor)

    # Nylas paths that would otherwise be read as a message ID: answered 404, naming what exists.
    async def not_implemented(request: Request) -> None:
        raise ProviderError(404, "not_found_error", f"{request.method} {request.url.path}: scheduled sends and "
                            f"message cleaning are not implemented by this provider; it implements {IMPLEMENTED}")

    for path, method in (("/v3/grants/{grant_id}/messages/schedules", "GET"),
                         ("/v3/grants/{grant_id}/messages/clean", "PUT")):
        app.add_api_route(path, not_implemented, methods=[method], include_in_schema=False)

    @app.get("/v3/grants/{grant_id}/messages/{message_id}", tags=["messages"], response_model=DataResponse[MessageOut],
             responses=error_responses(*_ERRORS))
    async def get_message(request: Request, who: Reader, message_id: str, fields: IncludeHeaders = None) -> dict[str, Any]:
        include = _include_headers(fields)
        row = await service.find_message(who.grant, message_id)
        return _ok(request, await service.message_json(who.grant, row, include_headers=include))

    @app.put("/v3/grants/{grant_id}/messages/{message_id}", tags=["messages"], response_model=DataResponse[MessageOut],
             responses=error_responses(*_ERRORS), summary="Mark read/unread, starred (for this grant only)")
    async def update_message(request: Request, who: Reader, message_id: str, body: UpdateMessageRequest) -> dict[str, Any]:
        await service.find_message(who.grant, message_id)
        service.store.set_flags(who.grant.id, message_id, unread=body.unread, starred=body.starred)
        row = service.store.message(who.grant.id, message_id)
        assert row is not None
        return _ok(request, await service.message_json(who.grant, row))

    # ------------------------------------------------------------------ threads

    @app.get("/v3/grants/{grant_id}/threads", tags=["threads"], response_model=ListResponse[ThreadOut],
             responses=error_responses(*_ERRORS), summary="List threads, latest activity first")
    async def list_threads(
        request: Request,
        who: Reader,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        page_token: str | None = None,
        subject: str | None = None,
        from_: Annotated[list[str] | None, Query(alias="from")] = None,
        to: Annotated[list[str] | None, Query()] = None,
        cc: Annotated[list[str] | None, Query()] = None,
        bcc: Annotated[list[str] | None, Query()] = None,
        any_email: Annotated[list[str] | None, Query(description="Comma list, at most 25")] = None,
        in_: Annotated[str | None, Query(alias="in", description="Folder ID: INBOX or SENT")] = None,
        unread: bool | None = None,
        starred: bool | None = None,
        has_attachment: bool | None = None,
        thread_id: str | None = None,
        latest_message_after: Annotated[int | None, Query(ge=0, le=UNIX_MAX, description="Unix seconds")] = None,
        latest_message_before: Annotated[int | None, Query(ge=0, le=UNIX_MAX, description="Unix seconds")] = None,
    ) -> dict[str, Any]:
        filters = ThreadFilter(subject=subject, from_=_csv(from_, "from"), to=_csv(to, "to"), cc=_csv(cc, "cc"),
                               bcc=_csv(bcc, "bcc"), any_email=_any_email(any_email), in_=in_, unread=unread,
                               starred=starred, has_attachment=has_attachment, thread_id=thread_id,
                               latest_message_after=latest_message_after, latest_message_before=latest_message_before)
        await service.sync(who.grant)
        try:
            ids, cursor = service.store.list_threads(who.grant.id, filters, limit, page_token)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"{exc.field}: {exc.problem}; {exc.fix}",
                                field=exc.field) from None
        threads = [t for t in [await service.thread_json(who.grant, i) for i in ids] if t is not None]
        return _ok(request, threads, next_cursor=cursor)

    @app.get("/v3/grants/{grant_id}/threads/{thread_id}", tags=["threads"], response_model=DataResponse[ThreadOut],
             responses=error_responses(*_ERRORS))
    async def get_thread(request: Request, who: Reader, thread_id: str) -> dict[str, Any]:
        thread = await service.thread_json(who.grant, thread_id)
        if thread is None:
            await service.sync(who.grant)
            thread = await service.thread_json(who.grant, thread_id)
        if thread is None:
            raise ProviderError(404, "not_found_error", f"no thread {thread_id!r} in grant {who.grant.email}: "
                                "list them with GET …/threads", field="thread_id")
        return _ok(request, thread)

    # ------------------------------------------------------------------ templates

    def template_json(row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "grant_id": row["grant_id"], "object": "template", "name": row["name"],
                "subject": row["subject"], "body": row["body"], "is_plaintext": bool(row["is_plaintext"]),
                "engine": "jinja2", "created_at": int(row["created_at"]), "updated_at": int(row["updated_at"])}

    @app.post("/v3/grants/{grant_id}/templates", tags=["templates"], response_model=DataResponse[TemplateOut],
              responses=error_responses(*_ERRORS), summary="Store a Jinja2 template (subject + body)")
    async def create_template(request: Request, who: Sender, body: TemplateCreate) -> dict[str, Any]:
        try:
            check_template(body.subject, body.body, body.is_plaintext)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"{exc.field}: {exc.problem}; {exc.fix}",
                                field=exc.field) from None
        row = service.store.create_template(who.grant.id, body.name, body.subject, body.body, body.is_plaintext)
        return _ok(request, template_json(row))

    @app.get("/v3/grants/{grant_id}/templates", tags=["templates"], response_model=ListResponse[TemplateOut],
             responses=error_responses(*_ERRORS))
    async def list_templates(request: Request, who: Sender) -> dict[str, Any]:
        return _ok(request, [template_json(r) for r in service.store.templates(who.grant.id)], next_cursor=None)

    @app.get("/v3/grants/{grant_id}/templates/{template_id}", tags=["templates"],
             response_model=DataResponse[TemplateOut], responses=error_responses(*_ERRORS))
    async def get_template(request: Request, who: Sender, template_id: str) -> dict[str, Any]:
        row = service.store.template(who.grant.id, template_id)
        if row is None:
            raise ProviderError(404, "not_found_error", f"no template {template_id!r} in this grant",
                                field="template_id")
        return _ok(request, template_json(row))

    @app.delete("/v3/grants/{grant_id}/templates/{template_id}", tags=["templates"], response_model=DeleteResponse,
                responses=error_responses(*_ERRORS))
    async def delete_template(request: Request, who: Sender, template_id: str) -> dict[str, Any]:
        if not service.store.delete_template(who.grant.id, template_id):
            raise ProviderError(404, "not_found_error", f"no template {template_id!r} in this grant",
                                field="template_id")
        return {"request_id": request_id_of(request)}

    # ------------------------------------------------------------------ webhooks

    def webhook_json(hook: dict[str, Any], *, secret: bool = False) -> dict[str, Any]:
        updated = int(hook.get("updated_at") or hook["created_at"])
        out = {"id": hook["id"], "object": "webhook", "webhook_url": hook["url"],
               "trigger_types": hook["trigger_types"], "description": hook["description"],
               "notification_email_addresses": hook.get("notification_email_addresses", []), "status": "active",
               "status_updated_at": int(hook["created_at"]), "created_at": int(hook["created_at"]),
               "updated_at": updated}
        if secret:
            out["webhook_secret"] = hook["secret"]
        return out

    def trigger_types(given: list[str]) -> list[str]:
        names = [LEGACY_EVENT_TYPES.get(t, t) for t in given]
        unknown = [t for t in names if t not in EVENT_TYPES]
        if unknown:
            raise ProviderError(400, "invalid_request_error", f"trigger_types: {unknown[0]!r} is not an event this "
                                f"provider sends; use {', '.join(EVENT_TYPES)}", field="trigger_types")
        return list(dict.fromkeys(names))

    async def checked_url(given: str) -> str:
        from urllib.parse import urlsplit

        url = urlsplit(given)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ProviderError(400, "invalid_request_error", "webhook_url: must be an absolute http(s) URL, e.g. "
                                "http://127.0.0.1:8000/webhook", field="webhook_url")
        problem = await service.dispatcher.challenge(given)
        if problem is not None:
            raise ProviderError(400, "invalid_request_error", f"webhook_url: {problem}. The webhook was not "
                                "created: make the receiver answer GET ?challenge=<value> with 200 and the value",
                                field="webhook_url")
        return given

    def emails(given: list[str] | None) -> list[str] | None:
        if given is None:
            return None
        return list(_csv(given, "notification_email_addresses"))

    def webhook_or_404(webhook_id: str) -> dict[str, Any]:
        hook = service.store.webhook(webhook_id)
        if hook is None:
            raise ProviderError(404, "not_found_error", f"no webhook {webhook_id!r}: list them with GET /v3/webhooks",
                                field="webhook_id")
        return hook

    @app.post("/v3/webhooks", tags=["webhooks"], dependencies=[AppKey], response_model=DataResponse[WebhookCreatedOut],
              responses=error_responses(400, 401, 403),
              summary="Register a webhook (after the challenge GET; its secret is shown once)")
    async def create_webhook(request: Request, body: WebhookCreate) -> dict[str, Any]:
        triggers = trigger_types(body.trigger_types)
        addresses = emails(body.notification_email_addresses) or []
        url = await checked_url(body.webhook_url)
        hook = service.store.create_webhook(url, triggers, body.description or "", addresses)
        return _ok(request, webhook_json(hook, secret=True))

    @app.get("/v3/webhooks", tags=["webhooks"], dependencies=[AppKey], response_model=ListResponse[WebhookOut],
             responses=error_responses(400, 401, 403))
    async def list_webhooks(request: Request) -> dict[str, Any]:
        return _ok(request, [webhook_json(h) for h in service.store.webhooks()], next_cursor=None)

    @app.get("/v3/webhooks/ip-addresses", tags=["webhooks"], dependencies=[AppKey],
             responses=error_responses(400, 401, 403),
             summary="The addresses webhooks are sent from (the provider's host)")
    async def webhook_ip_addresses(request: Request) -> dict[str, Any]:
        return _ok(request, {"ip_addresses": ["127.0.0.1"], "updated_at": int(time.time())})

    @app.get("/v3/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[AppKey],
             response_model=DataResponse[WebhookOut], responses=error_responses(400, 401, 403, 404))
    async def get_webhook(request: Request, webhook_id: str) -> dict[str, Any]:
        return _ok(request, webhook_json(webhook_or_404(webhook_id)))

    @app.put("/v3/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[AppKey],
             response_model=DataResponse[WebhookOut], responses=error_responses(400, 401, 403, 404),
             summary="Change a webhook's URL (challenged again), triggers, description or notification addresses")
    async def update_webhook(request: Request, webhook_id: str, body: WebhookUpdate) -> dict[str, Any]:
        hook = webhook_or_404(webhook_id)
        triggers = trigger_types(body.trigger_types) if body.trigger_types is not None else None
        addresses = emails(body.notification_email_addresses)
        url = None
        if body.webhook_url is not None and body.webhook_url != hook["url"]:
            url = await checked_url(body.webhook_url)
        updated = service.store.update_webhook(webhook_id, url=url, trigger_types=triggers,
                                               description=body.description, notification_email_addresses=addresses)
        if updated is None:  # deleted meanwhile
            webhook_or_404(webhook_id)
        assert updated is not None
        return _ok(request, webhook_json(updated))

    async def rotate(request: Request, webhook_id: str) -> dict[str, Any]:
        webhook_or_404(webhook_id)
        hook = service.store.update_webhook(webhook_id, rotate_secret=True)
        if hook is None:
            webhook_or_404(webhook_id)
        assert hook is not None
        return _ok(request, webhook_json(hook, secret=True))

    # The Python SDK sends PUT /v3/webhooks/{id}/rotate-secret, the Node SDK POST /v3/webhooks/rotate-secret/{id}.
    app.add_api_route("/v3/webhooks/{webhook_id}/rotate-secret", rotate, methods=["PUT"], tags=["webhooks"],
                      dependencies=[AppKey], response_model=DataResponse[WebhookCreatedOut],
                      responses=error_responses(400, 401, 403, 404), summary="A new secret (shown once); the old one stops")
    app.add_api_route("/v3/webhooks/rotate-secret/{webhook_id}", rotate, methods=["POST"], tags=["webhooks"],
                      dependencies=[AppKey], response_model=DataResponse[WebhookCreatedOut],
                      responses=error_responses(400, 401, 403, 404), summary="The same as PUT …/{id}/rotate-secret")

    @app.delete("/v3/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[AppKey],
                response_model=WebhookDeleteResponse, responses=error_responses(400, 401, 403, 404))
    async def delete_webhook(request: Request, webhook_id: str) -> dict[str, Any]:
        if not service.store.delete_webhook(webhook_id):
            webhook_or_404(webhook_id)
        return {"request_id": request_id_of(request), "data": {"status": "success"}}

    # ------------------------------------------------------------------ the application and its redirect URIs

    def oauth_server() -> Any:
        if not hasattr(service.oauth, "application"):
            raise ProviderError(404, "not_found_error", "this provider runs without its OAuth server, so it has no "
                                "application or redirect URIs; start it with emailkit.provider.Provider")
        return service.oauth

    def redirect_json(entry: dict[str, Any]) -> dict[str, Any]:
        return {"id": entry["id"], "url": entry["url"], "platform": "web", "settings": {}}

    def redirect_or_404(redirect_uri_id: str) -> dict[str, Any]:
        found = next((e for e in oauth_server().redirect_uris() if e["id"] == redirect_uri_id), None)
        if found is None:
            raise ProviderError(404, "not_found_error", f"no redirect URI {redirect_uri_id!r}: list them with GET "
                                "/v3/applications/redirect-uris", field="redirect_uri_id")
        return found

    def invalid(exc: InvalidInput, field: str) -> ProviderError:
        return ProviderError(400, "invalid_request_error", f"{field}: {exc.problem}; {exc.fix}", field=field)

    @app.get("/v3/applications", tags=["applications"], dependencies=[AppKey],
             response_model=DataResponse[ApplicationOut], responses=error_responses(400, 401, 403),
             summary="This application: its client_id (application_id) and redirect URIs")
    async def get_application(request: Request) -> dict[str, Any]:
        app_client = oauth_server().application()
        return _ok(request, {"application_id": app_client.client_id, "organization_id": "emailkit",
                             "region": "us", "environment": "sandbox", "branding": {"name": app_client.name},
                             "callback_uris": [redirect_json(e) for e in oauth_server().redirect_uris()],
                             "created_at": int(oauth_server().application_created_at()),
                             "updated_at": int(oauth_server().application_created_at())})

    @app.get("/v3/applications/redirect-uris", tags=["applications"], dependencies=[AppKey],
             response_model=ListResponse[RedirectUriOut], responses=error_responses(400, 401, 403))
    async def list_redirect_uris(request: Request) -> dict[str, Any]:
        return _ok(request, [redirect_json(e) for e in oauth_server().redirect_uris()], next_cursor=None)

    @app.post("/v3/applications/redirect-uris", tags=["applications"], dependencies=[AppKey],
              response_model=DataResponse[RedirectUriOut], responses=error_responses(400, 401, 403),
              summary="Allow a redirect URI for the application's OAuth flow")
    async def create_redirect_uri(request: Request, body: RedirectUriIn) -> dict[str, Any]:
        try:
            entry = oauth_server().add_redirect_uri(body.url)
        except InvalidInput as exc:
            raise invalid(exc, "url") from None
        return _ok(request, redirect_json(entry))

    @app.get("/v3/applications/redirect-uris/{redirect_uri_id}", tags=["applications"], dependencies=[AppKey],
             response_model=DataResponse[RedirectUriOut], responses=error_responses(400, 401, 403, 404))
    async def get_redirect_uri(request: Request, redirect_uri_id: str) -> dict[str, Any]:
        return _ok(request, redirect_json(redirect_or_404(redirect_uri_id)))

    @app.patch("/v3/applications/redirect-uris/{redirect_uri_id}", tags=["applications"], dependencies=[AppKey],
               response_model=DataResponse[RedirectUriOut], responses=error_responses(400, 401, 403, 404))
    async def update_redirect_uri(request: Request, redirect_uri_id: str, body: RedirectUriUpdate) -> dict[str, Any]:
        entry = redirect_or_404(redirect_uri_id)
        if body.url is not None and body.url != entry["url"]:
            try:
                entry = oauth_server().replace_redirect_uri(entry["url"], body.url)
            except InvalidInput as exc:
                raise invalid(exc, "url") from None
        return _ok(request, redirect_json(entry))

    @app.delete("/v3/applications/redirect-uris/{redirect_uri_id}", tags=["applications"], dependencies=[AppKey],
                response_model=DeleteResponse, responses=error_responses(400, 401, 403, 404))
    async def delete_redirect_uri(request: Request, redirect_uri_id: str) -> dict[str, Any]:
        entry = redirect_or_404(redirect_uri_id)
        oauth_server().remove_redirect_uri(entry["url"])
        return {"request_id": request_id_of(request)}

    # ------------------------------------------------------------------ injected faults (not Nylas)

    # Left out of /openapi.json on purpose: a schema-driven fuzzer (the schemathesis test) would
    # switch faults on and then see the 503s it asked for on every send. docs/provider.md has it.
    @app.get("/v3/admin/faults", tags=["admin"], dependencies=[AppKey], response_model=DataResponse[FaultsOut],
             include_in_schema=False)
    async def get_faults(request: Request) -> dict[str, Any]:
        return _ok(request, service.faults.to_json())

    @app.put("/v3/admin/faults", tags=["admin"], dependencies=[AppKey], response_model=DataResponse[FaultsOut],
             include_in_schema=False)
    async def put_faults(request: Request, body: FaultsIn) -> dict[str, Any]:
        try:
            service.faults = Faults(status=body.status, probability=body.probability, retry_after=body.retry_after)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"{exc.field}: {exc.problem}; {exc.fix}",
                                field=exc.field) from None
        return _ok(request, service.faults.to_json())

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> JSONResponse:
        return JSONResponse({"name": title, "openapi": "/openapi.json", "docs": "/docs",
                             "time": int(time.time())})

    return app
