"""The provider's error envelope: ``{request_id, error: {type, message}}`` with the right status.

Every failure the REST API reports goes through `ProviderError`, and FastAPI's own
errors (validation, unknown route, wrong method) are converted to the same envelope,
so a client parses one shape. Types follow Nylas v3's bare names (see docs/provider.md):

=====  ==============================  ============================================
400    invalid_request_error           bad JSON, a bad field (named), a bad query
400    invalid_idempotency_key         Idempotency-Key longer than 256 characters
401    unauthorized                    no, unknown, expired or revoked credentials
403    forbidden / insufficient_scope  a token for another grant / without the scope
404    not_found_error                 unknown grant, message, thread, template, webhook
405    method_not_allowed              the path exists, the method does not
409    invalid_idempotent_request      same Idempotency-Key, different payload
409    concurrent_idempotent_request   same Idempotency-Key, first request still running
422    provider_error                  the SMTP server refused the message (code + text)
429    rate_limit_error                per-grant rate limit (or an injected fault); see Retry-After
503    provider_unavailable            SMTP or Mailpit unreachable, or a 4xx SMTP reply
503    service_unavailable             an injected fault (PUT /v3/admin/faults); see Retry-After
=====  ==============================  ============================================
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

__all__ = [
    "ErrorDetail",
    "ErrorResponse",
    "IMPLEMENTED",
    "ProviderError",
    "error_responses",
    "install_error_handlers",
    "request_id_of",
]


#: What a 404 for an unknown path names, so a client reaching for a Nylas resource this provider
#: does not have (calendars, drafts, folders, …) learns what it can use instead.
IMPLEMENTED = ("/v3/grants/{grant_id}/messages (send, send-batch, list, find, update), …/threads (list, find), "
               "…/templates, /v3/grants, /v3/connect/custom, /v3/webhooks, /v3/applications (and its "
               "redirect-uris), and OAuth under /v3/connect (auth, token, revoke, tokeninfo)")


class ProviderError(Exception):
    """An error the API reports: HTTP `status`, a `type` name, a `message` that says what to do."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        provider_error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.provider_error = provider_error

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.provider_error is not None:
            error["provider_error"] = self.provider_error
        return {"request_id": request_id, "error": error}

    def response(self, request_id: str) -> JSONResponse:
        return JSONResponse(self.body(request_id), status_code=self.status,
                            headers={**self.headers, "request-id": request_id})


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable error type, e.g. invalid_request_error")
    message: str = Field(description="What went wrong and what to do about it")
    field: str | None = Field(None, description="The request field at fault (emailkit extension)")
    provider_error: dict[str, Any] | None = Field(
        None, description="What the SMTP server said: smtp_code, smtp_reply, recipients")


class ErrorResponse(BaseModel):
    request_id: str
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Bad request: invalid JSON or a field that cannot be used (the message names it)",
    401: "Missing, unknown, expired or revoked credentials",
    403: "The token belongs to another grant or lacks the scope",
    404: "No such grant or object",
    409: "Idempotency-Key conflict",
    422: "The SMTP server refused the message or every recipient",
    429: "Rate limit (or an injected fault): wait Retry-After seconds",
    503: "SMTP server or Mailpit unreachable, a temporary SMTP failure, or an injected fault: retry after "
         "Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error envelope for these statuses."""
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}


def request_id_of(request: Request) -> str:
    """The request's ID (set by the middleware; made here if the middleware did not run)."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = str(uuid.uuid4())
    return str(rid)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """Pydantic's ``("body", "to", 0, "email")`` → ``to[0].email``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    field = _location(err.get("loc", ()))
    kind = err.get("type", "")
    where = err.get("loc", ("",))[0]
    if kind == "json_invalid":
        ctx = err.get("ctx") or {}
        return "body", (f"the request body is not valid JSON ({ctx.get('error', 'parse error')}); "
                        "send a JSON object with Content-Type: application/json")
    if kind == "missing":
        noun = {"query": "query parameter", "header": "header", "path": "path parameter"}.get(where, "field")
        if field == "body":
            return field, "the request needs a JSON body; send a JSON object with Content-Type: application/json"
        return field, f"{noun} {field!r} is required; add it"
    if kind == "extra_forbidden":
        return field, f"{field!r} is not a field this API accepts; remove it (see /openapi.json for the fields)"
    if kind in ("too_long", "too_short"):
        ctx = err.get("ctx") or {}
        if kind == "too_long":
            given = f", not {ctx['actual_length']}" if ctx.get("actual_length") is not None else ""
            return field, (f"{field}: at most {ctx.get('max_length')} items per request{given}; "
                           "split it into several requests")
        return field, f"{field}: empty; give at least {ctx.get('min_length')} item"
    if kind in ("model_attributes_type", "dict_type"):
        return field, f"{field} must be a JSON object"
    msg = err.get("msg", "is not valid")
    return field, f"{field}: {msg}; correct it (see /openapi.json for the expected type)"


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps an included router as one entry,
    whose `original_router` holds its routes; the provider includes its routers without a prefix)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    by_template: dict[str, set[str]] = {}
    for route in _routes(request.app.router.routes):
        methods = getattr(route, "methods", None)
        if methods and route.matches(request.scope)[0] != Match.NONE:
            by_template.setdefault(getattr(route, "path", ""), set()).update(methods)
    if not by_template:
        return []
    # /messages/send also fits /messages/{message_id}: the template with the fewest parameters wins.
    best = min(by_template, key=lambda path: path.count("{"))
    return sorted(by_template[best])


def install_error_handlers(app: FastAPI) -> None:
    """Make every error — ours, validation, routing, unexpected — answer with the envelope."""

    @app.exception_handler(ProviderError)
    async def provider_error(request: Request, exc: ProviderError) -> JSONResponse:
        return exc.response(request_id_of(request))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        described = [_describe(e) for e in errors] or [("body", "the request is not valid")]
        field, message = described[0]
        if len(described) > 1:
            message += f" (and {len(described) - 1} more: " + "; ".join(m for _, m in described[1:4]) + ")"
        return ProviderError(400, "invalid_request_error", message, field=field).response(request_id_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found_error", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        kind = kinds.get(exc.status_code, "invalid_request_error" if exc.status_code < 500 else "internal_error")
        if exc.status_code == 404:
            message = (f"no such endpoint: {request.method} {request.url.path}; this provider implements "
                       f"{IMPLEMENTED} (see /openapi.json for every path)")
        elif exc.status_code == 405:
            allowed = ", ".join(_allowed_methods(request)) or "none"
            message = (f"{request.method} is not allowed on {request.url.path}: this provider does not implement "
                       f"it; the methods here are {allowed} (see /openapi.json)")
        else:
            message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return ProviderError(exc.status_code, kind, message, headers=headers).response(request_id_of(request))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Not logged here: Starlette re-raises after this answer, and the server logs it once with the
        # request id (emailkit.serving.NeverDrop; hypercorn and uvicorn log it themselves).
        return ProviderError(500, "internal_error", "the provider failed unexpectedly; the server log has details",
                             ).response(request_id_of(request))
