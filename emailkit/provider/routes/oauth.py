"""The OAuth server's HTTP side: ``/v3/connect/auth`` (consent page), ``/token``, ``/revoke``, ``/tokeninfo``.

    app.include_router(router(oauth))         # oauth: an emailkit.provider.oauth.OAuth

This module reads HTTP requests (form or flat JSON bodies, the Bearer header), runs the
authorization server's synchronous calls in Starlette's thread pool, renders the consent and
error pages (Jinja2 templates in ``templates/oauth``, autoescaped) and shapes the answers:
RFC 6749 errors with the ``error_code`` and ``error_uri`` Nylas's SDKs parse into
``NylasOAuthError``, and tokeninfo's ``{request_id, data}`` envelope. The protocol itself
(PKCE, rotation, revocation) is `emailkit.provider.oauth`'s.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from emailkit.provider.oauth import ERROR_CODES, SCOPES, ConsentRequest, OAuth, Refused

__all__ = ["router"]

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates" / "oauth"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)

# Headers for the consent and error pages: never cached, never framed (clickjacking).
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

#: Where an OAuth error points (``error_uri``): the provider's own docs page, relative to its URL.
_ERROR_URI = "/docs#/oauth"

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def router(oauth: OAuth) -> APIRouter:
    """The OAuth routes of `oauth`, to mount in the provider's FastAPI app."""
    routes = APIRouter(tags=["oauth"])

    @routes.get("/v3/connect/auth", response_class=HTMLResponse, summary="Consent page (authorization endpoint)")
    async def authorize_page(request: Request) -> Response:
        query = list(request.query_params.multi_items())
        return await run_in_threadpool(_authorize, oauth, request, query, [], None)

    @routes.post("/v3/connect/auth", response_class=HTMLResponse, summary="The consent form's answer")
    async def authorize_answer(request: Request) -> Response:
        form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
        answer = {k: v for k, v in reversed(form)}
        params = [(k, v) for k, v in form if k not in ("email", "decision")]
        return await run_in_threadpool(_authorize, oauth, request, [], params, answer)

    @routes.post("/v3/connect/token", summary="Token endpoint (authorization_code, refresh_token)")
    async def token(request: Request) -> Response:
        body = await _body_params(request)
        answer = await run_in_threadpool(_endpoint, oauth, request, body, oauth.token_response)
        return _with_error_fields(answer, request)

    @routes.post("/v3/connect/revoke", summary="Token revocation (RFC 7009); ?token=… with the API key works too")
    async def revoke(request: Request) -> Response:
        body = await _body_params(request)
        if body is not None:  # Nylas's SDKs put the token in the query string
            body = [*body, *[(k, v) for k, v in request.query_params.multi_items() if k == "token"
                             and not any(name == "token" for name, _ in body)]]
        bearer = _bearer_of(request)
        if body is not None and bearer is not None and oauth.is_api_key(bearer):
            return await run_in_threadpool(_revoke_with_api_key, oauth, body)
        answer = await run_in_threadpool(_endpoint, oauth, request, body, oauth.revocation_response)
        return _with_error_fields(answer, request)

    @routes.get("/v3/connect/tokeninfo", summary="What an access token stands for (iss, aud, iat, exp, sub, email)")
    async def tokeninfo(request: Request) -> Response:
        return await run_in_threadpool(_tokeninfo, oauth, request)

    return routes


# --------------------------------------------------------------------------- the endpoints


def _authorize(oauth: OAuth, request: Request, query: list[tuple[str, str]], form: list[tuple[str, str]],
               answer: dict[str, str] | None) -> Response:
    """GET: validate and show the consent page. POST (`answer` set): redirect with a code or an error."""
    try:
        outcome = oauth.authorize(oauth.request(request.method, str(request.url), request.headers, query, form),
                                  answer)
    except Refused as refused:
        return _error_page(oauth, refused.error, refused.description)
    if isinstance(outcome, ConsentRequest):
        return _consent_page(oauth, outcome)
    return outcome


def _endpoint(oauth: OAuth, request: Request, body: list[tuple[str, str]] | None,
              respond: Callable[[Any], Response]) -> Response:
    if body is None:
        return _json_error(400, "invalid_request",
                           "Send the parameters as application/x-www-form-urlencoded (or a flat JSON object).")
    try:
        req = oauth.request(request.method, str(request.url), request.headers, [], body)
    except Refused as refused:
        return _json_error(400, refused.error, refused.description)
    return respond(req)


