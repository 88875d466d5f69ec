"""``/v3/webhooks``: signed event notifications (create after the challenge, list, find, update,
rotate the secret, delete) and the addresses they come from."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from emailkit.provider.models import (DataResponse, ListResponse, WebhookCreate, WebhookCreatedOut, WebhookDeleteResponse,
                                      WebhookOut, WebhookUpdate)
from emailkit.provider.problems import error_responses, request_id_of
from emailkit.provider.routes.access import AppKey, ServiceDep, ok

__all__ = ["router"]

router = APIRouter()


@router.post("/v3/webhooks", tags=["webhooks"], dependencies=[AppKey], response_model=DataResponse[WebhookCreatedOut],
             responses=error_responses(400, 401, 403),
             summary="Register a webhook (after the challenge GET; its secret is shown once)")
async def create_webhook(request: Request, service: ServiceDep, body: WebhookCreate) -> dict[str, Any]:
    return ok(request, await service.webhooks.create(
        webhook_url=body.webhook_url, trigger_types=body.trigger_types, description=body.description,
        notification_email_addresses=body.notification_email_addresses))


@router.get("/v3/webhooks", tags=["webhooks"], dependencies=[AppKey], response_model=ListResponse[WebhookOut],
            responses=error_responses(400, 401, 403))
async def list_webhooks(request: Request, service: ServiceDep) -> dict[str, Any]:
    return ok(request, service.webhooks.all(), next_cursor=None)


@router.get("/v3/webhooks/ip-addresses", tags=["webhooks"], dependencies=[AppKey],
            responses=error_responses(400, 401, 403),
            summary="The addresses webhooks are sent from (the provider's host)")
async def webhook_ip_addresses(request: Request) -> dict[str, Any]:
    return ok(request, {"ip_addresses": ["127.0.0.1"], "updated_at": int(time.time())})


@router.get("/v3/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[AppKey],
            response_model=DataResponse[WebhookOut], responses=error_responses(400, 401, 403, 404))
async def get_webhook(request: Request, service: ServiceDep, webhook_id: str) -> dict[str, Any]:
    return ok(request, service.webhooks.get(webhook_id))


@router.put("/v3/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[AppKey],
            response_model=DataResponse[WebhookOut], responses=error_responses(400, 401, 403, 404),
            summary="Change a webhook's URL (challenged again), triggers, description or notification addresses")
async def update_webhook(request: Request, service: ServiceDep, webhook_id: str, body: WebhookUpdate) -> dict[str, Any]:
    return ok(request, await service.webhooks.update(
        webhook_id, webhook_url=body.webhook_url, trigger_types=body.trigger_types, description=body.description,
        notification_email_addresses=body.notification_email_addresses))


async def rotate(request: Request, service: ServiceDep, webhook_id: str) -> dict[str, Any]:
    return ok(request, service.webhooks.rotate_secret(webhook_id))


# The Python SDK sends PUT /v3/webhooks/{id}/rotate-secret, the Node SDK POST /v3/webhooks/rotate-secret/{id}.
router.add_api_route("/v3/webhooks/{webhook_id}/rotate-secret", rotate, methods=["PUT"], tags=["webhooks"],
                     dependencies=[AppKey], response_model=DataResponse[WebhookCreatedOut],
                     responses=error_responses(400, 401, 403, 404), summary="A new secret (shown once); the old one stops")
router.add_api_route("/v3/webhooks/rotate-secret/{webhook_id}", rotate, methods=["POST"], tags=["webhooks"],
                     dependencies=[AppKey], response_model=DataResponse[WebhookCreatedOut],
                     responses=error_responses(400, 401, 403, 404), summary="The same as PUT …/{id}/rotate-secret")


@router.delete("/v3/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[AppKey],
               response_model=WebhookDeleteResponse, responses=error_responses(400, 401, 403, 404))
async def delete_webhook(request: Request, service: ServiceDep, webhook_id: str) -> dict[str, Any]:
    service.webhooks.delete(webhook_id)
    return {"request_id": request_id_of(request), "data": {"status": "success"}}
