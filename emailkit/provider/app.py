"""The provider's HTTP API (FastAPI): Nylas-v3-shaped paths in front of `Service`.

    app = create_app(service, oauth_router=oauth_routes.router(oauth))

Every grant-scoped route authorises first (API key, or an access token with the right
scope for that grant), then applies the grant's rate limit. Every answer carries a
``request-id`` header; every error is the ``{request_id, error}`` envelope
(`emailkit.provider.problems`). ``/openapi.json`` documents it all; ``/docs`` serves
Swagger UI from local files when the `fastapi-offline` package is installed (no CDN),
and FastAPI's default page (which loads Swagger UI from a CDN) otherwise.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from emailkit.limits import JSONBodyLimits
from emailkit.provider.middleware import MultipartSend, RequestIds, body_limit, limit_refusal
from emailkit.provider.problems import install_error_handlers
from emailkit.provider.routes import ROUTERS
from emailkit.provider.service import Service

__all__ = ["create_app"]


def create_app(service: Service, *, oauth_router: APIRouter | None = None, title: str = "emailkit provider") -> FastAPI:
    """The FastAPI application for `service` (mounting the OAuth server's router when given):
    middleware, error handlers, and the resources' routers (`emailkit.provider.routes`)."""
    try:
        from fastapi_offline import FastAPIOffline

        app: FastAPI = FastAPIOffline(title=title, version="1", description=__doc__, redoc_url=None)
    except ImportError:  # FastAPI's default /docs loads Swagger UI from a CDN (needs the network)
        app = FastAPI(title=title, version="1", description=__doc__, redoc_url=None)
    app.state.service = service
    install_error_handlers(app)

    # Inside MultipartSend (which turns a multipart send into JSON): every JSON body is checked.
    app.add_middleware(JSONBodyLimits, refuse=limit_refusal, max_bytes=body_limit)
    app.add_middleware(MultipartSend)
    app.add_middleware(RequestIds)  # added last: outermost, so every answer has its request-id

    if oauth_router is not None:
        app.include_router(oauth_router)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> JSONResponse:
        return JSONResponse({"name": title, "openapi": "/openapi.json", "docs": "/docs",
                             "time": int(time.time())})

    return app
