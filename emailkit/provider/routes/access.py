"""What every route starts with: the service, who is calling, the query check, the answer's envelope.

* `Reader` / `Sender`: a grant-scoped route's caller (the API key, or an access token for that
  grant with ``email.read`` / ``email.send``), after the grant's rate limit; `Sending` is `Sender`
  followed by the injected fault when one is due (before anything else happens); `AppKey`: an
  application-level route (the API key only).
* Every one of them refuses a query parameter the route does not read (a 400 naming it, with
  what the route accepts), so a misspelt filter is never silently ignored.
* `ok(request, data)`: the ``{request_id, data}`` envelope; `IncludeHeaders`, `UNIX_MAX`: query types
  more than one resource reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from emailkit.provider.problems import ProviderError, request_id_of
from emailkit.provider.service import Access, Service

__all__ = ["ERRORS", "UNIX_MAX", "AppKey", "Credentials", "GrantRef", "IncludeHeaders", "Reader", "Sender", "Sending",
           "ServiceDep", "include_headers", "ok", "service_of"]

#: The error statuses every grant-scoped route may answer (documented in /openapi.json).
ERRORS = (400, 401, 403, 404, 429, 503)

_bearer = HTTPBearer(auto_error=False, description="The provider's API key, or an OAuth access token for one grant")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
GrantRef = Annotated[str, Path(description="Grant ID, the grant's email address, or 'me' with an access token")]
IncludeHeaders = Annotated[Literal["standard", "include_headers"] | None,
                           Query(description="include_headers adds the headers array")]
#: Unix seconds at 9999-12-31T23:59:59Z: the largest time a filter may name.
UNIX_MAX = 253402300799


def include_headers(fields: str | None) -> bool:
    """Whether ``?fields=`` asks for the headers array."""
    return fields == "include_headers"


async def service_of(request: Request) -> Service:
    """The app's `Service` (async: a sync dependency would cost a thread hop per request)."""
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(service_of)]


def ok(request: Request, data: Any, **extra: Any) -> dict[str, Any]:
    """The ``{request_id, data, …}`` envelope of a successful answer."""
    return {"request_id": request_id_of(request), "data": data, **extra}


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


def _access(scope: str) -> Callable[..., Awaitable[Access]]:
    # async: checking a key or a token is quick; a sync dependency would cost a thread hop per request.
    async def dependency(request: Request, grant_id: GrantRef, credentials: Credentials) -> Access:
        access = (await service_of(request)).authorize(_token(credentials, request), grant_id, scope)
        _check_query(request)
        return access

    return dependency


async def _app_key(request: Request, credentials: Credentials) -> None:
    (await service_of(request)).require_api_key(_token(credentials, request))
    _check_query(request)


async def _send_access(request: Request, grant_id: GrantRef, credentials: Credentials) -> Access:
    """``email.send`` access, then the injected fault if one is due (before anything else happens)."""
    service = await service_of(request)
    access = service.authorize(_token(credentials, request), grant_id, "email.send")
    _check_query(request)
    service.inject_fault()
    return access


Reader = Annotated[Access, Depends(_access("email.read"))]
Sender = Annotated[Access, Depends(_access("email.send"))]
#: A send: `email.send` access, then an injected fault when one is due.
Sending = Annotated[Access, Depends(_send_access)]
AppKey = Depends(_app_key)
