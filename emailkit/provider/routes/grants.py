"""``/v3/grants``: connected mailboxes (one grant per address), and Nylas's custom authentication."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from emailkit.provider.models import CustomAuthRequest, DataResponse, GrantCreate, GrantOut, ListResponse
from emailkit.provider.problems import error_responses
from emailkit.provider.routes.access import ERRORS, AppKey, Reader, ServiceDep, ok

__all__ = ["router"]

router = APIRouter()


@router.post("/v3/grants", tags=["grants"], dependencies=[AppKey], response_model=DataResponse[GrantOut],
             responses=error_responses(400, 401, 403), summary="Connect a mailbox (one grant per address)")
async def create_grant(request: Request, service: ServiceDep, body: GrantCreate) -> dict[str, Any]:
    return ok(request, service.create_grant(body.email).to_json())


@router.post("/v3/connect/custom", tags=["grants"], dependencies=[AppKey], response_model=DataResponse[GrantOut],
             responses=error_responses(400, 401, 403),
             summary="Custom authentication: connect a mailbox with the API key (no consent page)")
async def custom_authentication(request: Request, service: ServiceDep, body: CustomAuthRequest) -> dict[str, Any]:
    out = service.create_grant(body.settings.email, field="settings.email").to_json()
    if body.state is not None:
        out["state"] = body.state
    return ok(request, out)


@router.get("/v3/grants", tags=["grants"], dependencies=[AppKey], response_model=ListResponse[GrantOut],
            responses=error_responses(400, 401, 403))
async def list_grants(
    request: Request,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=200, description="1 to 200 (Nylas pages grants by offset)")] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    email: Annotated[str | None, Query(description="Only the grant of this address")] = None,
    provider: Annotated[str | None, Query(description="emailkit (the only provider here)")] = None,
    grant_status: Annotated[str | None, Query(description="valid (every grant here is)")] = None,
) -> dict[str, Any]:
    grants = service.list_grants(limit=limit, offset=offset, email=email, provider=provider, grant_status=grant_status)
    return ok(request, grants, next_cursor=None)


@router.get("/v3/grants/{grant_id}", tags=["grants"], response_model=DataResponse[GrantOut],
            responses=error_responses(*ERRORS))
async def get_grant(request: Request, who: Reader) -> dict[str, Any]:
    return ok(request, who.grant.to_json())