def _revoke_with_api_key(oauth: OAuth, body: list[tuple[str, str]]) -> Response:
    """RFC 7009 with the API key instead of client authentication: any client's token may be revoked."""
    values = [v for k, v in body if k == "token"]
    if len(values) != 1 or not values[0]:
        return _json_error(400, "invalid_request", "Give exactly one token to revoke: ?token=<access or "
                           "refresh token>.", fields=True)
    oauth.revoke(values[0])
    # RFC 7009 §2.2: an unknown or already revoked token is answered 200 too.
    return Response(json.dumps({}), status_code=200, media_type="application/json", headers=_NO_STORE)


def _tokeninfo(oauth: OAuth, request: Request) -> Response:
    request_id = str(uuid.uuid4())
    given = [k for k in ("access_token", "id_token") if request.query_params.get(k)]
    if given != ["access_token"]:
        problem = ("this provider issues no ID tokens; pass access_token=<token>" if "id_token" in given
                   else "pass access_token=<token>")
        return _api_error(400, "invalid_request_error", problem, request_id)
    token = request.query_params["access_token"]
    info = oauth.verify_access_token(token)
    issued_at = oauth.issued_at(token)
    if info is None or issued_at is None:
        return _api_error(401, "unauthorized", "the access token is unknown, expired or revoked; get a new one "
                          "(refresh, or run the OAuth flow again)", request_id)
    data = {"iss": oauth.issuer or str(request.base_url).rstrip("/"), "aud": info.client_id,
            "iat": int(issued_at), "exp": int(info.expires_at), "sub": info.grant_id, "email": info.email}
    return Response(json.dumps({"request_id": request_id, "data": data}), media_type="application/json",
                    headers={"request-id": request_id, "Cache-Control": "no-store"})


# --------------------------------------------------------------------------- pages


def _consent_page(oauth: OAuth, consent: ConsentRequest) -> Response:
    mailbox = consent.mailbox
    page = _TEMPLATES.get_template("consent.html").render(
        issuer=oauth.issuer or "emailkit provider",
        client=consent.client,
        mailbox=mailbox,
        scopes=[(s, SCOPES[s].format(email=mailbox or "your mailbox")) for s in consent.scopes],
        redirect_host=urlsplit(consent.redirect_uri).netloc,
        hidden=list(consent.hidden),
        action=consent.action,
        problem=consent.problem,
    )
    return HTMLResponse(page, status_code=400 if consent.problem else 200, headers=_PAGE_HEADERS)


def _error_page(oauth: OAuth, error: str, description: str) -> Response:
    page = _TEMPLATES.get_template("error.html").render(
        issuer=oauth.issuer or "emailkit provider", error=error, description=description,
    )
    return HTMLResponse(page, status_code=400, headers=_PAGE_HEADERS)


# --------------------------------------------------------------------------- JSON answers


def _json_error(status: int, error: str, description: str, *, fields: bool = False) -> Response:
    body: dict[str, Any] = {"error": error, "error_description": description}
    if fields:
        body.update(error_code=ERROR_CODES.get(error, 0), error_uri=_ERROR_URI)
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=_NO_STORE)


def _with_error_fields(answer: Response, request: Request) -> Response:
    """Add ``error_code`` and ``error_uri`` to an RFC 6749 error answer (Nylas's shape; its SDKs need them)."""
    if answer.status_code < 400:
        return answer
    try:
        body = json.loads(bytes(answer.body))
    except ValueError:
        return answer
    if not isinstance(body, dict) or "error" not in body:
        return answer
    body.setdefault("error_description", body["error"])
    body.setdefault("error_code", ERROR_CODES.get(body["error"], 0))
    body.setdefault("error_uri", str(request.base_url).rstrip("/") + _ERROR_URI)
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(json.dumps(body), status_code=answer.status_code, media_type="application/json", headers=headers)


def _api_error(status: int, type: str, message: str, request_id: str) -> Response:
    """The REST API's ``{request_id, error: {type, message}}`` envelope (tokeninfo is not an OAuth endpoint)."""
    return Response(json.dumps({"request_id": request_id, "error": {"type": type, "message": message}}),
                    status_code=status, media_type="application/json", headers={"request-id": request_id})


# --------------------------------------------------------------------------- reading requests


def _bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _body_params(request: Request) -> list[tuple[str, str]] | None:
    """Form fields of a POST, or a flat JSON object's (Nylas's token endpoint takes both)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = await request.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        form = await request.form()
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return None
