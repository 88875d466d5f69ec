"""``/v3/grants/{grant_id}/templates``: stored Jinja2 templates (subject + body) a send may name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from emailkit.provider.models import DataResponse, DeleteResponse, ListResponse, TemplateCreate, TemplateOut
from emailkit.provider.problems import error_responses, request_id_of
from emailkit.provider.routes.access import ERRORS, Sender, ServiceDep, ok

__all__ = ["router"]

router = APIRouter()


@router.post("/v3/grants/{grant_id}/templates", tags=["templates"], response_model=DataResponse[TemplateOut],
             responses=error_responses(*ERRORS), summary="Store a Jinja2 template (subject + body)")
async def create_template(request: Request, service: ServiceDep, who: Sender, body: TemplateCreate) -> dict[str, Any]:
    return ok(request, service.create_template(who.grant, name=body.name, subject=body.subject, body=body.body,
                                               is_plaintext=body.is_plaintext))


@router.get("/v3/grants/{grant_id}/templates", tags=["templates"], response_model=ListResponse[TemplateOut],
            responses=error_responses(*ERRORS))
async def list_templates(request: Request, service: ServiceDep, who: Sender) -> dict[str, Any]:
    return ok(request, service.list_templates(who.grant), next_cursor=None)


@router.get("/v3/grants/{grant_id}/templates/{template_id}", tags=["templates"],
            response_model=DataResponse[TemplateOut], responses=error_responses(*ERRORS))
async def get_template(request: Request, service: ServiceDep, who: Sender, template_id: str) -> dict[str, Any]:
    return ok(request, service.get_template(who.grant, template_id))


@router.delete("/v3/grants/{grant_id}/templates/{template_id}", tags=["templates"], response_model=DeleteResponse,
               responses=error_responses(*ERRORS))
async def delete_template(request: Request, service: ServiceDep, who: Sender, template_id: str) -> dict[str, Any]:
    service.delete_template(who.grant, template_id)
    return {"request_id": request_id_of(request)}
