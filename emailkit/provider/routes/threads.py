"""``/v3/grants/{grant_id}/threads``: conversations (list with filters, find)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from emailkit.provider.addresses import address_list, any_email as any_email_filter
from emailkit.provider.models import DataResponse, ListResponse, ThreadOut
from emailkit.provider.problems import error_responses
from emailkit.provider.routes.access import ERRORS, UNIX_MAX, Reader, ServiceDep, ok
from emailkit.provider.service import ThreadFilter

__all__ = ["router"]

router = APIRouter()


@router.get("/v3/grants/{grant_id}/threads", tags=["threads"], response_model=ListResponse[ThreadOut],
            responses=error_responses(*ERRORS), summary="List threads, latest activity first")
async def list_threads(
    request: Request,
    service: ServiceDep,
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
    filters = ThreadFilter(subject=subject, from_=address_list(from_, "from"), to=address_list(to, "to"),
                           cc=address_list(cc, "cc"), bcc=address_list(bcc, "bcc"), any_email=any_email_filter(any_email),
                           in_=in_, unread=unread, starred=starred, has_attachment=has_attachment,
                           thread_id=thread_id, latest_message_after=latest_message_after,
                           latest_message_before=latest_message_before)
    threads, cursor = await service.list_threads(who.grant, filters, limit, page_token)
    return ok(request, threads, next_cursor=cursor)


@router.get("/v3/grants/{grant_id}/threads/{thread_id}", tags=["threads"], response_model=DataResponse[ThreadOut],
            responses=error_responses(*ERRORS))
async def get_thread(request: Request, service: ServiceDep, who: Reader, thread_id: str) -> dict[str, Any]:
    return ok(request, await service.get_thread(who.grant, thread_id))
