"""``/v3/admin/faults``: injected 429/503 answers to sends (not Nylas; see docs/provider.md).

Left out of /openapi.json on purpose: a schema-driven fuzzer (the schemathesis test) would
switch faults on and then see the 503s it asked for on every send.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from emailkit.provider.models import DataResponse, FaultsIn, FaultsOut
from emailkit.provider.routes.access import AppKey, ServiceDep, ok

__all__ = ["router"]

router = APIRouter()


@router.get("/v3/admin/faults", tags=["admin"], dependencies=[AppKey], response_model=DataResponse[FaultsOut],
            include_in_schema=False)
async def get_faults(request: Request, service: ServiceDep) -> dict[str, Any]:
    return ok(request, service.faults.to_json())


@router.put("/v3/admin/faults", tags=["admin"], dependencies=[AppKey], response_model=DataResponse[FaultsOut],
            include_in_schema=False)
async def put_faults(request: Request, service: ServiceDep, body: FaultsIn) -> dict[str, Any]:
    faults = service.set_faults(status=body.status, probability=body.probability, retry_after=body.retry_after)
    return ok(request, faults.to_json())
