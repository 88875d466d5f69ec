"""``/v3/applications``: this application (its OAuth client_id) and its redirect URIs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from emailkit.provider.models import (ApplicationOut, DataResponse, DeleteResponse, ListResponse, RedirectUriIn,
                                      RedirectUriOut, RedirectUriUpdate)
from emailkit.provider.problems import error_responses, request_id_of
from emailkit.provider.routes.access import AppKey, ServiceDep, ok

__all__ = ["router"]

router = APIRouter()


@router.get("/v3/applications", tags=["applications"], dependencies=[AppKey],
            response_model=DataResponse[ApplicationOut], responses=error_responses(400, 401, 403),
            summary="This application: its client_id (application_id) and redirect URIs")
async def get_application(request: Request, service: ServiceDep) -> dict[str, Any]:
    return ok(request, service.application())


@router.get("/v3/applications/redirect-uris", tags=["applications"], dependencies=[AppKey],
            response_model=ListResponse[RedirectUriOut], responses=error_responses(400, 401, 403))
async def list_redirect_uris(request: Request, service: ServiceDep) -> dict[str, Any]:
    return ok(request, service.list_redirect_uris(), next_cursor=None)


@router.post("/v3/applications/redirect-uris", tags=["applications"], dependencies=[AppKey],
             response_model=DataResponse[RedirectUriOut], responses=error_responses(400, 401, 403),
             summary="Allow a redirect URI for the application's OAuth flow")
async def create_redirect_uri(request: Request, service: ServiceDep, body: RedirectUriIn) -> dict[str, Any]:
    return ok(request, service.add_redirect_uri(body.url))


@router.get("/v3/applications/redirect-uris/{redirect_uri_id}", tags=["applications"], dependencies=[AppKey],
            response_model=DataResponse[RedirectUriOut], responses=error_responses(400, 401, 403, 404))
async def get_redirect_uri(request: Request, service: ServiceDep, redirect_uri_id: str) -> dict[str, Any]:
    return ok(request, service.get_redirect_uri(redirect_uri_id))


@router.patch("/v3/applications/redirect-uris/{redirect_uri_id}", tags=["applications"], dependencies=[AppKey],
              response_model=DataResponse[RedirectUriOut], responses=error_responses(400, 401, 403, 404))
async def update_redirect_uri(request: Request, service: ServiceDep, redirect_uri_id: str,
                              body: RedirectUriUpdate) -> dict[str, Any]:
    return ok(request, service.update_redirect_uri(redirect_uri_id, url=body.url))


@router.delete("/v3/applications/redirect-uris/{redirect_uri_id}", tags=["applications"], dependencies=[AppKey],
               response_model=DeleteResponse, responses=error_responses(400, 401, 403, 404))
async def delete_redirect_uri(request: Request, service: ServiceDep, redirect_uri_id: str) -> dict[str, Any]:
    service.remove_redirect_uri(redirect_uri_id)
    return {"request_id": request_id_of(request)}
