"""``POST /api/v1/send``: Mailpit's send API. The checks and the message are `emailkit.sandbox.send_payload`'s.

Errors are ``{"Error": "..."}`` with 400 (413 for a body over the message size limit), as Mailpit
answers them; a good request stores the message as SMTP delivery would and answers ``{"ID": ...}``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.json_input import FieldError, decode_object
from emailkit.sandbox.routes.answers import BadRequest, json_response
from emailkit.sandbox.routes.params import basic_auth_user, read_body, resources
from emailkit.sandbox.send_payload import SEND_FIELDS, prepare_send
from emailkit.sandbox.smtp_server import save_to_database
from emailkit.sandbox.store import Store

__all__ = ["routes", "send", "send_and_store"]

_IN_A_THREAD = 1024 * 1024  # a body this large is built off the event loop (base64 and MIME take a while)


def send_and_store(store: Store, payload: dict[str, Any], username: str | None) -> str:
    """`payload` checked, written as Mailpit writes it and stored; the new message's ID."""
    message = prepare_send(payload)
    return save_to_database(store, message.raw, message.sender, message.recipients, username=username)


async def send(request: Request) -> Response:
    """``POST /api/v1/send`` (not behind `answers.handler`: its errors are JSON)."""
    state = resources(request)
    try:
        body = await read_body(request, state.max_message_size, as_json=True)
        data = decode_object(body, SEND_FIELDS)
        if data is None:
            raise FieldError("invalid JSON: the body is empty (send a JSON object)")
        username = basic_auth_user(request)
        if len(body) > _IN_A_THREAD:
            message_id = await run_in_threadpool(send_and_store, state.store, data, username)
        else:
            message_id = send_and_store(state.store, data, username)
    except BadRequest as exc:
        return exc.response()
    except FieldError as exc:
        return json_response({"Error": str(exc)}, 400)
    return json_response({"ID": message_id})


routes = [Route("/api/v1/send", send, methods=["POST"])]
