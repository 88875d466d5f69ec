"""``GET``/``PUT /api/v1/chaos``: Mailpit's Chaos API (SMTP fault triggers: `emailkit.sandbox.chaos`).

Deliberate difference: ``PUT`` checks every trigger before changing any and names the bad one
(``Recipient.ErrorCode: 600 is not between 400 and 599 ...``); Mailpit may apply the triggers before
the bad one and says only ``error code must be between 400 and 599``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.errors import InvalidInput
from emailkit.sandbox.json_input import decode_object
from emailkit.sandbox.routes.answers import BadRequest, handler, json_response, text
from emailkit.sandbox.routes.params import JSON_BODY_LIMIT, read_body, resources

__all__ = ["get_chaos", "routes", "set_chaos"]


@handler
async def get_chaos(request: Request) -> Response:
    """The triggers (400 ``Chaos is not enabled`` without ``--enable-chaos``)."""
    chaos = resources(request).chaos
    if not chaos.enabled:
        return text("Chaos is not enabled", 400)
    return json_response(chaos.to_json())


@handler
async def set_chaos(request: Request) -> Response:
    """Replace the triggers: one not given gets its default (``{}`` resets all), as Mailpit does."""
    chaos = resources(request).chaos
    if not chaos.enabled:
        return text("Chaos is not enabled", 400)
    body = await read_body(request, JSON_BODY_LIMIT)
    if not body.strip():
        raise BadRequest('invalid JSON: the body is empty (send {} to reset every trigger, or '
                         '{"Recipient": {"ErrorCode": 550, "Probability": 50}})')
    data = decode_object(body, ("Sender", "Recipient", "Authentication")) or {}
    try:
        chaos.update(data)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from None
    return json_response(chaos.to_json())


routes = [
    Route("/api/v1/chaos", get_chaos, methods=["GET"]),
    Route("/api/v1/chaos", set_chaos, methods=["PUT"]),
]
