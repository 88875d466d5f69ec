"""``/v3/grants/{grant_id}/messages``: send (one, or a batch), list with filters, find, update.

A send reads the ``Idempotency-Key`` header and passes it, with the request's bytes, to the
service, which runs the send at most once per key (`Service.send_once`); a replayed answer
carries ``Idempotent-Response: true``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from emailkit.provider.addresses import address_list, any_email as any_email_filter
from emailkit.provider.models import (MAX_BATCH, BatchResponse, BatchSendRequest, DataResponse, ListResponse, MessageOut,
                                      SendRequest, SentMessageOut, UpdateMessageRequest)
from emailkit.provider.problems import IMPLEMENTED, ProviderError, error_responses, request_id_of
from emailkit.provider.routes.access import (ERRORS, UNIX_MAX, IncludeHeaders, Reader, Sending, ServiceDep,
                                             include_headers, ok)
from emailkit.provider.service import Answer
from emailkit.provider.service import MessageFilter

__all__ = ["router"]

router = APIRouter()

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="At most 256 characters; a replay within the cache time returns "
    "the first answer with Idempotent-Response: true")]


def _response(answer: Answer) -> Response:
    headers = {"Idempotent-Response": "true"} if answer.replayed else None
    return Response(answer.body, status_code=answer.status, media_type="application/json", headers=headers)


async def _request_bytes(request: Request, fields: str | None) -> bytes:
    """What identifies a send under its Idempotency-Key: the body as received, and ``fields``."""
    return await request.body() + (fields or "").encode()


@router.post("/v3/grants/{grant_id}/messages/send", tags=["messages"], response_model=DataResponse[SentMessageOut],
             responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503),
             summary="Send a message (delivered over SMTP behind the scenes)")
async def send_message(
    request: Request,
    service: ServiceDep,
    body: SendRequest,
    who: Sending,
    fields: IncludeHeaders = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    answer = await service.send_once(who.grant, body, request_id_of(request), include_headers=include_headers(fields),
                                     idempotency_key=idempotency_key, request=await _request_bytes(request, fields))
    return _response(answer)


@router.post("/v3/grants/{grant_id}/messages/send-batch", tags=["messages"],
             response_model=BatchResponse,
             responses=error_responses(400, 401, 403, 404, 409, 429, 503),
             summary=f"Send 1 to {MAX_BATCH} messages in one request (results per message, in order)")
async def send_batch(
    request: Request,
    service: ServiceDep,
    body: BatchSendRequest,
    who: Sending,
    fields: IncludeHeaders = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Every item is checked before any is sent (a bad one refuses the batch, naming
    ``messages[i].…``); then they go out one after another on the shared SMTP session.
    The answer is 200 with one result per item: the message object as …/messages/send
    returns it, or ``{"error": {type, message, …}, "index": i}`` for an item SMTP refused."""
    answer = await service.send_batch_once(who.grant, body.messages, request_id_of(request),
                                           include_headers=include_headers(fields), idempotency_key=idempotency_key,
                                           request=await _request_bytes(request, fields))
    return _response(answer)


@router.get("/v3/grants/{grant_id}/messages", tags=["messages"], response_model=ListResponse[MessageOut],
            responses=error_responses(*ERRORS), summary="List messages, newest first")
async def list_messages(
    request: Request,
    service: ServiceDep,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=200, description="1 to 200")] = 50,
    page_token: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    subject: Annotated[str | None, Query(description="Subject contains (case-insensitive)")] = None,
    from_: Annotated[list[str] | None, Query(alias="from", description="Sender address (comma list)")] = None,
    to: Annotated[list[str] | None, Query(description="To address (comma list)")] = None,
    cc: Annotated[list[str] | None, Query(description="Cc address (comma list)")] = None,
    bcc: Annotated[list[str] | None, Query(description="Bcc address (comma list; another address matches "
                                           "only the grant's own sent mail)")] = None,
    any_email: Annotated[list[str] | None, Query(description="In from, to, cc or bcc (comma list, at most "
                                                 "25)")] = None,
    in_: Annotated[str | None, Query(alias="in", description="Folder ID: INBOX or SENT")] = None,
    unread: bool | None = None,
    starred: bool | None = None,
    has_attachment: bool | None = None,
    thread_id: str | None = None,
    received_after: Annotated[int | None, Query(ge=0, le=UNIX_MAX, description="Unix seconds")] = None,
    received_before: Annotated[int | None, Query(ge=0, le=UNIX_MAX, description="Unix seconds")] = None,
    fields: IncludeHeaders = None,
) -> dict[str, Any]:
    filters = MessageFilter(subject=subject, from_=address_list(from_, "from"), to=address_list(to, "to"),
                            cc=address_list(cc, "cc"), bcc=address_list(bcc, "bcc"),
                            any_email=any_email_filter(any_email), in_=in_, unread=unread, starred=starred,
                            has_attachment=has_attachment, thread_id=thread_id, received_after=received_after,
                            received_before=received_before)
    data, cursor = await service.list_messages(who.grant, filters, limit, page_token,
                                               include_headers=include_headers(fields))
    return ok(request, data, next_cursor=cursor)


# Nylas paths that would otherwise be read as a message ID: answered 404, naming what exists.
async def not_implemented(request: Request) -> None:
    raise ProviderError(404, "not_found_error", f"{request.method} {request.url.path}: scheduled sends and "
                        f"message cleaning are not implemented by this provider; it implements {IMPLEMENTED}")


for _path, _method in (("/v3/grants/{grant_id}/messages/schedules", "GET"),
                       ("/v3/grants/{grant_id}/messages/clean", "PUT")):
    router.add_api_route(_path, not_implemented, methods=[_method], include_in_schema=False)


@router.get("/v3/grants/{grant_id}/messages/{message_id}", tags=["messages"], response_model=DataResponse[MessageOut],
            responses=error_responses(*ERRORS))
async def get_message(request: Request, service: ServiceDep, who: Reader, message_id: str,
                      fields: IncludeHeaders = None) -> dict[str, Any]:
    return ok(request, await service.get_message(who.grant, message_id, include_headers=include_headers(fields)))


@router.put("/v3/grants/{grant_id}/messages/{message_id}", tags=["messages"], response_model=DataResponse[MessageOut],
            responses=error_responses(*ERRORS), summary="Mark read/unread, starred (for this grant only)")
async def update_message(request: Request, service: ServiceDep, who: Reader, message_id: str,
                         body: UpdateMessageRequest) -> dict[str, Any]:
    return ok(request, await service.update_message(who.grant, message_id, unread=body.unread, starred=body.starred))
